//! `facetv-gpu [run] --input DIR --output DIR`: the main job.

use anyhow::{bail, Result};
use serde_json::json;

use std::path::PathBuf;

use super::args::{DeviceArg, GlobalArgs, ModelArgs, RunArgs};
use super::Outcome;
use crate::analyze::Analyzer;
use crate::decode::DecodeOptions;
use crate::inputs::discover;
use crate::pipeline::{run_job, JobConfig};
use crate::runtime::providers::Provider;
use crate::runtime::SessionOptions;

pub fn run(g: &GlobalArgs, a: &RunArgs) -> Result<Outcome> {
    if a.input.is_empty() {
        bail!("no input given: facetv-gpu --input DIR --output DIR (see --help)");
    }
    let Some(output) = a.output.clone() else {
        bail!("no output folder given: add --output DIR");
    };
    for input in &a.input {
        if std::fs::symlink_metadata(input).is_err() {
            bail!("--input {}: no such file or folder", input.display());
        }
    }
    if output.exists() && !output.is_dir() {
        bail!(
            "--output {}: is a file, not a folder; give a folder (it is created if missing)",
            output.display()
        );
    }
    if !(a.every.is_finite() && a.every > 0.0) {
        bail!("--every must be a positive number of seconds");
    }
    let providers = super::providers(&a.device, a.precision);
    let auto = a.device == DeviceArg::Auto;
    let (mut work, mut rejected) = discover(&a.input, Some(&output));
    install_stop_handler();
    if work.is_empty() && rejected.is_empty() {
        bail!(
            "no videos or photos found in {}",
            a.input
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some((k, n)) = a.shard {
        work.retain(|w| crate::inputs::shard_of(w, n) == k);
        // Files that cannot be used are reported once, by shard 0.
        if k != 0 {
            rejected.clear();
        }
        tracing::info!("shard {k}/{n}: {} inputs", work.len());
    }
    tracing::info!(
        "{} inputs to process, results in {}",
        work.len(),
        output.display()
    );
    let jobs = a.jobs.map(usize::from);
    let analyzers = open_analyzers(g, &a.model, jobs, work.len(), &providers, auto)?;
    let cfg = job_config(a, &analyzers[0], output.clone())?;
    let progress = crate::progress::Progress::new(
        work.len(),
        g.quiet,
        std::time::Duration::from_secs_f64(a.progress_interval.max(0.0)),
    );
    let report = run_job(analyzers, &work, &rejected, &cfg, &progress)?;
    progress.finish();
    if report.interrupted {
        tracing::warn!(
            "stopped: {} processed; run the same command again to resume",
            report.done
        );
        return Ok(Outcome::Interrupted);
    }
    tracing::info!(
        "finished: {} processed, {} already done, {} being processed by other workers, {} failed{}",
        report.done,
        report.skipped,
        report.busy,
        report.failed.len(),
        if report.failed.is_empty() {
            String::new()
        } else {
            format!(" (see {})", output.join("failures.tsv").display())
        }
    );
    Ok(if report.failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::SomeInputsFailed
    })
}

/// One analyzer per parallel job (`jobs`, or by default 1 on the CPU and `default_jobs` per GPU;
/// at least one per GPU in `providers`; jobs are spread over the GPUs in turn); on the CPU, ONNX
/// Runtime's threads are shared out between them. `auto` (`--device auto`): when the GPUs cannot
/// run the models, say why and use the CPU.
pub(super) fn open_analyzers(
    g: &GlobalArgs,
    m: &ModelArgs,
    jobs: Option<usize>,
    inputs: usize,
    providers: &[Provider],
    auto: bool,
) -> Result<Vec<Analyzer>> {
    let gpu = providers.iter().any(|p| *p != Provider::Cpu);
    crate::runtime::environment_for(g.ort_lib.as_deref(), gpu)?;
    let opened = job_providers(providers, jobs, inputs)
        .map_err(anyhow::Error::from)
        .and_then(|p| open_on(g, m, &p));
    let analyzers = match opened {
        Err(e) if auto && gpu && is_gpu_error(&e) => {
            tracing::warn!("--device auto: the GPUs cannot run the models ({e:#}); using the CPU");
            open_on(g, m, &job_providers(&[Provider::Cpu], jobs, inputs)?)?
        }
        opened => opened?,
    };
    match analyzers[0].provider {
        Provider::Cpu => tracing::info!("models on the CPU, {} pipeline(s)", analyzers.len()),
        Provider::Gpu { .. } => tracing::info!(
            "models on the GPU ({}), {} pipeline(s) over {} GPU(s)",
            analyzers[0].device_label(),
            analyzers.len(),
            providers.len()
        ),
    }
    for missing in &analyzers[0].missing_optional {
        tracing::warn!("optional model '{missing}' is not installed; running without it (fetch it with `facetv-gpu models fetch {missing}` where the internet is reachable, or put its weights file in the model mirror: see models/README.md)");
    }
    Ok(analyzers)
}

fn is_gpu_error(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<crate::Error>(), Some(crate::Error::Gpu(_)))
}

/// One analyzer per entry of `jobs` (where each job's models run).
fn open_on(g: &GlobalArgs, m: &ModelArgs, jobs: &[Provider]) -> Result<Vec<Analyzer>> {
    let mut session = super::session_options(g);
    if g.threads.is_none() && jobs.iter().all(|p| *p == Provider::Cpu) {
        session.intra_threads = (session.intra_threads / jobs.len().max(1)).max(1);
    }
    let manifest = super::manifest();
    let store = super::store(g);
    let choice = super::model_choice(m);
    let detect = super::detect_options(m)?;
    let analyzers = jobs
        .iter()
        .map(|&provider| {
            let session = SessionOptions {
                provider,
                ..session
            };
            Analyzer::open(&manifest, &store, &choice, detect, session)
        })
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(analyzers)
}

/// Where each parallel job runs: `jobs` of them spread over `providers` in turn (at least one
/// each); without `--jobs`, 1 on the CPU and per GPU one per video decoder it has
/// (`gpu::device::default_jobs`, so every NVDEC engine has a session), never more than there are
/// inputs (but one per GPU).
fn job_providers(
    providers: &[Provider],
    jobs: Option<usize>,
    inputs: usize,
) -> crate::Result<Vec<Provider>> {
    if let Some(n) = jobs {
        let n = n.max(providers.len());
        return Ok((0..n).map(|i| providers[i % providers.len()]).collect());
    }
    let counts = providers
        .iter()
        .map(|p| match p {
            Provider::Cpu => Ok(1),
            Provider::Gpu { device, .. } => crate::gpu::device::default_jobs(*device),
        })
        .collect::<crate::Result<Vec<usize>>>()?;
    Ok(interleave(providers, &counts, inputs.max(providers.len())))
}

/// `counts[i]` jobs on `providers[i]`, taken in turn (so a cap leaves the GPUs balanced), at most
/// `cap` in all.
fn interleave(providers: &[Provider], counts: &[usize], cap: usize) -> Vec<Provider> {
    let rounds = counts.iter().copied().max().unwrap_or(0);
    let mut jobs: Vec<Provider> = (0..rounds)
        .flat_map(|round| {
            providers
                .iter()
                .zip(counts)
                .filter(move |(_, &c)| round < c)
                .map(|(p, _)| *p)
        })
        .collect();
    jobs.truncate(cap);
    jobs
}

/// The job settings, with every option that shapes the results recorded for the summaries.
pub(super) fn job_config(a: &RunArgs, analyzer: &Analyzer, output: PathBuf) -> Result<JobConfig> {
    let detect = super::detect_options(&a.model)?;
    let options = json!({
        "every_s": a.every,
        "sampling": a.sampling,
        "detector": a.model.detector,
        "threshold": detect.threshold,
        "nms_iou": detect.nms_iou,
        "max_side": detect.max_side,
        "min_face_px": detect.min_face,
        "classifiers": analyzer.classifier_names(),
        "age_crops": analyzer.classifier.crops,
        "frames": a.frames,
        "device": analyzer.device_label(),
        "chip_size": crate::align::CHIP_SIZE,
        "jpeg_quality": crate::sink::JPEG_QUALITY,
        // Batch composition can move the last digit of a model output, so it is part of the
        // configuration a result is reused for.
        "batch_frames": a.batch_frames as usize,
    });
    if !(a.checkpoint_every.is_finite() && a.checkpoint_every >= 0.0) {
        bail!("--checkpoint-every must be zero or a positive number of seconds");
    }
    Ok(JobConfig {
        output,
        decode: DecodeOptions {
            every: a.every,
            sampling: a.sampling,
            decode_all: a.decode_all,
            stall_timeout: std::time::Duration::from_secs(a.stall_timeout.max(1)),
        },
        annotate_every: a.frames,
        force: a.force,
        batch_frames: a.batch_frames as usize,
        options,
        checkpoint_every: std::time::Duration::from_secs_f64(a.checkpoint_every),
        lock_timeout: std::time::Duration::from_secs(a.lock_timeout.max(1)),
    })
}

/// Ctrl-C or SIGTERM (Slurm preemption): finish the batch in hand, checkpoint, stop. A second
/// signal ends the process at once; the next run resumes from the checkpoints either way.
fn install_stop_handler() {
    let _ = ctrlc::set_handler(|| {
        if crate::resume::STOP.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("stopping after the current batch (press Ctrl-C again to quit at once)");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::providers::Precision;

    #[test]
    fn default_jobs_follow_each_gpu_in_turn_and_never_exceed_the_inputs() {
        let gpu = |device| Provider::Gpu {
            device,
            precision: Precision::Fp16,
        };
        let (h200, t4) = (gpu(0), gpu(1));
        let all = interleave(&[h200, t4], &[7, 2], 100);
        assert_eq!(all.len(), 9);
        assert_eq!(all.iter().filter(|p| **p == t4).count(), 2);
        assert_eq!(&all[..4], &[h200, t4, h200, t4]);
        assert_eq!(interleave(&[h200, t4], &[7, 2], 3), vec![h200, t4, h200]);
        // Explicit --jobs: spread in turn, at least one per device.
        let cpu = job_providers(&[Provider::Cpu], Some(3), 1).unwrap();
        assert_eq!(cpu, vec![Provider::Cpu; 3]);
        assert_eq!(
            job_providers(&[h200, t4], Some(1), 1).unwrap(),
            vec![h200, t4]
        );
        assert_eq!(
            job_providers(&[Provider::Cpu], None, 50).unwrap(),
            vec![Provider::Cpu]
        );
    }
}
