//! The command-line front end: parses arguments, sets up logging, runs a command and maps the
//! outcome to an exit status (0 all inputs succeeded, 1 some inputs failed, 2 usage or setup error).

mod args;
mod bench_cmd;
mod evaluate_cmd;
mod image_cmd;
mod models_cmd;
mod run_cmd;

pub use args::Cli;
use args::{Command, DeviceArg, GlobalArgs, LogFormat, ModelArgs};

use anyhow::Result;

use crate::analyze::ModelChoice;
use crate::detect::DetectOptions;
use crate::models::{Manifest, ModelStore};
use crate::runtime::providers::{Precision, Provider};
use crate::runtime::SessionOptions;

/// How a command ended, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    SomeInputsFailed,
    /// Stopped by a signal; rerunning resumes.
    Interrupted,
}

pub fn main_with(cli: Cli) -> Result<Outcome> {
    init_logging(&cli.global);
    match cli.command {
        Some(Command::Status {
            results,
            input,
            lock_timeout,
            json,
        }) => {
            let st = crate::archive::status::status(
                &results,
                &input,
                std::time::Duration::from_secs(lock_timeout.max(1)),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                st.print();
            }
            Ok(Outcome::Success)
        }
        Some(Command::Merge {
            results,
            name_pattern,
        }) => {
            let m = crate::archive::merge::merge(&results, &name_pattern)?;
            println!(
                "{} rows → {} and {}",
                m.rows,
                m.tsv.display(),
                m.parquet.display()
            );
            Ok(Outcome::Success)
        }
        Some(Command::Report { results }) => {
            let path = crate::report::write_report(&results)?;
            println!("{}", path.display());
            Ok(Outcome::Success)
        }
        Some(Command::GpuCheck { device, json }) => {
            Ok(if crate::gpu::check::print(device, json)? {
                Outcome::Success
            } else {
                Outcome::SomeInputsFailed
            })
        }
        Some(Command::Evaluate(a)) => evaluate_cmd::run(&a),
        Some(Command::Bench(a)) => bench_cmd::run(&cli.global, &a),
        Some(Command::Image(a)) => image_cmd::run(&cli.global, &a),
        Some(Command::Models(m)) => models_cmd::run(&cli.global, m),
        Some(Command::Run(a)) => run_cmd::run(&cli.global, &a),
        None => run_cmd::run(&cli.global, &cli.run),
    }
}

fn init_logging(g: &GlobalArgs) {
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FACETV_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("facetv={level},ort=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| crate::progress::LogWriter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match g.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.without_time().try_init(),
    };
}

fn store(g: &GlobalArgs) -> ModelStore {
    ModelStore::new(g.models.clone())
}

fn session_options(g: &GlobalArgs) -> SessionOptions {
    let mut o = SessionOptions::default();
    if let Some(t) = g.threads {
        o.intra_threads = t.max(1);
    }
    o
}

/// The providers `--device` asks for, one per pipeline. `auto` takes every GPU the driver shows
/// (none: the CPU); whether ONNX Runtime can use them is found when the sessions open.
fn providers(device: &DeviceArg, precision: Option<Precision>) -> Vec<Provider> {
    let chosen = match device {
        DeviceArg::Cpu => vec![Provider::Cpu],
        DeviceArg::Gpus(list) => list.iter().map(|d| gpu(*d, precision)).collect(),
        DeviceArg::Auto => {
            // No driver library: a CPU machine, quietly. A driver that cannot list GPUs is a
            // broken GPU node: say so before running on the CPU.
            match crate::gpu::device::count() {
                Ok(n) if n > 0 => (0..n).map(|d| gpu(d, precision)).collect(),
                Ok(_) => vec![Provider::Cpu],
                Err(e) => {
                    if crate::gpu::ensure_driver().is_ok() {
                        tracing::warn!("--device auto: {e}; running on the CPU");
                    }
                    vec![Provider::Cpu]
                }
            }
        }
    };
    if precision.is_some() && chosen == [Provider::Cpu] {
        tracing::info!("--precision applies to GPU runs only; the CPU computes in fp32");
    }
    chosen
}

fn gpu(device: usize, precision: Option<Precision>) -> Provider {
    Provider::Gpu {
        device,
        precision: precision.unwrap_or_default(),
    }
}

fn detect_options(m: &ModelArgs) -> Result<DetectOptions> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&m.threshold),
        "--threshold must be between 0 and 1"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&m.nms),
        "--nms must be between 0 and 1"
    );
    anyhow::ensure!(m.max_side >= 32, "--max-side must be at least 32");
    Ok(DetectOptions {
        threshold: m.threshold,
        nms_iou: m.nms,
        max_side: m.max_side,
        min_face: m.min_face.max(0.0),
    })
}

fn model_choice(m: &ModelArgs) -> ModelChoice {
    ModelChoice {
        detector: m.detector.clone(),
        classifiers: m.classifiers.clone(),
        crops: m.age_crop.clone().unwrap_or_default(),
    }
}

fn manifest() -> Manifest {
    Manifest::embedded()
}
