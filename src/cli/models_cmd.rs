//! `facetv-gpu models list|fetch|verify|convert`.

use anyhow::{bail, Result};

use super::args::{GlobalArgs, ModelsCommand};
use super::Outcome;
use crate::models::store::{write_atomic, Fetched};
use crate::models::{Manifest, ModelSpec};

pub fn run(g: &GlobalArgs, cmd: ModelsCommand) -> Result<Outcome> {
    let manifest = super::manifest();
    let store = super::store(g);
    match cmd {
        ModelsCommand::List => {
            println!("model cache: {}", store.dir.display());
            match &store.mirror {
                Some(m) => println!("mirror:      {}", m.display()),
                None => println!("mirror:      (none; set FACETV_MODEL_MIRROR)"),
            }
            println!();
            println!(
                "{:<20} {:<11} {:<9} {:<10} description",
                "name", "role", "default", "installed"
            );
            for m in &manifest.models {
                let installed = if store.path_of(m).is_file() {
                    "yes"
                } else {
                    "no"
                };
                let default = match (m.default, m.optional) {
                    (true, true) => "optional",
                    (true, false) => "yes",
                    _ => "no",
                };
                println!(
                    "{:<20} {:<11} {:<9} {:<10} {}",
                    m.name,
                    match m.role {
                        crate::models::Role::Detector => "detector",
                        crate::models::Role::AgeGender => "age_gender",
                    },
                    default,
                    installed,
                    m.description
                );
            }
            Ok(Outcome::Success)
        }
        ModelsCommand::Fetch { names, force } => {
            let mut failed = false;
            for spec in selected(&manifest, &names)? {
                match store.fetch(spec, force) {
                    Ok(Fetched::AlreadyPresent) => {
                        tracing::info!("{}: already installed and verified", spec.name)
                    }
                    Ok(Fetched::Fetched { from }) => {
                        tracing::info!("{}: installed from {from}", spec.name)
                    }
                    Err(e) if spec.optional && names.is_empty() => {
                        tracing::warn!("optional model {} not installed: {e}", spec.name)
                    }
                    Err(e) => {
                        tracing::error!("{e}");
                        failed = true;
                    }
                }
            }
            if failed {
                bail!("some models could not be fetched");
            }
            Ok(Outcome::Success)
        }
        ModelsCommand::Verify { names } => {
            let mut bad = 0;
            for spec in selected(&manifest, &names)? {
                match store.verified_path(spec) {
                    Ok(p) if spec.sha256.is_some() => {
                        println!("ok       {} ({})", spec.name, p.display())
                    }
                    Ok(p) => println!(
                        "present  {} ({}; no pinned sha256 to check)",
                        spec.name,
                        p.display()
                    ),
                    Err(e) if spec.optional && !store.path_of(spec).exists() => {
                        println!("absent   {} (optional): {e}", spec.name)
                    }
                    Err(e) => {
                        println!("FAILED   {e}");
                        bad += 1;
                    }
                }
            }
            if bad > 0 {
                bail!("{bad} model(s) failed verification");
            }
            Ok(Outcome::Success)
        }
        ModelsCommand::Convert { input, output } => {
            let bytes = crate::models::keras::convert_keras_hdf5(&input, &["gender", "age"])?;
            write_atomic(&output, &bytes)?;
            println!(
                "{} -> {} (sha256 {})",
                input.display(),
                output.display(),
                crate::models::store::sha256_bytes(&bytes)
            );
            Ok(Outcome::Success)
        }
    }
}

fn selected<'a>(manifest: &'a Manifest, names: &[String]) -> Result<Vec<&'a ModelSpec>> {
    if names.is_empty() {
        return Ok(manifest.models.iter().filter(|m| m.default).collect());
    }
    names.iter().map(|n| Ok(manifest.get(n)?)).collect()
}
