//! `facetv-gpu bench --input FILE`: stage and end-to-end throughput (see `crate::bench`).

use anyhow::{bail, Result};

use super::args::{BenchArgs, DeviceArg, GlobalArgs, RunArgs};
use super::run_cmd::{job_config, open_analyzers};
use super::Outcome;
use crate::runtime::providers::Provider;

pub fn run(g: &GlobalArgs, a: &BenchArgs) -> Result<Outcome> {
    if matches!(&a.device, DeviceArg::Gpus(list) if list.len() > 1) {
        bail!("bench measures one device: give one GPU number (or cpu)");
    }
    // One pipeline: `auto` measures the first GPU.
    let providers = super::providers(&a.device, a.precision);
    if !a.decode_sessions.is_empty() {
        return decode_only(a, &providers[0]);
    }
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

/// `--decode-sessions`: decoding throughput at each session count, and on a GPU how NVDEC's
/// sampled frames compare with the CPU decoder's.
fn decode_only(a: &BenchArgs, provider: &Provider) -> Result<Outcome> {
    let gpu = match provider {
        Provider::Cpu => None,
        Provider::Gpu { device, .. } => Some(*device),
    };
    let runs = a
        .decode_sessions
        .iter()
        .map(|&n| crate::bench::decode_sessions(&a.input, a.every, gpu, n.into()))
        .collect::<crate::Result<Vec<_>>>()?;
    let agreement = gpu
        .map(|device| crate::bench::decoder_agreement(&a.input, a.every, device))
        .transpose()?;
    if a.json {
        let report = serde_json::json!({
            "input": a.input.display().to_string(),
            "decode_sessions": runs,
            "decoder_agreement": agreement,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(Outcome::Success);
    }
    println!(
        "{:>8} {:>8} {:>14} {:>9} {:>10}",
        "sessions", "decoder", "frames decoded", "seconds", "frames/s"
    );
    for r in &runs {
        println!(
            "{:>8} {:>8} {:>14} {:>9.3} {:>10.1}",
            r.sessions, r.decoder, r.frames_decoded, r.seconds, r.frames_per_second
        );
    }
    for d in agreement.iter().flatten() {
        println!(
            "{}: {} sampled frames ({} stayed in GPU memory), max |Δ| {}, mean |Δ| {:.3} BGR levels against the CPU decoder",
            d.path, d.frames, d.frames_on_gpu, d.max_abs, d.mean_abs
        );
    }
    Ok(Outcome::Success)
}
