//! Finding the work: walks the input folders (following links, never looping), and classifies
//! each file by its content: a video FFmpeg can decode, a still image, or neither. Still images are
//! grouped per folder so that a folder of photos gives one set of results.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::FailureKind;

pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"];
/// Extensions that announce a video: such a file that cannot be decoded is reported as a failure
/// (other undecodable files are simply not inputs).
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "ts", "mts", "m2ts", "mpg", "mpeg", "vob", "avi", "wmv",
    "flv", "3gp", "ogv", "h264", "264", "h265", "265", "hevc", "mxf", "dv",
];

/// Probing a file that makes no progress for this long (a hung mount) gives it up as stalled.
const PROBE_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    Video {
        path: PathBuf,
        rel: PathBuf,
    },
    /// Still images of one folder, sorted by name; `rel` is the folder relative to its input root.
    Images {
        paths: Vec<PathBuf>,
        rel_dir: PathBuf,
    },
}

/// A file that looked like an input but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub path: PathBuf,
    pub kind: FailureKind,
    pub reason: String,
}

fn extension(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Walks `roots` and returns the work in a stable order, plus the files that were rejected.
/// `exclude` (the output folder) is never entered.
pub fn discover(roots: &[PathBuf], exclude: Option<&Path>) -> (Vec<Work>, Vec<Rejected>) {
    let exclude = exclude.and_then(|e| e.canonicalize().ok());
    let mut videos = Vec::new();
    let mut images: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    let mut rejected = Vec::new();
    let mut visited = HashSet::new();
    for root in roots {
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                rejected.push(Rejected {
                    path: root.clone(),
                    kind: FailureKind::Unreadable,
                    reason: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(
                root,
                root,
                &mut visited,
                exclude.as_deref(),
                &mut files,
                &mut rejected,
            );
            for (path, rel) in files {
                classify(&path, &rel, &mut videos, &mut images, &mut rejected);
            }
        } else {
            let rel = PathBuf::from(root.file_name().unwrap_or_default());
            classify(root, &rel, &mut videos, &mut images, &mut rejected);
        }
    }
    let mut work = videos;
    for (rel_dir, mut paths) in images {
        paths.sort();
        work.push(Work::Images { paths, rel_dir });
    }
    (work, rejected)
}

fn walk(
    root: &Path,
    dir: &Path,
    visited: &mut HashSet<PathBuf>,
    exclude: Option<&Path>,
    files: &mut Vec<(PathBuf, PathBuf)>,
    rejected: &mut Vec<Rejected>,
) {
    let Ok(canonical) = dir.canonicalize() else {
        return;
    };
    if Some(canonical.as_path()) == exclude || !visited.insert(canonical) {
        return; // the output folder, or a folder seen before (a link loop)
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            rejected.push(Rejected {
                path: dir.to_path_buf(),
                kind: FailureKind::Unreadable,
                reason: format!("cannot list folder: {e}"),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().starts_with('.'))
            .unwrap_or(false);
        if name {
            continue; // hidden files and folders (including our own temporary files)
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(root, &path, visited, exclude, files, rejected),
            Ok(_) => {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                files.push((path, rel));
            }
            Err(e) => {
                if VIDEO_EXTENSIONS.contains(&extension(&path).as_str())
                    || IMAGE_EXTENSIONS.contains(&extension(&path).as_str())
                {
                    rejected.push(Rejected {
                        path: path.clone(),
                        kind: FailureKind::Unreadable,
                        reason: format!("cannot read (dangling link or no permission): {e}"),
                    });
                }
            }
        }
    }
}

fn classify(
    path: &Path,
    rel: &Path,
    videos: &mut Vec<Work>,
    images: &mut BTreeMap<PathBuf, Vec<PathBuf>>,
    rejected: &mut Vec<Rejected>,
) {
    let ext = extension(path);
    if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        images
            .entry(rel.parent().unwrap_or(Path::new("")).to_path_buf())
            .or_default()
            .push(path.to_path_buf());
        return;
    }
    let video_ext = VIDEO_EXTENSIONS.contains(&ext.as_str());
    // Never open FIFOs, sockets or devices: opening a FIFO with no writer would block forever.
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            if video_ext {
                rejected.push(Rejected {
                    path: path.to_path_buf(),
                    kind: FailureKind::Unreadable,
                    reason: "not a regular file (FIFO, socket or device)".into(),
                });
            }
            return;
        }
        _ => {}
    }
    let size = match std::fs::File::open(path).and_then(|f| f.metadata()) {
        Ok(m) => m.len(),
        Err(e) => {
            if video_ext {
                rejected.push(Rejected {
                    path: path.to_path_buf(),
                    kind: FailureKind::Unreadable,
                    reason: format!("cannot open: {e}"),
                });
            }
            return;
        }
    };
    if size == 0 {
        if video_ext {
            rejected.push(Rejected {
                path: path.to_path_buf(),
                kind: FailureKind::Empty,
                reason: "zero-byte file".into(),
            });
        }
        return;
    }
    match crate::decode::ffmpeg::probe_video(path, PROBE_STALL_TIMEOUT) {
        Ok(()) => videos.push(Work::Video {
            path: path.to_path_buf(),
            rel: rel.to_path_buf(),
        }),
        Err((kind, reason)) if video_ext => rejected.push(Rejected {
            path: path.to_path_buf(),
            kind,
            reason,
        }),
        Err(_) => tracing::debug!("{}: not a video or image, skipped", path.display()),
    }
}

/// The shard (0..n) an input belongs to: a stable hash of its path relative to its input root, so
/// every worker of a job array agrees without talking to the others.
pub fn shard_of(work: &Work, n: u64) -> u64 {
    use sha2::{Digest, Sha256};
    let key = match work {
        Work::Video { rel, .. } => rel.as_os_str(),
        Work::Images { rel_dir, .. } => rel_dir.as_os_str(),
    };
    let digest = Sha256::digest(std::os::unix::ffi::OsStrExt::as_bytes(key));
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) % n
}
