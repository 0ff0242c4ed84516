//! `facetv-gpu bench --input FILE`: stage and end-to-end throughput (see `crate::bench`).

use anyhow::{bail, Result};

use super::args::{BenchArgs, DeviceArg, GlobalArgs, RunArgs};
use super::run_cmd::{job_config, open_analyzers};
use super::Outcome;

pub fn run(g: &GlobalArgs, a: &BenchArgs) -> Result<Outcome> {
    if matches!(&a.device, DeviceArg::Gpus(list) if list.len() > 1) {
        bail!("bench measures one device: give one GPU number (or cpu)");
    }
    // One pipeline: `auto` measures the first GPU.
    let providers = super::providers(&a.device, a.precision);
    let auto = a.device == DeviceArg::Auto;
    let mut analyzers = open_analyzers(g, &a.model, Some(1), 1, &providers[..1], auto)?;
    let run_args = RunArgs {
        input: vec![a.input.clone()],
        output: None,
        every: a.every,
        sampling: a.sampling,
        decode_all: a.decode_all,
        frames: None,
        device: a.device.clone(),
        precision: a.precision,
        jobs: Some(1),
        force: true,
        shard: None,
        batch_frames: a.batch_frames,
        progress_interval: 30.0,
        checkpoint_every: 3600.0,
        lock_timeout: 300,
        stall_timeout: 300,
        model: a.model.clone(),
    };
    let cfg = job_config(&run_args, &analyzers[0], std::env::temp_dir())?;
    let report = crate::bench::run(&mut analyzers[0], &a.input, &cfg)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print();
    }
    Ok(Outcome::Success)
}
