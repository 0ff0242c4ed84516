//! Where facetv keeps its local files (ONNX Runtime library, model cache) and where the shared test
//! data lives. Nothing here needs the user to export anything.
//!
//! - facetv home: `$FACETV_HOME`, else the nearest `.facetv/` folder above the running executable
//!   (the project-local install that `scripts/setup.sh` makes), else `$XDG_CACHE_HOME/facetv` or
//!   `~/.cache/facetv`.
//! - shared data: `$FACETV_SHARED`, else `../shared` beside the project root.

use std::path::{Path, PathBuf};

const LOCAL_DIR: &str = ".facetv";

fn exe_ancestors() -> Vec<PathBuf> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    exe.iter()
        .flat_map(|p| {
            p.ancestors()
                .skip(1)
                .take(6)
                .map(Path::to_path_buf)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The project root that holds `.facetv/` (or `Cargo.toml`), found above the executable.
pub fn project_root() -> Option<PathBuf> {
    let ancestors = exe_ancestors();
    ancestors
        .iter()
        .find(|d| d.join(LOCAL_DIR).is_dir())
        .or_else(|| {
            ancestors
                .iter()
                .find(|d| d.join("Cargo.toml").is_file() && d.join("models/models.toml").is_file())
        })
        .cloned()
}

pub fn facetv_home() -> PathBuf {
    if let Some(h) = std::env::var_os("FACETV_HOME") {
        return PathBuf::from(h);
    }
    if let Some(root) = project_root() {
        return root.join(LOCAL_DIR);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."));
    cache.join("facetv")
}

pub fn shared_dir() -> Option<PathBuf> {
    if let Some(s) = std::env::var_os("FACETV_SHARED") {
        return Some(PathBuf::from(s));
    }
    project_root()
        .map(|r| r.join("..").join("shared"))
        .filter(|p| p.is_dir())
}
