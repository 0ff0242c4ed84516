//! `facetv-gpu report OUTDIR`: one self-contained `report.html` (inline SVG plots and JPEG chips,
//! no scripts, nothing fetched at view time) summarising a results folder: per video and overall,
//! faces over media time, age by estimated gender per classifier, agreement between classifiers,
//! temporal stability, face sizes and detection scores, a contact sheet of chips from the tars,
//! failures with reasons, and the run's parameters and model hashes.

mod charts;

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::error::Result;
use crate::evaluate::results::{load, InputResults};
use crate::evaluate::{evaluate, Evaluation};

/// Chips shown on the contact sheet, spread evenly over all inputs.
const CONTACT_SHEET: usize = 48;

/// (age, female probability) of faces, by reference.
type Estimates<'a> = Vec<&'a (f64, f64)>;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn summary(input: &InputResults) -> serde_json::Value {
    std::fs::read(input.dir.join(format!("{}_summary.json", input.stem)))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Chips from an input's tar, `take` of them spread over the archive.
fn chips(input: &InputResults, take: usize) -> Vec<(String, Vec<u8>)> {
    let path = input.dir.join(format!("{}_chips.tar", input.stem));
    let Ok(file) = std::fs::File::open(&path) else {
        return Vec::new();
    };
    let total = input.faces.len().max(1);
    let every = total.div_ceil(take.max(1)).max(1);
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(file);
    let Ok(entries) = archive.entries() else {
        return out;
    };
    for (i, entry) in entries.flatten().enumerate() {
        if i % every != 0 || out.len() >= take {
            continue;
        }
        let mut entry = entry;
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut bytes = Vec::new();
        if entry.read_to_end(&mut bytes).is_ok() {
            out.push((name, bytes));
        }
    }
    out
}

fn failures(root: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(root.join("failures.tsv"))
        .map(|t| {
            t.lines()
                .skip(1)
                .map(|l| l.split('\t').map(String::from).collect())
                .collect()
        })
        .unwrap_or_default()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{margin-bottom:4px}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
.sub{color:#666;margin-top:0}.grid{display:flex;flex-wrap:wrap;gap:12px}.grid>div{flex:0 0 560px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;font-size:14px}
th{background:#f3f3f3}td.l,th.l{text-align:left}.sheet img{width:112px;height:112px;margin:2px}
.num{font-size:28px;font-weight:600}.card{display:inline-block;margin-right:32px}details{margin:8px 0}
summary{cursor:pointer;font-weight:600}code{font-size:13px}.note{color:#555;font-size:14px;max-width:900px}";

pub fn write_report(root: &Path) -> Result<PathBuf> {
    let inputs = load(root)?;
    let eval = evaluate(&inputs, None);
    let summaries: Vec<serde_json::Value> = inputs.iter().map(summary).collect();
    let failed = failures(root);
    let mut h = String::new();
    let _ = write!(h, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>facetv report: {}</title><style>{STYLE}</style></head><body>", esc(&root.display().to_string()));
    let _ = write!(
        h,
        "<h1>Faces, age and gender</h1><p class=\"sub\">Results in <code>{}</code></p>",
        esc(&root.display().to_string())
    );
    let sampled: usize = inputs.iter().map(|i| i.sampled.len()).sum();
    let _ = write!(
        h,
        "<div><span class=\"card\"><span class=\"num\">{}</span> inputs</span><span class=\"card\"><span class=\"num\">{sampled}</span> sampled frames</span><span class=\"card\"><span class=\"num\">{}</span> faces</span><span class=\"card\"><span class=\"num\">{}</span> failed inputs</span></div>",
        inputs.len(),
        eval.faces,
        failed.len()
    );
    overall(&mut h, &inputs, &eval);
    per_input(&mut h, &inputs, &summaries);
    contact_sheet(&mut h, &inputs);
    failures_section(&mut h, &failed);
    parameters(&mut h, &summaries);
    h.push_str("</body></html>\n");
    let path = root.join("report.html");
    crate::models::store::write_atomic(&path, h.as_bytes())?;
    Ok(path)
}

fn overall(h: &mut String, inputs: &[InputResults], eval: &Evaluation) {
    h.push_str("<h2>All inputs</h2><p class=\"note\">Gender is the estimated probability of <i>female</i>; a face counts as female when it is at least 0.5. Classifier names ending in <code>-margin</code> saw the 40&nbsp;% margin crop instead of the aligned chip (see docs/FIDELITY.md).</p><div class=\"grid\">");
    let faces: Vec<_> = inputs.iter().flat_map(|i| &i.faces).collect();
    for c in &eval.classifiers {
        let (f, m): (Estimates, Estimates) = faces
            .iter()
            .filter_map(|x| x.estimates.get(c))
            .partition(|e| e.1 >= 0.5);
        let _ = write!(
            h,
            "<div>{}</div>",
            charts::age_by_gender(
                f.iter().map(|e| e.0).collect(),
                m.iter().map(|e| e.0).collect(),
                c
            )
        );
    }
    for a in &eval.agreement {
        let pts: Vec<(f64, f64)> = faces
            .iter()
            .filter_map(|x| Some((x.estimates.get(&a.a)?.0, x.estimates.get(&a.b)?.0)))
            .collect();
        let _ = write!(
            h,
            "<div>{}</div>",
            charts::agreement_scatter(&pts, &a.a, &a.b, a.age_diff_mean)
        );
    }
    let heights: Vec<f64> = faces.iter().map(|f| f.bbox[3] - f.bbox[1]).collect();
    let hmax = heights.iter().cloned().fold(50.0, f64::max);
    let _ = write!(
        h,
        "<div>{}</div>",
        charts::histogram(
            &[("faces", charts::SIZE_COLOR, heights)],
            0.0,
            hmax * 1.01,
            25,
            "Face size (box height in frame pixels)",
            "box height (px)"
        )
    );
    let scores: Vec<f64> = faces.iter().map(|f| f.confidence).collect();
    let lo = scores.iter().cloned().fold(1.0, f64::min).min(0.8);
    let _ = write!(
        h,
        "<div>{}</div>",
        charts::histogram(
            &[("faces", charts::SIZE_COLOR, scores)],
            lo,
            1.0001,
            20,
            "Detection score",
            "score"
        )
    );
    h.push_str("</div>");
    if !eval.agreement.is_empty() {
        h.push_str("<h3>Agreement between classifiers (same faces)</h3><table><tr><th class=\"l\">a</th><th class=\"l\">b</th><th>faces</th><th>age a − b, mean</th><th>sd</th><th>same gender decision</th><th>female share a</th><th>female share b</th></tr>");
        for a in &eval.agreement {
            let _ = write!(h, "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{:+.2}</td><td>{:.2}</td><td>{:.1} %</td><td>{:.1} %</td><td>{:.1} %</td></tr>", esc(&a.a), esc(&a.b), a.faces, a.age_diff_mean, a.age_diff_sd, 100.0 * a.gender_agreement, 100.0 * a.female_share_a, 100.0 * a.female_share_b);
        }
        h.push_str("</table>");
    }
    h.push_str("<h3>Temporal stability</h3><p class=\"note\">The same face on consecutive sampled frames (matched by box overlap, IoU ≥ 0.5) should keep its estimates; large steps or frequent gender flips mean noisy estimates.</p><table><tr><th class=\"l\">classifier</th><th>pairs</th><th>mean |Δ age| (years)</th><th>sd of Δ age</th><th>gender flips</th></tr>");
    for s in &eval.stability {
        let _ = write!(h, "<tr><td class=\"l\">{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.1} %</td></tr>", esc(&s.classifier), s.pairs, s.age_step_mean_abs, s.age_step_sd, 100.0 * s.gender_flip_rate);
    }
    h.push_str("</table>");
}

fn per_input(h: &mut String, inputs: &[InputResults], summaries: &[serde_json::Value]) {
    h.push_str("<h2>Per input</h2>");
    for (input, s) in inputs.iter().zip(summaries) {
        let v = &s["video"];
        let what = if v.is_null() {
            format!("{} photos", input.sampled.len())
        } else {
            format!(
                "{} {}×{}, rotation {}°, {} frames decoded, status {}",
                esc(v["codec"].as_str().unwrap_or("?")),
                v["width"],
                v["height"],
                v["rotation"],
                s["decode"]["frames_decoded"],
                esc(s["status"].as_str().unwrap_or("?"))
            )
        };
        let _ = write!(h, "<details><summary>{} — {} faces in {} sampled frames</summary><p class=\"note\">{what}</p>", esc(&input.stem), input.faces.len(), input.sampled.len());
        if !v.is_null() {
            let pts: Vec<(f64, usize)> = input.sampled.iter().map(|s| (s.1, s.2)).collect();
            let _ = write!(
                h,
                "<div>{}</div>",
                charts::faces_over_time(&pts, &format!("Faces per sampled frame: {}", input.stem))
            );
        }
        h.push_str("</details>");
    }
}

fn contact_sheet(h: &mut String, inputs: &[InputResults]) {
    h.push_str("<h2>Contact sheet</h2><p class=\"note\">Chips taken evenly from the tar archives, as the classifiers' aligned input (224×224, shown at half size).</p><div class=\"sheet\">");
    let with_faces: Vec<&InputResults> = inputs.iter().filter(|i| !i.faces.is_empty()).collect();
    let per = CONTACT_SHEET.div_ceil(with_faces.len().max(1));
    for input in with_faces {
        for (name, jpeg) in chips(input, per) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&jpeg);
            let _ = write!(
                h,
                "<img src=\"data:image/jpeg;base64,{b64}\" alt=\"{0}\" title=\"{0}\">",
                esc(&name)
            );
        }
    }
    h.push_str("</div>");
}

fn failures_section(h: &mut String, failed: &[Vec<String>]) {
    h.push_str("<h2>Failures</h2>");
    if failed.is_empty() {
        h.push_str("<p>None: every input was processed.</p>");
        return;
    }
    h.push_str("<table><tr><th class=\"l\">file</th><th class=\"l\">kind</th><th class=\"l\">reason</th><th class=\"l\">what to do</th></tr>");
    for f in failed {
        let cell = |i: usize| esc(f.get(i).map(String::as_str).unwrap_or(""));
        let _ = write!(h, "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>", cell(0), cell(1), cell(2), cell(3));
    }
    h.push_str("</table>");
}

fn parameters(h: &mut String, summaries: &[serde_json::Value]) {
    h.push_str("<h2>Run parameters and models</h2>");
    let Some(s) = summaries.iter().find(|s| !s.is_null()) else {
        return;
    };
    let _ = write!(
        h,
        "<p>facetv-gpu {} ({})</p><table>",
        esc(s["version"].as_str().unwrap_or("?")),
        esc(s["revision"].as_str().unwrap_or("?"))
    );
    if let Some(opts) = s["options"].as_object() {
        for (k, v) in opts {
            let _ = write!(
                h,
                "<tr><th class=\"l\">{}</th><td class=\"l\"><code>{}</code></td></tr>",
                esc(k),
                esc(&v.to_string())
            );
        }
    }
    h.push_str("</table><table><tr><th class=\"l\">model</th><th class=\"l\">sha256</th></tr>");
    for m in s["models"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\"><code>{}</code></td></tr>",
            esc(m["name"].as_str().unwrap_or("")),
            esc(m["sha256"].as_str().unwrap_or(""))
        );
    }
    h.push_str("</table>");
    let differing = summaries
        .iter()
        .filter(|x| x["options"] != s["options"])
        .count();
    if differing > 0 {
        let _ = write!(h, "<p class=\"note\"><b>Note:</b> {differing} input(s) were processed with other options; see their summaries.</p>");
    }
}
