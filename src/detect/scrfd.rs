//! Decoder for InsightFace SCRFD with keypoints (det_500m, det_2.5g, …).
//!
//! Outputs (one image, manifest order): scores for strides 8/16/32 `[N_s,1]` (sigmoid applied),
//! box distances `[N_s,4]` (l, t, r, b in stride units), keypoint offsets `[N_s,10]` (dx, dy in
//! stride units). Two anchors per cell share the centre `(x·s, y·s)` (no half-pixel offset), in
//! row-major order. `box = (cx - l·s, cy - t·s, cx + r·s, cy + b·s)`, `kp = (cx + dx·s, cy + dy·s)`.

use super::{Face, RawOutput};
use crate::error::{Error, Result};

const STRIDES: [usize; 3] = [8, 16, 32];
const ANCHORS: usize = 2;

pub struct ScrfdDecoder;

impl super::Decoder for ScrfdDecoder {
    fn decode(
        &self,
        outputs: &[RawOutput],
        w: usize,
        h: usize,
        threshold: f32,
    ) -> Result<Vec<Face>> {
        if outputs.len() != 9 {
            return Err(Error::Invalid("SCRFD needs 9 outputs".into()));
        }
        let mut faces = Vec::new();
        for (k, s) in STRIDES.iter().enumerate() {
            let (fw, fh) = (w / s, h / s);
            let n = fw * fh * ANCHORS;
            let (scores, boxes, kps) = (&outputs[k], &outputs[3 + k], &outputs[6 + k]);
            if scores.data.len() != n || boxes.data.len() != n * 4 || kps.data.len() != n * 10 {
                return Err(Error::Invalid(format!(
                    "SCRFD stride {s}: output sizes {}/{}/{} do not match {n} anchors for a {w}x{h} input (sizes must be multiples of 32)",
                    scores.data.len(),
                    boxes.data.len(),
                    kps.data.len()
                )));
            }
            let sf = *s as f32;
            for a in 0..n {
                let score = scores.data[a];
                if score < threshold {
                    continue;
                }
                let cell = a / ANCHORS;
                let cx = (cell % fw) as f32 * sf;
                let cy = (cell / fw) as f32 * sf;
                let d = &boxes.data[a * 4..a * 4 + 4];
                let bbox = [
                    cx - d[0] * sf,
                    cy - d[1] * sf,
                    cx + d[2] * sf,
                    cy + d[3] * sf,
                ];
                let kp = &kps.data[a * 10..a * 10 + 10];
                let mut landmarks = [[0f32; 2]; 5];
                for (i, pt) in landmarks.iter_mut().enumerate() {
                    *pt = [cx + kp[i * 2] * sf, cy + kp[i * 2 + 1] * sf];
                }
                faces.push(Face {
                    bbox,
                    score,
                    landmarks,
                });
            }
        }
        Ok(faces)
    }
}
