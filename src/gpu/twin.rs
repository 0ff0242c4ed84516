//! CPU twins of the kernels that have no counterpart on the CPU path. The others are the CPU
//! path's own functions: `preprocess::{resize_longer_side, fill_nchw}` and `BgrImage::resize`
//! (kernel `*_to_model_input`) and `align::warp::warp_affine` (kernel `warp_faces_*`).

use super::params::YuvToBgr;
use crate::image::BgrImage;

/// NV12 (a `pitch`-byte Y plane of `height` rows, then interleaved U, V at half resolution) to
/// BGR, as `Nv12Source::pixel` in kernels/facetv.cuh computes it.
pub fn nv12_to_bgr(
    luma: &[u8],
    chroma: &[u8],
    width: usize,
    height: usize,
    pitch: usize,
    k: &YuvToBgr,
) -> BgrImage {
    let mut out = BgrImage::new(width, height);
    let level = |v: f32| (v.round_ties_even() as i32).clamp(0, 255) as u8;
    for y in 0..height {
        for x in 0..width {
            let luma_v = (luma[y * pitch + x] as f32 - k.y_offset) * k.y_scale;
            let uv = (y / 2) * pitch + (x / 2) * 2;
            let u = (chroma[uv] as f32 - 128.0) * k.uv_scale;
            let v = (chroma[uv + 1] as f32 - 128.0) * k.uv_scale;
            let o = (y * width + x) * 3;
            out.data[o] = level(luma_v + k.b_u * u);
            out.data[o + 1] = level(luma_v - k.g_u * u - k.g_v * v);
            out.data[o + 2] = level(luma_v + k.r_v * v);
        }
    }
    out
}

/// One candidate row of kernel `compact_candidates`: prior index, score, 4 box and 10 landmark
/// offsets.
pub type CandidateRow = [f32; 16];

/// The priors of one frame scoring at least `threshold`, in prior order (RetinaFace biubug6
/// layout: `loc` 4, `conf` 2, `landmarks` 10 values per prior), as the kernel selects them.
pub fn compact_candidates(
    loc: &[f32],
    conf: &[f32],
    landmarks: &[f32],
    threshold: f32,
) -> Vec<CandidateRow> {
    (0..conf.len() / 2)
        .filter(|&i| conf[i * 2 + 1] >= threshold)
        .map(|i| {
            let mut row = [0f32; 16];
            row[0] = i as f32;
            row[1] = conf[i * 2 + 1];
            row[2..6].copy_from_slice(&loc[i * 4..i * 4 + 4]);
            row[6..16].copy_from_slice(&landmarks[i * 10..i * 10 + 10]);
            row
        })
        .collect()
}

/// float → IEEE 754 half bits, rounded to nearest even, as `f16_bits` in kernels/facetv.cuh.
pub fn f16_bits(f: f32) -> u16 {
    let x = f.to_bits();
    let sign = (x >> 16) & 0x8000;
    let a = x & 0x7fff_ffff;
    let bits = if a > 0x7f80_0000 {
        0x7e00
    } else if a >= 0x477f_f000 {
        0x7c00
    } else if a < 0x3880_0000 {
        (f32::from_bits(a) * 16_777_216.0).round_ties_even() as u32
    } else {
        let r = a - 0x3800_0000;
        (r + 0xfff + ((r >> 13) & 1)) >> 13
    };
    (sign | bits) as u16
}

/// The value of half bits `h` (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let mantissa = f32::from(h & 0x3ff);
    sign * match exponent {
        0 => mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + mantissa / 1024.0) * 2f32.powi(e - 15),
    }
}
