//! `facetv-gpu image FILE...`: one TSV row per face on standard output.

use std::io::Write;

use anyhow::{Context, Result};

use super::args::{GlobalArgs, ImageArgs};
use super::Outcome;
use crate::analyze::Analyzer;
use crate::image::BgrImage;

pub fn run(g: &GlobalArgs, a: &ImageArgs) -> Result<Outcome> {
    crate::runtime::environment(g.ort_lib.as_deref())?;
    let mut analyzer = Analyzer::open(
        &super::manifest(),
        &super::store(g),
        &super::model_choice(&a.model),
        super::detect_options(&a.model)?,
        super::session_options(g),
    )?;
    for m in &analyzer.missing_optional {
        tracing::warn!("optional model '{m}' is not installed; running without it (fetch it with `facetv-gpu models fetch {m}` where the internet is reachable, or put its weights file in the model mirror: see models/README.md)");
    }
    let names = analyzer.classifier_names();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut header = String::from("file\tface\tx1\ty1\tx2\ty2\tscore");
    for i in 0..5 {
        header.push_str(&format!("\tlx{i}\tly{i}"));
    }
    for n in &names {
        header.push_str(&format!("\t{n}_female\t{n}_age"));
    }
    writeln!(out, "{header}")?;
    let mut failed = false;
    for file in &a.files {
        let image = match BgrImage::load(file) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!("{e}");
                failed = true;
                continue;
            }
        };
        let faces = analyzer
            .analyze(&[&image])
            .with_context(|| format!("{}", file.display()))?;
        for (i, f) in faces[0].iter().enumerate() {
            let b = f.face.clamped_bbox(image.width, image.height);
            let mut row = format!(
                "{}\t{i}\t{:.3}\t{:.3}\t{:.3}\t{:.3}\t{:.5}",
                crate::sink::tsv_field(&file.to_string_lossy()),
                b[0],
                b[1],
                b[2],
                b[3],
                f.face.score
            );
            for p in f.face.landmarks {
                row.push_str(&format!("\t{:.3}\t{:.3}", p[0], p[1]));
            }
            for e in &f.estimates {
                row.push_str(&format!("\t{:.6}\t{:.4}", e.female, e.age));
            }
            writeln!(out, "{row}")?;
        }
    }
    Ok(if failed {
        Outcome::SomeInputsFailed
    } else {
        Outcome::Success
    })
}
