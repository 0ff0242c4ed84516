//! Issue 11: both crop conventions in one pass, pinned to the library's margin crop; `evaluate`
//! against labels whose expected metrics are worked out by hand.

use std::process::Command;

use facetv::align::margin::{margin_crop, MARGIN};
use facetv::classify::{AgeGenderModel, OnnxAgeGender};
use facetv::detect::Detector;

use crate::common::*;
use crate::video_job::{binary, quiet_job};

#[test]
fn both_crop_conventions_run_in_one_pass_and_are_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(media("images/insightface_t1.jpg"), input.join("t1.jpg")).unwrap();
    let out = dir.path().join("out");
    let st = quiet_job(
        &input,
        &out,
        &["--classifiers", "imdb", "--age-crop", "aligned,margin"],
    )
    .status()
    .unwrap();
    assert_eq!(st.code(), Some(0));
    let (h, rows) = read_tsv(&out.join("photos_age_gender.tsv"));
    assert_eq!(rows.len(), 12, "6 faces × 2 conventions");
    let labels: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(&labels[..2], ["imdb", "imdb-margin"]);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("photos_summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["options"]["age_crops"],
        serde_json::json!(["aligned", "margin"])
    );
    assert_eq!(
        summary["classifiers"],
        serde_json::json!(["imdb", "imdb-margin"])
    );

    // The margin estimates are the model on the library's margin crop of each detected box.
    let frame = load("images/insightface_t1.jpg");
    let faces = detector("retinaface_mnet025", 0.8)
        .detect_images(&[&frame])
        .unwrap()
        .remove(0);
    let spec = manifest().get("imdb").unwrap();
    let mut model =
        OnnxAgeGender::open(spec, &store().verified_path(spec).unwrap(), session()).unwrap();
    let crops: Vec<_> = faces
        .iter()
        .map(|f| margin_crop(&frame, f.bbox, MARGIN))
        .collect();
    let direct = model.classify(&crops.iter().collect::<Vec<_>>()).unwrap();
    let margin_rows: Vec<&Vec<String>> = rows.iter().filter(|r| r[1] == "imdb-margin").collect();
    for (r, d) in margin_rows.iter().zip(&direct) {
        assert!((col(&h, r, "age") - d.age as f64).abs() < 1e-3);
        assert!((col(&h, r, "gender") - d.female as f64).abs() < 1e-5);
    }
    // The two conventions differ (the scientific point of having both).
    let aligned: Vec<f64> = rows
        .iter()
        .filter(|r| r[1] == "imdb")
        .map(|r| col(&h, r, "age"))
        .collect();
    let margin: Vec<f64> = margin_rows.iter().map(|r| col(&h, r, "age")).collect();
    assert!(aligned
        .iter()
        .zip(&margin)
        .any(|(a, m)| (a - m).abs() > 1.0));

    // evaluate: labels naming faces three ways, metrics checked by hand.
    let (mh, meta) = read_tsv(&out.join("photos_face_metadata.tsv"));
    let age_of = |chip: &str, c: &str| {
        rows.iter()
            .find(|r| r[0] == chip && r[1] == c)
            .map(|r| col(&h, r, "age"))
            .unwrap()
    };
    let female_of = |chip: &str| {
        rows.iter()
            .find(|r| r[0] == chip && r[1] == "imdb")
            .map(|r| col(&h, r, "gender"))
            .unwrap()
    };
    let (c0, c1, c2) = (&meta[0][0], &meta[1][0], &meta[2][0]);
    let b2 = ["left", "top", "right", "bottom"].map(|c| col(&mh, &meta[2], c));
    let labels = format!(
        "filename\timage\tface\tx1\ty1\tx2\ty2\tage\tgender\tgroup\n{c0}\t\t\t\t\t\t\t30\tfemale\tg1\n\tt1.jpg\t1\t\t\t\t\t20-29\tmale\tg2\n\tt1.jpg\t\t{}\t{}\t{}\t{}\t50\t\tg1\n\tt1.jpg\t\t0\t0\t5\t5\t40\tmale\tg1\n",
        b2[0] + 1.0,
        b2[1],
        b2[2] + 1.0,
        b2[3]
    );
    let lpath = dir.path().join("labels.tsv");
    std::fs::write(&lpath, labels).unwrap();
    let o = Command::new(binary())
        .args(["evaluate", "--json", "--labels"])
        .arg(&lpath)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["unmatched_labels"], 1, "the 5-pixel box matches no face");
    let m = e["labelled"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["classifier"] == "imdb")
        .unwrap();
    assert_eq!(m["faces_matched"], 3);
    let band_err = |age: f64| {
        if age < 20.0 {
            age - 20.0
        } else if age > 29.0 {
            age - 29.0
        } else {
            0.0
        }
    };
    let errs = [
        age_of(c0, "imdb") - 30.0,
        band_err(age_of(c1, "imdb")),
        age_of(c2, "imdb") - 50.0,
    ];
    let mae = errs.iter().map(|e| e.abs()).sum::<f64>() / 3.0;
    assert!((m["age_mae"].as_f64().unwrap() - mae).abs() < 1e-3, "{m}");
    let correct = [(female_of(c0) >= 0.5), (female_of(c1) < 0.5)]
        .iter()
        .filter(|x| **x)
        .count() as f64;
    assert!((m["gender_accuracy"].as_f64().unwrap() - correct / 2.0).abs() < 1e-9);
    assert_eq!(m["female_share_coded"]["share"], 0.5);
    let agreement = &e["agreement"][0];
    assert_eq!(
        (agreement["a"].as_str(), agreement["b"].as_str()),
        (Some("imdb"), Some("imdb-margin"))
    );
    assert_eq!(agreement["faces"], 6);
}
