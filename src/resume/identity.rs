//! What identifies an input and a configuration, so a finished result is reused only when neither
//! changed: the file's size, modification time and a hash of its first and last MiB (cheap even
//! for multi-gigabyte recordings), and a hash of every option and model that shapes the output.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const EDGE: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub size: u64,
    pub modified_unix_ns: u128,
    /// sha256 of the first and last MiB.
    pub edges_sha256: String,
    /// sha256 of the options and model hashes that shape the results.
    pub config_sha256: String,
}

pub fn config_hash(options: &serde_json::Value, models: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    h.update(options.to_string().as_bytes());
    for (name, sha) in models {
        h.update(name.as_bytes());
        h.update(sha.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Hashes a file's first and last MiB and its length into `h`; returns (size, mtime in ns).
fn edges(path: &Path, h: &mut Sha256) -> Result<(u64, u128)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut buf = vec![0u8; EDGE.min(meta.len()) as usize];
    f.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
    h.update(&buf);
    if meta.len() > EDGE {
        let tail = EDGE.min(meta.len() - EDGE);
        f.seek(SeekFrom::End(-(tail as i64)))
            .map_err(|e| Error::io(path, e))?;
        let mut buf = vec![0u8; tail as usize];
        f.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
        h.update(&buf);
    }
    h.update(meta.len().to_le_bytes());
    Ok((meta.len(), modified))
}

/// The fingerprint of one file (a video) or several (a folder of photos).
pub fn fingerprint(paths: &[&Path], config_sha256: &str) -> Result<Fingerprint> {
    let mut h = Sha256::new();
    let (mut size, mut modified) = (0u64, 0u128);
    for path in paths {
        // The file name is part of the identity (a renamed photo changes its chip names); the
        // folder is not, so the same archive mounted elsewhere (another node) is recognised.
        h.update(std::os::unix::ffi::OsStrExt::as_bytes(
            path.file_name().unwrap_or_default(),
        ));
        h.update([0]);
        match edges(path, &mut h) {
            Ok((len, m)) => {
                size += len;
                modified = modified.max(m);
            }
            // One unreadable photo must not fail its whole folder: it is reported on its own
            // when the folder is processed; here it only marks the identity.
            Err(e) if paths.len() > 1 => h.update(format!("unreadable: {e}").as_bytes()),
            Err(e) => return Err(e),
        }
    }
    Ok(Fingerprint {
        size,
        modified_unix_ns: modified,
        edges_sha256: hex::encode(h.finalize()),
        config_sha256: config_sha256.to_string(),
    })
}
