//! Library errors. Every variant a user can cause names the file involved and what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("ONNX Runtime library: {0}")]
    Runtime(String),

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
    Video { path: PathBuf, message: String },

    #[error("inference failed in model '{model}': {message}")]
    Inference { model: String, message: String },

    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
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
