//! One video through the stage graph. Each stage runs on its own thread and hands whole batches
//! of sampled frames to the next through a bounded channel, so decoding the next batch, detecting
//! on this one and classifying the previous one overlap, and a slow stage holds the others back
//! instead of letting frames pile up in memory:
//!
//! ```text
//! decode ──batch──▶ find (detect → align) ──batch+faces──▶ classify ──results──▶ write (this thread)
//! ```
//!
//! Batches keep the same size and boundaries as an unpipelined run (`batch_frames` sampled frames
//! counted from the start of the video), and every channel is first-in first-out with one
//! producer and one consumer, so results reach the writer in order and are byte-identical to
//! those of a serial run, resumed or not. Only the writer touches the output files; it writes the
//! checkpoints, after whole batches.

use std::path::Path;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use serde_json::json;

use super::summary::{common_summary, input_record};
use super::JobConfig;
use crate::analyze::{AnalyzedFace, Analyzer};
use crate::decode::ffmpeg::FfmpegSource;
use crate::decode::{FrameSource, SampledFrame};
use crate::error::{Error, FailureKind, Result};
use crate::progress::Progress;
use crate::resume::identity::Fingerprint;
use crate::resume::journal::{self, Checkpoint};
use crate::resume::lock::Lock;
use crate::sink::{annotate, OutputPaths, ResultWriter};

/// Batches waiting between two stages. Two keep the next stage busy while one is being made; more
/// would only hold frames in memory.
const QUEUE_BATCHES: usize = 2;

type Batch = Vec<SampledFrame>;

/// Runs `work` on every message of `input` and passes the result on, until the input ends, the
/// next stage hangs up, or an error (which is passed on too, then the stage stops).
fn stage<I, O>(
    input: Receiver<Result<I>>,
    output: Sender<Result<O>>,
    mut work: impl FnMut(I) -> Result<O>,
) {
    for message in input {
        let result = message.and_then(&mut work);
        let failed = result.is_err();
        if output.send(result).is_err() || failed {
            break;
        }
    }
}

/// The decode stage: sampled frames in batches of `size`, the last one possibly shorter. Stops at
/// the end of the stream, on an error, on Ctrl-C, or when the next stage hangs up.
fn decode_batches(source: &mut FfmpegSource, size: usize, output: Sender<Result<Batch>>) -> f64 {
    let mut busy = 0.0;
    loop {
        let t = Instant::now();
        let mut batch = Vec::with_capacity(size);
        let mut ended = false;
        while batch.len() < size {
            if crate::resume::stop_requested() {
                let _ = output.send(Err(Error::Interrupted));
                return busy + t.elapsed().as_secs_f64();
            }
            match source.next_sampled() {
                Ok(Some(frame)) => batch.push(frame),
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(e) => {
                    // An unfinished batch is dropped: a resumed run redoes it.
                    let _ = output.send(Err(e));
                    return busy + t.elapsed().as_secs_f64();
                }
            }
        }
        busy += t.elapsed().as_secs_f64();
        if !batch.is_empty() && output.send(Ok(batch)).is_err() {
            return busy;
        }
        if ended {
            return busy;
        }
    }
}

/// Processes one video into `out` (the job's per-video work; `bench` times it too). Resumes from
/// the video's checkpoint when one matches `print`. `lock`, when given, is re-checked at every
/// checkpoint and before the results are renamed into place.
pub fn process_video(
    analyzer: &mut Analyzer,
    path: &Path,
    out: &OutputPaths,
    cfg: &JobConfig,
    print: &Fingerprint,
    progress: &Progress,
    lock: Option<&Lock>,
) -> Result<u64> {
    let started = Instant::now();
    let timings_before = analyzer.timings();
    let mut source = FfmpegSource::open(path, &cfg.decode, analyzer.nvdec())?;
    let shown = progress.start_input(&out.stem, source.info().duration);
    let journal_path = out.file(".checkpoint.json");
    let names = analyzer.classifier_names();
    let resumed = journal::read(&journal_path)
        .filter(|c| &c.fingerprint == print)
        .and_then(|c| {
            match ResultWriter::open(out.clone(), names.clone(), Some((c.lengths, c.faces))) {
                Ok(w) => Some((w, c.sampled_frames)),
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            }
        });
    let resumed_after = resumed.as_ref().map(|(_, n)| *n);
    let (mut writer, mut sampled) = match resumed {
        Some((w, n)) => {
            tracing::info!("{}: resuming after {n} sampled frames", path.display());
            source.skip_sampled(n);
            (w, n)
        }
        None => {
            // A checkpoint of another configuration must never be applied to these new files.
            let _ = std::fs::remove_file(&journal_path);
            (ResultWriter::open(out.clone(), names, None)?, 0)
        }
    };
    let save = |writer: &mut ResultWriter, sampled: u64| -> Result<()> {
        if let Some(l) = lock {
            l.check_owned()?;
        }
        let lengths = writer.sync()?;
        journal::write(
            &journal_path,
            &Checkpoint {
                fingerprint: print.clone(),
                sampled_frames: sampled,
                faces: writer.faces,
                lengths,
            },
        )
    };

    let mut write_s = 0.0;
    let Analyzer {
        finder, classifier, ..
    } = analyzer;
    let (decode_s, outcome) = std::thread::scope(|scope| {
        let (to_find, frames) = bounded(QUEUE_BATCHES);
        let (to_classify, found) = bounded(QUEUE_BATCHES);
        let (to_write, results) = bounded::<Result<(Batch, Vec<Vec<AnalyzedFace>>)>>(QUEUE_BATCHES);
        let source = &mut source;
        let decoder = scope.spawn(move || decode_batches(source, cfg.batch_frames.max(1), to_find));
        let find = scope.spawn(move || {
            stage(frames, to_classify, |batch: Batch| {
                let faces = finder.find_sampled(&batch)?;
                Ok((batch, faces))
            })
        });
        let classify = scope.spawn(move || {
            stage(found, to_write, |(batch, faces)| {
                Ok((batch, classifier.classify(faces)?))
            })
        });
        let mut last_checkpoint = Instant::now();
        let outcome = (|| -> Result<()> {
            for message in &results {
                if crate::resume::stop_requested() {
                    return Err(Error::Interrupted);
                }
                let (batch, faces) = message?;
                let t = Instant::now();
                for (frame, faces) in batch.iter().zip(&faces) {
                    writer.add_frame(
                        &out.stem,
                        frame.index,
                        frame.timestamp,
                        frame.image.size(),
                        faces,
                    )?;
                    if cfg.annotate_every.is_some_and(|n| sampled % n.max(1) == 0) {
                        write_annotated(out, frame, faces)?;
                    }
                    sampled += 1;
                }
                let last = batch.last().map_or(0.0, |f| f.timestamp);
                shown.update(last, sampled, writer.faces);
                if last_checkpoint.elapsed() >= cfg.checkpoint_every {
                    save(&mut writer, sampled)?;
                    last_checkpoint = Instant::now();
                }
                write_s += t.elapsed().as_secs_f64();
            }
            Ok(())
        })();
        // Hanging up makes every earlier stage stop at its next send.
        drop(results);
        // A stage that panicked hung up early, which looks like the end of the video: never
        // publish results after one.
        let finished = [find.join().is_ok(), classify.join().is_ok()];
        let decode_s = decoder.join();
        let outcome = match (outcome, decode_s.is_ok() && finished == [true, true]) {
            (Ok(()), false) => Err(Error::video(
                path,
                FailureKind::Other,
                "a pipeline stage stopped unexpectedly (a bug: please report it with this file)",
            )),
            (outcome, _) => outcome,
        };
        (decode_s.unwrap_or(0.0), outcome)
    });
    match outcome {
        Ok(()) => {}
        Err(Error::Interrupted) => {
            // Everything written so far is whole batches: keep it for the resumed run.
            save(&mut writer, sampled)?;
            return Err(Error::Interrupted);
        }
        Err(e) => return Err(e),
    }

    let stats = source.stats().clone();
    if stats.frames_decoded == 0 {
        return Err(Error::video(
            path,
            FailureKind::NoFrames,
            "no frame could be decoded",
        ));
    }
    if stats.partial {
        tracing::warn!(
            "{}: {}; results cover the frames up to {:.1} s",
            path.display(),
            stats.partial_reason.as_deref().unwrap_or("ended early"),
            stats.last_timestamp
        );
    }
    let t = analyzer.timings();
    let mut summary = common_summary(analyzer, cfg, writer.faces, print);
    summary["input"] = input_record(path);
    summary["status"] = json!(if stats.partial { "partial" } else { "complete" });
    summary["resumed_after_sampled_frames"] = json!(resumed_after);
    summary["video"] = serde_json::to_value(source.info()).unwrap_or_default();
    summary["decode"] = serde_json::to_value(&stats).unwrap_or_default();
    summary["timings_s"] = json!({
        "total": started.elapsed().as_secs_f64(),
        "decode": decode_s,
        "detect": t.detect_s - timings_before.detect_s,
        "align": t.align_s - timings_before.align_s,
        "classify": t.classify_s - timings_before.classify_s,
        "write": write_s,
    });
    if let Some(l) = lock {
        l.check_owned()?;
    }
    let faces = writer.faces;
    writer.finish(&summary)?;
    let _ = std::fs::remove_file(&journal_path);
    Ok(faces)
}

/// The frame with its faces drawn on, as `{stem}_frame_{index}_second_{s}.jpg` (the seed's name).
fn write_annotated(out: &OutputPaths, frame: &SampledFrame, faces: &[AnalyzedFace]) -> Result<()> {
    let name = format!(
        "{}_frame_{}_second_{}.jpg",
        out.stem,
        frame.index,
        frame.timestamp.max(0.0).floor() as u64
    );
    let image = frame.image.to_host()?;
    let jpeg = annotate::draw(&image, faces).encode_jpeg(crate::sink::JPEG_QUALITY)?;
    crate::models::store::write_atomic(&out.frames_dir().join(name), &jpeg)
}
