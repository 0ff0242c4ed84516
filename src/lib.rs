//! facetv: find every face in archives of TV recordings and estimate age and gender.
//!
//! Data flow (one module per stage): `decode` → `detect` → `align` → `classify` → `sink`, wired
//! in `pipeline`. Model files and their conventions live in `models`; ONNX Runtime loading in
//! `runtime`.

pub mod align;
pub mod analyze;
pub mod archive;
pub mod bench;
pub mod classify;
pub mod cli;
pub mod decode;
pub mod detect;
pub mod error;
pub mod evaluate;
pub mod frames;
pub mod gpu;
pub mod home;
pub mod image;
pub mod inputs;
pub mod models;
pub mod pipeline;
pub mod preprocess;
pub mod progress;
pub mod report;
pub mod resume;
pub mod runtime;
pub mod sink;

pub use error::{Error, Result};
