//! Checkpoints inside a video. After every batch of sampled frames the result files (still under
//! their temporary names) are flushed and synced, and the journal records their lengths and how
//! many sampled frames they cover. A resumed run truncates the files back to those lengths and
//! continues after the last recorded frame; since batches keep the same composition, the final
//! files are byte-identical to an uninterrupted run's.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::identity::Fingerprint;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub fingerprint: Fingerprint,
    /// Sampled frames fully written.
    pub sampled_frames: u64,
    pub faces: u64,
    /// Lengths of the temporary result files: tar, metadata, age/gender, sampled frames.
    pub lengths: [u64; 4],
}

pub fn read(path: &Path) -> Option<Checkpoint> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

pub fn write(path: &Path, c: &Checkpoint) -> Result<()> {
    let bytes = serde_json::to_vec(c).map_err(|e| crate::Error::Invalid(e.to_string()))?;
    crate::models::store::write_atomic(path, &bytes)
}
