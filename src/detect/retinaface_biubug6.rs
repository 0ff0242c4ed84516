//! Decoder for RetinaFace in the biubug6/Pytorch_Retinaface export layout.
//!
//! Outputs (one image): `loc [P,4]`, `conf [P,2]` (softmax applied, column 1 = face),
//! `landms [P,10]`. Priors at steps 8/16/32 with min sizes [16,32] / [64,128] / [256,512], in
//! order step → row → column → min size, each `(cx, cy, w, h)` normalised by the input size with
//! `cx = (j + 0.5)·step / W`. Decoding uses variances (0.1, 0.2):
//! `centre = prior_c + loc_xy·0.1·prior_wh`, `wh = prior_wh·exp(loc_wh·0.2)`,
//! `landmark = prior_c + landm·0.1·prior_wh`, then scaled by the input width/height.

use super::{Face, RawOutput};
use crate::error::{Error, Result};

const STEPS: [usize; 3] = [8, 16, 32];
const MIN_SIZES: [[f32; 2]; 3] = [[16.0, 32.0], [64.0, 128.0], [256.0, 512.0]];
const VARIANCE: [f32; 2] = [0.1, 0.2];

/// Priors for an input of `w`×`h`, as `(cx, cy, pw, ph)` normalised to [0, 1].
pub fn priors(w: usize, h: usize) -> Vec<[f32; 4]> {
    let mut out = Vec::new();
    for (step, sizes) in STEPS.iter().zip(MIN_SIZES) {
        let fh = h.div_ceil(*step);
        let fw = w.div_ceil(*step);
        for i in 0..fh {
            for j in 0..fw {
                for s in sizes {
                    out.push([
                        (j as f32 + 0.5) * *step as f32 / w as f32,
                        (i as f32 + 0.5) * *step as f32 / h as f32,
                        s / w as f32,
                        s / h as f32,
                    ]);
                }
            }
        }
    }
    out
}

/// Priors for one input size, shared between calls.
type Priors = std::sync::Arc<Vec<[f32; 4]>>;

pub struct Biubug6Decoder {
    cache: std::sync::Mutex<Option<((usize, usize), Priors)>>,
}

impl Biubug6Decoder {
    pub fn new() -> Self {
        Biubug6Decoder {
            cache: std::sync::Mutex::new(None),
        }
    }

    fn priors_for(&self, w: usize, h: usize) -> Priors {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match &*cache {
            Some((size, p)) if *size == (w, h) => p.clone(),
            _ => {
                let p = std::sync::Arc::new(priors(w, h));
                *cache = Some(((w, h), p.clone()));
                p
            }
        }
    }
}

impl Default for Biubug6Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl super::Decoder for Biubug6Decoder {
    fn decode(
        &self,
        outputs: &[RawOutput],
        w: usize,
        h: usize,
        threshold: f32,
    ) -> Result<Vec<Face>> {
        let priors = self.priors_for(w, h);
        let n = priors.len();
        let [loc, conf, landm] = outputs else {
            return Err(Error::Invalid("biubug6 RetinaFace needs 3 outputs".into()));
        };
        for (o, width, what) in [(loc, 4, "loc"), (conf, 2, "conf"), (landm, 10, "landmarks")] {
            if o.data.len() != n * width {
                return Err(Error::Invalid(format!(
                    "biubug6 RetinaFace output '{what}' has {} values; {n} priors × {width} expected for a {w}x{h} input",
                    o.data.len()
                )));
            }
        }
        let (wf, hf) = (w as f32, h as f32);
        let mut faces = Vec::new();
        for (k, p) in priors.iter().enumerate() {
            let score = conf.data[k * 2 + 1];
            if score < threshold {
                continue;
            }
            let l = &loc.data[k * 4..k * 4 + 4];
            let cx = p[0] + l[0] * VARIANCE[0] * p[2];
            let cy = p[1] + l[1] * VARIANCE[0] * p[3];
            let bw = p[2] * (l[2] * VARIANCE[1]).exp();
            let bh = p[3] * (l[3] * VARIANCE[1]).exp();
            let bbox = [
                (cx - bw / 2.0) * wf,
                (cy - bh / 2.0) * hf,
                (cx + bw / 2.0) * wf,
                (cy + bh / 2.0) * hf,
            ];
            let lm = &landm.data[k * 10..k * 10 + 10];
            let mut landmarks = [[0f32; 2]; 5];
            for (i, pt) in landmarks.iter_mut().enumerate() {
                pt[0] = (p[0] + lm[i * 2] * VARIANCE[0] * p[2]) * wf;
                pt[1] = (p[1] + lm[i * 2 + 1] * VARIANCE[0] * p[3]) * hf;
            }
            faces.push(Face {
                bbox,
                score,
                landmarks,
            });
        }
        Ok(faces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prior_count_and_first_prior_at_640() {
        let p = priors(640, 640);
        assert_eq!(p.len(), 16800);
        assert_eq!(p[0], [4.0 / 640.0, 4.0 / 640.0, 16.0 / 640.0, 16.0 / 640.0]);
        assert_eq!(p[1][2], 32.0 / 640.0);
        // first prior of step 16 follows the 80·80·2 of step 8
        assert_eq!(
            p[12800],
            [8.0 / 640.0, 8.0 / 640.0, 64.0 / 640.0, 64.0 / 640.0]
        );
    }
}
