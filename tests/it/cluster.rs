//! Issue 9: the Slurm job-array script, several workers on one shared folder with kills, `status`
//! and `merge`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use crate::video_job::{binary, quiet_job, x264_clip};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/slurm/facetv-array.sh")
}

/// Runs the array script as Slurm would start task `task` of an array `first..first+count`.
fn array_task(
    bin: &str,
    task: u32,
    first: u32,
    count: u32,
    gpus: Option<&str>,
    input: &Path,
    out: &Path,
) -> std::process::Output {
    let mut c = Command::new("bash");
    c.arg(script())
        .env("FACETV_BIN", bin)
        .env("FACETV_INPUT", input)
        .env("FACETV_OUTPUT", out)
        .env("FACETV_ARGS", "--quiet")
        .env("SLURM_ARRAY_TASK_ID", task.to_string())
        .env("SLURM_ARRAY_TASK_MIN", first.to_string())
        .env("SLURM_ARRAY_TASK_COUNT", count.to_string())
        .env("SLURM_CPUS_PER_TASK", "2")
        .env_remove("CUDA_VISIBLE_DEVICES");
    if let Some(g) = gpus {
        c.env("CUDA_VISIBLE_DEVICES", g);
    }
    c.output().unwrap()
}

fn clips(dir: &Path, names: &[&str]) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let src = media("videos/faces_hamilton_whitehouse.mp4");
    for (i, n) in names.iter().enumerate() {
        let start = (2 * (i % 4)) as f64;
        x264_clip(&src, start, 2.0, &input.join(n), &[]);
    }
    input
}

#[test]
fn the_array_script_maps_slurm_variables_to_shards_devices_and_threads() {
    let dir = tempfile::tempdir().unwrap();
    let echo = dir.path().join("fake-facetv");
    std::fs::write(&echo, "#!/bin/sh\necho \"$@\"\n").unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&echo)
        .status()
        .unwrap();
    let (i, o) = (Path::new("/archive"), Path::new("/scratch/out"));
    let args = |out: std::process::Output| String::from_utf8(out.stdout).unwrap();
    let a = args(array_task(echo.to_str().unwrap(), 4, 1, 16, None, i, o));
    assert!(
        a.contains("--shard 3/16")
            && a.contains("--device cpu")
            && a.contains("--threads 2")
            && a.contains("--quiet"),
        "{a}"
    );
    assert!(
        a.contains("--input /archive") && a.contains("--output /scratch/out"),
        "{a}"
    );
    let a = args(array_task(echo.to_str().unwrap(), 0, 0, 8, Some("0"), i, o));
    assert!(
        a.contains("--shard 0/8") && a.contains("--device auto"),
        "{a}"
    );
    // Without the folders it refuses to start, saying what is missing.
    let out = Command::new("bash")
        .arg(script())
        .env_remove("FACETV_INPUT")
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("FACETV_INPUT"));

    // A real three-task array over one folder: every input done once.
    let input = clips(dir.path(), &["a.mp4", "b.mp4", "c.mp4"]);
    let out = dir.path().join("out");
    for task in 1..=3 {
        let r = array_task(binary(), task, 1, 3, None, &input, &out);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    for n in ["a", "b", "c"] {
        assert!(out.join(format!("{n}_summary.json")).is_file(), "{n}");
    }
}

fn status_json(out: &Path, input: &Path) -> serde_json::Value {
    let o = Command::new(binary())
        .args(["status", "--json", "--input"])
        .arg(input)
        .arg("--")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn workers_killed_midway_leave_every_video_done_exactly_once_and_status_tells() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4", "v4.mp4", "v5.mp4"];
    let input = clips(dir.path(), &names);
    let out = dir.path().join("out");
    let worker = || {
        Command::new(binary())
            .args([
                "--every",
                "0.25",
                "--batch-frames",
                "2",
                "--checkpoint-every",
                "0",
                "--threads",
                "1",
                "--input",
            ])
            .arg(&input)
            .arg("--output")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut workers: Vec<_> = (0..3).map(|_| worker()).collect();
    std::thread::sleep(Duration::from_millis(2500));
    let mut victim = workers.remove(0);
    victim.kill().unwrap(); // SIGKILL: its lock and partial files stay behind
    victim.wait().unwrap();
    let mut logs: Vec<String> = workers
        .into_iter()
        .map(|w| String::from_utf8_lossy(&w.wait_with_output().unwrap().stderr).into_owned())
        .collect();

    let st = status_json(&out, &input);
    let active = st["running"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["stale"] == false)
        .count();
    assert_eq!(active, 0, "nobody is running now: {st}");
    assert_eq!(st["failed"].as_array().unwrap().len(), 0);
    assert_eq!(
        st["done"].as_u64().unwrap() + st["left"].as_u64().unwrap(),
        names.len() as u64,
        "{st}"
    );

    // A last worker picks up whatever the killed one held (its lock names a dead process).
    logs.push(String::from_utf8_lossy(&worker().wait_with_output().unwrap().stderr).into_owned());
    for n in names {
        let done_lines: usize = logs
            .iter()
            .map(|l| {
                l.lines()
                    .filter(|x| x.contains(&format!("{n}: ")) && x.contains("faces →"))
                    .count()
            })
            .sum();
        assert_eq!(done_lines, 1, "{n} completed {done_lines} times");
    }
    let st = status_json(&out, &input);
    assert_eq!(
        (st["done"].as_u64(), st["left"].as_u64()),
        (Some(names.len() as u64), Some(0)),
        "{st}"
    );
    assert!(st["faces"].as_u64().unwrap() > 0 && st["faces_per_wall_hour"].as_f64().unwrap() > 0.0);
}

#[test]
fn merge_writes_one_tidy_table_with_station_and_start_time() {
    let dir = tempfile::tempdir().unwrap();
    let input = clips(dir.path(), &["rtl-201701190940.ts.mp4", "unnamed.mp4"]);
    let out = dir.path().join("out");
    let st = quiet_job(&input, &out, &["--age-crop", "aligned,margin"])
        .status()
        .unwrap();
    assert!(st.success());
    let o = Command::new(binary())
        .arg("merge")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (h, rows) = read_tsv(&out.join("merged_faces.tsv"));
    let per_input: usize = ["rtl-201701190940.ts", "unnamed"]
        .iter()
        .map(|s| read_tsv(&out.join(format!("{s}_age_gender.tsv"))).1.len())
        .sum();
    assert_eq!(rows.len(), per_input, "one row per face and classifier");
    let ci = |n: &str| h.iter().position(|x| x == n).unwrap();
    let rtl: Vec<&Vec<String>> = rows.iter().filter(|r| r[ci("station")] == "rtl").collect();
    assert!(!rtl.is_empty());
    for r in &rtl {
        assert_eq!(r[ci("start")], "2017-01-19T09:40:00");
        let t: f64 = r[ci("timestamp")].parse().unwrap();
        let secs = t.floor() as u64;
        assert!(
            r[ci("time")].starts_with(&format!("2017-01-19T09:40:{secs:02}")),
            "{} at {t}",
            r[ci("time")]
        );
    }
    assert!(
        rows.iter()
            .any(|r| r[ci("station")].is_empty() && r[ci("start")].is_empty()),
        "names without the pattern have empty columns"
    );
    let script = "import sys, pandas as pd\nd = pd.read_parquet(sys.argv[1])\nassert len(d) == int(sys.argv[2]), len(d)\nassert str(d['start'].dtype).startswith('datetime64') and d['age'].dtype.kind == 'f' and d['frame'].dtype.kind == 'i', d.dtypes\nassert set(d['classifier']) == {'imdb', 'imdb-margin'}\n";
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(out.join("merged_faces.parquet"))
        .arg(rows.len().to_string())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pandas/pyarrow (installed by .ci/run) cannot read the Parquet file: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
