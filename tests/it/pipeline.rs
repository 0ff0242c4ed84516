//! The streaming stage graph against a serial reference, and `--sampling keyframe`.

use std::path::Path;

use facetv::analyze::{Analyzer, ModelChoice};
use facetv::decode::ffmpeg::FfmpegSource;
use facetv::decode::{DecodeOptions, FrameImage, FrameSource, Nvdec, Sampling};
use facetv::image::BgrImage;

use crate::common::{col, manifest, media, read_tsv, session, store};
use crate::video_job::{ffprobe_values, quiet_job, x264_clip};

/// (chip name, classifier, age, female probability) rows of a results folder, in file order.
fn age_rows(out: &Path, stem: &str) -> Vec<(String, String, f64, f64)> {
    let (h, rows) = read_tsv(&out.join(format!("{stem}_age_gender.tsv")));
    rows.iter()
        .map(|r| {
            (
                r[0].clone(),
                r[1].clone(),
                col(&h, r, "age"),
                col(&h, r, "gender"),
            )
        })
        .collect()
}

#[test]
fn the_stage_graph_writes_what_a_serial_run_computes_in_the_same_order() {
    let clip = media("videos/faces_hamilton_whitehouse.mp4");
    let dir = tempfile::tempdir().unwrap();
    // Batches of 3 frames: several batches in flight, the last one short.
    let st = quiet_job(
        &clip,
        dir.path(),
        &["--every", "0.5", "--batch-frames", "3"],
    )
    .status()
    .unwrap();
    assert_eq!(st.code(), Some(0));
    let piped = age_rows(dir.path(), "faces_hamilton_whitehouse");

    // The same frames, batches and models, one stage after the other on this thread.
    let mut analyzer = Analyzer::open(
        manifest(),
        &store(),
        &ModelChoice::default(),
        Default::default(),
        session(),
    )
    .unwrap();
    let mut source = open_exact(&clip, 0.5, None);
    let mut serial = Vec::new();
    loop {
        let mut batch = Vec::new();
        while batch.len() < 3 {
            match source.next_sampled().unwrap() {
                Some(f) => batch.push(f),
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        let host: Vec<_> = batch.iter().map(|f| f.image.to_host().unwrap()).collect();
        let images: Vec<&BgrImage> = host.iter().map(|i| i.as_ref()).collect();
        for (frame, faces) in batch.iter().zip(analyzer.analyze(&images).unwrap()) {
            for (i, f) in faces.iter().enumerate() {
                let name = format!(
                    "faces_hamilton_whitehouse_frame_{}_second_{}_face{i}.jpg",
                    frame.index,
                    frame.timestamp.floor() as u64
                );
                serial.push((name, f.estimates[0].age as f64));
            }
        }
    }
    assert!(
        serial.len() > 30,
        "a face-dense clip: {} faces",
        serial.len()
    );
    assert_eq!(piped.len(), serial.len());
    for ((name, classifier, age, _), (want_name, want_age)) in piped.iter().zip(&serial) {
        assert_eq!(classifier, "imdb");
        assert_eq!(name, want_name, "rows in frame and face order");
        // The table keeps 6 significant digits.
        assert!((age - want_age).abs() < 1e-3, "{name}: {age} vs {want_age}");
    }
}

/// Presentation times of the key frames and the number of frames, as ffprobe sees them.
fn key_frames(clip: &Path) -> (Vec<f64>, usize) {
    (
        ffprobe_values(clip, &["-skip_frame", "nokey"], "frame=pts_time"),
        ffprobe_values(clip, &[], "frame=pts_time").len(),
    )
}

#[test]
fn keyframe_sampling_decodes_only_key_frames_and_gives_the_same_results_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("gop2.mp4");
    // 12 s at 25 fps with a key frame every 2 s: one sample per second falls on a key frame
    // every other time.
    x264_clip(
        &media("videos/faces_hamilton_whitehouse.mp4"),
        0.0,
        12.0,
        &clip,
        &[
            "-r",
            "25",
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
        ],
    );
    let (keys, total) = key_frames(&clip);
    assert_eq!(keys.len(), 6, "key frames at {keys:?}");

    let run = |name: &str, args: &[&str]| -> std::path::PathBuf {
        let out = dir.path().join(name);
        let st = quiet_job(&clip, &out, args).status().unwrap();
        assert_eq!(st.code(), Some(0));
        out
    };
    let fast = run(
        "keyframe",
        &["--sampling", "keyframe", "--batch-frames", "1"],
    );
    let (h, rows) = read_tsv(&fast.join("gop2_sampled_frames.tsv"));
    let times: Vec<f64> = rows.iter().map(|r| col(&h, r, "timestamp")).collect();
    assert_eq!(times.len(), keys.len());
    for (t, k) in times.iter().zip(&keys) {
        assert!(
            (t - k).abs() < 1e-3,
            "sampled {times:?}, key frames {keys:?}"
        );
    }
    for (r, t) in rows.iter().zip(&times) {
        assert_eq!(
            col(&h, r, "frame"),
            (t * 25.0).round(),
            "frame index of {t}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fast.join("gop2_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["options"]["sampling"], "keyframe");
    assert_eq!(summary["decode"]["frames_decoded"], keys.len());
    assert_eq!(summary["decode"]["frames_not_decoded"], total - keys.len());

    // Exact sampling every 2 s takes the same frames, decoded the long way: same faces, ages.
    let exact = run("exact", &["--every", "2", "--batch-frames", "1"]);
    let (a, b) = (age_rows(&fast, "gop2"), age_rows(&exact, "gop2"));
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

/// `clip` opened for exact sampling every `every` seconds, decoded on `nvdec` or the CPU.
fn open_exact(clip: &Path, every: f64, nvdec: Option<Nvdec>) -> FfmpegSource {
    FfmpegSource::open(clip, &DecodeOptions::exact(every), nvdec).unwrap()
}

/// Every sampled frame of `clip` with its index and timestamp, decoded on `nvdec` or the CPU,
/// in host memory; and how many of them the decoder left in GPU memory.
fn sampled(clip: &Path, nvdec: Option<Nvdec>) -> (FfmpegSource, Vec<(u64, f64, BgrImage)>, usize) {
    let mut source = open_exact(clip, 1.0, nvdec);
    // All frames are held before any is converted, as the pipeline's queues hold them: keeping
    // frames must not take decode surfaces from the decoder.
    let mut held = Vec::new();
    while let Some(f) = source.next_sampled().unwrap() {
        held.push(f);
    }
    let on_gpu = held
        .iter()
        .filter(|f| matches!(f.image, FrameImage::Device(_)))
        .count();
    let frames = held
        .into_iter()
        .map(|f| (f.index, f.timestamp, f.image.into_host().unwrap()))
        .collect();
    (source, frames, on_gpu)
}

#[test]
fn nvdec_decodes_the_same_frames_or_falls_back_to_the_cpu_and_says_why() {
    // Without the NVIDIA driver (CI) asking for NVDEC decodes on the CPU, records why, and gives
    // exactly the CPU decoder's frames; on a GPU node NVDEC must be used and its frames match the
    // CPU's (same samples, colours within the conversion's rounding).
    let gpu = facetv::gpu::device::count().is_ok_and(|n| n > 0);
    // As in a job, where ONNX Runtime and cudarc have made the GPU's primary context active
    // before the first video opens.
    let _context = gpu.then(|| cudarc::driver::CudaContext::new(0).expect("GPU 0"));
    for clip in [
        "videos/faces_hamilton_whitehouse.mp4",
        "videos/faces_hamilton_hevc.mkv",
    ] {
        let clip = media(clip);
        let (_, on_cpu, _) = sampled(&clip, None);
        // Frames copied to the host and converted there (swscale), and frames left in GPU memory
        // (converted by the kernels' arithmetic, here through `to_host`).
        for keep_frames in [false, true] {
            let keep = (gpu && keep_frames).then(|| {
                std::sync::Arc::new(facetv::gpu::frames::DevicePlane::open(0).expect("GPU 0"))
            });
            let nvdec = Nvdec { device: 0, keep };
            let (source, asked_nvdec, left_on_gpu) = sampled(&clip, Some(nvdec));
            let info = source.info();
            assert_eq!(asked_nvdec.len(), on_cpu.len(), "{}", clip.display());
            // Both clips are 8-bit 4:2:0, upright, square pixels: NVDEC's frames can stay.
            let stays = gpu && keep_frames;
            assert_eq!(left_on_gpu > 0, stays, "{}", clip.display());
            for ((gi, gt, gimg), (ci, ct, cimg)) in asked_nvdec.iter().zip(&on_cpu) {
                assert_eq!((gi, gt), (ci, ct));
                assert_eq!((gimg.width, gimg.height), (cimg.width, cimg.height));
                if info.decoder == "cpu" {
                    assert!(gimg.data == cimg.data);
                } else {
                    let diff: u64 = gimg
                        .data
                        .iter()
                        .zip(&cimg.data)
                        .map(|(a, b)| u64::from(a.abs_diff(*b)))
                        .sum();
                    let mean = diff as f64 / gimg.data.len() as f64;
                    // The kernels take the nearest chroma sample where swscale interpolates.
                    let limit = if stays { 2.0 } else { 1.0 };
                    assert!(mean <= limit, "mean |Δ| {mean} on frame {gi}");
                }
            }
            if gpu {
                assert_eq!(info.decoder, "nvdec", "{:?}", info.decoder_fallback);
                assert_eq!(source.stats().corrupt_packets, 0);
            } else {
                assert_eq!(info.decoder, "cpu");
                let why = info.decoder_fallback.as_deref().unwrap_or_default();
                assert!(why.contains("libcuda") || why.contains("NVDEC"), "{why}");
            }
        }
    }
}

#[test]
fn a_decoder_failing_mid_stream_hands_over_to_the_cpu_without_losing_or_repeating_frames() {
    // What the source does when NVDEC fails in the middle of a file (`continue_on_cpu`): the
    // frames after the hand-over are those of decoding on the CPU throughout, at every point.
    for (clip, sampling) in [
        ("videos/faces_hamilton_whitehouse.mp4", Sampling::Exact),
        ("videos/faces_hamilton_mpeg2.ts", Sampling::Exact),
        ("videos/faces_hamilton_whitehouse.mp4", Sampling::Keyframe),
    ] {
        let clip = media(clip);
        let opts = DecodeOptions {
            sampling,
            ..DecodeOptions::exact(1.0)
        };
        // `resumed`: sampled frames passed over first, as a resumed run does.
        let frames = |hand_over: Option<usize>, resumed: u64| {
            let mut source = FfmpegSource::open(&clip, &opts, None).unwrap();
            source.skip_sampled(resumed);
            let mut out = Vec::new();
            loop {
                if hand_over == Some(out.len()) {
                    source.continue_on_cpu("test failure").unwrap();
                }
                match source.next_sampled().unwrap() {
                    Some(f) => out.push((f.index, f.timestamp, f.image.into_host().unwrap().data)),
                    None => break,
                }
            }
            (
                out,
                source.info().decoder_fallback.clone(),
                source.stats().clone(),
            )
        };
        let (whole, none, stats) = frames(None, 0);
        assert!(whole.len() >= 4 && none.is_none());
        for at in [0, 1, whole.len() / 2, whole.len()] {
            let (handed_over, why, after) = frames(Some(at), 0);
            assert!(handed_over == whole, "{} at {at}", clip.display());
            let why = why.unwrap_or_default();
            assert!(why.contains("test failure"), "{why}");
            assert_eq!(after.frames_sampled, stats.frames_sampled);
        }
        // Handed over while a resumed run is still passing over its first sampled frames, and
        // just after: nothing processed before the checkpoint comes out again.
        for at in [0, 1] {
            let (handed_over, _, _) = frames(Some(at), 2);
            assert!(
                handed_over == whole[2..],
                "{} resumed, at {at}",
                clip.display()
            );
        }
    }
}
