//! Synthetic inputs for checking kernels against their twins, shared by the CPU tests (which run
//! the kernels' source on the host) and the device check (which runs them on the GPU): noise
//! frames of any size, NV12 planes with NVDEC's padded pitch, and faces at the frame borders and
//! turned past 45°.

use super::params::Matrix;
use crate::image::BgrImage;
use crate::models::{ChannelOrder, InputSpec};
use crate::preprocess::{fill_nchw, resize_longer_side};

/// Frame sizes every kernel is checked on: a single pixel, odd sizes, HD and UHD.
pub const SIZES: [(usize, usize); 4] = [(1, 1), (37, 19), (1920, 1080), (3840, 2160)];

/// Deterministic noise, smoothed a little so resampling sees both edges and gradients.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 56) as u8 / 2).wrapping_add((i % 251) as u8 / 2)
        })
        .collect()
}

pub fn frame(w: usize, h: usize, seed: u64) -> BgrImage {
    BgrImage::from_raw(w, h, noise(w * h * 3, seed)).expect("sized to fit")
}

/// NV12 planes with a padded pitch, as NVDEC allocates them: (luma, chroma, pitch).
pub fn nv12(w: usize, h: usize, seed: u64) -> (Vec<u8>, Vec<u8>, usize) {
    let pitch = (w.div_ceil(2) * 2).div_ceil(64) * 64;
    (
        noise(pitch * h, seed),
        noise(pitch * h.div_ceil(2), seed + 7),
        pitch,
    )
}

/// `img` as NV12 in `matrix` and range (chroma averaged over each 2×2 block), with NVDEC's
/// padded pitch: what a decoder would hand over for that picture. (luma, chroma, pitch).
pub fn nv12_from_bgr(img: &BgrImage, matrix: Matrix, full: bool) -> (Vec<u8>, Vec<u8>, usize) {
    let (w, h) = (img.width, img.height);
    let pitch = (w.div_ceil(2) * 2).div_ceil(64) * 64;
    let (kr, kb) = match matrix {
        Matrix::Bt601 => (0.299, 0.114),
        Matrix::Bt709 => (0.2126, 0.0722),
    };
    let (y_scale, c_scale, y_offset) = if full {
        (1.0, 1.0, 0.0)
    } else {
        (219.0 / 255.0, 224.0 / 255.0, 16.0)
    };
    let rgb = |x: usize, y: usize| {
        let p = &img.data[(y.min(h - 1) * w + x.min(w - 1)) * 3..][..3];
        (p[2] as f64, p[1] as f64, p[0] as f64)
    };
    let luma_of = |(r, g, b): (f64, f64, f64)| kr * r + (1.0 - kr - kb) * g + kb * b;
    let level = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    let mut luma = vec![0u8; pitch * h];
    for y in 0..h {
        for x in 0..w {
            luma[y * pitch + x] = level(y_offset + y_scale * luma_of(rgb(x, y)));
        }
    }
    let mut chroma = vec![128u8; pitch * h.div_ceil(2)];
    for y in 0..h.div_ceil(2) {
        for x in 0..w.div_ceil(2) {
            let (mut u, mut v) = (0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = rgb(2 * x + dx, 2 * y + dy);
                let l = luma_of(p);
                u += (p.2 - l) / (2.0 * (1.0 - kb)) / 4.0;
                v += (p.0 - l) / (2.0 * (1.0 - kr)) / 4.0;
            }
            chroma[y * pitch + 2 * x] = level(128.0 + c_scale * u);
            chroma[y * pitch + 2 * x + 1] = level(128.0 + c_scale * v);
        }
    }
    (luma, chroma, pitch)
}

/// The YUV conversions NV12 kernels are checked in: (matrix, full range).
pub const CONVERSIONS: [(Matrix, bool); 3] = [
    (Matrix::Bt601, false),
    (Matrix::Bt709, false),
    (Matrix::Bt709, true),
];

/// `count` NV12 frames of one size as (luma, chroma) planes, and their common pitch.
pub fn nv12_frames(
    w: usize,
    h: usize,
    count: usize,
    seed: u64,
) -> (Vec<(Vec<u8>, Vec<u8>)>, usize) {
    let mut pitch = 0;
    let frames = (0..count as u64)
        .map(|i| {
            let (y, uv, p) = nv12(w, h, seed + i);
            pitch = p;
            (y, uv)
        })
        .collect();
    (frames, pitch)
}

/// Five landmarks of a face centred at (cx, cy), `scale` × a 16-pixel eye distance, turned by
/// `degrees`.
fn face(cx: f32, cy: f32, scale: f32, degrees: f32) -> [[f32; 2]; 5] {
    let base = [
        [-8.0, -6.0],
        [8.0, -6.0],
        [0.0, 2.0],
        [-6.0, 9.0],
        [6.0, 9.0],
    ];
    let (s, c) = degrees.to_radians().sin_cos();
    base.map(|[x, y]: [f32; 2]| [cx + scale * (c * x - s * y), cy + scale * (s * x + c * y)])
}

/// Faces whose chips reach past every border of the frame, and faces turned by 60° and 135°.
pub fn awkward_landmarks(w: f32, h: f32) -> Vec<[[f32; 2]; 5]> {
    vec![
        face(0.0, 0.0, 1.5, 0.0),
        face(w - 1.0, h * 0.5, 2.0, 10.0),
        face(w * 0.5, h - 1.0, 1.0, -20.0),
        face(w * 0.4, h * 0.4, 3.0, 60.0),
        face(w * 0.6, h * 0.3, 0.7, 135.0),
    ]
}

/// `count` faces: the awkward ones first, then faces spread over the frame at sizes from 0.5× to
/// 8× and any rotation.
pub fn many_landmarks(w: f32, h: f32, count: usize, seed: u64) -> Vec<[[f32; 2]; 5]> {
    let r = noise(count * 4, seed);
    let unit = |i: usize| r[i] as f32 / 255.0;
    awkward_landmarks(w, h)
        .into_iter()
        .chain((0..count).map(|j| {
            face(
                unit(4 * j) * w,
                unit(4 * j + 1) * h,
                0.5 + 7.5 * unit(4 * j + 2),
                360.0 * unit(4 * j + 3),
            )
        }))
        .take(count)
        .collect()
}

/// A model input convention with these channel order, mean and std (name and size unused).
pub fn input_spec(order: ChannelOrder, mean: [f32; 3], std: [f32; 3]) -> InputSpec {
    InputSpec {
        name: "input".into(),
        size: None,
        multiple: 1,
        channel_order: order,
        mean,
        std,
    }
}

/// What the CPU path feeds a detector for `img`: the longer side resized to 640, top-left on a
/// 640×640 canvas, normalised by `spec` (the twin of the model-input kernels).
pub fn detector_input(img: &BgrImage, spec: &InputSpec) -> Vec<f32> {
    let r = resize_longer_side(img, 640);
    let mut out = vec![0f32; 3 * 640 * 640];
    fill_nchw(&r.image, spec, 640, 640, &mut out);
    out
}
