//! Reading a results folder back: every input's faces with their boxes and estimates, in the order
//! of its sampled frames.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct FaceRow {
    /// The chip name (`image_basename` / `filename`).
    pub name: String,
    pub frame: u64,
    pub timestamp: f64,
    pub confidence: f64,
    pub bbox: [f64; 4],
    /// classifier label → (age, female probability)
    pub estimates: BTreeMap<String, (f64, f64)>,
}

#[derive(Debug, Clone)]
pub struct InputResults {
    pub stem: String,
    pub dir: PathBuf,
    /// Every sampled frame in order, with or without faces: (frame, timestamp, faces).
    pub sampled: Vec<(u64, f64, usize)>,
    pub faces: Vec<FaceRow>,
}

fn rows(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split('\t')
        .map(String::from)
        .collect();
    Ok((
        header,
        lines
            .map(|l| l.split('\t').map(String::from).collect())
            .collect(),
    ))
}

fn column(header: &[String], name: &str, path: &Path) -> Result<usize> {
    header.iter().position(|h| h == name).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no column '{name}'; is this a facetv results table?",
            path.display()
        ))
    })
}

/// A field of a row, or an error naming the table when the row is too short (hand-edited files).
fn cell<'a>(row: &'a [String], i: usize, path: &Path) -> Result<&'a str> {
    row.get(i)
        .map(String::as_str)
        .ok_or_else(|| Error::Invalid(format!("{}: a row has too few columns", path.display())))
}

fn num(v: &str, path: &Path) -> Result<f64> {
    v.parse()
        .map_err(|_| Error::Invalid(format!("{}: '{v}' is not a number", path.display())))
}

/// Every finished input under `root` (found by its summary).
pub fn load(root: &Path) -> Result<Vec<InputResults>> {
    let mut summaries = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(stem) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix("_summary.json"))
            {
                summaries.push((dir.clone(), stem.to_string()));
            }
        }
    }
    summaries.sort();
    if summaries.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no results (no *_summary.json); run the main job first",
            root.display()
        )));
    }
    summaries
        .into_iter()
        .map(|(dir, stem)| load_one(&dir, &stem))
        .collect()
}

fn load_one(dir: &Path, stem: &str) -> Result<InputResults> {
    let meta_path = dir.join(format!("{stem}_face_metadata.tsv"));
    let (h, meta) = rows(&meta_path)?;
    let [ni, nf, nl, nt, nr, nb, ns, nc] = [
        "image_basename",
        "frame",
        "left",
        "top",
        "right",
        "bottom",
        "timestamp",
        "confidence",
    ]
    .map(|c| column(&h, c, &meta_path));
    let (ni, nf, nl, nt, nr, nb, ns, nc) = (ni?, nf?, nl?, nt?, nr?, nb?, ns?, nc?);
    let mut faces = Vec::with_capacity(meta.len());
    let mut by_name = BTreeMap::new();
    for r in &meta {
        by_name.insert(cell(r, ni, &meta_path)?.to_string(), faces.len());
        faces.push(FaceRow {
            name: cell(r, ni, &meta_path)?.to_string(),
            frame: num(cell(r, nf, &meta_path)?, &meta_path)? as u64,
            timestamp: num(cell(r, ns, &meta_path)?, &meta_path)?,
            confidence: num(cell(r, nc, &meta_path)?, &meta_path)?,
            bbox: [
                num(cell(r, nl, &meta_path)?, &meta_path)?,
                num(cell(r, nt, &meta_path)?, &meta_path)?,
                num(cell(r, nr, &meta_path)?, &meta_path)?,
                num(cell(r, nb, &meta_path)?, &meta_path)?,
            ],
            estimates: BTreeMap::new(),
        });
    }
    let ag_path = dir.join(format!("{stem}_age_gender.tsv"));
    let (h, ag) = rows(&ag_path)?;
    let (fi, ci, ai, gi) = (
        column(&h, "filename", &ag_path)?,
        column(&h, "classifier", &ag_path)?,
        column(&h, "age", &ag_path)?,
        column(&h, "gender", &ag_path)?,
    );
    for r in &ag {
        if let Some(&k) = by_name.get(cell(r, fi, &ag_path)?) {
            faces[k].estimates.insert(
                cell(r, ci, &ag_path)?.to_string(),
                (
                    num(cell(r, ai, &ag_path)?, &ag_path)?,
                    num(cell(r, gi, &ag_path)?, &ag_path)?,
                ),
            );
        }
    }
    let samples_path = dir.join(format!("{stem}_sampled_frames.tsv"));
    let (_, s) = rows(&samples_path)?;
    let sampled = s
        .iter()
        .filter_map(|r| {
            Some((
                r.first()?.parse().ok()?,
                r.get(1)?.parse().ok()?,
                r.get(2)?.parse().ok()?,
            ))
        })
        .collect();
    Ok(InputResults {
        stem: stem.to_string(),
        dir: dir.to_path_buf(),
        sampled,
        faces,
    })
}
