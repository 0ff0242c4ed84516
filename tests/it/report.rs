//! Issue 10: progress on a terminal and in batch logs, and the HTML report checked in headless
//! Chromium (installed by .ci/run).

use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::video_job::{binary, quiet_job};

fn clips_with_a_bad_file(dir: &Path) -> std::path::PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for c in ["faces_hamilton_whitehouse.mp4", "faces_chaplin_bw.mp4"] {
        std::fs::copy(media(&format!("videos/{c}")), input.join(c)).unwrap();
    }
    std::fs::write(input.join("broken.mp4"), "not a video").unwrap();
    input
}

#[test]
fn progress_lines_in_batch_mode_bars_on_a_terminal_and_silence_with_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let input = clips_with_a_bad_file(dir.path());
    let o = Command::new(binary())
        .args(["--progress-interval", "0", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(dir.path().join("a"))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        log.contains("progress: ")
            && log.contains("inputs done")
            && log.contains("sampled frames/s"),
        "{log}"
    );
    assert!(!log.contains('\r'), "no bar redraws when not on a terminal");

    let cmd = format!(
        "{} --input '{}' --output '{}'",
        binary(),
        input.display(),
        dir.path().join("b").display()
    );
    let o = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .output()
        .expect("script (util-linux) runs the job in a pseudo-terminal");
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(
        screen.contains("inputs") && screen.contains("frames/s") && screen.contains('\r'),
        "{screen}"
    );

    let o = quiet_job(&input, dir.path().join("c"), &[])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        log.lines()
            .all(|l| l.contains("ERROR") || l.trim().is_empty()),
        "only errors with --quiet: {log}"
    );
    assert!(log.contains("broken.mp4"));
}

#[test]
fn the_report_is_self_contained_and_loads_in_chromium_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = clips_with_a_bad_file(dir.path());
    let out = dir.path().join("out");
    let st = quiet_job(&input, &out, &["--age-crop", "aligned,margin"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(1));
    let o = Command::new(binary())
        .arg("report")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for needle in [
        "Estimated age by estimated gender (imdb)",
        "imdb vs imdb-margin",
        "Face size",
        "Detection score",
        "Temporal stability",
        "Contact sheet",
        "broken.mp4",
        "not-a-video",
        "sha256",
        "faces_chaplin_bw",
    ] {
        assert!(html.contains(needle), "report lacks {needle}");
    }
    assert!(html.matches("<svg").count() >= 6, "plots are inline SVG");
    assert!(
        html.contains("data:image/jpeg;base64,"),
        "chips are embedded"
    );
    assert!(
        !html
            .replace("http://www.w3.org/2000/svg", "")
            .contains("http://")
            && !html.contains("https://")
            && !html.contains("<script"),
        "nothing is fetched or run at view time"
    );

    let profile = dir.path().join("chromium-profile");
    let shot = dir.path().join("report.png");
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", out.join("report.html").display()))
        .output()
        .expect("chromium is installed by .ci/run");
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        shot.is_file() && std::fs::metadata(&shot).unwrap().len() > 50_000,
        "screenshot taken: {log}"
    );
    let console: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Failed to load resource")
        })
        .collect();
    assert!(console.is_empty(), "console errors: {console:?}");
}
