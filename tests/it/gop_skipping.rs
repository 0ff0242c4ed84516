//! Exact sampling passes over GOPs that hold no sample point (`decode::gop_skip`): on every
//! shared clip and on encodings made here (closed and open GOPs, B-pyramids, MPEG-2, HEVC with
//! leading pictures, intra-only MJPEG, interlaced H.264, VP9 with hidden frames) it must give the
//! very frames, indices and timestamps of decoding everything.

use std::path::Path;

use facetv::decode::ffmpeg::FfmpegSource;
use facetv::decode::{DecodeOptions, DecodeStats, FrameSource, Sampling};

use crate::common::media;
use crate::video_job::ffmpeg;

/// (index, timestamp, pixels) of every sampled frame; the decoder's counters.
fn decode(
    clip: &Path,
    sampling: Sampling,
    every: f64,
    decode_all: bool,
) -> (Vec<(u64, f64, Vec<u8>)>, DecodeStats) {
    let opts = DecodeOptions {
        decode_all,
        sampling,
        ..DecodeOptions::exact(every)
    };
    let mut source = FfmpegSource::open(clip, &opts, None).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = source.next_sampled().unwrap() {
        frames.push((f.index, f.timestamp, f.image.into_host().unwrap().data));
    }
    (frames, source.stats().clone())
}

/// Decodes `clip` both ways at `every` with exact sampling; returns the share of frames not
/// decoded.
fn same_frames(clip: &Path, every: f64) -> f64 {
    same_samples(clip, Sampling::Exact, every)
}

/// Decodes `clip` with and without passing anything over; returns the share of the frames
/// decoded without it that passing over left undecoded.
fn same_samples(clip: &Path, sampling: Sampling, every: f64) -> f64 {
    let (all, all_stats) = decode(clip, sampling, every, true);
    if sampling == Sampling::Exact {
        assert_eq!(all_stats.frames_not_decoded, 0);
    }
    let (fast, stats) = decode(clip, sampling, every, false);
    let (skipped, decoded) = (stats.frames_not_decoded, stats.frames_decoded);
    let name = clip.file_name().unwrap().to_string_lossy();
    // Every frame is counted once, decoded or not, and the file ends at the same time.
    assert_eq!(
        decoded + skipped,
        all_stats.frames_decoded + all_stats.frames_not_decoded,
        "{name} every {every}"
    );
    assert_eq!(
        stats.last_timestamp, all_stats.last_timestamp,
        "{name} every {every}"
    );
    assert_eq!(stats.frames_sampled, all_stats.frames_sampled);
    assert_eq!(fast.len(), all.len(), "{name} every {every}: sample count");
    for (f, a) in fast.iter().zip(&all) {
        assert_eq!((f.0, f.1), (a.0, a.1), "{name} every {every}: index/time");
        assert!(f.2 == a.2, "{name} every {every}: pixels of frame {}", f.0);
    }
    // Of the frames decoded when nothing is passed over.
    let left_out = all_stats.frames_decoded - decoded;
    left_out as f64 / all_stats.frames_decoded.max(1) as f64
}

#[test]
fn skipping_gops_gives_the_frames_of_decoding_everything() {
    let dir = tempfile::tempdir().unwrap();
    let src = media("videos/faces_hamilton_whitehouse.mp4");
    let src = src.to_str().unwrap();
    let gop12 = ["-g", "12", "-keyint_min", "12", "-sc_threshold", "0"];
    // (file, encoder arguments, whether GOPs must be skipped at one sample per second)
    let made: &[(&str, &[&str], bool)] = &[
        // closed GOPs of 12 with a B-pyramid (x264's default structure)
        (
            "closed.mp4",
            &["-c:v", "libx264", "-preset", "veryfast", "-bf", "3"],
            true,
        ),
        // open GOPs in MPEG-TS: leading B-frames refer to the GOP before, nothing is skipped
        (
            "open.ts",
            &[
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-bf",
                "2",
                "-x264-params",
                "open-gop=1",
            ],
            false,
        ),
        // broadcast MPEG-2: open GOPs whose leading B-pictures go with the GOP skipped
        (
            "mpeg2.ts",
            &["-c:v", "mpeg2video", "-bf", "2", "-q:v", "4"],
            true,
        ),
        // HEVC: x265's default open GOPs (CRA with leading pictures)
        (
            "hevc.mp4",
            &["-c:v", "libx265", "-x265-params", "log-level=0:bframes=3"],
            false,
        ),
        // intra-only: every frame is a key frame
        ("mjpeg.mkv", &["-c:v", "mjpeg", "-q:v", "5"], true),
        // interlaced H.264 (MBAFF): one packet per frame
        (
            "mbaff.mp4",
            &[
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-flags",
                "+ildct+ilme",
                "-x264-params",
                "tff=1",
            ],
            false,
        ),
        // VP9 with hidden alternate reference frames
        (
            "vp9.webm",
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "300k",
            ],
            false,
        ),
    ];
    for (name, args, must_skip) in made {
        let out = dir.path().join(name);
        let out_s = out.to_str().unwrap();
        let mut all = vec!["-t", "6", "-i", src, "-an", "-r", "25"];
        all.extend_from_slice(&gop12);
        all.extend_from_slice(args);
        all.push(out_s);
        ffmpeg(&all);
        let share = same_frames(&out, 1.0);
        same_frames(&out, 0.7);
        if *must_skip {
            assert!(
                share > 0.3,
                "{name}: only {share:.2} of the frames passed over"
            );
        }
    }
    for clip in std::fs::read_dir(media("videos")).unwrap() {
        same_frames(&clip.unwrap().path(), 1.0);
    }
}

/// Streams reviews broke earlier versions with: H.264 key frames that are recovery points, not
/// IDR pictures (x264 open GOPs, intra refresh), after which FFmpeg drops frames when drained
/// soon after a flush; a clock jump of 100 s inside a GOP in MPEG-TS (the timeline undoes it as
/// a splice); periods over a minute in MPEG-TS. Many sampling periods, since which GOPs lose
/// packets depends on the period.
#[test]
fn recovery_points_and_clock_jumps_give_the_frames_of_decoding_everything() {
    let dir = tempfile::tempdir().unwrap();
    let src = media("videos/faces_hamilton_whitehouse.mp4");
    let src = src.to_str().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let x264 = |name: &str, extra: &[&str]| {
        let out = path(name);
        let mut args = vec!["-t", "8", "-i", src, "-an", "-r", "25", "-c:v", "libx264"];
        args.extend_from_slice(&["-preset", "veryfast"]);
        args.extend_from_slice(extra);
        args.push(&out);
        ffmpeg(&args);
    };
    let gop12 = ["-g", "12", "-keyint_min", "12", "-sc_threshold", "0"];
    x264(
        "open.mp4",
        &[&gop12[..], &["-bf", "2", "-x264-params", "open-gop=1"]].concat(),
    );
    x264(
        "refresh.mp4",
        &["-bf", "0", "-x264-params", "keyint=12:intra-refresh=1"],
    );
    x264(
        "p0.ts",
        &[&gop12[..], &["-bf", "0", "-f", "mpegts"]].concat(),
    );
    let (p0, jump) = (path("p0.ts"), path("jump.ts"));
    let shift = r"setts=ts=if(gte(N\,101)\,TS+100*90000\,TS)";
    ffmpeg(&["-i", &p0, "-c", "copy", "-bsf:v", shift, &jump]);
    for name in ["open.mp4", "refresh.mp4", "jump.ts"] {
        for every in [0.2, 0.32, 0.52, 0.56, 0.84, 1.0, 1.28, 7.0] {
            same_frames(&dir.path().join(name), every);
        }
    }
    // Sampling periods over a minute in MPEG-TS: the frames left out must still reach the
    // timeline, whose splice detection compares neighbouring frames.
    let long = path("long.ts");
    ffmpeg(&[
        "-stream_loop",
        "30",
        "-i",
        src,
        "-an",
        "-t",
        "200",
        "-r",
        "25",
        "-vf",
        "scale=160:90",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "24",
        "-f",
        "mpegts",
        &long,
    ]);
    for every in [61.0, 100.0] {
        assert!(same_frames(Path::new(&long), every) > 0.9);
    }
}

/// `--sampling keyframe` decodes only the key frames a sample point takes (`decode::key_skip`):
/// the same frames, indices and timestamps as decoding every key frame, on key frames every
/// 0.48 s (closed and open GOPs, MPEG-2, HEVC, intra-only MJPEG), a 100-s clock jump in MPEG-TS,
/// key timestamps out of order or repeated, and every shared clip.
#[test]
fn keyframe_sampling_decodes_only_the_key_frames_sampled() {
    let dir = tempfile::tempdir().unwrap();
    let src = media("videos/faces_hamilton_whitehouse.mp4");
    let src = src.to_str().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let x264 = ["-c:v", "libx264", "-preset", "veryfast"];
    // (file, encoder arguments, whether key frames are passed over at a sample a second: not
    // where key frames are H.264 recovery points rather than IDR pictures)
    let made: &[(&str, Vec<&str>, bool)] = &[
        ("closed.mp4", [&x264[..], &["-bf", "3"]].concat(), true),
        (
            "open.ts",
            [&x264[..], &["-x264-params", "open-gop=1"]].concat(),
            false,
        ),
        (
            "mpeg2.ts",
            vec!["-c:v", "mpeg2video", "-bf", "2", "-q:v", "4"],
            true,
        ),
        (
            "hevc.mp4",
            vec!["-c:v", "libx265", "-x265-params", "log-level=0"],
            true,
        ),
        ("mjpeg.mkv", vec!["-c:v", "mjpeg", "-q:v", "5"], true),
    ];
    // Looped to 36 s, long enough that the check before passing over (8 key frames, after the
    // decoder's reordering delay) leaves most of the clip.
    let encode = |name: &str, extra: &[&str]| {
        let out = path(name);
        let mut all = vec![
            "-stream_loop",
            "3",
            "-t",
            "36",
            "-i",
            src,
            "-an",
            "-r",
            "25",
        ];
        all.extend_from_slice(&["-vf", "scale=320:180"]);
        all.extend_from_slice(extra);
        all.push(&out);
        ffmpeg(&all);
    };
    // `source` with its packets' timestamps rewritten by the `setts` expression, remuxed.
    let rewrite = |source: &str, setts: &str, name: &str, format: &str| {
        let bsf = format!("setts={setts}");
        ffmpeg(&[
            "-i",
            &path(source),
            "-c",
            "copy",
            "-bsf:v",
            &bsf,
            "-f",
            format,
            &path(name),
        ]);
    };
    let gop12 = ["-g", "12", "-keyint_min", "12", "-sc_threshold", "0"];
    for (name, args, _) in made {
        encode(name, &[&gop12[..], args].concat());
    }
    rewrite(
        "closed.mp4",
        r"ts=if(gte(N\,101)\,TS+100*90000\,TS)",
        "jump.ts",
        "mpegts",
    );
    // Key frames whose timestamps are out of order or repeated (a review found these: FFmpeg's
    // frame timestamps then switch to guesses from the packets sent): one key frame 1.2 s late,
    // in MP4 and MPEG-TS, and a key timestamp repeated with key frames every 2 frames.
    let late = r"pts=if(eq(N\,240)\,PTS+30*512\,PTS)";
    rewrite("closed.mp4", late, "late.mp4", "mp4");
    rewrite("closed.mp4", late, "late.ts", "mpegts");
    encode("g2.mp4", &[&x264[..], &["-g", "2", "-bf", "3"]].concat());
    rewrite(
        "g2.mp4",
        r"pts=if(eq(N\,241)\,PTS+2*512\,PTS)",
        "repeat.mp4",
        "mp4",
    );
    let cases = made
        .iter()
        .map(|(name, _, passes)| (*name, *passes))
        .chain([
            ("jump.ts", false),
            ("late.mp4", false),
            ("late.ts", false),
            ("repeat.mp4", false),
        ]);
    for (name, passes) in cases {
        for every in [0.3, 1.0, 2.5] {
            let share = same_samples(&dir.path().join(name), Sampling::Keyframe, every);
            if every > 0.48 && passes {
                assert!(share > 0.25, "{name} every {every}: {share:.2} left out");
            }
        }
    }
    for clip in std::fs::read_dir(media("videos")).unwrap() {
        same_samples(&clip.unwrap().path(), Sampling::Keyframe, 1.0);
    }
}
