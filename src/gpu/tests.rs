//! Every kernel against its CPU twin, run through the host build of the kernel sources
//! (`emulated`), on odd sizes and awkward faces. Emulation uses the same float semantics as the
//! twins, so agreement must be exact; the device check allows for GPU arithmetic.

use super::emulated;
use super::fixtures::{
    awkward_landmarks, detector_input, frame, input_spec, noise, nv12, CONVERSIONS, SIZES,
};
use super::params::{InputElement, Matrix, Normalize, Nv12Layout, Resize, YuvToBgr};
use super::twin;
use crate::align::similarity::{chip_from_frame, invert};
use crate::align::warp::warp_affine;
use crate::image::BgrImage;
use crate::models::ChannelOrder;
use crate::preprocess::fill_nchw;

#[test]
fn frames_to_detector_input_match_the_cpu_path() {
    let s = input_spec(ChannelOrder::Rgb, [104.0, 117.0, 123.0], [1.0, 2.0, 57.5]);
    for (w, h) in SIZES {
        let frames = [frame(w, h, 1), frame(w, h, 2)];
        let r = Resize::longer_side(w, h, 640);
        let got = emulated::bgr_to_model_input::<f32>(
            &[&frames[0].data, &frames[1].data],
            w * 3,
            r,
            (640, 640),
            Normalize::from(&s),
        );
        let want: Vec<f32> = frames.iter().flat_map(|f| detector_input(f, &s)).collect();
        assert!(got == want, "{w}x{h}");
    }
}

#[test]
fn chips_to_classifier_input_match_the_cpu_path() {
    let s = input_spec(ChannelOrder::Bgr, [0.0; 3], [1.0; 3]);
    let chips: Vec<BgrImage> = (0..5).map(|i| frame(224, 224, 10 + i)).collect();
    let refs: Vec<&[u8]> = chips.iter().map(|c| c.data.as_slice()).collect();
    let got = emulated::bgr_to_model_input::<f32>(
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

#[test]
fn nv12_frames_to_detector_input_match_the_twin_in_every_matrix_and_range() {
    let s = input_spec(ChannelOrder::Bgr, [104.0, 117.0, 123.0], [1.0; 3]);
    for (matrix, full) in CONVERSIONS {
        let k = YuvToBgr::new(matrix, full);
        for (w, h) in SIZES {
            let (y, uv, pitch) = nv12(w, h, w as u64);
            let r = Resize::longer_side(w, h, 640);
            let got = emulated::nv12_to_model_input::<f32>(
                &[(&y, &uv)],
                pitch,
                k,
                r,
                (640, 640),
                Normalize::from(&s),
            );
            let bgr = twin::nv12_to_bgr(&y, &uv, w, h, pitch, &k);
            assert!(
                got == detector_input(&bgr, &s),
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

#[test]
fn half_conversion_rounds_to_nearest_even_like_the_half_crate() {
    let mut values: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -2.5,
        65504.0,
        65519.99,
        65520.0,
        1e9,
        -1e9,
        6.1035156e-5,
        6.0e-8,
        2.98e-8,
        2.9802322e-8,
        5.9604645e-8,
        1.0009766,
        1.0004883,
        1.0014648,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE,
    ];
    values.extend(noise(4 * 200_000, 21).chunks_exact(4).map(|b| {
        // Random bit patterns over every exponent, NaNs excluded (their payloads may differ).
        let v = f32::from_bits(u32::from_le_bytes(b.try_into().unwrap()));
        if v.is_nan() {
            1.5
        } else {
            v
        }
    }));
    values.extend((0..20_000).map(|i| (i as f32 - 10_000.0) * 0.0137));
    let kernel = emulated::f16_bits(&values);
    for (v, k) in values.iter().zip(kernel) {
        let want = half::f16::from_f32(*v).to_bits();
        assert_eq!(twin::f16_bits(*v), want, "{v:e}");
        assert_eq!(k, want, "{v:e}");
    }
    assert_eq!(twin::f16_bits(f32::NAN) & 0x7e00, 0x7e00);
    for h in 0..=u16::MAX {
        let v = twin::f16_to_f32(h);
        if !v.is_nan() {
            assert_eq!(twin::f16_bits(v), h, "{h:#06x}");
            assert_eq!(v, half::f16::from_bits(h).to_f32());
        }
    }
}

#[test]
fn half_precision_inputs_are_the_float_inputs_rounded() {
    let s = input_spec(ChannelOrder::Rgb, [104.0, 117.0, 123.0], [1.0, 2.0, 57.5]);
    let (w, h) = (37, 19);
    let img = frame(w, h, 5);
    let r = Resize::longer_side(w, h, 640);
    let got = emulated::bgr_to_model_input::<u16>(
        &[&img.data],
        w * 3,
        r,
        (640, 640),
        Normalize::from(&s),
    );
    let want: Vec<u16> = detector_input(&img, &s)
        .into_iter()
        .map(u16::from_f32)
        .collect();
    assert!(got == want);
    let k = YuvToBgr::new(Matrix::Bt709, false);
    let (y, uv, pitch) = nv12(w, h, 3);
    let got = emulated::nv12_to_model_input::<u16>(
        &[(&y, &uv)],
        pitch,
        k,
        r,
        (640, 640),
        Normalize::from(&s),
    );
    let bgr = twin::nv12_to_bgr(&y, &uv, w, h, pitch, &k);
    let want: Vec<u16> = detector_input(&bgr, &s)
        .into_iter()
        .map(u16::from_f32)
        .collect();
    assert!(got == want);
}

#[test]
fn opening_a_gpu_says_what_is_missing() {
    // Without the NVIDIA driver (CI) the error names the library and the CPU alternative; with
    // one, a GPU number past the last names how many there are.
    let message = match super::device::Gpu::open(4096) {
        Ok(_) => panic!("no machine has 4097 GPUs"),
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains("libcuda.so.1") && message.contains("driver 580")
            || message.contains("there is no GPU 4096"),
        "{message}"
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU: scripts/device-check.sh, or cargo test --release -- --ignored gpu::"]
fn kernels_match_their_twins_on_the_gpu() {
    let gpu = super::device::Gpu::open(0).expect("a GPU");
    let report = super::check::run(&gpu).expect("the check runs");
    println!("{}", report.table());
    assert!(report.passed(), "{}", report.table());
}

#[test]
#[ignore = "needs an NVIDIA GPU: cargo test --release -- --ignored gpu::"]
fn device_buffers_are_reused_in_the_steady_state() {
    use super::pool::{DeviceAllocator, Pool};
    let gpu = super::device::Gpu::open(0).expect("a GPU");
    let streams = gpu.stage_streams().expect("streams");
    let pool = Pool::new(DeviceAllocator::<f32>::new(streams.prepare.clone()));
    for batch in 0..50 {
        let len = if batch == 49 {
            3 * 640 * 640
        } else {
            32 * 3 * 640 * 640
        };
        let mut input = pool.take(len).expect("device memory");
        streams.prepare.memset_zeros(&mut *input).expect("memset");
        // The next stage reads it on its own stream, after an event.
        super::device::handoff(&streams.prepare, &streams.detect).expect("handoff");
        let back = streams.detect.clone_dtoh(&*input).expect("copy back");
        assert!(back.len() >= len && back[..len].iter().all(|v| *v == 0.0));
    }
    assert_eq!(pool.allocations(), 1);
}

#[test]
fn driver_panics_become_errors_and_guards_nest() {
    let got: crate::error::Result<()> = super::guarded(|| {
        // Nested, as `Gpu::open` → `count` does: must neither deadlock nor lose the inner error.
        let inner: crate::error::Result<()> = super::guarded(|| panic!("Missing symbol cuInit"));
        assert!(inner
            .unwrap_err()
            .to_string()
            .contains("Missing symbol cuInit"));
        panic!("Missing symbol cuMemAllocAsync")
    });
    let message = got.unwrap_err().to_string();
    assert!(
        message.contains("cuMemAllocAsync") && message.contains("driver 580"),
        "{message}"
    );
    // Threads guard at the same time without interfering.
    let threads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                super::guarded(|| if i % 2 == 0 { panic!("t{i}") } else { Ok(i) })
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(t.join().unwrap().is_ok(), i % 2 == 1);
    }
}

/// The GPU path's detect-and-align sequence (`DeviceFrames`: kernel runs, detector input bound in
/// place, face tables, chips in face order), run with the kernels' own code on the CPU
/// (`EmulatedFrames`), finds exactly the faces and cuts exactly the chips the CPU path finds and
/// cuts in the same pictures (the NV12 frames converted by the kernels' twin): real photos with
/// faces, three sizes in one batch (three kernel runs, one canvas), NVDEC's padded pitch, in
/// BT.601 limited and BT.709 full range.
#[test]
fn device_frames_find_the_faces_and_cut_the_chips_host_frames_do() {
    use super::emulated::{EmulatedFrames, Nv12Frame};
    use crate::analyze::FaceFinder;
    use crate::frames::{Frames, HostFrames};
    crate::runtime::environment(None).expect("ONNX Runtime is installed by scripts/setup.sh");
    let manifest = crate::models::Manifest::embedded();
    let spec = manifest.get("retinaface_mnet025").unwrap();
    let path = crate::models::ModelStore::new(None)
        .verified_path(spec)
        .expect("model installed by scripts/setup.sh");
    let detector = crate::detect::OnnxDetector::open(
        spec,
        &path,
        crate::detect::DetectOptions::default(),
        crate::runtime::SessionOptions {
            intra_threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let mut finder = FaceFinder::new(Box::new(detector), false, None);
    let shared = crate::home::shared_dir().expect("../shared or FACETV_SHARED");
    let load = |f: &str| BgrImage::load(&shared.join("media/images").join(f)).unwrap();
    let t1 = load("insightface_t1.jpg");
    // Sizes A A B A C: runs of one and two frames, faces on the second frame of a run.
    let photos = [
        t1.clone(),
        t1.flip_horizontal(),
        load("fr_two_people.jpg"),
        t1,
        load("uniface_src_meeting.jpg"),
    ];
    for (matrix, full) in [(Matrix::Bt601, false), (Matrix::Bt709, true)] {
        let k = YuvToBgr::new(matrix, full);
        let nv12: Vec<_> = photos
            .iter()
            .map(|p| super::fixtures::nv12_from_bgr(p, matrix, full))
            .collect();
        let pictures: Vec<BgrImage> = nv12
            .iter()
            .zip(&photos)
            .map(|((y, uv, pitch), p)| twin::nv12_to_bgr(y, uv, p.width, p.height, *pitch, &k))
            .collect();
        let refs: Vec<&BgrImage> = pictures.iter().collect();
        let on_host = finder.find(&mut HostFrames::new(&refs)).unwrap();
        let nv12_frames = || -> Vec<Nv12Frame<'_>> {
            nv12.iter()
                .zip(&photos)
                .map(|((y, uv, pitch), p)| Nv12Frame {
                    luma: y,
                    chroma: uv,
                    layout: Nv12Layout {
                        width: p.width,
                        height: p.height,
                        pitch: *pitch,
                        colour: k,
                    },
                })
                .collect()
        };
        // The detector input of a range across runs (the detector here takes one frame at a
        // time, so `find` alone does not cover it), on a canvas wider than high.
        let spec = &spec.input;
        let mut host = HostFrames::new(&refs);
        let mut emulated = EmulatedFrames::new(nv12_frames());
        let want = host
            .detector_input(1..5, 640, (672, 480), spec)
            .unwrap()
            .host_values();
        let got = emulated
            .detector_input(1..5, 640, (672, 480), spec)
            .unwrap()
            .host_values();
        assert!(got == want, "{matrix:?} full={full}");
        let emulated = finder
            .find(&mut EmulatedFrames::new(nv12_frames()))
            .unwrap();
        let counts: Vec<usize> = on_host.faces.iter().map(Vec::len).collect();
        assert!(
            counts.iter().all(|&n| n >= 1) && counts.iter().sum::<usize>() >= 5,
            "{counts:?}"
        );
        assert_eq!(emulated.faces, on_host.faces, "{matrix:?} full={full}");
        let chips = |f: &crate::analyze::FoundFaces| f.chips.iter().map(Vec::len).sum::<usize>();
        assert_eq!(chips(&emulated), chips(&on_host));
        assert_eq!(chips(&on_host), counts.iter().sum::<usize>());
        for (a, b) in emulated
            .chips
            .iter()
            .flatten()
            .zip(on_host.chips.iter().flatten())
        {
            assert_eq!(a.frame_to_chip, b.frame_to_chip);
            assert!(a.image.data == b.image.data, "{matrix:?} full={full}");
        }
    }
}

#[test]
fn faces_are_split_into_kernel_runs_in_order_and_out_of_order_lists_are_refused() {
    use super::frames::{faces_per_run, runs};
    let sizes = [(640, 360), (640, 360), (320, 240), (640, 360)];
    let layout = |i: usize| Nv12Layout {
        width: sizes[i].0,
        height: sizes[i].1,
        pitch: sizes[i].0,
        colour: YuvToBgr::new(Matrix::Bt601, false),
    };
    let r = runs(0..4, layout);
    assert_eq!(r, vec![0..2, 2..3, 3..4]);
    assert_eq!(runs(1..3, layout), vec![1..2, 2..3]);
    let m = chip_from_frame(&awkward_landmarks(640.0, 360.0)[0], 224);
    let faces = [(0, m), (1, m), (1, m), (3, m)];
    let per_run = faces_per_run(&r, &faces).unwrap();
    let local: Vec<Vec<usize>> = per_run
        .iter()
        .map(|(_, f)| f.iter().map(|(i, _)| *i).collect())
        .collect();
    assert_eq!(local, vec![vec![0, 1, 1], vec![], vec![0]]);
    assert_eq!(per_run[0].1[0].1, invert(&m));
    assert!(faces_per_run(&r, &[(1, m), (0, m)]).is_err());
    assert!(faces_per_run(&r, &[(4, m)]).is_err());
}
