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
