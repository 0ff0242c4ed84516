//! `facetv-gpu status OUTDIR`: how far a (possibly multi-node) run has come.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::inputs::discover;
use crate::pipeline::output_paths;
use crate::resume::lock::inspect;

#[derive(Debug, Serialize)]
pub struct Running {
    pub input: String,
    pub owner: String,
    pub heartbeat_age_s: u64,
    /// The owner stopped beating: the input is free for the next worker.
    pub stale: bool,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub output: String,
    pub done: usize,
    pub partial: usize,
    pub running: Vec<Running>,
    /// Inputs stopped midway with a checkpoint, not running now: the next run resumes them.
    pub resumable: usize,
    pub failed: Vec<(String, String, String)>,
    /// Inputs not yet done, running or failed (known only when the input folders are given).
    pub left: Option<usize>,
    pub sampled_frames: u64,
    pub faces: u64,
    pub media_hours: f64,
    /// Sum of the per-input processing times (hours of worker time).
    pub worker_hours: f64,
    /// From the first input started to the last one finished (hours of wall-clock time).
    pub wall_hours: f64,
    pub faces_per_wall_hour: f64,
    pub media_hours_per_wall_hour: f64,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

pub fn status(output: &Path, inputs: &[PathBuf], lock_timeout: Duration) -> Result<Status> {
    if !output.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: no such results folder",
            output.display()
        )));
    }
    let mut files = Vec::new();
    walk(output, &mut files);
    let (mut done, mut partial, mut sampled, mut faces, mut media, mut worker) =
        (0, 0, 0u64, 0u64, 0.0, 0.0);
    let (mut first, mut last) = (None::<SystemTime>, None::<SystemTime>);
    for f in files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with("_summary.json"))
    {
        let Ok(s) = std::fs::read(f)
            .map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap_or_default())
        else {
            continue;
        };
        done += 1;
        partial += (s["status"] == "partial") as usize;
        sampled += s["decode"]["frames_sampled"]
            .as_u64()
            .or_else(|| s["images"].as_array().map(|a| a.len() as u64))
            .unwrap_or(0);
        faces += s["faces"].as_u64().unwrap_or(0);
        media += s["video"]["duration"].as_f64().unwrap_or(0.0);
        let took = s["timings_s"]["total"].as_f64().unwrap_or(0.0);
        worker += took;
        if let Ok(m) = std::fs::metadata(f).and_then(|m| m.modified()) {
            let start = m - Duration::from_secs_f64(took.max(0.0));
            first = Some(first.map_or(start, |x: SystemTime| x.min(start)));
            last = Some(last.map_or(m, |x: SystemTime| x.max(m)));
        }
    }
    let running: Vec<Running> = files
        .iter()
        .filter(|f| {
            f.extension().is_some_and(|e| e == "lock")
                && !f
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter_map(|f| {
            let (owner, age, stale) = inspect(f, lock_timeout)?;
            Some(Running {
                input: f.file_stem()?.to_string_lossy().into_owned(),
                owner,
                heartbeat_age_s: age.as_secs(),
                stale,
            })
        })
        .collect();
    let failed: Vec<(String, String, String)> =
        std::fs::read_to_string(output.join("failures.tsv"))
            .unwrap_or_default()
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (
                    f.first().unwrap_or(&"").to_string(),
                    f.get(1).unwrap_or(&"").to_string(),
                    f.get(2).unwrap_or(&"").to_string(),
                )
            })
            .collect();
    let resumable = files
        .iter()
        .filter_map(|f| {
            f.to_str()?
                .strip_suffix(".checkpoint.json")
                .map(String::from)
        })
        .filter(|stem| {
            let name = Path::new(stem)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !Path::new(&format!("{stem}_summary.json")).exists()
                && !running.iter().any(|r| !r.stale && r.input == name)
        })
        .count();
    let left = (!inputs.is_empty()).then(|| {
        let (work, _) = discover(inputs, Some(output));
        let busy: std::collections::HashSet<&str> = running
            .iter()
            .filter(|r| !r.stale)
            .map(|r| r.input.as_str())
            .collect();
        let failed_paths: std::collections::HashSet<&str> =
            failed.iter().map(|f| f.0.as_str()).collect();
        work.iter()
            .zip(output_paths(&work, output))
            .filter(|(w, p)| {
                let input = match w {
                    crate::inputs::Work::Video { path, .. } => path.clone(),
                    crate::inputs::Work::Images { rel_dir, .. } => rel_dir.clone(),
                };
                let escaped = crate::sink::tsv_field(&input.to_string_lossy()).into_owned();
                !p.summary().is_file()
                    && !busy.contains(p.stem.as_str())
                    && !failed_paths.contains(escaped.as_str())
            })
            .count()
    });
    let wall = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).unwrap_or_default().as_secs_f64(),
        _ => 0.0,
    };
    let per_hour = |x: f64| if wall > 0.0 { x / (wall / 3600.0) } else { 0.0 };
    Ok(Status {
        output: output.display().to_string(),
        done,
        partial,
        running,
        resumable,
        failed,
        left,
        sampled_frames: sampled,
        faces,
        media_hours: media / 3600.0,
        worker_hours: worker / 3600.0,
        wall_hours: wall / 3600.0,
        faces_per_wall_hour: per_hour(faces as f64),
        media_hours_per_wall_hour: per_hour(media / 3600.0),
    })
}

impl Status {
    pub fn print(&self) {
        println!("results: {}", self.output);
        let left = self
            .left
            .map(|l| l.to_string())
            .unwrap_or_else(|| "? (add --input DIR)".into());
        let active = self.running.iter().filter(|r| !r.stale).count();
        println!(
            "done {} ({} partial), running {}, failed {}, left {}",
            self.done,
            self.partial,
            active,
            self.failed.len(),
            left
        );
        for r in &self.running {
            let state = if r.stale {
                "STALE (worker gone; will be taken over)"
            } else {
                "running"
            };
            println!(
                "  {state}: {} by {} (heartbeat {} s ago)",
                r.input, r.owner, r.heartbeat_age_s
            );
        }
        for (path, kind, reason) in &self.failed {
            println!("  failed [{kind}]: {path}: {reason}");
        }
        println!(
            "{} sampled frames, {} faces, {:.2} h of media in {:.2} h of worker time; {:.0} faces and {:.2} h of media per wall-clock hour",
            self.sampled_frames, self.faces, self.media_hours, self.worker_hours, self.faces_per_wall_hour, self.media_hours_per_wall_hour
        );
    }
}
