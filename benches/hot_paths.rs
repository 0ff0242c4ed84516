//! Criterion benchmarks of the CPU hot paths: decoding a sampled frame, resize to the detector
//! input, prior decoding + NMS, the alignment warp, JPEG encoding of a chip and appending it to a
//! tar.
//! Run with `cargo bench --bench hot_paths`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use facetv::align::{chip_from_frame, warp::warp_affine, CHIP_SIZE};
use facetv::decode::ffmpeg::FfmpegSource;
use facetv::decode::{DecodeOptions, FrameSource};
use facetv::detect::retinaface_biubug6::{priors, Biubug6Decoder};
use facetv::detect::{nms::nms, Decoder, RawOutput};
use facetv::image::BgrImage;
use facetv::preprocess::resize_longer_side;

fn frame(w: usize, h: usize) -> BgrImage {
    let mut img = BgrImage::new(w, h);
    for (i, b) in img.data.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2654435761) >> 13) as u8;
    }
    img
}

fn benches(c: &mut Criterion) {
    // A 1080p25 H.264 clip of the shared data: opening it and decoding up to its second sampled
    // frame (one per second) = 26 frames decoded, 2 converted.
    let shared = std::env::var_os("FACETV_SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let clip = shared.join("media/videos/faces_people_walking_1080p.mp4");
    if clip.exists() {
        c.bench_function("decode 1080p H.264 to the second sampled frame", |b| {
            b.iter(|| {
                let mut src = FfmpegSource::open(&clip, &DecodeOptions::exact(1.0), None).unwrap();
                src.next_sampled().unwrap();
                black_box(src.next_sampled().unwrap())
            })
        });
    }

    let hd = frame(1920, 1080);
    c.bench_function("resize 1920x1080 -> 640x360", |b| {
        b.iter(|| resize_longer_side(black_box(&hd), 640))
    });

    let n = priors(640, 640).len();
    let mut conf = vec![0f32; n * 2];
    for k in (0..n).step_by(97) {
        conf[k * 2 + 1] = 0.95; // ~170 candidates, as on a crowded frame
    }
    let loc = vec![0.01f32; n * 4];
    let landm = vec![0.02f32; n * 10];
    let dec = Biubug6Decoder::new();
    c.bench_function("biubug6 decode 16800 priors + NMS", |b| {
        b.iter(|| {
            let outs = [
                RawOutput {
                    shape: vec![n as i64, 4],
                    data: &loc,
                },
                RawOutput {
                    shape: vec![n as i64, 2],
                    data: &conf,
                },
                RawOutput {
                    shape: vec![n as i64, 10],
                    data: &landm,
                },
            ];
            nms(dec.decode(black_box(&outs), 640, 640, 0.8).unwrap(), 0.4)
        })
    });

    let lm = [
        [800.0f32, 400.0],
        [870.0, 395.0],
        [835.0, 440.0],
        [805.0, 480.0],
        [865.0, 476.0],
    ];
    let m = chip_from_frame(&lm, CHIP_SIZE);
    c.bench_function("align warp to 224x224", |b| {
        b.iter(|| warp_affine(black_box(&hd), &m, CHIP_SIZE, CHIP_SIZE))
    });

    let chip = warp_affine(&hd, &m, CHIP_SIZE, CHIP_SIZE);
    c.bench_function("JPEG q95 encode 224x224", |b| {
        b.iter(|| black_box(&chip).encode_jpeg(95).unwrap())
    });

    let jpeg = chip.encode_jpeg(95).unwrap();
    c.bench_function("tar append one chip", |b| {
        let mut builder = tar::Builder::new(std::io::sink());
        b.iter(|| {
            let mut h = tar::Header::new_gnu();
            h.set_size(jpeg.len() as u64);
            h.set_mode(0o644);
            builder
                .append_data(
                    &mut h,
                    "clip_frame_250_second_10_face2.jpg",
                    black_box(&jpeg[..]),
                )
                .unwrap();
        })
    });
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
