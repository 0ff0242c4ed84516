//! A folder of photos as one work item: every photo through the models, one after another.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use super::summary::common_summary;
use super::{Failure, JobConfig};
use crate::analyze::Analyzer;
use crate::error::{Error, FailureKind, Result};
use crate::image::BgrImage;
use crate::progress::Progress;
use crate::resume::identity::Fingerprint;
use crate::sink::{OutputPaths, ResultWriter};

pub(crate) fn process_images(
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
