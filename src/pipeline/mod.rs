//! The main job: every input (a video, or a folder of photos) through decode → detect → align →
//! classify → sink. Workers take inputs from a shared queue (`--jobs`); within a video the stages
//! run as a streaming graph (`video.rs`). A failing input is logged with its reason, recorded in
//! `failures.tsv`, and the job goes on with the next.

mod failures;
mod images;
pub mod naming;
mod summary;
mod video;

pub use naming::output_paths;
pub use video::process_video;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::analyze::Analyzer;
use crate::decode::DecodeOptions;
use crate::error::{Error, FailureKind, Result};
use crate::inputs::{Rejected, Work};
use crate::progress::Progress;
use crate::resume::identity::{config_hash, fingerprint, Fingerprint};
use crate::resume::lock::{Busy, Lock};
use crate::sink::OutputPaths;
use failures::write_failures;
use images::process_images;
use naming::photos_label;

#[derive(Debug, Clone)]
pub struct JobConfig {
    pub output: PathBuf,
    /// Sampling and decoding.
    pub decode: DecodeOptions,
    /// Write every N-th sampled frame annotated.
    pub annotate_every: Option<u64>,
    pub force: bool,
    /// Sampled frames sent through the models together.
    pub batch_frames: usize,
    /// Every option that shapes the results, recorded in each summary.
    pub options: serde_json::Value,
    /// Minimum time between checkpoints inside a video (zero: after every batch).
    pub checkpoint_every: Duration,
    /// A lock whose heartbeat is older than this belongs to a dead worker.
    pub lock_timeout: Duration,
}

#[derive(Debug, Default)]
pub struct JobReport {
    pub done: usize,
    pub skipped: usize,
    /// Inputs another worker is processing right now.
    pub busy: usize,
    pub failed: Vec<Failure>,
    /// Input files processed successfully by this run (their old failures are cleared).
    pub succeeded: Vec<PathBuf>,
    /// Stopped by Ctrl-C / SIGTERM before everything was done.
    pub interrupted: bool,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub path: PathBuf,
    pub kind: FailureKind,
    pub message: String,
}

/// Runs every work item; each analyzer serves one worker thread that takes the next item from a
/// shared queue, so `analyzers.len()` inputs are processed at once.
pub fn run_job(
    analyzers: Vec<Analyzer>,
    work: &[Work],
    rejected: &[Rejected],
    cfg: &JobConfig,
    progress: &Progress,
) -> Result<JobReport> {
    std::fs::create_dir_all(&cfg.output).map_err(|e| Error::io(&cfg.output, e))?;
    let report = std::sync::Mutex::new(JobReport::default());
    for r in rejected {
        tracing::error!("{}: {} ({})", r.path.display(), r.reason, r.kind.advice());
        let f = Failure {
            path: r.path.clone(),
            kind: r.kind,
            message: r.reason.clone(),
        };
        report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed
            .push(f);
    }
    let paths = output_paths(work, &cfg.output);
    let (tx, rx) = crossbeam_channel::bounded(work.len().max(1));
    for item in work.iter().zip(&paths).enumerate() {
        let _ = tx.send(item);
    }
    drop(tx);
    std::thread::scope(|scope| {
        for mut analyzer in analyzers {
            let (rx, report) = (rx.clone(), &report);
            scope.spawn(move || {
                for (i, (w, out)) in rx.iter() {
                    if crate::resume::stop_requested() {
                        report.lock().unwrap_or_else(|p| p.into_inner()).interrupted = true;
                        break;
                    }
                    let outcome = process(&mut analyzer, w, out, cfg, i, work.len(), progress);
                    let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
                    match outcome {
                        Outcome::Processed(extra) => {
                            r.done += 1;
                            r.succeeded.extend(
                                input_files(w)
                                    .into_iter()
                                    .filter(|p| !extra.iter().any(|f| f.path == *p))
                                    .map(Path::to_path_buf),
                            );
                            r.failed.extend(extra);
                        }
                        Outcome::Skipped => r.skipped += 1,
                        Outcome::Busy => r.busy += 1,
                        Outcome::Interrupted => r.interrupted = true,
                        Outcome::Failed(f) => r.failed.push(f),
                    }
                }
            });
        }
    });
    let report = report.into_inner().unwrap_or_else(|p| p.into_inner());
    write_failures(&cfg.output, &report, cfg.lock_timeout)?;
    Ok(report)
}

enum Outcome {
    /// Finished; photos of a folder that failed are listed.
    Processed(Vec<Failure>),
    Skipped,
    Busy,
    Interrupted,
    Failed(Failure),
}

fn input_files(w: &Work) -> Vec<&Path> {
    match w {
        Work::Video { path, .. } => vec![path.as_path()],
        Work::Images { paths, .. } => paths.iter().map(|p| p.as_path()).collect(),
    }
}

/// The fingerprint recorded in a finished input's summary, if any.
fn finished_fingerprint(out: &OutputPaths) -> Option<Fingerprint> {
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.summary()).ok()?).ok()?;
    serde_json::from_value(summary.get("fingerprint")?.clone()).ok()
}

fn process(
    analyzer: &mut Analyzer,
    w: &Work,
    out: &OutputPaths,
    cfg: &JobConfig,
    i: usize,
    n: usize,
    progress: &Progress,
) -> Outcome {
    let (name, path) = match w {
        Work::Video { path, .. } => (path.display().to_string(), path.clone()),
        Work::Images { rel_dir, paths } => (photos_label(paths.len(), rel_dir), rel_dir.clone()),
    };
    let fail = |e: Error| {
        if matches!(e, Error::Interrupted) {
            return Outcome::Interrupted;
        }
        let kind = e.kind();
        tracing::error!("{e} ({})", kind.advice());
        Outcome::Failed(Failure {
            path: path.clone(),
            kind,
            message: e.to_string(),
        })
    };
    let config = config_hash(&cfg.options, &analyzer.model_hashes);
    let print = match fingerprint(&input_files(w), &config) {
        Ok(f) => f,
        Err(e) => return fail(Error::video(&path, FailureKind::Unreadable, e.to_string())),
    };
    if !cfg.force && finished_fingerprint(out).as_ref() == Some(&print) {
        tracing::info!("[{}/{n}] {name}: already done, skipped", i + 1);
        progress.finished_one();
        return Outcome::Skipped;
    }
    let lock = match Lock::acquire(&out.file(".lock"), cfg.lock_timeout) {
        Ok(Ok(l)) => l,
        Ok(Err(Busy {
            owner,
            heartbeat_age,
        })) => {
            let age = heartbeat_age.as_secs();
            tracing::info!(
                "[{}/{n}] {name}: being processed by {owner} (heartbeat {age} s ago), skipped",
                i + 1
            );
            progress.finished_one();
            return Outcome::Busy;
        }
        Err(e) => return fail(e),
    };
    // Another worker may have finished it while we waited for the lock.
    if !cfg.force && finished_fingerprint(out).as_ref() == Some(&print) {
        progress.finished_one();
        return Outcome::Skipped;
    }
    if out.summary().exists() {
        tracing::info!(
            "{name}: the input or the options changed since it was processed; processing it again"
        );
    }
    tracing::info!("[{}/{n}] {name}", i + 1);
    let mut failures = Vec::new();
    let result = match w {
        Work::Video { path, .. } => {
            process_video(analyzer, path, out, cfg, &print, progress, Some(&lock))
        }
        Work::Images { paths, .. } => {
            process_images(analyzer, paths, out, cfg, &print, &mut failures, progress)
        }
    };
    let outcome = match result {
        Ok(faces) => {
            tracing::info!("{name}: {faces} faces → {}", out.tar().display());
            Outcome::Processed(failures)
        }
        Err(Error::Interrupted) => Outcome::Interrupted,
        Err(e) => {
            // Keep what a rerun can resume from (a stall, a full disk, a lost lock whose files
            // now belong to another worker); drop the rest.
            if !matches!(
                e.kind(),
                FailureKind::Stalled | FailureKind::Output | FailureKind::Other
            ) {
                remove_partials(out);
            }
            fail(e)
        }
    };
    drop(lock);
    outcome
}

fn remove_partials(out: &OutputPaths) {
    for p in [out.tar(), out.metadata(), out.age_gender(), out.samples()] {
        let _ = std::fs::remove_file(OutputPaths::partial(&p));
    }
    let _ = std::fs::remove_file(out.file(".checkpoint.json"));
}
