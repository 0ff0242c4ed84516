//! `facetv-gpu-check`: the check of `facetv-gpu gpu-check` in a binary that links nothing but
//! the C library (no FFmpeg, no HDF5), so it can be copied to a GPU node and run there as it is;
//! scripts/device-check.sh does that.

use std::path::PathBuf;

use clap::Parser;

/// Check facetv's CUDA kernels on a GPU against their CPU twins and time them.
#[derive(Parser)]
#[command(version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("FACETV_REVISION"), ")"))]
struct Args {
    /// The GPU, numbered from 0 as CUDA_VISIBLE_DEVICES shows them.
    #[arg(long, default_value_t = 0, value_name = "N")]
    device: usize,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
}

/// Exit status: 0 every kernel agrees with its twin, 1 one does not, 2 the check could not run.
fn main() -> std::process::ExitCode {
    match check(&Args::parse()) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn check(args: &Args) -> anyhow::Result<bool> {
    let gpu = facetv::gpu::device::Gpu::open(args.device)?;
    let report = facetv::gpu::check::run(&gpu)?;
    print!("{}", report.table());
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(report.passed())
}
