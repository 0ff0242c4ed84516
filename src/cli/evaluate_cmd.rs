//! `facetv-gpu evaluate RESULTS_DIR [--labels FILE]`.

use anyhow::Result;

use super::args::EvaluateArgs;
use super::Outcome;
use crate::evaluate::{evaluate, labels, results};

pub fn run(a: &EvaluateArgs) -> Result<Outcome> {
    let inputs = results::load(&a.results)?;
    let labels = a.labels.as_deref().map(labels::read).transpose()?;
    if let (Some(path), Some(l)) = (&a.labels, &labels) {
        anyhow::ensure!(
            !l.is_empty(),
            "{}: no labels (a tab-separated file with a header; see docs/FIDELITY.md for the columns)",
            path.display()
        );
    }
    let e = evaluate(&inputs, labels.as_deref());
    if let (Some(path), Some(l)) = (&a.labels, &labels) {
        anyhow::ensure!(
            e.unmatched_labels < l.len(),
            "{}: none of the {} labels names a detected face in {}; check the filename (chip name) or image/face columns",
            path.display(),
            l.len(),
            a.results.display()
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        e.print();
    }
    Ok(Outcome::Success)
}
