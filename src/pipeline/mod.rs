//! The main job: every input (a video, or a folder of photos) through decode → detect → align →
//! classify → sink, one after another, with frames batched through the models. A failing input is
//! logged with its reason, recorded in `failures.tsv`, and the job goes on with the next.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use crate::analyze::Analyzer;
use crate::decode::ffmpeg::FfmpegSource;
use crate::decode::FrameSource;
use crate::error::{Error, Result};
use crate::image::BgrImage;
use crate::inputs::{Rejected, Work};
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
}

#[derive(Debug, Default)]
pub struct JobReport {
    pub done: usize,
    pub skipped: usize,
    pub failed: Vec<(PathBuf, String)>,
}

/// Output locations for every work item. Inputs keep their folder relative to their input root;
/// the file stem names the results, or the whole file name where two inputs in one folder share a
/// stem (`news.mp4` and `news.ts`).
pub fn output_paths(work: &[Work], output: &Path) -> Vec<OutputPaths> {
    let mut stems: HashMap<(PathBuf, String), usize> = HashMap::new();
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
    for w in work {
        *stems.entry(key(w)).or_default() += 1;
    }
    work.iter()
        .map(|w| {
            let (dir, stem) = key(w);
            let stem = match w {
                Work::Video { rel, .. } if stems[&(dir.clone(), stem.clone())] > 1 => rel
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                _ => stem,
            };
            OutputPaths {
                dir: output.join(&dir),
                stem,
            }
        })
        .collect()
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
) -> Result<JobReport> {
    std::fs::create_dir_all(&cfg.output).map_err(|e| Error::io(&cfg.output, e))?;
    let report = std::sync::Mutex::new(JobReport::default());
    for r in rejected {
        tracing::error!("{}: {}", r.path.display(), r.reason);
        report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed
            .push((r.path.clone(), r.reason.clone()));
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
                    let outcome = process(&mut analyzer, w, out, cfg, i, work.len());
                    let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
                    match outcome {
                        Ok(Done::Processed(extra_failures)) => {
                            r.done += 1;
                            r.failed.extend(extra_failures);
                        }
                        Ok(Done::Skipped) => r.skipped += 1,
                        Err((path, e)) => r.failed.push((path, e)),
                    }
                }
            });
        }
    });
    let report = report.into_inner().unwrap_or_else(|p| p.into_inner());
    write_failures(&cfg.output, &report.failed)?;
    Ok(report)
}

enum Done {
    /// Finished; files inside the item that failed (photos of a folder) are listed.
    Processed(Vec<(PathBuf, String)>),
    Skipped,
}

fn process(
    analyzer: &mut Analyzer,
    w: &Work,
    out: &OutputPaths,
    cfg: &JobConfig,
    i: usize,
    n: usize,
) -> std::result::Result<Done, (PathBuf, String)> {
    let (name, path) = match w {
        Work::Video { path, .. } => (path.display().to_string(), path.clone()),
        Work::Images { rel_dir, paths } => (
            format!("{} photos in {}", paths.len(), rel_dir.display()),
            rel_dir.clone(),
        ),
    };
    if !cfg.force && out.summary().is_file() {
        tracing::info!(
            "[{}/{n}] {name}: already done ({}), skipped",
            i + 1,
            out.summary().display()
        );
        return Ok(Done::Skipped);
    }
    tracing::info!("[{}/{n}] {name}", i + 1);
    let mut failures = Vec::new();
    let result = match w {
        Work::Video { path, .. } => process_video(analyzer, path, out, cfg),
        Work::Images { paths, .. } => process_images(analyzer, paths, out, cfg, &mut failures),
    };
    match result {
        Ok(faces) => {
            tracing::info!("{name}: {faces} faces → {}", out.tar().display());
            Ok(Done::Processed(failures))
        }
        Err(e) => {
            remove_partials(out);
            tracing::error!("{e}");
            Err((path, e.to_string()))
        }
    }
}

fn remove_partials(out: &OutputPaths) {
    for p in [out.tar(), out.metadata(), out.age_gender(), out.samples()] {
        let _ = std::fs::remove_file(OutputPaths::partial(&p));
    }
}

fn write_failures(output: &Path, failed: &[(PathBuf, String)]) -> Result<()> {
    let path = output.join("failures.tsv");
    if failed.is_empty() {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    }
    let mut text = String::from("path\treason\n");
    for (p, reason) in failed {
        text.push_str(&format!(
            "{}\t{}\n",
            crate::sink::tsv_field(&p.to_string_lossy()),
            crate::sink::tsv_field(reason)
        ));
    }
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

fn common_summary(analyzer: &Analyzer, cfg: &JobConfig, faces: u64) -> serde_json::Value {
    json!({
        "tool": "facetv-gpu",
        "version": env!("CARGO_PKG_VERSION"),
        "revision": env!("FACETV_REVISION"),
        "backend": "cpu",
        "faces": faces,
        "classifiers": analyzer.classifier_names(),
        "models": analyzer.model_hashes.iter().map(|(n, h)| json!({"name": n, "sha256": h})).collect::<Vec<_>>(),
        "options": cfg.options,
    })
}

/// Processes one video into `out` (the job's per-video work; `bench` times it too).
pub fn process_video(
    analyzer: &mut Analyzer,
    path: &Path,
    out: &OutputPaths,
    cfg: &JobConfig,
) -> Result<u64> {
    let started = Instant::now();
    let timings_before = analyzer.timings;
    let mut source = FfmpegSource::open(path, cfg.every)?;
    let mut writer = ResultWriter::create(out.clone(), analyzer.classifier_names())?;
    let (mut decode_s, mut write_s) = (0.0, 0.0);
    let mut sampled = 0u64;
    loop {
        let t = Instant::now();
        let mut batch = Vec::with_capacity(cfg.batch_frames);
        while batch.len() < cfg.batch_frames {
            match source.next_sampled()? {
                Some(f) => batch.push(f),
                None => break,
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
        write_s += t.elapsed().as_secs_f64();
    }
    let stats = source.stats().clone();
    if stats.partial {
        tracing::warn!(
            "{}: {}; results cover the frames up to {:.1} s",
            path.display(),
            stats.partial_reason.as_deref().unwrap_or("ended early"),
            stats.last_timestamp
        );
    }
    let t = analyzer.timings;
    let mut summary = common_summary(analyzer, cfg, writer.faces);
    summary["input"] = input_record(path);
    summary["status"] = json!(if stats.partial { "partial" } else { "complete" });
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
    let faces = writer.faces;
    writer.finish(&summary)?;
    Ok(faces)
}

fn process_images(
    analyzer: &mut Analyzer,
    paths: &[PathBuf],
    out: &OutputPaths,
    cfg: &JobConfig,
    failures: &mut Vec<(PathBuf, String)>,
) -> Result<u64> {
    let started = Instant::now();
    let mut writer = ResultWriter::create(out.clone(), analyzer.classifier_names())?;
    let mut done = Vec::new();
    for (ordinal, path) in paths.iter().enumerate() {
        let image = match BgrImage::load(path) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!("{e}");
                failures.push((path.clone(), e.to_string()));
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
        done.push(json!({"frame": ordinal, "path": path.to_string_lossy(), "width": image.width, "height": image.height, "faces": faces.len()}));
    }
    let mut summary = common_summary(analyzer, cfg, writer.faces);
    summary["status"] = json!("complete");
    summary["images"] = json!(done);
    summary["timings_s"] = json!({"total": started.elapsed().as_secs_f64()});
    let faces = writer.faces;
    writer.finish(&summary)?;
    Ok(faces)
}
