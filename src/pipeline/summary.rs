//! The parts of a summary (the completion record) that every kind of input shares.

use std::path::Path;

use serde_json::json;

use super::JobConfig;
use crate::analyze::Analyzer;
use crate::resume::identity::Fingerprint;

pub(crate) fn input_record(path: &Path) -> serde_json::Value {
    let meta = std::fs::metadata(path).ok();
    json!({
        "path": path.to_string_lossy(),
        "size_bytes": meta.as_ref().map(|m| m.len()),
        "modified_unix_s": meta.and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs()),
    })
}

pub(crate) fn common_summary(
    analyzer: &Analyzer,
    cfg: &JobConfig,
    faces: u64,
    print: &Fingerprint,
) -> serde_json::Value {
    json!({
        "tool": "facetv-gpu",
        "version": env!("CARGO_PKG_VERSION"),
        "revision": env!("FACETV_REVISION"),
        "backend": analyzer.backend(),
        "faces": faces,
        "classifiers": analyzer.classifier_names(),
        "models": analyzer.model_hashes.iter().map(|(n, h)| json!({"name": n, "sha256": h})).collect::<Vec<_>>(),
        "options": cfg.options,
        "fingerprint": print,
    })
}
