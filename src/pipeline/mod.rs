//! The main job: every input (a video, or a folder of photos) through decode → detect → align →
//! classify → sink, one after another, with frames batched through the models. A failing input is
//! logged with its reason, recorded in `failures.tsv`, and the job goes on with the next.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::analyze::Analyzer;
use crate::decode::ffmpeg::FfmpegSource;
use crate::decode::FrameSource;
use crate::error::{Error, FailureKind, Result};
use crate::image::BgrImage;
use crate::inputs::{Rejected, Work};
use crate::progress::Progress;
use crate::resume::identity::{config_hash, fingerprint, Fingerprint};
use crate::resume::journal::{self, Checkpoint};
use crate::resume::lock::{Busy, Lock};
use crate::sink::{annotate, OutputPaths, ResultWriter};

#[derive(Debug, Clone)]
pub struct JobConfig {
    pub output: PathBuf,
    /// Seconds between samples.
    pub every: f64,
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
    /// A read that makes no progress for this long fails the input.
    pub stall_timeout: Duration,
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

/// Output locations for every work item. Inputs keep their folder relative to their input root;
/// the file stem names the results, or the whole file name where two inputs in one folder share a
/// stem (`news.mp4` and `news.ts`).
pub fn output_paths(work: &[Work], output: &Path) -> Vec<OutputPaths> {
    let key = |w: &Work| -> (PathBuf, String) {
        match w {
            Work::Video { rel, .. } => (
                rel.parent().unwrap_or(Path::new("")).to_path_buf(),
                rel.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            ),
            Work::Images { rel_dir, .. } => (rel_dir.clone(), images_stem(rel_dir)),
        }
    };
    let count = |keys: &[(PathBuf, String)]| {
        let mut m: HashMap<(PathBuf, String), usize> = HashMap::new();
        for k in keys {
            *m.entry(k.clone()).or_default() += 1;
        }
        m
    };
    // 1. The stem; the whole file name where two inputs of one folder share a stem.
    let first: Vec<(PathBuf, String)> = work.iter().map(key).collect();
    let seen = count(&first);
    let second: Vec<(PathBuf, String)> = work
        .iter()
        .zip(first)
        .map(|(w, (dir, stem))| match w {
            Work::Video { rel, .. } if seen[&(dir.clone(), stem.clone())] > 1 => (
                dir,
                rel.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            ),
            _ => (dir, fit_name(&stem)),
        })
        .map(|(dir, stem)| (dir, fit_name(&stem)))
        .collect();
    // 2. Still the same (the same relative path under two input roots, or names that only
    //    differ in bytes that are not UTF-8): add a hash of the full input path.
    let seen = count(&second);
    work.iter()
        .zip(second)
        .map(|(w, (dir, stem))| {
            let stem = if seen[&(dir.clone(), stem.clone())] > 1 {
                let full = match w {
                    Work::Video { path, .. } => path.as_os_str().to_os_string(),
                    Work::Images { paths, .. } => paths
                        .first()
                        .and_then(|p| p.parent())
                        .unwrap_or(Path::new(""))
                        .as_os_str()
                        .to_os_string(),
                };
                let hash = crate::models::store::sha256_bytes(
                    std::os::unix::ffi::OsStrExt::as_bytes(full.as_os_str()),
                );
                format!("{stem}~{}", &hash[..8])
            } else {
                stem
            };
            OutputPaths {
                dir: output.join(&dir),
                stem,
            }
        })
        .collect()
}

/// File names are limited to 255 bytes; result names add up to 30 to the stem. A longer stem is
/// cut (at a character boundary) and made unique again with a hash of the whole stem.
fn fit_name(stem: &str) -> String {
    const MAX: usize = 200;
    if stem.len() <= MAX {
        return stem.to_string();
    }
    let mut cut = MAX - 17;
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = crate::models::store::sha256_bytes(stem.as_bytes());
    format!("{}~{}", &stem[..cut], &hash[..16])
}

fn photos_label(n: usize, rel_dir: &Path) -> String {
    let folder = if rel_dir.as_os_str().is_empty() {
        "the input folder".to_string()
    } else {
        rel_dir.display().to_string()
    };
    format!("{n} photo{} in {folder}", if n == 1 { "" } else { "s" })
}

/// Results of a folder of photos are named `{folder}_photos`, or `photos` for the input folder
/// itself.
fn images_stem(rel_dir: &Path) -> String {
    match rel_dir.file_name() {
        Some(n) => format!("{}_photos", n.to_string_lossy()),
        None => "photos".into(),
    }
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

/// Updates `failures.tsv` in the output root: rows of inputs this run processed or failed again
/// are replaced, rows of other inputs (other workers, other shards, earlier runs) are kept. The
/// update is serialised between workers with a lock.
fn write_failures(output: &Path, report: &JobReport, lock_timeout: Duration) -> Result<()> {
    let path = output.join("failures.tsv");
    let lock_path = output.join(".failures.lock");
    let mut waited = Duration::ZERO;
    let _lock = loop {
        match Lock::acquire(&lock_path, lock_timeout)? {
            Ok(l) => break l,
            Err(_) if waited < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(100));
                waited += Duration::from_millis(100);
            }
            Err(busy) => {
                return Err(Error::video(
                    &lock_path,
                    FailureKind::Output,
                    format!("failures.tsv is locked by {}", busy.owner),
                ));
            }
        }
    };
    let row = |p: &Path, kind: &str, reason: &str, advice: &str| {
        format!(
            "{}\t{kind}\t{}\t{advice}\n",
            crate::sink::tsv_field(&p.to_string_lossy()),
            crate::sink::tsv_field(reason)
        )
    };
    let renewed: std::collections::HashSet<String> = report
        .succeeded
        .iter()
        .chain(report.failed.iter().map(|f| &f.path))
        .map(|p| crate::sink::tsv_field(&p.to_string_lossy()).into_owned())
        .collect();
    let mut rows: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| l.split('\t').next().is_some_and(|p| !renewed.contains(p)))
        .map(|l| format!("{l}\n"))
        .collect();
    rows.extend(
        report
            .failed
            .iter()
            .map(|f| row(&f.path, f.kind.as_str(), &f.message, f.kind.advice())),
    );
    if rows.is_empty() {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    }
    let text = format!("path\tkind\treason\tadvice\n{}", rows.concat());
    crate::models::store::write_atomic(&path, text.as_bytes())
}

fn input_record(path: &Path) -> serde_json::Value {
    let meta = std::fs::metadata(path).ok();
    json!({
        "path": path.to_string_lossy(),
        "size_bytes": meta.as_ref().map(|m| m.len()),
        "modified_unix_s": meta.and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs()),
    })
}

fn common_summary(
    analyzer: &Analyzer,
    cfg: &JobConfig,
    faces: u64,
    print: &Fingerprint,
) -> serde_json::Value {
    json!({
        "tool": "facetv-gpu",
        "version": env!("CARGO_PKG_VERSION"),
        "revision": env!("FACETV_REVISION"),
        "backend": "cpu",
        "faces": faces,
        "classifiers": analyzer.classifier_names(),
        "models": analyzer.model_hashes.iter().map(|(n, h)| json!({"name": n, "sha256": h})).collect::<Vec<_>>(),
        "options": cfg.options,
        "fingerprint": print,
    })
}

/// Processes one video into `out` (the job's per-video work; `bench` times it too). Resumes from
/// the video's checkpoint when one matches `print`. `lock`, when given, is re-checked at every
/// checkpoint and before the results are renamed into place.
pub fn process_video(
    analyzer: &mut Analyzer,
    path: &Path,
    out: &OutputPaths,
    cfg: &JobConfig,
    print: &Fingerprint,
    progress: &Progress,
    lock: Option<&Lock>,
) -> Result<u64> {
    let started = Instant::now();
    let timings_before = analyzer.timings;
    let mut source = FfmpegSource::open(path, cfg.every, cfg.stall_timeout)?;
    let shown = progress.start_input(&out.stem, source.info().duration);
    let journal_path = out.file(".checkpoint.json");
    let resumed = journal::read(&journal_path)
        .filter(|c| &c.fingerprint == print)
        .and_then(|c| {
            match ResultWriter::open(
                out.clone(),
                analyzer.classifier_names(),
                Some((c.lengths, c.faces)),
            ) {
                Ok(w) => Some((w, c.sampled_frames)),
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            }
        });
    let resumed_after = resumed.as_ref().map(|(_, n)| *n);
    let (mut writer, mut sampled) = match resumed {
        Some((w, n)) => {
            tracing::info!("{}: resuming after {n} sampled frames", path.display());
            source.skip_sampled(n);
            (w, n)
        }
        None => {
            // A checkpoint of another configuration must never be applied to these new files.
            let _ = std::fs::remove_file(&journal_path);
            (
                ResultWriter::open(out.clone(), analyzer.classifier_names(), None)?,
                0,
            )
        }
    };
    let save = |writer: &mut ResultWriter, sampled: u64| -> Result<()> {
        if let Some(l) = lock {
            l.check_owned()?;
        }
        let lengths = writer.sync()?;
        journal::write(
            &journal_path,
            &Checkpoint {
                fingerprint: print.clone(),
                sampled_frames: sampled,
                faces: writer.faces,
                lengths,
            },
        )
    };
    let (mut decode_s, mut write_s) = (0.0, 0.0);
    let mut last_checkpoint = Instant::now();
    loop {
        if crate::resume::stop_requested() {
            save(&mut writer, sampled)?;
            return Err(Error::Interrupted);
        }
        let t = Instant::now();
        let mut batch = Vec::with_capacity(cfg.batch_frames);
        while batch.len() < cfg.batch_frames {
            match source.next_sampled() {
                Ok(Some(f)) => batch.push(f),
                Ok(None) => break,
                Err(Error::Interrupted) => {
                    // Stopped while decoding: the unfinished batch is redone on resume.
                    save(&mut writer, sampled)?;
                    return Err(Error::Interrupted);
                }
                Err(e) => return Err(e),
            }
        }
        decode_s += t.elapsed().as_secs_f64();
        if batch.is_empty() {
            break;
        }
        let images: Vec<&BgrImage> = batch.iter().map(|f| &f.image).collect();
        let results = analyzer.analyze(&images)?;
        let t = Instant::now();
        for (frame, faces) in batch.iter().zip(&results) {
            writer.add_frame(
                &out.stem,
                frame.index,
                frame.timestamp,
                (frame.image.width, frame.image.height),
                faces,
            )?;
            if let Some(n) = cfg.annotate_every {
                if sampled % n.max(1) == 0 {
                    let name = format!(
                        "{}_frame_{}_second_{}.jpg",
                        out.stem,
                        frame.index,
                        frame.timestamp.max(0.0).floor() as u64
                    );
                    let jpeg = annotate::draw(&frame.image, faces)
                        .encode_jpeg(crate::sink::JPEG_QUALITY)?;
                    crate::models::store::write_atomic(&out.frames_dir().join(name), &jpeg)?;
                }
            }
            sampled += 1;
        }
        shown.update(
            batch.last().map_or(0.0, |f| f.timestamp),
            sampled,
            writer.faces,
        );
        if last_checkpoint.elapsed() >= cfg.checkpoint_every {
            save(&mut writer, sampled)?;
            last_checkpoint = Instant::now();
        }
        write_s += t.elapsed().as_secs_f64();
    }
    let stats = source.stats().clone();
    if stats.frames_decoded == 0 {
        return Err(Error::video(
            path,
            FailureKind::NoFrames,
            "no frame could be decoded",
        ));
    }
    if stats.partial {
        tracing::warn!(
            "{}: {}; results cover the frames up to {:.1} s",
            path.display(),
            stats.partial_reason.as_deref().unwrap_or("ended early"),
            stats.last_timestamp
        );
    }
    let t = analyzer.timings;
    let mut summary = common_summary(analyzer, cfg, writer.faces, print);
    summary["input"] = input_record(path);
    summary["status"] = json!(if stats.partial { "partial" } else { "complete" });
    summary["resumed_after_sampled_frames"] = json!(resumed_after);
    summary["video"] = serde_json::to_value(source.info()).unwrap_or_default();
    summary["decode"] = serde_json::to_value(&stats).unwrap_or_default();
    summary["timings_s"] = json!({
        "total": started.elapsed().as_secs_f64(),
        "decode": decode_s,
        "detect": t.detect_s - timings_before.detect_s,
        "align": t.align_s - timings_before.align_s,
        "classify": t.classify_s - timings_before.classify_s,
        "write": write_s,
    });
    if let Some(l) = lock {
        l.check_owned()?;
    }
    let faces = writer.faces;
    writer.finish(&summary)?;
    let _ = std::fs::remove_file(&journal_path);
    Ok(faces)
}

fn process_images(
    analyzer: &mut Analyzer,
    paths: &[PathBuf],
    out: &OutputPaths,
    cfg: &JobConfig,
    print: &Fingerprint,
    failures: &mut Vec<Failure>,
    progress: &Progress,
) -> Result<u64> {
    let started = Instant::now();
    let shown = progress.start_input(&out.stem, None);
    let mut writer = ResultWriter::open(out.clone(), analyzer.classifier_names(), None)?;
    let mut done = Vec::new();
    for (ordinal, path) in paths.iter().enumerate() {
        if crate::resume::stop_requested() {
            return Err(Error::Interrupted);
        }
        let image = match BgrImage::load(path) {
            Ok(i) => i,
            Err(e) => {
                let kind = match &e {
                    Error::Io { .. } => FailureKind::Unreadable,
                    _ => FailureKind::NotAVideo,
                };
                tracing::error!("{e} ({})", kind.advice());
                failures.push(Failure {
                    path: path.clone(),
                    kind,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let faces = analyzer.analyze(&[&image])?.remove(0);
        let label = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        writer.add_frame(
            &label,
            ordinal as u64,
            0.0,
            (image.width, image.height),
            &faces,
        )?;
        shown.update(0.0, ordinal as u64 + 1, writer.faces);
        done.push(json!({"frame": ordinal, "path": path.to_string_lossy(), "width": image.width, "height": image.height, "faces": faces.len()}));
    }
    let mut summary = common_summary(analyzer, cfg, writer.faces, print);
    summary["status"] = json!("complete");
    summary["images"] = json!(done);
    summary["timings_s"] = json!({"total": started.elapsed().as_secs_f64()});
    let faces = writer.faces;
    writer.finish(&summary)?;
    Ok(faces)
}
