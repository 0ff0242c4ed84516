//! Where results go: one output stem per work item, unique within its folder and short enough
//! for any file system.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::inputs::Work;
use crate::sink::OutputPaths;

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

pub(crate) fn photos_label(n: usize, rel_dir: &Path) -> String {
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
