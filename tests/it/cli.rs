//! The command line: ONNX Runtime library errors, help text, models listing.

use std::process::Command;

use crate::video_job::binary;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(binary()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn a_missing_or_wrong_onnx_runtime_library_is_a_clear_error() {
    let img = crate::common::media("images/insightface_t1.jpg");
    let img = img.to_str().unwrap();
    let (code, text) = run(&["image", "--ort-lib", "/nonexistent/libonnxruntime.so", img]);
    assert_eq!(code, 2);
    assert!(text.contains("/nonexistent/libonnxruntime.so"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, "not a library").unwrap();
    let (code, text) = run(&["image", "--ort-lib", fake.to_str().unwrap(), img]);
    assert_eq!(code, 2);
    assert!(
        text.contains("not a shared library") && text.contains("libonnxruntime.so"),
        "{text}"
    );
}

#[test]
fn help_explains_defaults_with_an_example() {
    let (code, text) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("Examples:") && text.contains("[default: 1]") && text.contains("--output"),
        "{text}"
    );
    let (_, v) = run(&["--version"]);
    assert!(v.starts_with("facetv-gpu "));
}

#[test]
fn models_list_shows_every_model_and_the_cache() {
    let (code, text) = run(&["models", "list"]);
    assert_eq!(code, 0);
    for m in [
        "retinaface_mnet025",
        "scrfd_500m",
        "scrfd_2.5g",
        "retinaface_r50",
        "imdb",
        "utk",
    ] {
        assert!(text.contains(m), "{m} missing from: {text}");
    }
    let (code, _) = run(&["models", "verify", "retinaface_mnet025", "imdb"]);
    assert_eq!(code, 0);
}

#[test]
fn usage_errors_name_the_problem_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let images = crate::common::media("images");
    let images = images.to_str().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    for (args, expect) in [
        (
            vec!["--input", "/nonexistent/recordings", "--output", out],
            "no such file or folder",
        ),
        (
            vec!["--input", images, "--output", file.to_str().unwrap()],
            "is a file, not a folder",
        ),
        (
            vec!["--input", images, "--output", out, "--every", "-1"],
            "positive number of seconds",
        ),
        (
            vec!["--input", images, "--output", out, "--threshold", "2"],
            "between 0 and 1",
        ),
        (
            vec!["--input", images, "--output", out, "--jobs", "0"],
            "--jobs",
        ),
        (
            vec!["--input", images, "--output", out, "--detector", "imdb"],
            "detectors: retinaface_mnet025",
        ),
    ] {
        let (code, text) = run(&args);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(text.contains(expect), "{args:?}: {text}");
        assert_eq!(
            text.matches("os error").count().min(1),
            text.matches("os error").count(),
            "an OS error is told once: {text}"
        );
    }
}

#[test]
fn device_choice_without_a_gpu_is_explicit() {
    // No NVIDIA driver on CI: asking for a GPU is an error that names what is missing; `auto`
    // runs on the CPU and records it; a malformed list is a usage error.
    let clip = crate::common::media("videos/faces_chaplin_bw.mp4");
    let clip = clip.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (code, text) = run(&[
        "-q",
        "--input",
        clip,
        "--output",
        &out("gpu"),
        "--device",
        "0",
    ]);
    if code == 2 && text.contains("libcuda.so.1") {
        assert!(text.contains("--device cpu"), "{text}");
    } else {
        // A machine with a driver: without the GPU build of ONNX Runtime the sessions refuse.
        assert!(code == 0 || text.contains("cannot run on GPU 0"), "{text}");
    }
    let (code, text) = run(&[
        "-q",
        "--input",
        clip,
        "--output",
        &out("auto"),
        "--device",
        "auto",
    ]);
    assert_eq!(code, 0, "{text}");
    let summary =
        std::fs::read_to_string(dir.path().join("auto/faces_chaplin_bw_summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    let device = v["options"]["device"].as_str().unwrap_or_default();
    assert!(
        device == "cpu" || device.starts_with("tensorrt") || device.starts_with("cuda"),
        "{summary}"
    );
    for bad in ["x", "0,0", "1,a"] {
        let (code, text) = run(&["--input", clip, "--output", &out("bad"), "--device", bad]);
        assert_eq!(code, 2, "{bad}: {text}");
    }
}

#[test]
fn compare_runs_matches_faces_and_flags_changed_ages() {
    // The tool docs/GPU.md uses to compare the GPU path with the CPU path, on two CPU runs.
    let clip = crate::common::media("videos/faces_hamilton_whitehouse.mp4");
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name);
    for (name, batch) in [("a", "8"), ("b", "3")] {
        let (code, text) = run(&[
            "-q",
            "--device",
            "cpu",
            "--input",
            clip.to_str().unwrap(),
            "--output",
            out(name).to_str().unwrap(),
            "--batch-frames",
            batch,
        ]);
        assert_eq!(code, 0, "{text}");
    }
    let compare = |b: &std::path::Path, age: &str| {
        let o = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/compare_runs.py"
            ))
            .args([
                out("a").to_str().unwrap(),
                b.to_str().unwrap(),
                "--age",
                age,
            ])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (code, text) = compare(&out("b"), "0.05");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("unmatched (IoU < 0.95): 0 of the first, 0 of the second"),
        "{text}"
    );
    // Every age one year older in a copy: over the limit.
    let c = out("c");
    std::fs::create_dir(&c).unwrap();
    for entry in std::fs::read_dir(out("b")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with("_age_gender.tsv") {
            let text = std::fs::read_to_string(&p).unwrap();
            let shifted: Vec<String> = text
                .lines()
                .enumerate()
                .map(|(i, line)| {
                    let mut f: Vec<String> = line.split('\t').map(String::from).collect();
                    if i > 0 {
                        f[2] = format!("{}", f[2].parse::<f64>().unwrap() + 1.0);
                    }
                    f.join("\t")
                })
                .collect();
            std::fs::write(c.join(&name), shifted.join("\n") + "\n").unwrap();
        } else if name.ends_with(".tsv") {
            std::fs::copy(&p, c.join(&name)).unwrap();
        }
    }
    let (code, text) = compare(&c, "0.5");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("DIFFER") && text.contains("max 1.0000"),
        "{text}"
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU and the GPU build of ONNX Runtime (scripts/setup.sh --gpu); docs/GPU.md"]
fn gpu_and_cpu_paths_find_the_same_faces_and_ages() {
    // Its CPU twin is `compare_runs_matches_faces_and_flags_changed_ages`: the same comparison
    // between two CPU runs.
    let videos = crate::common::media("videos");
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    for (name, device, precision) in [
        ("cpu", "cpu", "fp32"),
        ("gpu32", "0", "fp32"),
        ("gpu16", "0", "fp16"),
    ] {
        let (code, text) = run(&[
            "-q",
            "--input",
            videos.to_str().unwrap(),
            "--output",
            &out(name),
            "--device",
            device,
            "--precision",
            precision,
        ]);
        assert_eq!(code, 0, "{name}: {text}");
    }
    for (name, age) in [("gpu32", "0.05"), ("gpu16", "0.5")] {
        let o = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/compare_runs.py"
            ))
            .args([&out("cpu"), &out(name), "--iou", "0.95", "--age", age])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{name}: {text}");
    }
}

#[test]
fn bench_measures_decoding_with_several_sessions_at_once() {
    // On the CPU here (NVDEC sessions with --device N on a GPU node): every session decodes the
    // whole clip, so the frame count scales with the sessions.
    let clip = crate::common::media("videos/faces_hamilton_whitehouse.mp4");
    let (code, text) = run(&[
        "-q",
        "bench",
        "--input",
        clip.to_str().unwrap(),
        "--decode-sessions",
        "1,3",
        "--json",
    ]);
    assert_eq!(code, 0, "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let runs = report["decode_sessions"].as_array().unwrap();
    let frames: Vec<u64> = runs
        .iter()
        .map(|r| r["frames_decoded"].as_u64().unwrap())
        .collect();
    assert!(frames[0] > 100 && frames[1] == 3 * frames[0], "{frames:?}");
    assert!(runs
        .iter()
        .all(|r| r["decoder"] == "cpu" && r["frames_per_second"].as_f64().unwrap() > 0.0));
    assert!(report["decoder_agreement"].is_null());
}
