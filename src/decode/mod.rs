//! Decoding: a video file → its sampled frames as upright, display-aspect BGR images with their
//! presentation index and timestamp. `ffmpeg.rs` drives FFmpeg (software decoding, or NVDEC on a
//! GPU through `nvdec.rs`, with the CPU as the fallback).

pub mod bitstream;
pub mod convert;
pub mod ffmpeg;
pub mod gop_skip;
pub mod key_skip;
pub mod nvdec;
pub mod sampler;

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::image::BgrImage;

/// Which frame stands for each sample point k·S.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// The first frame at or after each sample point: every frame the sampled ones need is
    /// decoded (GOPs without a sample point are passed over where that changes nothing:
    /// `gop_skip`), only the sampled ones are converted.
    #[default]
    Exact,
    /// The first key frame at or after each sample point: only key frames are decoded (several
    /// times faster on long-GOP broadcast material), and of those only the ones a sample point
    /// takes (`key_skip`), so samples are as far apart as the key frames when those are sparser
    /// than the sampling period. The timestamps written are the key frames' own.
    Keyframe,
}

/// How videos are decoded and sampled.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Seconds between sample points.
    pub every: f64,
    pub sampling: Sampling,
    /// Decode every frame, even GOPs that hold no sample point (`gop_skip`), and with keyframe
    /// sampling every key frame (`key_skip`) (`--decode-all`: the same results, slower).
    pub decode_all: bool,
    /// A read that makes no progress for this long fails the input.
    pub stall_timeout: Duration,
}

impl DecodeOptions {
    /// Exact sampling every `every` seconds, the defaults otherwise.
    pub fn exact(every: f64) -> DecodeOptions {
        DecodeOptions {
            every,
            sampling: Sampling::Exact,
            decode_all: false,
            stall_timeout: Duration::from_secs(300),
        }
    }
}

/// A sampled frame. `index` counts frames in presentation order from 0 (with `--sampling
/// keyframe`, where frames in between are not decoded, it is the timestamp × the nominal rate, or
/// the frame's position in the stream for raw streams without timestamps); `timestamp` is in seconds
/// from the start of the recording as a player shows it: the presentation timestamp minus the
/// container's start time (so a video stream that starts 0.85 s in has its first frame at 0.85).
#[derive(Debug)]
pub struct SampledFrame {
    pub index: u64,
    pub timestamp: f64,
    pub image: FrameImage,
}

/// Where a sampled frame's pixels are.
#[derive(Debug)]
pub enum FrameImage {
    /// Upright, display-aspect BGR in host memory.
    Host(BgrImage),
    /// NV12 in GPU memory, copied from NVDEC's surface, for the GPU path's kernels: only frames
    /// that need no rotation, aspect correction or deinterlacing stay there (`nvdec::nv12_surface`).
    Device(crate::gpu::frames::DeviceFrame),
}

impl FrameImage {
    /// (width, height) in the pixels faces are reported in.
    pub fn size(&self) -> (usize, usize) {
        match self {
            FrameImage::Host(img) => (img.width, img.height),
            FrameImage::Device(f) => f.size(),
        }
    }

    /// The frame as BGR in host memory: as it is, or copied from the GPU and converted as the
    /// kernels convert it.
    pub fn to_host(&self) -> Result<std::borrow::Cow<'_, BgrImage>> {
        match self {
            FrameImage::Host(img) => Ok(std::borrow::Cow::Borrowed(img)),
            FrameImage::Device(f) => f.to_host().map(std::borrow::Cow::Owned),
        }
    }

    /// As `to_host`, by value.
    pub fn into_host(self) -> Result<BgrImage> {
        match self {
            FrameImage::Host(img) => Ok(img),
            FrameImage::Device(f) => f.to_host(),
        }
    }
}

/// Decoding on a GPU: NVDEC on `device` (the CPU where it cannot); with `keep`, sampled frames
/// stay in that GPU pipeline's memory where they can (`FrameImage::Device`) instead of being
/// copied to the host.
#[derive(Clone)]
pub struct Nvdec {
    pub device: usize,
    pub keep: Option<std::sync::Arc<crate::gpu::frames::DevicePlane>>,
}

/// Where timestamps came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampSource {
    /// Presentation timestamps of the stream.
    Stream,
    /// The stream carries none (raw elementary streams): frame index ÷ nominal frame rate.
    NominalRate,
}

/// What is known about a video and what was done to its frames.
#[derive(Debug, Clone, Serialize)]
pub struct VideoInfo {
    pub container: String,
    pub codec: String,
    pub coded_width: u32,
    pub coded_height: u32,
    /// Size of the frames handed on: rotated upright and corrected to square pixels.
    pub width: u32,
    pub height: u32,
    /// Clockwise rotation applied to make frames upright (from the display matrix).
    pub rotation: u32,
    /// Sample aspect ratio of the stream; when not 1:1 the width was rescaled to display aspect.
    pub sample_aspect_ratio: (i32, i32),
    pub pixel_format: String,
    pub color_matrix: String,
    pub color_range: String,
    pub interlaced: bool,
    pub nominal_frame_rate: Option<f64>,
    /// Container or stream duration in seconds, when the file states one.
    pub duration: Option<f64>,
    pub timestamps: TimestampSource,
    /// `nvdec` (the GPU's decoder) or `cpu` (FFmpeg's software decoder).
    pub decoder: String,
    /// Why a GPU run decoded this file on the CPU.
    pub decoder_fallback: Option<String>,
}

/// Counters reported when decoding ends.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DecodeStats {
    pub frames_decoded: u64,
    pub frames_sampled: u64,
    pub corrupt_packets: u64,
    pub timestamp_discontinuities: u64,
    /// Frames without a timestamp in a stream that has them (placed one frame after the last).
    pub frames_without_timestamp: u64,
    pub deinterlaced_frames: u64,
    /// Frames passed over without decoding: GOPs that hold no sample point (exact sampling), or
    /// every frame but the key frames (`--sampling keyframe`).
    pub frames_not_decoded: u64,
    /// The file ended early or a read failed: the frames that exist were processed.
    pub partial: bool,
    /// Why the video is partial, when it is.
    pub partial_reason: Option<String>,
    /// Media time of the last frame (decoded or passed over), seconds.
    pub last_timestamp: f64,
}

/// A source of sampled frames (one video).
pub trait FrameSource: Send {
    fn info(&self) -> &VideoInfo;
    /// The next sampled frame, or `None` at the end of the stream.
    fn next_sampled(&mut self) -> Result<Option<SampledFrame>>;
    fn stats(&self) -> &DecodeStats;
}
