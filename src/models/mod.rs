//! Model manifest, cache and the converters that produce ONNX files from published weights.

pub mod keras;
pub mod manifest;
pub mod onnx_writer;
pub mod store;

pub use manifest::{ChannelOrder, Family, InputSpec, Manifest, ModelSpec, Role};
pub use store::ModelStore;
