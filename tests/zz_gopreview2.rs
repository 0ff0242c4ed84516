// SCRATCH (review) — delete when done.
use facetv::decode::ffmpeg::FfmpegSource;
use facetv::decode::{DecodeOptions, FrameSource};
use std::path::Path;

fn decode(
    clip: &Path,
    every: f64,
    decode_all: bool,
) -> Result<(Vec<(u64, f64, Vec<u8>)>, u64, u64, u64), String> {
    let opts = DecodeOptions {
        decode_all,
        ..DecodeOptions::exact(every)
    };
    let mut source = FfmpegSource::open(clip, &opts, None).map_err(|e| format!("{e}"))?;
    let mut frames = Vec::new();
    while let Some(f) = source.next_sampled().map_err(|e| format!("{e}"))? {
        frames.push((f.index, f.timestamp, f.image.data));
    }
    let s = source.stats();
    Ok((
        frames,
        s.frames_not_decoded,
        s.frames_decoded,
        s.timestamp_discontinuities,
    ))
}

#[test]
fn gopreview() {
    let cases = std::env::var("GR_CASES").unwrap_or_default();
    for line in cases.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let path = it.next().unwrap();
        let every: f64 = it.next().unwrap().parse().unwrap();
        let clip = Path::new(path);
        let all = decode(clip, every, true);
        let fast = decode(clip, every, false);
        let (all, fast) = match (all, fast) {
            (Ok(a), Ok(f)) => (a, f),
            (a, f) => {
                println!("ERR {path} {every}: all={:?} fast={:?}", a.err(), f.err());
                continue;
            }
        };
        let mut msg = Vec::new();
        if all.0.len() != fast.0.len() {
            msg.push(format!("count all={} fast={}", all.0.len(), fast.0.len()));
        }
        let mut shown = 0;
        for (i, (a, f)) in all.0.iter().zip(&fast.0).enumerate() {
            if (a.0, a.1) != (f.0, f.1) || a.2 != f.2 {
                if shown < 4 {
                    let px = if a.2 == f.2 {
                        0
                    } else {
                        a.2.iter().zip(&f.2).filter(|(x, y)| x != y).count()
                    };
                    msg.push(format!(
                        "#{i}: all=({},{:.4}) fast=({},{:.4}) pixdiff={px}",
                        a.0, a.1, f.0, f.1
                    ));
                }
                shown += 1;
            }
        }
        if shown > 0 {
            msg.push(format!("{shown} differing samples"));
        }
        let share = fast.1 as f64 / (fast.1 + fast.2).max(1) as f64;
        println!("{} {path} every {every}: n={} skipped={} decoded={} (share {share:.2}) all_decoded={} disc all={} fast={} {}",
            if msg.is_empty() { "OK  " } else { "DIFF" }, all.0.len(), fast.1, fast.2, all.2, all.3, fast.3, msg.join("; "));
    }
}
