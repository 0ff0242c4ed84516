//! One integration-test binary; topic modules below. Tests need the set-up made by
//! `scripts/setup.sh` (ONNX Runtime in .facetv/lib, models in .facetv/models) and the shared data
//! (`../shared`, or `$FACETV_SHARED`).

mod cli;
mod cluster;
mod common;
mod face_models;
mod fidelity;
mod gop_skipping;
mod pipeline;
mod reliability;
mod report;
mod video_job;
