//! `facetv-gpu bench`: stage-by-stage throughput on one input, every figure measured in the same
//! run so ratios between them are meaningful on a noisy machine.
//!
//! Stages are timed alone on data prepared in memory: decode (as the job decodes: what no sample
//! needs passed over, sampled frames converted; also timed with nothing passed over, for the
//! ratio), detector (on the sampled frames), each classifier (on the chips of those frames,
//! batched). The end-to-end run then processes the same input through the real job into a
//! temporary folder. Efficiency compares the end-to-end time with the sum of the pure stage times
//! (1.0 = no overhead; above 1.0 = stages overlap) and with the slowest stage (the ceiling).

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::analyze::{chip_matrices, with_frames, Analyzer};
use crate::decode::ffmpeg::FfmpegSource;
use crate::decode::{DecodeOptions, DecodeStats, FrameImage, FrameSource, Nvdec, SampledFrame};
use crate::error::Result;
use crate::image::BgrImage;
use crate::pipeline::{process_video, JobConfig};
use crate::sink::OutputPaths;

#[derive(Debug, Serialize)]
pub struct StageResult {
    pub stage: String,
    pub items: u64,
    pub unit: String,
    pub seconds: f64,
    pub per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub input: String,
    pub device: String,
    pub frames_decoded: u64,
    /// Frames passed over without decoding (GOPs without a sample point; key frames only).
    pub frames_not_decoded: u64,
    pub frames_sampled: u64,
    /// The decode stage again with nothing passed over (`--decode-all`: every frame, or with
    /// keyframe sampling every key frame), and how many times longer that took.
    pub decode_every_frame: Option<StageResult>,
    pub decode_every_frame_ratio: Option<f64>,
    pub faces: u64,
    pub stages: Vec<StageResult>,
    pub end_to_end_seconds: f64,
    pub end_to_end_sampled_frames_per_second: f64,
    pub end_to_end_faces_per_second: f64,
    /// Σ pure stage times ÷ end-to-end time (1.0 = no overhead; > 1.0 = overlap).
    pub efficiency_vs_sum: f64,
    /// Slowest pure stage ÷ end-to-end time (1.0 = running at the bottleneck's speed).
    pub efficiency_vs_slowest: f64,
}

fn stage(stage: &str, items: u64, unit: &str, seconds: f64) -> StageResult {
    StageResult {
        stage: stage.into(),
        items,
        unit: unit.into(),
        seconds,
        per_second: items as f64 / seconds.max(1e-9),
    }
}

/// Decodes `input` as the job does; the time taken, the sampled frames (when `keep`; else each
/// is dropped once made), the counters.
fn timed_decode(
    input: &Path,
    opts: &DecodeOptions,
    nvdec: Option<Nvdec>,
    keep: bool,
) -> Result<(f64, Vec<SampledFrame>, DecodeStats)> {
    let t = Instant::now();
    let mut source = FfmpegSource::open(input, opts, nvdec)?;
    let mut frames = Vec::new();
    while let Some(f) = source.next_sampled()? {
        if keep {
            frames.push(f);
        }
    }
    Ok((t.elapsed().as_secs_f64(), frames, source.stats().clone()))
}

pub fn run(analyzer: &mut Analyzer, input: &Path, cfg: &JobConfig) -> Result<BenchReport> {
    // Decode alone, as the job does and (exact sampling) decoding every frame.
    let nvdec = analyzer.nvdec();
    let (decode_s, frames, stats) = timed_decode(input, &cfg.decode, nvdec.clone(), true)?;
    let every_frame = if !cfg.decode.decode_all {
        let all = DecodeOptions {
            decode_all: true,
            ..cfg.decode
        };
        let (seconds, _, all_stats) = timed_decode(input, &all, nvdec, false)?;
        Some(stage(
            "decode (all)",
            all_stats.frames_sampled,
            "sampled frames",
            seconds,
        ))
    } else {
        None
    };
    // Detector and alignment alone, in the job's batches, where the job has the frames (GPU
    // memory on a GPU pipeline).
    let plane = analyzer.finder.device_plane();
    let batch = cfg.batch_frames.max(1);
    let t = Instant::now();
    let mut faces = Vec::with_capacity(frames.len());
    for part in frames.chunks(batch) {
        let detector = &mut analyzer.finder.detector;
        faces.extend(with_frames(plane.as_deref(), part, |f| detector.detect(f))?);
    }
    let detect_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut chips: Vec<BgrImage> = Vec::new();
    for (part, found) in frames.chunks(batch).zip(faces.chunks(batch)) {
        let wanted = chip_matrices(found);
        chips.extend(with_frames(plane.as_deref(), part, |f| f.chips(&wanted))?);
    }
    let align_s = t.elapsed().as_secs_f64();
    let chip_refs: Vec<&BgrImage> = chips.iter().collect();

    let mut stages = vec![
        stage("decode", stats.frames_sampled, "sampled frames", decode_s),
        stage("detect", frames.len() as u64, "frames", detect_s),
        stage("align", chips.len() as u64, "faces", align_s),
    ];
    for c in &mut analyzer.classifier.models {
        let t = Instant::now();
        c.classify(&chip_refs)?;
        stages.push(stage(
            &format!("classify:{}", c.name()),
            chips.len() as u64,
            "faces",
            t.elapsed().as_secs_f64(),
        ));
    }
    drop(frames);

    // End to end through the real job.
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io(std::env::temp_dir(), e))?;
    let out = OutputPaths {
        dir: dir.path().to_path_buf(),
        stem: "bench".into(),
    };
    let t = Instant::now();
    let config = crate::resume::identity::config_hash(&cfg.options, &analyzer.model_hashes);
    let print = crate::resume::identity::fingerprint(&[input], &config)?;
    let faces_e2e = process_video(
        analyzer,
        input,
        &out,
        cfg,
        &print,
        &crate::progress::Progress::hidden(),
        None,
    )?;
    let e2e = t.elapsed().as_secs_f64();

    let sum: f64 = stages.iter().map(|s| s.seconds).sum();
    let slowest = stages.iter().map(|s| s.seconds).fold(0.0, f64::max);
    Ok(BenchReport {
        input: input.display().to_string(),
        device: cfg.options["device"].as_str().unwrap_or("cpu").to_string(),
        frames_decoded: stats.frames_decoded,
        frames_not_decoded: stats.frames_not_decoded,
        frames_sampled: stats.frames_sampled,
        decode_every_frame_ratio: every_frame.as_ref().map(|s| s.seconds / decode_s.max(1e-9)),
        decode_every_frame: every_frame,
        faces: faces_e2e,
        stages,
        end_to_end_seconds: e2e,
        end_to_end_sampled_frames_per_second: stats.frames_sampled as f64 / e2e,
        end_to_end_faces_per_second: faces_e2e as f64 / e2e,
        efficiency_vs_sum: sum / e2e,
        efficiency_vs_slowest: slowest / e2e,
    })
}

impl BenchReport {
    pub fn print(&self) {
        println!("input   {}", self.input);
        println!(
            "device  {}   frames decoded {} (passed over {}), sampled {}, faces {}",
            self.device,
            self.frames_decoded,
            self.frames_not_decoded,
            self.frames_sampled,
            self.faces
        );
        println!();
        println!(
            "{:<18} {:>8} {:<15} {:>9} {:>10}",
            "stage", "items", "unit", "seconds", "per second"
        );
        for s in &self.stages {
            println!(
                "{:<18} {:>8} {:<15} {:>9.3} {:>10.2}",
                s.stage, s.items, s.unit, s.seconds, s.per_second
            );
        }
        println!(
            "{:<18} {:>8} {:<15} {:>9.3} {:>10.2}",
            "end-to-end",
            self.frames_sampled,
            "sampled frames",
            self.end_to_end_seconds,
            self.end_to_end_sampled_frames_per_second
        );
        println!(
            "{:<18} {:>8} {:<15} {:>9.3} {:>10.2}",
            "end-to-end",
            self.faces,
            "faces",
            self.end_to_end_seconds,
            self.end_to_end_faces_per_second
        );
        if let (Some(s), Some(ratio)) = (&self.decode_every_frame, self.decode_every_frame_ratio) {
            println!(
                "{:<18} {:>8} {:<15} {:>9.3} {:>10.2}   ({ratio:.2}× the decode stage's time)",
                s.stage, s.items, s.unit, s.seconds, s.per_second
            );
        }
        println!();
        println!("efficiency: sum of pure stages / end-to-end = {:.2}; slowest stage / end-to-end = {:.2}", self.efficiency_vs_sum, self.efficiency_vs_slowest);
    }
}

/// Aggregate decoding throughput of `sessions` videos decoded at once (`bench
/// --decode-sessions`): on a GPU each session is an NVDEC session, and one session uses one of
/// the GPU's decoder engines.
#[derive(Debug, Serialize)]
pub struct DecodeSessions {
    pub sessions: usize,
    /// `nvdec`, `cpu`, or `mixed: …` when some sessions fell back to the CPU decoder.
    pub decoder: String,
    pub frames_decoded: u64,
    pub seconds: f64,
    pub frames_per_second: f64,
}

/// Decodes every frame of `input` in `sessions` threads at once, each its own decoder (NVDEC on
/// GPU `gpu` where it can), sampled frames copied to the host as without a GPU pipeline.
pub fn decode_sessions(
    input: &Path,
    every: f64,
    gpu: Option<usize>,
    sessions: usize,
) -> Result<DecodeSessions> {
    let opts = DecodeOptions {
        decode_all: true,
        ..DecodeOptions::exact(every)
    };
    let t = Instant::now();
    let results: Vec<Result<(String, u64)>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..sessions.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let nvdec = gpu.map(|device| Nvdec { device, keep: None });
                    let mut source = FfmpegSource::open(input, &opts, nvdec)?;
                    while source.next_sampled()?.is_some() {}
                    Ok((source.info().decoder.clone(), source.stats().frames_decoded))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join().unwrap_or_else(|_| {
                    Err(crate::Error::Invalid("a decoding session panicked".into()))
                })
            })
            .collect()
    });
    let seconds = t.elapsed().as_secs_f64();
    let mut decoders: Vec<String> = Vec::new();
    let mut frames = 0;
    for r in results {
        let (d, n) = r?;
        decoders.push(d);
        frames += n;
    }
    let on_cpu = decoders.iter().filter(|d| *d == "cpu").count();
    let decoder = match on_cpu {
        0 => "nvdec".to_string(),
        n if n == decoders.len() => "cpu".to_string(),
        n => format!("mixed: {} nvdec, {n} cpu", decoders.len() - n),
    };
    Ok(DecodeSessions {
        sessions: sessions.max(1),
        decoder,
        frames_decoded: frames,
        seconds,
        frames_per_second: frames as f64 / seconds.max(1e-9),
    })
}

/// How far the sampled frames of one decoding path are from the CPU decoder's, in BGR levels.
#[derive(Debug, Serialize)]
pub struct DecoderAgreement {
    /// `nvdec, host conversion` (copied to the host, swscale) or `nvdec, kept on the GPU` (our
    /// kernels' conversion, read back).
    pub path: String,
    pub frames: usize,
    /// Of those, frames that stayed in GPU memory (the kept path; 0 for the other).
    pub frames_on_gpu: usize,
    pub max_abs: u8,
    pub mean_abs: f64,
}

/// The sampled frames of `input` decoded with NVDEC on `device`, both ways, against the CPU
/// decoder's, frame by frame (the same index and time, or an error). An error too when NVDEC was
/// not used.
pub fn decoder_agreement(input: &Path, every: f64, device: usize) -> Result<Vec<DecoderAgreement>> {
    let opts = DecodeOptions::exact(every);
    let plane = std::sync::Arc::new(crate::gpu::frames::DevicePlane::open(device)?);
    let paths = [
        ("nvdec, host conversion", None),
        ("nvdec, kept on the GPU", Some(plane)),
    ];
    paths
        .into_iter()
        .map(|(path, keep)| {
            let mut cpu = FfmpegSource::open(input, &opts, None)?;
            let mut gpu = FfmpegSource::open(input, &opts, Some(Nvdec { device, keep }))?;
            let differ = |what: String| crate::Error::Invalid(format!("{path}: {what}"));
            let (mut frames, mut on_gpu, mut max_abs, mut sum, mut values) =
                (0, 0, 0u8, 0u64, 0u64);
            loop {
                let (a, b) = match (gpu.next_sampled()?, cpu.next_sampled()?) {
                    (None, None) => break,
                    (Some(a), Some(b)) => (a, b),
                    _ => {
                        return Err(differ(format!(
                            "sampled frames differ in number after {frames}"
                        )))
                    }
                };
                if (a.index, a.timestamp) != (b.index, b.timestamp) {
                    return Err(differ(format!(
                        "frame {} at {:.3} s where the CPU decoder samples frame {} at {:.3} s",
                        a.index, a.timestamp, b.index, b.timestamp
                    )));
                }
                on_gpu += usize::from(matches!(a.image, FrameImage::Device(_)));
                let (a, b) = (a.image.into_host()?, b.image.into_host()?);
                if (a.width, a.height) != (b.width, b.height) {
                    return Err(differ(format!(
                        "frame of {}×{} where the CPU decoder gives {}×{}",
                        a.width, a.height, b.width, b.height
                    )));
                }
                for (x, y) in a.data.iter().zip(&b.data) {
                    let d = x.abs_diff(*y);
                    max_abs = max_abs.max(d);
                    sum += u64::from(d);
                }
                values += a.data.len() as u64;
                frames += 1;
            }
            if gpu.info().decoder != "nvdec" {
                return Err(differ(format!(
                    "NVDEC was not used: {}",
                    gpu.info()
                        .decoder_fallback
                        .as_deref()
                        .unwrap_or("decoded on the CPU")
                )));
            }
            Ok(DecoderAgreement {
                path: path.into(),
                frames,
                frames_on_gpu: on_gpu,
                max_abs,
                mean_abs: sum as f64 / values.max(1) as f64,
            })
        })
        .collect()
}
