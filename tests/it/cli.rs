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
