//! Every kernel against its CPU twin, run through the host build of the kernel sources
//! (`emulated`), on odd sizes and awkward faces. Emulation uses the same float semantics as the
//! twins, so agreement must be exact; the device check allows for GPU arithmetic.

use super::emulated;
use super::params::{Matrix, Normalize, Resize, YuvToBgr};
use super::twin;
use crate::align::similarity::{chip_from_frame, invert};
use crate::align::warp::warp_affine;
use crate::image::BgrImage;
use crate::models::{ChannelOrder, InputSpec};
use crate::preprocess::{fill_nchw, resize_longer_side};

const SIZES: [(usize, usize); 4] = [(1, 1), (37, 19), (1920, 1080), (3840, 2160)];

/// Deterministic noise, smoothed a little so resampling sees both edges and gradients.
fn noise(len: usize, seed: u64) -> Vec<u8> {
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

fn frame(w: usize, h: usize, seed: u64) -> BgrImage {
    BgrImage::from_raw(w, h, noise(w * h * 3, seed)).unwrap()
}

fn spec(order: ChannelOrder, mean: [f32; 3], std: [f32; 3]) -> InputSpec {
    InputSpec {
        name: "x".into(),
        size: None,
        multiple: 1,
        channel_order: order,
        mean,
        std,
    }
}

/// What the CPU path feeds the detector for `img`.
fn cpu_detector_input(img: &BgrImage, s: &InputSpec) -> Vec<f32> {
    let r = resize_longer_side(img, 640);
    let mut out = vec![0f32; 3 * 640 * 640];
    fill_nchw(&r.image, s, 640, 640, &mut out);
    out
}

#[test]
fn frames_to_detector_input_match_the_cpu_path() {
    let s = spec(ChannelOrder::Rgb, [104.0, 117.0, 123.0], [1.0, 2.0, 57.5]);
    for (w, h) in SIZES {
        let frames = [frame(w, h, 1), frame(w, h, 2)];
        let r = Resize::longer_side(w, h, 640);
        let got = emulated::bgr_to_model_input(
            &[&frames[0].data, &frames[1].data],
            w * 3,
            r,
            (640, 640),
            Normalize::from(&s),
        );
        let want: Vec<f32> = frames
            .iter()
            .flat_map(|f| cpu_detector_input(f, &s))
            .collect();
        assert!(got == want, "{w}x{h}");
    }
}

#[test]
fn chips_to_classifier_input_match_the_cpu_path() {
    let s = spec(ChannelOrder::Bgr, [0.0; 3], [1.0; 3]);
    let chips: Vec<BgrImage> = (0..5).map(|i| frame(224, 224, 10 + i)).collect();
    let refs: Vec<&[u8]> = chips.iter().map(|c| c.data.as_slice()).collect();
    let got = emulated::bgr_to_model_input(
        &refs,
        224 * 3,
        Resize::to_size(224, 224, 64, 64),
        (64, 64),
        Normalize::from(&s),
    );
    let mut want = vec![0f32; 5 * 3 * 64 * 64];
    for (c, out) in chips.iter().zip(want.chunks_exact_mut(3 * 64 * 64)) {
        fill_nchw(&c.resize(64, 64), &s, 64, 64, out);
    }
    assert!(got == want);
}

/// NV12 planes with a padded pitch, as NVDEC allocates them.
fn nv12(w: usize, h: usize, seed: u64) -> (Vec<u8>, Vec<u8>, usize) {
    let pitch = (w.div_ceil(2) * 2).div_ceil(64) * 64;
    (
        noise(pitch * h, seed),
        noise(pitch * h.div_ceil(2), seed + 7),
        pitch,
    )
}

#[test]
fn nv12_frames_to_detector_input_match_the_twin_in_every_matrix_and_range() {
    let s = spec(ChannelOrder::Bgr, [104.0, 117.0, 123.0], [1.0; 3]);
    for (matrix, full) in [
        (Matrix::Bt601, false),
        (Matrix::Bt709, false),
        (Matrix::Bt709, true),
    ] {
        let k = YuvToBgr::new(matrix, full);
        for (w, h) in SIZES {
            let (y, uv, pitch) = nv12(w, h, w as u64);
            let r = Resize::longer_side(w, h, 640);
            let got = emulated::nv12_to_model_input(
                &[(&y, &uv)],
                pitch,
                k,
                r,
                (640, 640),
                Normalize::from(&s),
            );
            let bgr = twin::nv12_to_bgr(&y, &uv, w, h, pitch, &k);
            assert!(
                got == cpu_detector_input(&bgr, &s),
                "{matrix:?} full={full} {w}x{h}"
            );
        }
    }
}

#[test]
fn nv12_conversion_hits_the_reference_colours() {
    // Limited-range BT.709 white, black and pure red (Y 63, U 102, V 240 → B 0, G 0, R 255 within
    // rounding), full-range mid grey.
    let k = YuvToBgr::new(Matrix::Bt709, false);
    let px = |y: u8, u: u8, v: u8, k: &YuvToBgr| {
        twin::nv12_to_bgr(&[y], &[u, v], 1, 1, 1, k).pixel(0, 0)
    };
    assert_eq!(px(235, 128, 128, &k), [255, 255, 255]);
    assert_eq!(px(16, 128, 128, &k), [0, 0, 0]);
    let red = px(63, 102, 240, &k);
    assert!(red[0] <= 1 && red[1] <= 1 && red[2] >= 254, "{red:?}");
    assert_eq!(
        px(128, 128, 128, &YuvToBgr::new(Matrix::Bt601, true)),
        [128, 128, 128]
    );
}

#[test]
fn candidate_compaction_keeps_exactly_the_priors_over_the_threshold() {
    let (frames, priors) = (3, 16_800);
    // Scores spread evenly over [0, 1): about 17 priors per frame pass 0.999.
    let conf: Vec<f32> = (0..frames * priors * 2)
        .map(|i| ((i as u64 * 2_654_435_761) % 10_000) as f32 / 10_000.0)
        .collect();
    let loc: Vec<f32> = noise(frames * priors * 4, 6)
        .iter()
        .map(|v| *v as f32)
        .collect();
    let landm: Vec<f32> = noise(frames * priors * 10, 8)
        .iter()
        .map(|v| *v as f32)
        .collect();
    let threshold = 0.999;
    let (counts, rows) = emulated::compact_candidates(&loc, &conf, &landm, frames, threshold, 64);
    for f in 0..frames {
        let want = twin::compact_candidates(
            &loc[f * priors * 4..(f + 1) * priors * 4],
            &conf[f * priors * 2..(f + 1) * priors * 2],
            &landm[f * priors * 10..(f + 1) * priors * 10],
            threshold,
        );
        assert!(
            !want.is_empty() && want.len() <= 64,
            "a useful test needs some: {}",
            want.len()
        );
        assert_eq!(counts[f] as usize, want.len());
        let mut got: Vec<[f32; 16]> = rows[f * 64 * 16..][..want.len() * 16]
            .chunks_exact(16)
            .map(|c| c.try_into().unwrap())
            .collect();
        // Slots are taken in whatever order the GPU's threads arrive: the host sorts.
        got.sort_by(|a, b| a[0].total_cmp(&b[0]));
        assert_eq!(got, want);
    }
    // More candidates than slots: the full count comes back so the host can fall back.
    let (counts, _) = emulated::compact_candidates(&loc, &conf, &landm, frames, 0.5, 8);
    assert!(counts.iter().all(|c| *c > 8));
}

/// Faces whose chips reach past every border of the frame, and faces turned by 60° and 135°.
fn awkward_landmarks(w: f32, h: f32) -> Vec<[[f32; 2]; 5]> {
    let base = [
        [-8.0, -6.0],
        [8.0, -6.0],
        [0.0, 2.0],
        [-6.0, 9.0],
        [6.0, 9.0],
    ];
    let place = |cx: f32, cy: f32, scale: f32, degrees: f32| {
        let (s, c) = degrees.to_radians().sin_cos();
        base.map(|[x, y]| [cx + scale * (c * x - s * y), cy + scale * (s * x + c * y)])
    };
    vec![
        place(0.0, 0.0, 1.5, 0.0),
        place(w - 1.0, h * 0.5, 2.0, 10.0),
        place(w * 0.5, h - 1.0, 1.0, -20.0),
        place(w * 0.4, h * 0.4, 3.0, 60.0),
        place(w * 0.6, h * 0.3, 0.7, 135.0),
    ]
}

#[test]
fn face_warps_match_the_cpu_warp() {
    for (w, h) in [(37, 19), (1920, 1080)] {
        let frames = [frame(w, h, 3), frame(w, h, 4)];
        let faces = awkward_landmarks(w as f32, h as f32);
        let to_chip: Vec<_> = faces.iter().map(|l| chip_from_frame(l, 224)).collect();
        let face_frame: Vec<i32> = (0..faces.len() as i32).map(|j| j % 2).collect();
        let chip_to_frame: Vec<f64> = to_chip.iter().flat_map(invert).collect();
        let got = emulated::warp_faces_bgr(
            &[&frames[0].data, &frames[1].data],
            w * 3,
            (w, h),
            &face_frame,
            &chip_to_frame,
            224,
        );
        for (j, m) in to_chip.iter().enumerate() {
            let want = warp_affine(&frames[j % 2], m, 224, 224);
            assert!(
                got[j * 224 * 224 * 3..][..224 * 224 * 3] == want.data[..],
                "{w}x{h} face {j}"
            );
        }
    }
}

#[test]
fn face_warps_from_nv12_match_conversion_then_warp() {
    let (w, h) = (1920, 1080);
    let k = YuvToBgr::new(Matrix::Bt709, false);
    let (y, uv, pitch) = nv12(w, h, 9);
    let faces = awkward_landmarks(w as f32, h as f32);
    let to_chip: Vec<_> = faces.iter().map(|l| chip_from_frame(l, 224)).collect();
    let chip_to_frame: Vec<f64> = to_chip.iter().flat_map(invert).collect();
    let got = emulated::warp_faces_nv12(
        &[(&y, &uv)],
        pitch,
        k,
        (w, h),
        &vec![0; faces.len()],
        &chip_to_frame,
        224,
    );
    let bgr = twin::nv12_to_bgr(&y, &uv, w, h, pitch, &k);
    for (j, m) in to_chip.iter().enumerate() {
        assert!(
            got[j * 224 * 224 * 3..][..224 * 224 * 3] == warp_affine(&bgr, m, 224, 224).data[..],
            "face {j}"
        );
    }
}

#[test]
fn kernels_compile_with_nvrtc_for_hopper() {
    // NVRTC needs no GPU: scripts/setup.sh installs it, so this runs on every machine the tests
    // run on and catches a kernel that would only fail to build on the GPU node.
    let cubin = super::compile("sm_90").expect("NVRTC from scripts/setup.sh");
    assert!(cubin.starts_with(b"\x7fELF"), "a cubin is an ELF image");
    let text = String::from_utf8_lossy(&cubin);
    for k in super::KERNELS {
        assert!(text.contains(k), "kernel {k} missing from the cubin");
    }
}
