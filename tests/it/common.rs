use std::path::PathBuf;
use std::sync::OnceLock;

use facetv::detect::{DetectOptions, OnnxDetector};
use facetv::image::BgrImage;
use facetv::models::{Manifest, ModelStore};
use facetv::runtime::SessionOptions;

pub fn shared() -> PathBuf {
    std::env::var_os("FACETV_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

pub fn media(rel: &str) -> PathBuf {
    shared().join("media").join(rel)
}

pub fn manifest() -> &'static Manifest {
    static M: OnceLock<Manifest> = OnceLock::new();
    M.get_or_init(Manifest::embedded)
}

pub fn store() -> ModelStore {
    facetv::runtime::environment(None).expect("ONNX Runtime is installed by scripts/setup.sh");
    ModelStore::new(None)
}

pub fn session() -> SessionOptions {
    SessionOptions {
        intra_threads: 2,
        ..SessionOptions::default()
    }
}

pub fn detector(name: &str, threshold: f32) -> OnnxDetector {
    let store = store();
    let spec = manifest().get(name).unwrap();
    let path = store
        .verified_path(spec)
        .expect("model installed by scripts/setup.sh");
    OnnxDetector::open(
        spec,
        &path,
        DetectOptions {
            threshold,
            ..Default::default()
        },
        session(),
    )
    .unwrap()
}

pub fn load(rel: &str) -> BgrImage {
    BgrImage::load(&media(rel)).unwrap()
}

/// Rows of a TSV file with a header, as (header, rows of strings).
pub fn read_tsv(path: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split('\t')
        .map(String::from)
        .collect();
    (
        header,
        lines
            .map(|l| l.split('\t').map(String::from).collect())
            .collect(),
    )
}

pub fn col(header: &[String], row: &[String], name: &str) -> f64 {
    let i = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    row[i].parse().unwrap()
}
