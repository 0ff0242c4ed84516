//! Issue 4: killed runs resume byte-identically, bad inputs never stop the batch, any file name
//! round-trips, several workers share one output folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use crate::video_job::{binary, ffmpeg, ffprobe_values, quiet_job, x264_clip};

const RESULT_FILES: [&str; 4] = [
    "_chips.tar",
    "_face_metadata.tsv",
    "_age_gender.tsv",
    "_sampled_frames.tsv",
];

/// Three 3-second clips cut from the Hamilton clip.
fn short_clips(dir: &Path, n: usize) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let src = media("videos/faces_hamilton_whitehouse.mp4");
    for i in 0..n {
        let out = input.join(format!("clip{i}.mp4"));
        let start = (3 * (i % 3)) as f64;
        x264_clip(&src, start, 3.0, &out, &[]);
    }
    input
}

fn job(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(binary());
    c.arg("--input")
        .arg(input)
        .arg("--output")
        .arg(out)
        .args([
            "--every",
            "0.25",
            "--batch-frames",
            "2",
            "--checkpoint-every",
            "0",
        ])
        .args(extra);
    c
}

/// Every result file (not the summaries, whose timings differ) by name.
fn results(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(out).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if RESULT_FILES.iter().any(|s| name.ends_with(s)) {
            m.insert(name, std::fs::read(&p).unwrap());
        }
    }
    m
}

#[test]
fn killed_runs_resume_to_byte_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let input = short_clips(dir.path(), 3);
    let reference = dir.path().join("reference");
    assert!(job(&input, &reference, &["-q"]).status().unwrap().success());
    let want = results(&reference);
    assert_eq!(want.len(), 3 * RESULT_FILES.len());

    let out = dir.path().join("out");
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut kills = 0;
    for _ in 0..40 {
        let mut child = job(&input, &out, &["-q"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait_ms = 150 + (seed >> 33) % 1200;
        std::thread::sleep(Duration::from_millis(wait_ms));
        if child.try_wait().unwrap().is_some() {
            break; // finished before this kill
        }
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
        kills += 1;
        if kills >= 12 {
            break;
        }
    }
    assert!(
        kills >= 10,
        "only {kills} kills landed before the job finished"
    );
    let st = job(&input, &out, &["-q"]).status().unwrap();
    assert!(st.success());
    let got = results(&out);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &want {
        assert!(
            got[name] == *bytes,
            "{name} differs from the uninterrupted run after {kills} kills"
        );
    }
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(".part")
                || n.ends_with(".lock")
                || n.ends_with(".checkpoint.json")
                || n.starts_with(".tmp")
        })
        .collect();
    assert!(leftovers.is_empty(), "left over: {leftovers:?}");
}

#[test]
fn finished_inputs_are_reused_only_while_input_and_options_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let input = short_clips(dir.path(), 1);
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let o = job(&input, &out, &["-v"]).args(extra).output().unwrap();
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    run(&[]);
    assert!(run(&[]).contains("already done"));
    assert!(
        run(&["--threshold", "0.9"]).contains("options changed"),
        "changed options re-process"
    );
    assert!(
        run(&["--threshold", "0.9", "--force"]).contains("faces →"),
        "--force re-processes"
    );
    // A changed input is processed again.
    let clip = input.join("clip0.mp4");
    let mut bytes = std::fs::read(&clip).unwrap();
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(&clip, bytes).unwrap();
    assert!(run(&["--threshold", "0.9"]).contains("faces →"));
}

#[test]
fn two_workers_on_one_folder_process_every_video_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = short_clips(dir.path(), 4);
    let out = dir.path().join("out");
    let spawn = || {
        job(&input, &out, &["-v"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let logs: Vec<String> = [a, b]
        .into_iter()
        .map(|c| String::from_utf8_lossy(&c.wait_with_output().unwrap().stderr).into_owned())
        .collect();
    for i in 0..4 {
        let name = format!("clip{i}.mp4: ");
        let processed = logs
            .iter()
            .map(|l| {
                l.lines()
                    .filter(|x| x.contains(&name) && x.contains("faces →"))
                    .count()
            })
            .sum::<usize>();
        assert_eq!(
            processed, 1,
            "clip{i} processed {processed} times:\n{}\n---\n{}",
            logs[0], logs[1]
        );
        assert!(out.join(format!("clip{i}_summary.json")).is_file());
    }
    // Shards split the same folder into disjoint parts that cover it.
    let out2 = dir.path().join("sharded");
    for k in 0..3 {
        assert!(job(&input, &out2, &["-q", "--shard", &format!("{k}/3")])
            .status()
            .unwrap()
            .success());
    }
    for i in 0..4 {
        assert!(out2.join(format!("clip{i}_summary.json")).is_file());
    }
}

#[test]
fn bad_inputs_are_classified_and_the_good_ones_processed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let p = |n: &str| input.join(n);
    let s = |p: PathBuf| p.to_str().unwrap().to_string();
    let src = s(media("videos/faces_hamilton_whitehouse.mp4"));
    std::fs::File::create(p("zero.mp4")).unwrap();
    std::fs::write(
        p("random.mp4"),
        (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::copy(media("images/insightface_t1.jpg"), p("photo.mp4")).unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=2",
        "-c:a",
        "aac",
        &s(p("audio.mp4")),
    ]);
    // MP4 cut in half, index at the end: the index is gone.
    let tmp = dir.path().join("whole.mp4");
    x264_clip(Path::new(&src), 0.0, 4.0, &tmp, &[]);
    let bytes = std::fs::read(&tmp).unwrap();
    std::fs::write(p("cut_moov_end.mp4"), &bytes[..bytes.len() / 2]).unwrap();
    // MP4 cut in half, index at the front: the frames that exist are processed, marked partial.
    let fast = dir.path().join("fast.mp4");
    x264_clip(
        Path::new(&src),
        0.0,
        4.0,
        &fast,
        &["-movflags", "+faststart"],
    );
    let bytes = std::fs::read(&fast).unwrap();
    std::fs::write(p("cut_faststart.mp4"), &bytes[..bytes.len() / 2]).unwrap();
    // Corrupt bytes in the middle of a stream.
    let mut bytes = std::fs::read(&fast).unwrap();
    let mid = bytes.len() / 2;
    for (i, b) in bytes[mid..mid + 4000].iter_mut().enumerate() {
        *b = (i * 131 % 251) as u8;
    }
    std::fs::write(p("corrupt_middle.mp4"), &bytes).unwrap();
    // MPEG-TS with a timestamp discontinuity: two segments, the second 1000 s later.
    let (a, b) = (dir.path().join("a.ts"), dir.path().join("b.ts"));
    ffmpeg(&[
        "-i",
        &src,
        "-t",
        "2",
        "-an",
        "-c:v",
        "mpeg2video",
        &s(a.clone()),
    ]);
    ffmpeg(&[
        "-i",
        &src,
        "-t",
        "2",
        "-an",
        "-c:v",
        "mpeg2video",
        "-output_ts_offset",
        "1000",
        &s(b.clone()),
    ]);
    let mut ts = std::fs::read(&a).unwrap();
    ts.extend(std::fs::read(&b).unwrap());
    std::fs::write(p("discontinuity.ts"), ts).unwrap();
    // Unusual pixel formats and sizes.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=2:size=320x240:rate=25",
        "-pix_fmt",
        "gray",
        "-c:v",
        "libx264",
        &s(p("grey.mp4")),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=black:duration=2:size=320x240:rate=25",
        "-c:v",
        "libx264",
        &s(p("black.mp4")),
    ]);
    ffmpeg(&[
        "-i",
        &src,
        "-t",
        "2",
        "-an",
        "-pix_fmt",
        "yuv422p10le",
        "-c:v",
        "libx264",
        &s(p("h264_422_10bit.mkv")),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=1:size=7680x4320:rate=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        &s(p("huge_8k.mp4")),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=2:size=64x48:rate=25",
        "-c:v",
        "libx264",
        &s(p("tiny.mp4")),
    ]);
    // Things named like videos that are not files, and a link loop.
    std::fs::create_dir(p("folder.mp4")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("missing.mp4"), p("dangling.mp4")).unwrap();
    std::os::unix::fs::symlink(&input, p("loop")).unwrap();
    std::fs::copy(media("videos/faces_chaplin_bw.mp4"), p("good.mp4")).unwrap();

    let out = dir.path().join("out");
    let st = quiet_job(&input, &out, &[]).status().unwrap();
    assert_eq!(st.code(), Some(1), "some inputs failed");
    let (header, rows) = read_tsv(&out.join("failures.tsv"));
    assert_eq!(header, ["path", "kind", "reason", "advice"]);
    let kinds: BTreeMap<String, String> = rows
        .iter()
        .map(|r| {
            (
                Path::new(&r[0])
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                r[1].clone(),
            )
        })
        .collect();
    let expected = [
        ("zero.mp4", "empty"),
        ("random.mp4", "not-a-video"),
        ("photo.mp4", "not-a-video"),
        ("audio.mp4", "no-video-stream"),
        ("cut_moov_end.mp4", "truncated"),
        ("dangling.mp4", "unreadable"),
    ];
    for (file, kind) in expected {
        assert_eq!(
            kinds.get(file).map(String::as_str),
            Some(kind),
            "{file}: {kinds:?}"
        );
    }
    assert_eq!(kinds.len(), expected.len(), "nothing else fails: {kinds:?}");
    let summary = |stem: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join(format!("{stem}_summary.json"))).unwrap())
            .unwrap()
    };
    assert_eq!(summary("cut_faststart")["status"], "partial");
    assert!(
        summary("cut_faststart")["decode"]["frames_decoded"]
            .as_u64()
            .unwrap()
            > 10
    );
    for stem in [
        "good",
        "corrupt_middle",
        "grey",
        "black",
        "h264_422_10bit",
        "huge_8k",
        "tiny",
        "discontinuity",
    ] {
        assert!(
            summary(stem)["decode"]["frames_decoded"].as_u64().unwrap() > 0,
            "{stem}"
        );
    }
    assert_eq!(summary("huge_8k")["video"]["width"], 7680);
    // The TS discontinuity: every frame once, timestamps increasing.
    let d = summary("discontinuity");
    let count = |f: &Path| ffprobe_values(f, &["-count_frames"], "stream=nb_read_frames")[0] as u64;
    // Decoded or passed over (GOPs without a sample point), every frame is counted once.
    assert_eq!(
        d["decode"]["frames_decoded"].as_u64().unwrap()
            + d["decode"]["frames_not_decoded"].as_u64().unwrap(),
        count(&a) + count(&b),
        "every frame once"
    );
    let (_, srows) = read_tsv(&out.join("discontinuity_sampled_frames.tsv"));
    let times: Vec<f64> = srows.iter().map(|r| r[1].parse().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[1] > w[0]) && *times.last().unwrap() < 10.0,
        "{times:?}"
    );
    assert!(summary("good")["faces"].as_u64().unwrap() > 0);
}

#[test]
fn any_file_name_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let src = media("videos/faces_hamilton_whitehouse.mp4");
    let clip = dir.path().join("c.mp4");
    x264_clip(&src, 0.0, 1.5, &clip, &[]);
    use std::os::unix::ffi::OsStrExt;
    let names: Vec<std::ffi::OsString> = vec![
        "with space 'quote\" and tab\there.mp4".into(),
        "new\nline.mp4".into(),
        std::ffi::OsStr::from_bytes(b"latin1-\xe9t\xe9.mp4").to_os_string(),
        format!("{}.mp4", "long".repeat(60)).into(),
        "back\\slash.mp4".into(),
    ];
    for n in &names {
        std::fs::copy(&clip, input.join(n)).unwrap();
    }
    let out = dir.path().join("out");
    let st = quiet_job(&input, &out, &[]).status().unwrap();
    assert_eq!(st.code(), Some(0));
    let summaries: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_summary.json"))
        .collect();
    assert_eq!(summaries.len(), names.len());
    for s in &summaries {
        let stem = s
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches("_summary.json")
            .to_string();
        assert!(s.starts_with(&out), "results stay in the output folder");
        let (header, rows) = read_tsv(&out.join(format!("{stem}_face_metadata.tsv")));
        assert!(
            rows.iter().all(|r| r.len() == header.len()),
            "{stem}: every row keeps its columns"
        );
        let tar = out.join(format!("{stem}_chips.tar"));
        let listed = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
        assert!(listed.status.success());
        assert_eq!(
            String::from_utf8_lossy(&listed.stdout).lines().count(),
            rows.len(),
            "{stem}"
        );
    }
}

/// A small or read-only file system as the output (tmpfs mounts; the tests run as root, as CI does).
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_or_read_only_output_is_a_clear_error_with_no_half_written_results() {
    let dir = tempfile::tempdir().unwrap();
    let clip = media("videos/faces_hamilton_whitehouse.mp4");
    let full = Mount::tmpfs(&dir.path().join("full"), "size=100k");
    let out = full.0.join("out");
    let o = quiet_job(&clip, &out, &[]).output().unwrap();
    // 1: the input failed and failures.tsv says so; 2: the disk is so full that not even
    // failures.tsv could be written. Either way the message says what happened and what to do.
    assert!(
        matches!(o.status.code(), Some(1) | Some(2)),
        "{:?}",
        o.status
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("No space left on device") && err.contains("free space"),
        "{err}"
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let finals: Vec<&String> = names
        .iter()
        .filter(|n| {
            n.as_str() != "failures.tsv"
                && !n.ends_with(".part")
                && !n.ends_with(".checkpoint.json")
        })
        .collect();
    assert!(
        finals.is_empty(),
        "no final result files, only what a rerun resumes from: {names:?}"
    );

    let ro = Mount::tmpfs(&dir.path().join("ro"), "ro,size=1m");
    let o = quiet_job(&clip, ro.0.join("out"), &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Read-only file system") && err.contains("/ro/out"),
        "{err}"
    );
}

#[test]
fn ctrl_c_stops_within_seconds_and_the_next_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let input = short_clips(dir.path(), 4);
    let out = dir.path().join("out");
    let mut child = job(&input, &out, &["-q"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let sent = std::time::Instant::now();
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "did not stop within 10 s of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status.code(),
        Some(130),
        "stopped by the signal (the job takes longer than 2.5 s)"
    );
    assert!(
        std::fs::read_dir(&out).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".lock")),
        "locks released"
    );
    assert!(job(&input, &out, &["-q"]).status().unwrap().success());
    assert_eq!(results(&out).len(), 4 * RESULT_FILES.len());
}

#[test]
fn the_same_relative_path_under_two_input_roots_never_collides() {
    let dir = tempfile::tempdir().unwrap();
    for root in ["A", "B"] {
        std::fs::create_dir_all(dir.path().join(root)).unwrap();
        std::fs::copy(
            media("videos/faces_chaplin_bw.mp4"),
            dir.path().join(root).join("news.mp4"),
        )
        .unwrap();
    }
    let out = dir.path().join("out");
    let run = || {
        Command::new(binary())
            .arg("--input")
            .arg(dir.path().join("A"))
            .arg(dir.path().join("B"))
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success());
    let summaries = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("_summary.json")
        })
        .count();
    assert_eq!(summaries, 2, "one set of results per input");
    let again = String::from_utf8_lossy(&run().stderr).into_owned();
    assert_eq!(
        again.matches("already done, skipped").count(),
        2,
        "both are reused on a rerun: {again}"
    );
}
