//! `facetv-gpu evaluate`: how good and how stable the age/gender estimates are.
//!
//! With hand-coded labels: per classifier and crop convention, age MAE and bias by age band,
//! gender accuracy and confusion by group, and the female share with a 95 % Wilson interval next
//! to the hand-coded share. Without labels too: agreement between every pair of classifiers
//! (IMDB vs UTK, aligned vs margin) and temporal stability — the same face on consecutive
//! sampled frames (matched by box overlap) should keep its age and gender.

pub mod labels;
pub mod results;
pub mod stats;

use std::collections::BTreeMap;

use serde::Serialize;

use labels::{FaceRef, Label};
use results::{FaceRow, InputResults};
use stats::{iou, mean, sd, wilson};

/// Age bands for the bias table (lower bounds, years).
const BANDS: [(f64, &str); 5] = [
    (0.0, "0-17"),
    (18.0, "18-29"),
    (30.0, "30-44"),
    (45.0, "45-59"),
    (60.0, "60+"),
];

fn band_of(age: f64) -> &'static str {
    BANDS
        .iter()
        .rev()
        .find(|(lo, _)| age >= *lo)
        .map(|(_, n)| *n)
        .unwrap_or("0-17")
}

#[derive(Debug, Serialize)]
pub struct Share {
    pub female: usize,
    pub n: usize,
    pub share: f64,
    pub ci95: (f64, f64),
}

fn share(female: usize, n: usize) -> Share {
    let (p, lo, hi) = wilson(female, n);
    Share {
        female,
        n,
        share: p,
        ci95: (lo, hi),
    }
}

#[derive(Debug, Serialize)]
pub struct LabelledMetrics {
    pub classifier: String,
    pub faces_matched: usize,
    pub age_n: usize,
    /// Mean absolute error in years (distance to the band for band labels).
    pub age_mae: f64,
    /// Mean (estimate − truth) by true age band: (band, n, bias).
    pub age_bias_by_band: Vec<(String, usize, f64)>,
    pub gender_n: usize,
    pub gender_accuracy: f64,
    /// group → [[true F → pred F, true F → pred M], [true M → pred F, true M → pred M]]
    pub gender_confusion_by_group: BTreeMap<String, [[usize; 2]; 2]>,
    pub female_share_coded: Share,
    pub female_share_estimated: Share,
}

#[derive(Debug, Serialize)]
pub struct Agreement {
    pub a: String,
    pub b: String,
    pub faces: usize,
    /// mean and sd of age(a) − age(b)
    pub age_diff_mean: f64,
    pub age_diff_sd: f64,
    pub gender_agreement: f64,
    pub female_share_a: f64,
    pub female_share_b: f64,
}

#[derive(Debug, Serialize)]
pub struct Stability {
    pub classifier: String,
    /// Pairs of the same face on consecutive sampled frames.
    pub pairs: usize,
    pub age_step_mean_abs: f64,
    pub age_step_sd: f64,
    /// Share of pairs whose gender decision (female ≥ 0.5) flips.
    pub gender_flip_rate: f64,
}

#[derive(Debug, Serialize)]
pub struct Evaluation {
    pub inputs: usize,
    pub faces: usize,
    pub classifiers: Vec<String>,
    pub labelled: Vec<LabelledMetrics>,
    pub unmatched_labels: usize,
    pub agreement: Vec<Agreement>,
    pub stability: Vec<Stability>,
}

fn classifiers(inputs: &[InputResults]) -> Vec<String> {
    let mut set: Vec<String> = inputs
        .iter()
        .flat_map(|i| i.faces.iter().flat_map(|f| f.estimates.keys().cloned()))
        .collect();
    set.sort();
    set.dedup();
    set
}

/// The face a label points at.
fn find<'a>(inputs: &'a [InputResults], label: &Label) -> Option<&'a FaceRow> {
    let in_frame = |f: &FaceRow, image: &str, frame: Option<u64>| {
        f.name.starts_with(&format!("{image}_frame_")) && frame.is_none_or(|fr| f.frame == fr)
    };
    let all = inputs.iter().flat_map(|i| i.faces.iter());
    match &label.face {
        FaceRef::Chip(name) => all.into_iter().find(|f| &f.name == name),
        FaceRef::Index { image, frame, face } => all
            .into_iter()
            .find(|f| in_frame(f, image, *frame) && f.name.ends_with(&format!("_face{face}.jpg"))),
        FaceRef::Box { image, frame, bbox } => all
            .into_iter()
            .filter(|f| in_frame(f, image, *frame))
            .map(|f| (iou(&f.bbox, bbox), f))
            .filter(|(o, _)| *o >= 0.5)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, f)| f),
    }
}

fn labelled(
    inputs: &[InputResults],
    labels: &[Label],
    classifier: &str,
) -> (LabelledMetrics, usize) {
    let mut errors = Vec::new();
    let mut bias: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut confusion: BTreeMap<String, [[usize; 2]; 2]> = BTreeMap::new();
    let (mut correct, mut gender_n, mut coded_f, mut est_f, mut matched, mut unmatched) =
        (0, 0, 0, 0, 0, 0);
    for l in labels {
        let Some(face) = find(inputs, l) else {
            unmatched += 1;
            continue;
        };
        let Some(&(age, female)) = face.estimates.get(classifier) else {
            continue;
        };
        matched += 1;
        if let Some((lo, hi)) = l.age {
            let err = if age < lo {
                age - lo
            } else if age > hi {
                age - hi
            } else {
                0.0
            };
            errors.push(err.abs());
            let truth = if hi >= 120.0 { lo } else { (lo + hi) / 2.0 };
            bias.entry(band_of(truth)).or_default().push(err);
        }
        if let Some(truth) = l.female {
            let pred = female >= 0.5;
            gender_n += 1;
            correct += (pred == truth) as usize;
            coded_f += truth as usize;
            est_f += pred as usize;
            confusion.entry(l.group.clone()).or_insert([[0; 2]; 2])[(!truth) as usize]
                [(!pred) as usize] += 1;
        }
    }
    let metrics = LabelledMetrics {
        classifier: classifier.to_string(),
        faces_matched: matched,
        age_n: errors.len(),
        age_mae: mean(&errors),
        age_bias_by_band: BANDS
            .iter()
            .filter_map(|(_, b)| bias.get(b).map(|v| (b.to_string(), v.len(), mean(v))))
            .collect(),
        gender_n,
        gender_accuracy: if gender_n > 0 {
            correct as f64 / gender_n as f64
        } else {
            f64::NAN
        },
        gender_confusion_by_group: confusion,
        female_share_coded: share(coded_f, gender_n),
        female_share_estimated: share(est_f, gender_n),
    };
    (metrics, unmatched)
}

fn agreement(inputs: &[InputResults], a: &str, b: &str) -> Agreement {
    let (mut diffs, mut agree, mut fa, mut fb) = (Vec::new(), 0, 0, 0);
    for f in inputs.iter().flat_map(|i| &i.faces) {
        if let (Some(x), Some(y)) = (f.estimates.get(a), f.estimates.get(b)) {
            diffs.push(x.0 - y.0);
            agree += ((x.1 >= 0.5) == (y.1 >= 0.5)) as usize;
            fa += (x.1 >= 0.5) as usize;
            fb += (y.1 >= 0.5) as usize;
        }
    }
    let n = diffs.len().max(1) as f64;
    Agreement {
        a: a.into(),
        b: b.into(),
        faces: diffs.len(),
        age_diff_mean: mean(&diffs),
        age_diff_sd: sd(&diffs),
        gender_agreement: agree as f64 / n,
        female_share_a: fa as f64 / n,
        female_share_b: fb as f64 / n,
    }
}

/// Pairs of faces on consecutive sampled frames of one input that overlap (IoU ≥ 0.5), matched
/// greedily by overlap so each face pairs at most once.
fn consecutive_pairs(input: &InputResults) -> Vec<(&FaceRow, &FaceRow)> {
    let mut by_frame: BTreeMap<u64, Vec<&FaceRow>> = BTreeMap::new();
    for f in &input.faces {
        by_frame.entry(f.frame).or_default().push(f);
    }
    let mut pairs = Vec::new();
    for w in input.sampled.windows(2) {
        let (Some(a), Some(b)) = (by_frame.get(&w[0].0), by_frame.get(&w[1].0)) else {
            continue;
        };
        let mut cands: Vec<(f64, usize, usize)> = Vec::new();
        for (i, x) in a.iter().enumerate() {
            for (j, y) in b.iter().enumerate() {
                let o = iou(&x.bbox, &y.bbox);
                if o >= 0.5 {
                    cands.push((o, i, j));
                }
            }
        }
        cands.sort_by(|p, q| q.0.total_cmp(&p.0));
        let (mut used_a, mut used_b) = (vec![false; a.len()], vec![false; b.len()]);
        for (_, i, j) in cands {
            if !used_a[i] && !used_b[j] {
                used_a[i] = true;
                used_b[j] = true;
                pairs.push((a[i], b[j]));
            }
        }
    }
    pairs
}

fn stability(inputs: &[InputResults], classifier: &str) -> Stability {
    let (mut steps, mut flips) = (Vec::new(), 0);
    for input in inputs {
        for (x, y) in consecutive_pairs(input) {
            if let (Some(a), Some(b)) = (x.estimates.get(classifier), y.estimates.get(classifier)) {
                steps.push(b.0 - a.0);
                flips += ((a.1 >= 0.5) != (b.1 >= 0.5)) as usize;
            }
        }
    }
    let abs: Vec<f64> = steps.iter().map(|s| s.abs()).collect();
    Stability {
        classifier: classifier.into(),
        pairs: steps.len(),
        age_step_mean_abs: mean(&abs),
        age_step_sd: sd(&steps),
        gender_flip_rate: if steps.is_empty() {
            f64::NAN
        } else {
            flips as f64 / steps.len() as f64
        },
    }
}

pub fn evaluate(inputs: &[InputResults], labels: Option<&[Label]>) -> Evaluation {
    let names = classifiers(inputs);
    let mut unmatched_labels = 0;
    let labelled = match labels {
        Some(l) => names
            .iter()
            .map(|c| {
                let (m, u) = labelled(inputs, l, c);
                unmatched_labels = u;
                m
            })
            .collect(),
        None => Vec::new(),
    };
    let mut agreement_rows = Vec::new();
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            agreement_rows.push(agreement(inputs, a, b));
        }
    }
    Evaluation {
        inputs: inputs.len(),
        faces: inputs.iter().map(|i| i.faces.len()).sum(),
        stability: names.iter().map(|c| stability(inputs, c)).collect(),
        classifiers: names,
        labelled,
        unmatched_labels,
        agreement: agreement_rows,
    }
}

impl Evaluation {
    pub fn print(&self) {
        println!(
            "{} inputs, {} faces, classifiers: {}",
            self.inputs,
            self.faces,
            self.classifiers.join(", ")
        );
        if !self.labelled.is_empty() {
            println!(
                "\nAgainst the hand-coded labels ({} labels matched no detected face)",
                self.unmatched_labels
            );
            println!(
                "{:<16} {:>6} {:>8} {:>8} {:>9}  {:<26} {:<26}",
                "classifier",
                "faces",
                "age MAE",
                "gender",
                "accuracy",
                "female share (coded)",
                "female share (estimated)"
            );
            for m in &self.labelled {
                let s = |x: &Share| {
                    format!(
                        "{:.2} [{:.2}, {:.2}] n={}",
                        x.share, x.ci95.0, x.ci95.1, x.n
                    )
                };
                println!(
                    "{:<16} {:>6} {:>8.2} {:>8} {:>9.3}  {:<26} {:<26}",
                    m.classifier,
                    m.faces_matched,
                    m.age_mae,
                    m.gender_n,
                    m.gender_accuracy,
                    s(&m.female_share_coded),
                    s(&m.female_share_estimated)
                );
                for (band, n, b) in &m.age_bias_by_band {
                    println!("    age bias {band:>6}: {b:+.2} years (n={n})");
                }
                for (group, c) in &m.gender_confusion_by_group {
                    println!(
                        "    {group}: true F→F {} F→M {} | true M→F {} M→M {}",
                        c[0][0], c[0][1], c[1][0], c[1][1]
                    );
                }
            }
        }
        if !self.agreement.is_empty() {
            println!("\nAgreement between classifiers (same faces)");
            println!(
                "{:<16} {:<16} {:>6} {:>14} {:>10} {:>9} {:>9}",
                "a", "b", "faces", "age a−b mean", "sd", "same sex", "female a / b"
            );
            for a in &self.agreement {
                println!(
                    "{:<16} {:<16} {:>6} {:>14.2} {:>10.2} {:>9.3} {:>4.2}/{:.2}",
                    a.a,
                    a.b,
                    a.faces,
                    a.age_diff_mean,
                    a.age_diff_sd,
                    a.gender_agreement,
                    a.female_share_a,
                    a.female_share_b
                );
            }
        }
        println!("\nTemporal stability (same face on consecutive sampled frames)");
        println!(
            "{:<16} {:>6} {:>14} {:>12} {:>12}",
            "classifier", "pairs", "|Δage| mean", "Δage sd", "gender flips"
        );
        for s in &self.stability {
            println!(
                "{:<16} {:>6} {:>14.2} {:>12.2} {:>12.3}",
                s.classifier, s.pairs, s.age_step_mean_abs, s.age_step_sd, s.gender_flip_rate
            );
        }
    }
}
