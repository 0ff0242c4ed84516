//! Never losing or duplicating work: the input's identity, per-input locks shared between
//! processes (and nodes, over a shared file system), and checkpoints inside long videos.

pub mod identity;
pub mod journal;
pub mod lock;

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by Ctrl-C / SIGTERM: the job finishes the batch in hand, writes its checkpoint and stops.
pub static STOP: AtomicBool = AtomicBool::new(false);

pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}
