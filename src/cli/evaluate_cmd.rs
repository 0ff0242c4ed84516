//! `facetv-gpu evaluate RESULTS_DIR [--labels FILE]`.

use anyhow::Result;

use super::args::EvaluateArgs;
use super::Outcome;
use crate::evaluate::{evaluate, labels, results};

pub fn run(a: &EvaluateArgs) -> Result<Outcome> {
    let inputs = results::load(&a.results)?;
    let labels = a.labels.as_deref().map(labels::read).transpose()?;
    let e = evaluate(&inputs, labels.as_deref());
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        e.print();
    }
    Ok(Outcome::Success)
}
