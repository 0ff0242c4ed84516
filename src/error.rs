//! Library errors. Every variant a user can cause names the file involved and what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {err}")]
    Io {
        path: PathBuf,
        // Not a `#[source]`: the message already includes it, and anyhow would print it twice.
        err: std::io::Error,
    },

    #[error("ONNX Runtime library: {0}")]
    Runtime(String),

    /// The GPU path: a missing driver or CUDA library, a GPU that does not exist, a failed
    /// kernel build or launch.
    #[error("{0}")]
    Gpu(String),

    #[error("model '{name}' ({path}): {message}")]
    Model {
        name: String,
        path: PathBuf,
        message: String,
    },

    #[error("model manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },

    #[error("{path}: cannot read image: {message}")]
    Image { path: PathBuf, message: String },

    #[error("{path}: {message}")]
    Video {
        path: PathBuf,
        kind: FailureKind,
        message: String,
    },

    #[error("stopped on request; the next run resumes where this one stopped")]
    Interrupted,

    #[error("inference failed in model '{model}': {message}")]
    Inference { model: String, message: String },

    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an input failed, as recorded in `failures.tsv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Zero bytes.
    Empty,
    /// Cannot be opened or read (permissions, dangling link, I/O error).
    Unreadable,
    /// Not a video or photo FFmpeg can open (random bytes, text, unknown format).
    NotAVideo,
    /// A media file without a video stream (audio only).
    NoVideoStream,
    /// Cut off: the index the container needs (an MP4 `moov` at the end) is missing.
    Truncated,
    /// Opened, but no frame could be decoded (truncated before the first frame, broken codec data).
    NoFrames,
    /// No progress for the stall timeout (a file or file system that hangs).
    Stalled,
    /// Results could not be written (disk full, read-only output, …).
    Output,
    /// Anything else (the message says what).
    Other,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Empty => "empty",
            FailureKind::Unreadable => "unreadable",
            FailureKind::NotAVideo => "not-a-video",
            FailureKind::NoVideoStream => "no-video-stream",
            FailureKind::Truncated => "truncated",
            FailureKind::NoFrames => "no-frames",
            FailureKind::Stalled => "stalled",
            FailureKind::Output => "output",
            FailureKind::Other => "other",
        }
    }

    /// What the user can do about it.
    pub fn advice(self) -> &'static str {
        match self {
            FailureKind::Empty => "the file is empty: copy it again from its source",
            FailureKind::Unreadable => "check the file exists and is readable by this user",
            FailureKind::NotAVideo => "check it is a complete video file (ffprobe FILE)",
            FailureKind::NoVideoStream => "the file has no pictures (audio only?); remove it from the input",
            FailureKind::Truncated => "the file was cut off (incomplete copy or recording); copy it again, or remux what exists with a tool that rebuilds the index",
            FailureKind::NoFrames => "the video data is damaged or cut off before the first frame; re-copy or re-encode it",
            FailureKind::Stalled => "the file or its file system stopped responding; check the storage and rerun",
            FailureKind::Output => "check free space and write permission in the output folder, then rerun",
            FailureKind::Other => "see the message; rerun with -v for details",
        }
    }
}

impl Error {
    /// The failure class of an error that stopped one input.
    pub fn kind(&self) -> FailureKind {
        match self {
            Error::Video { kind, .. } => *kind,
            Error::Io { .. } => FailureKind::Output,
            Error::Image { .. } => FailureKind::NotAVideo,
            _ => FailureKind::Other,
        }
    }

    pub fn video(path: &std::path::Path, kind: FailureKind, message: impl Into<String>) -> Self {
        Error::Video {
            path: path.to_path_buf(),
            kind,
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err,
        }
    }

    pub fn model(name: &str, path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Model {
            name: name.to_string(),
            path: path.into(),
            message: message.into(),
        }
    }
}
