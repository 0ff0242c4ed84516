//! Age and gender estimation on aligned face chips with the yu4u WideResNet (WRN-16-8) models.
//!
//! Convention (pinned by tests against `reference/wrn_imdb_reference.tsv`): the chip is resized to
//! the model's 64×64 input with OpenCV `INTER_LINEAR` semantics, fed as BGR raw 0–255 floats with no
//! normalisation; `female = gender_softmax[0]`, `age = Σ i·p_i` over the 101 age bins.

pub mod crop;

use std::path::Path;

use ort::session::{Session, SessionOutputs};

use crate::detect::check_io;
use crate::error::{Error, Result};
use crate::image::BgrImage;
use crate::models::{Family, ModelSpec};
use crate::preprocess::fill_nchw;
use crate::runtime::binding::{run_in_place, BoundInput};
use crate::runtime::providers::{Placement, MAX_BATCH};
use crate::runtime::{open_session, SessionOptions};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AgeGender {
    /// Probability that the face is female.
    pub female: f32,
    /// Expected age in years.
    pub age: f32,
}

pub trait AgeGenderModel: Send {
    /// Short name written to the output tables (`imdb`, `utk`).
    fn name(&self) -> &str;
    /// Where the model runs.
    fn placement(&self) -> &Placement;
    fn classify(&mut self, chips: &[&BgrImage]) -> Result<Vec<AgeGender>>;
}

pub struct OnnxAgeGender {
    spec: ModelSpec,
    session: Session,
    batched: bool,
    placement: Placement,
}

impl OnnxAgeGender {
    pub fn open(spec: &ModelSpec, path: &Path, session_opts: SessionOptions) -> Result<Self> {
        if spec.family != Family::WideResnet {
            return Err(Error::model(&spec.name, path, "is not an age/gender model"));
        }
        if spec.input.size.is_none() {
            return Err(Error::model(
                &spec.name,
                path,
                "age/gender models need a fixed input size in the manifest",
            ));
        }
        let side = spec.input.size.map_or(0, |[w, h]| w.max(h));
        let (session, placement) = open_session(spec, path, session_opts, side)?;
        let batched = check_io(spec, path, &session)?;
        Ok(OnnxAgeGender {
            spec: spec.clone(),
            session,
            batched,
            placement,
        })
    }

    fn run(&mut self, chips: &[&BgrImage]) -> Result<Vec<AgeGender>> {
        let [w, h] = self.spec.input.size.expect("checked in open");
        let per = 3 * w * h;
        let mut input = vec![0f32; per * chips.len()];
        for (chip, out) in chips.iter().zip(input.chunks_exact_mut(per)) {
            if chip.width == w && chip.height == h {
                fill_nchw(chip, &self.spec.input, w, h, out);
            } else {
                fill_nchw(&chip.resize(w, h), &self.spec.input, w, h, out);
            }
        }
        let input = BoundInput::host(&mut input, [chips.len(), 3, h, w])?;
        self.infer(&input)
    }

    /// Age and gender for a batch already in the model's input layout, in host memory or (GPU
    /// path) in device memory our kernels wrote; the results come back to the host.
    pub fn infer(&mut self, input: &BoundInput<'_>) -> Result<Vec<AgeGender>> {
        let n = input.batch();
        let outputs = [self.spec.outputs[0].clone(), self.spec.outputs[1].clone()];
        let read = |results: &SessionOutputs<'_>| {
            let (_, gender) = results[outputs[0].as_str()]
                .try_extract_tensor::<f32>()
                .map_err(|e| e.to_string())?;
            let (_, age) = results[outputs[1].as_str()]
                .try_extract_tensor::<f32>()
                .map_err(|e| e.to_string())?;
            if gender.len() != n * 2 || age.len() % n != 0 {
                return Err(format!(
                    "unexpected output sizes {} and {} for {n} faces",
                    gender.len(),
                    age.len()
                ));
            }
            let bins = age.len() / n;
            Ok((0..n)
                .map(|i| AgeGender {
                    female: gender[i * 2],
                    age: expected_age(&age[i * bins..(i + 1) * bins]),
                })
                .collect())
        };
        run_in_place(
            &mut self.session,
            &self.spec.name,
            (self.spec.input.name.as_str(), input),
            read,
        )
    }
}

/// Σ i·p_i over the age bins (bin i = i years).
pub fn expected_age(probabilities: &[f32]) -> f32 {
    probabilities
        .iter()
        .enumerate()
        .map(|(i, p)| i as f64 * *p as f64)
        .sum::<f64>() as f32
}

impl AgeGenderModel for OnnxAgeGender {
    fn placement(&self) -> &Placement {
        &self.placement
    }

    fn name(&self) -> &str {
        &self.spec.name
    }

    fn classify(&mut self, chips: &[&BgrImage]) -> Result<Vec<AgeGender>> {
        let step = if self.batched { MAX_BATCH } else { 1 };
        let mut out = Vec::with_capacity(chips.len());
        for part in chips.chunks(step.max(1)) {
            out.extend(self.run(part)?);
        }
        Ok(out)
    }
}
