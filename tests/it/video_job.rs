//! Issue 3: the main job on the real clips of ../shared/media/videos.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::*;

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_facetv-gpu")
}

/// `facetv-gpu -q EXTRA… --input INPUT --output OUT`, ready to run.
pub fn quiet_job(input: impl AsRef<Path>, out: impl AsRef<Path>, extra: &[&str]) -> Command {
    let mut c = Command::new(binary());
    c.arg("-q")
        .args(extra)
        .arg("--input")
        .arg(input.as_ref())
        .arg("--output")
        .arg(out.as_ref());
    c
}

struct Run {
    _dir: tempfile::TempDir,
    out: PathBuf,
    status: i32,
}

/// One run over every shared clip with default settings, shared by the tests below.
fn shared_run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let st = quiet_job(media("videos"), &out, &[]).status().unwrap();
        Run {
            _dir: dir,
            out,
            status: st.code().unwrap_or(-1),
        }
    })
}

fn clips() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(media("videos"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".md"))
        .collect();
    v.sort();
    v
}

/// The result stem of a clip (the whole file name where two clips share a stem).
fn stem(clip: &str) -> String {
    let s = Path::new(clip)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let shared = clips()
        .iter()
        .filter(|c| Path::new(c).file_stem().unwrap().to_string_lossy() == s)
        .count();
    if shared > 1 {
        clip.to_string()
    } else {
        s
    }
}

fn result(clip: &str, suffix: &str) -> PathBuf {
    shared_run().out.join(format!("{}{suffix}", stem(clip)))
}

fn summary(clip: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(result(clip, "_summary.json")).unwrap()).unwrap()
}

/// (frame, timestamp, faces) for every sampled frame.
fn samples(clip: &str) -> Vec<(u64, f64, usize)> {
    let (_, rows) = read_tsv(&result(clip, "_sampled_frames.tsv"));
    rows.iter()
        .map(|r| {
            (
                r[0].parse().unwrap(),
                r[1].parse().unwrap(),
                r[2].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_clip_is_processed_completely() {
    let run = shared_run();
    assert_eq!(run.status, 0, "exit status");
    for clip in clips() {
        let s = summary(&clip);
        assert_eq!(s["status"], "complete", "{clip}");
        assert!(
            s["decode"]["frames_sampled"].as_u64().unwrap() > 0,
            "{clip}"
        );
        for suffix in [
            "_chips.tar",
            "_face_metadata.tsv",
            "_age_gender.tsv",
            "_sampled_frames.tsv",
        ] {
            assert!(result(&clip, suffix).is_file(), "{clip}{suffix}");
        }
    }
    assert!(!run.out.join("failures.tsv").exists());
}

#[test]
fn face_clips_give_faces_and_plausible_ages() {
    for clip in clips().iter().filter(|c| c.starts_with("faces_")) {
        let s = samples(clip);
        let with_faces = s.iter().filter(|x| x.2 > 0).count();
        // The silent-film clip has one or two small grey faces that the default threshold (0.8)
        // keeps on fewer frames; the colour clips show faces on most frames.
        let share = if clip.contains("chaplin") { 3 } else { 6 };
        assert!(
            with_faces * 10 >= s.len() * share,
            "{clip}: faces on {with_faces} of {} samples",
            s.len()
        );
        let (header, rows) = read_tsv(&result(clip, "_age_gender.tsv"));
        assert!(!rows.is_empty());
        let ages: Vec<f64> = rows.iter().map(|r| col(&header, r, "age")).collect();
        assert!(
            ages.iter().all(|a| (1.0..=100.0).contains(a)),
            "{clip}: {ages:?}"
        );
        let mean = ages.iter().sum::<f64>() / ages.len() as f64;
        assert!((15.0..=70.0).contains(&mean), "{clip}: mean age {mean}");
        for r in &rows {
            let g = col(&header, r, "gender");
            assert!((0.0..=1.0).contains(&g));
            assert_eq!(r[header.iter().position(|h| h == "race").unwrap()], "");
        }
    }
}

#[test]
fn no_face_clips_give_no_rows() {
    for clip in clips().iter().filter(|c| c.starts_with("noface_")) {
        assert_eq!(
            read_tsv(&result(clip, "_face_metadata.tsv")).1.len(),
            0,
            "{clip}"
        );
        assert_eq!(
            read_tsv(&result(clip, "_age_gender.tsv")).1.len(),
            0,
            "{clip}"
        );
        assert!(samples(clip).iter().all(|s| s.2 == 0));
        let tar = std::fs::read(result(clip, "_chips.tar")).unwrap();
        assert!(
            tar.iter().all(|b| *b == 0),
            "{clip}: empty archive expected"
        );
    }
}

#[test]
fn rotated_clip_gives_the_faces_of_the_upright_original() {
    let rot = summary("faces_hamilton_rot90.mp4");
    assert_eq!(rot["video"]["rotation"], 270);
    assert_eq!(
        (
            rot["video"]["width"].as_u64(),
            rot["video"]["height"].as_u64()
        ),
        (Some(640), Some(360))
    );
    // Same content, sampled at the same seconds: face counts agree on most samples.
    let a = samples("faces_hamilton_rot90.mp4");
    let b = samples("faces_hamilton_hevc.mp4");
    assert_eq!(a.len(), b.len());
    let same = a.iter().zip(&b).filter(|(x, y)| x.2 == y.2).count();
    assert!(
        same * 10 >= a.len() * 7,
        "counts agree on {same} of {}: {a:?} vs {b:?}",
        a.len()
    );
    let (h1, r1) = read_tsv(&result("faces_hamilton_rot90.mp4", "_face_metadata.tsv"));
    let (h2, r2) = read_tsv(&result("faces_hamilton_hevc.mp4", "_face_metadata.tsv"));
    // the first face of the first frame is in the same place
    for c in ["left", "top", "right", "bottom"] {
        assert!(
            (col(&h1, &r1[0], c) - col(&h2, &r2[0], c)).abs() < 8.0,
            "{c}"
        );
    }
}

#[test]
fn every_container_and_codec_is_decoded() {
    let expect = [
        ("faces_hamilton_mpeg2.ts", "mpeg2video"),
        ("faces_hamilton_hevc.mp4", "hevc"),
        ("faces_hamilton_hevc.mkv", "hevc"),
        ("faces_hamilton_vp9.webm", "vp9"),
        ("noface_big_buck_bunny_0_30_vp8.webm", "vp8"),
        ("street_MOT17-13_raw.h265", "hevc"),
    ];
    for (clip, codec) in expect {
        assert_eq!(summary(clip)["video"]["codec"], codec, "{clip}");
    }
    // The raw HEVC stream has no timestamps: nominal 25 fps, 750 frames, a sample every 25th.
    let raw = summary("street_MOT17-13_raw.h265");
    assert_eq!(raw["video"]["timestamps"], "nominal_rate");
    assert_eq!(raw["decode"]["frames_decoded"], 750);
    let s = samples("street_MOT17-13_raw.h265");
    assert_eq!(s.len(), 30);
    for (k, (frame, t, _)) in s.iter().enumerate() {
        assert_eq!(*frame, 25 * k as u64);
        assert!((t - k as f64).abs() < 1e-6);
    }
    // The WebM without a container duration still decodes to its end.
    let nd = summary("noface_black_vp9_noduration.webm");
    assert_eq!(nd["decode"]["frames_decoded"], 74);
}

/// The sampling rule checked against ffprobe: sample k is the first frame (presentation order)
/// whose timestamp, counted from the container start, is ≥ k seconds.
fn expected_samples_from_ffprobe(clip: &str) -> Vec<(u64, f64)> {
    let path = media(&format!("videos/{clip}"));
    let start = ffprobe_values(&path, &[], "format=start_time")[0];
    let mut times: Vec<f64> = ffprobe_values(&path, &[], "frame=best_effort_timestamp_time")
        .into_iter()
        .map(|t| t - start)
        .collect();
    times.sort_by(|a, b| a.total_cmp(b)); // presentation order
    let mut k = 0.0;
    let mut picked = Vec::new();
    for (i, t) in times.iter().enumerate() {
        if *t + 1e-9 >= k {
            picked.push((i as u64, *t));
            k = (t + 1e-9).floor() + 1.0;
        }
    }
    picked
}

#[test]
fn sampled_frames_match_ffprobe_on_vfr_and_offset_clips() {
    // noface_rot180_fire2.mp4 has a variable frame rate; faces_hamilton_whitehouse.mp4's video
    // starts 0.85 s into the container; faces_hamilton_mpeg2.ts has MPEG-TS timestamps from 1.4 s.
    for clip in [
        "noface_rot180_fire2.mp4",
        "faces_hamilton_whitehouse.mp4",
        "faces_hamilton_mpeg2.ts",
    ] {
        let want = expected_samples_from_ffprobe(clip);
        let got = samples(clip);
        assert_eq!(got.len(), want.len(), "{clip}: {got:?} vs {want:?}");
        for ((f, t, _), (wf, wt)) in got.iter().zip(&want) {
            assert_eq!(f, wf, "{clip}");
            assert!((t - wt).abs() < 1e-4, "{clip}: {t} vs {wt}");
        }
    }
}

#[test]
fn tar_and_tables_agree_and_load_in_standard_tools() {
    let clip = "faces_people_walking_1080p.mp4";
    let tar = result(clip, "_chips.tar");
    let out = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    assert!(out.status.success(), "GNU tar cannot read the archive");
    let mut in_tar: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let (header, rows) = read_tsv(&result(clip, "_face_metadata.tsv"));
    let mut in_tsv: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    in_tar.sort();
    in_tsv.sort();
    assert_eq!(
        in_tar, in_tsv,
        "every chip named in the TSV is in the tar and vice versa"
    );
    for r in &rows {
        // true box columns (the seed mixed them up)
        assert!(
            (col(&header, r, "width") - (col(&header, r, "right") - col(&header, r, "left"))).abs()
                < 2e-3
        );
        assert!(
            (col(&header, r, "height") - (col(&header, r, "bottom") - col(&header, r, "top")))
                .abs()
                < 2e-3
        );
        assert!(col(&header, r, "right") <= col(&header, r, "img_width"));
    }
    let (ah, ar) = read_tsv(&result(clip, "_age_gender.tsv"));
    assert_eq!(ah, ["filename", "classifier", "age", "gender", "race"]);
    let classifiers = summary(clip)["classifiers"].as_array().unwrap().len();
    assert_eq!(ar.len(), rows.len() * classifiers);
    let script = r#"
import sys, tarfile, io
import pandas as pd
from PIL import Image
tar, meta, ag = sys.argv[1:4]
with tarfile.open(tar) as t:
    for m in t.getmembers():
        assert m.isfile() and not m.name.startswith('/') and '..' not in m.name
        im = Image.open(io.BytesIO(t.extractfile(m).read()))
        assert im.size == (224, 224) and im.format == 'JPEG', (m.name, im.size, im.format)
df = pd.read_csv(meta, sep='\t')
assert df['width'].dtype.kind == 'f' and df['frame'].dtype.kind == 'i' and df['timestamp'].dtype.kind == 'f', df.dtypes
assert pd.api.types.is_string_dtype(df['image_basename'])
a = pd.read_csv(ag, sep='\t')
assert a['age'].dtype.kind == 'f' and a['gender'].dtype.kind == 'f' and a['race'].isna().all(), a.dtypes
print(len(df), len(a))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&tar)
        .arg(result(clip, "_face_metadata.tsv"))
        .arg(result(clip, "_age_gender.tsv"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python check failed (pandas and Pillow are installed by .ci/run): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn photos_of_a_folder_give_one_set_of_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let st = quiet_job(media("images"), &out, &[]).status().unwrap();
    assert_eq!(st.code(), Some(0));
    let stem = "photos";
    let (_, rows) = read_tsv(&out.join(format!("{stem}_sampled_frames.tsv")));
    assert_eq!(rows.len(), 9, "one row per photo");
    let (_, meta) = read_tsv(&out.join(format!("{stem}_face_metadata.tsv")));
    assert!(meta
        .iter()
        .any(|r| r[0].starts_with("insightface_t1.jpg_frame_")));
    assert!(!meta.iter().any(|r| r[0].starts_with("noface_dlib_horses")));
}

#[test]
fn usage_errors_exit_2_and_bad_files_exit_1_with_the_rest_done() {
    let st = Command::new(binary())
        .args(["-q", "--input", "/nonexistent-dir"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2), "missing --output is a usage error");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(
        input.join("notes.mp4"),
        "this is a text file, not a video\n",
    )
    .unwrap();
    std::fs::write(input.join("readme.txt"), "ignored\n").unwrap();
    std::fs::copy(
        media("videos/faces_chaplin_bw.mp4"),
        input.join("chaplin.mp4"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let st = quiet_job(&input, &out, &[]).status().unwrap();
    assert_eq!(st.code(), Some(1));
    assert!(
        out.join("chaplin_summary.json").is_file(),
        "the good file is processed"
    );
    let failures = std::fs::read_to_string(out.join("failures.tsv")).unwrap();
    assert!(
        failures.contains("notes.mp4") && !failures.contains("readme.txt"),
        "{failures}"
    );
    // A second run skips what is done and reports the bad file again.
    let st = quiet_job(&input, &out, &[]).status().unwrap();
    assert_eq!(st.code(), Some(1));
}

/// The numbers ffprobe prints for `entries` (e.g. `frame=pts_time`) of the first video stream of
/// `file`, one per line, with `extra` options (e.g. `-skip_frame nokey`) before them.
pub fn ffprobe_values(file: &Path, extra: &[&str], entries: &str) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(extra)
        .args(["-show_entries", entries, "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe is installed by scripts/setup.sh");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// Runs `ffmpeg` with `args` (inputs and outputs included), failing the test if it fails.
pub fn ffmpeg(args: &[&str]) {
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg is installed by scripts/setup.sh");
    assert!(st.success(), "ffmpeg {args:?}");
}

/// Cuts `duration` seconds from `start` of `src` into `out` as fast H.264 without audio;
/// `extra` output options go before the file name.
pub fn x264_clip(src: &Path, start: f64, duration: f64, out: &Path, extra: &[&str]) {
    let (start, duration) = (start.to_string(), duration.to_string());
    let mut args = vec![
        "-ss",
        &start,
        "-t",
        &duration,
        "-i",
        src.to_str().unwrap(),
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
    ];
    args.extend_from_slice(extra);
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
}

fn run_one(input: &Path, out: &Path) -> serde_json::Value {
    let st = quiet_job(input, out, &[]).status().unwrap();
    assert_eq!(st.code(), Some(0));
    let stem = input.file_stem().unwrap().to_string_lossy();
    serde_json::from_slice(&std::fs::read(out.join(format!("{stem}_summary.json"))).unwrap())
        .unwrap()
}

#[test]
fn non_square_pixels_are_shown_at_display_aspect_and_interlaced_video_is_deinterlaced() {
    let dir = tempfile::tempdir().unwrap();
    let src = media("videos/faces_hamilton_whitehouse.mp4");
    let src = src.to_str().unwrap();
    // Anamorphic: pixels stored at half width with a 2:1 sample aspect ratio.
    let sar = dir.path().join("anamorphic.mp4");
    ffmpeg(&[
        "-i",
        src,
        "-t",
        "3",
        "-an",
        "-vf",
        "scale=320:360,setsar=2/1",
        "-c:v",
        "libx264",
        sar.to_str().unwrap(),
    ]);
    let s = run_one(&sar, &dir.path().join("out"));
    assert_eq!(s["video"]["sample_aspect_ratio"], serde_json::json!([2, 1]));
    assert_eq!(
        (s["video"]["width"].as_u64(), s["video"]["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert!(
        s["faces"].as_u64().unwrap() > 0,
        "faces are found on the unsquashed frames"
    );
    // Interlaced broadcast-style MPEG-2 in MPEG-TS.
    let tv = dir.path().join("interlaced.ts");
    ffmpeg(&[
        "-i",
        src,
        "-t",
        "3",
        "-an",
        "-vf",
        "scale=720:576,setfield=tff",
        "-flags",
        "+ilme+ildct",
        "-c:v",
        "mpeg2video",
        "-b:v",
        "6M",
        tv.to_str().unwrap(),
    ]);
    let s = run_one(&tv, &dir.path().join("out"));
    assert_eq!(s["video"]["interlaced"], true);
    assert!(s["decode"]["deinterlaced_frames"].as_u64().unwrap() > 0);
}
