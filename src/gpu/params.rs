//! Kernel parameters, laid out exactly as the structs of `kernels/facetv.cuh` (`#[repr(C)]`), and
//! built from the same values the CPU path uses so both paths share one definition.

use crate::models::{ChannelOrder, InputSpec};

/// `Resize` in facetv.cuh: a bilinear resize with source pixels per destination pixel.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resize {
    pub src_w: i32,
    pub src_h: i32,
    pub dst_w: i32,
    pub dst_h: i32,
    pub step_x: f64,
    pub step_y: f64,
}

impl Resize {
    /// The detector's resize: the longer side becomes `max_side`, as
    /// `preprocess::resize_longer_side` computes it.
    pub fn longer_side(src_w: usize, src_h: usize, max_side: usize) -> Resize {
        let longer = src_w.max(src_h).max(1);
        let r = max_side as f64 / longer as f64;
        let w = ((src_w as f64 * r).round() as usize).clamp(1, max_side);
        let h = ((src_h as f64 * r).round() as usize).clamp(1, max_side);
        if w == src_w && h == src_h {
            return Resize::to_size(src_w, src_h, w, h);
        }
        Resize {
            src_w: src_w as i32,
            src_h: src_h as i32,
            dst_w: w as i32,
            dst_h: h as i32,
            step_x: 1.0 / r,
            step_y: 1.0 / r,
        }
    }

    /// A resize to a given size (`BgrImage::resize`): the classifiers' 224 → 64.
    pub fn to_size(src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> Resize {
        Resize {
            src_w: src_w as i32,
            src_h: src_h as i32,
            dst_w: dst_w as i32,
            dst_h: dst_h as i32,
            step_x: src_w as f64 / dst_w as f64,
            step_y: src_h as f64 / dst_h as f64,
        }
    }
}

/// `Normalize` in facetv.cuh, from a model's input convention (`preprocess::fill_nchw`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub inv_std: [f32; 3],
    pub src_channel: [i32; 3],
}

impl From<&InputSpec> for Normalize {
    fn from(spec: &InputSpec) -> Normalize {
        Normalize {
            mean: spec.mean,
            inv_std: spec.std.map(|s| 1.0 / s),
            src_channel: match spec.channel_order {
                ChannelOrder::Bgr => [0, 1, 2],
                ChannelOrder::Rgb => [2, 1, 0],
            },
        }
    }
}

/// YUV colour matrices NVDEC output can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matrix {
    Bt601,
    Bt709,
}

/// `YuvToBgr` in facetv.cuh.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YuvToBgr {
    pub y_offset: f32,
    pub y_scale: f32,
    pub uv_scale: f32,
    pub r_v: f32,
    pub g_u: f32,
    pub g_v: f32,
    pub b_u: f32,
}

impl YuvToBgr {
    /// The coefficients of a matrix (Kr, Kb) and range: limited range scales Y from 16–235 and
    /// chroma from 16–240 to full swing.
    pub fn new(matrix: Matrix, full_range: bool) -> YuvToBgr {
        let (kr, kb) = match matrix {
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt709 => (0.2126, 0.0722),
        };
        let kg = 1.0 - kr - kb;
        let (y_offset, y_scale, uv_scale) = if full_range {
            (0.0, 1.0, 1.0)
        } else {
            (16.0, 255.0 / 219.0, 255.0 / 224.0)
        };
        YuvToBgr {
            y_offset: y_offset as f32,
            y_scale: y_scale as f32,
            uv_scale: uv_scale as f32,
            r_v: (2.0 * (1.0 - kr)) as f32,
            g_u: (2.0 * kb * (1.0 - kb) / kg) as f32,
            g_v: (2.0 * kr * (1.0 - kr) / kg) as f32,
            b_u: (2.0 * (1.0 - kb)) as f32,
        }
    }
}

/// How an NV12 picture lies in memory: `width`×`height` pixels in rows of `pitch` bytes, the
/// luma plane then the interleaved chroma plane at half resolution, converted to BGR with
/// `colour`. Frames of one layout go through the kernels in one launch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nv12Layout {
    pub width: usize,
    pub height: usize,
    pub pitch: usize,
    pub colour: YuvToBgr,
}

impl Nv12Layout {
    pub fn luma_len(&self) -> usize {
        self.pitch * self.height
    }

    pub fn chroma_len(&self) -> usize {
        self.pitch * self.height.div_ceil(2)
    }

    /// (width, height, pitch), as `launch::FrameBatch` takes them.
    pub fn dims(&self) -> (usize, usize, usize) {
        (self.width, self.height, self.pitch)
    }
}

/// What a model-input kernel writes: float32, or float16 as its bits (`u16`, the `*_f16` kernels)
/// for fp16 engines.
pub trait InputElement:
    Copy + Default + PartialEq + Send + Sync + std::fmt::Debug + 'static
{
    const HALF: bool;
    /// The element the kernels write for the float32 value `v`.
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
}

impl InputElement for f32 {
    const HALF: bool = false;
    fn from_f32(v: f32) -> f32 {
        v
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl InputElement for u16 {
    const HALF: bool = true;
    fn from_f32(v: f32) -> u16 {
        super::twin::f16_bits(v)
    }
    fn to_f32(self) -> f32 {
        super::twin::f16_to_f32(self)
    }
}
