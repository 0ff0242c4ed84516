//! Decoder for RetinaFace in the insightface layout (the research seed's R50, `net3`).
//!
//! Outputs (one image, manifest order): for strides 32, 16, 8 in turn: class scores
//! `[1, 2A, H, W]` (the face probabilities are channels A..2A), box deltas `[1, 4A, H, W]`
//! (channel `a·4 + c`), landmark deltas `[1, 10A, H, W]` (channel `a·10 + 2·point + xy`), with
//! A = 2 anchors per cell. Anchors have base size 16 and scales (32, 16) / (8, 4) / (2, 1) for
//! strides 32 / 16 / 8, ratio 1: the anchor of size S at cell (x, y) is
//! `[7.5 - (S-1)/2, …, 7.5 + (S-1)/2] + (x·s, y·s)`. Boxes are decoded R-CNN style with "+1"
//! widths (`w = x2 - x1 + 1`, `ctr = x1 + (w-1)/2`, `pred = ctr + d·w`, size `exp(d)·w`, corners
//! `ctr ± (size-1)/2`); landmarks are `ctr + d·w` (landmark std 1.0).

use super::{Face, RawOutput};
use crate::error::{Error, Result};

const STRIDES: [usize; 3] = [32, 16, 8];
const SCALES: [[f32; 2]; 3] = [[32.0, 16.0], [8.0, 4.0], [2.0, 1.0]];
const BASE: f32 = 16.0;
const A: usize = 2;

pub struct InsightfaceRetinaDecoder;

/// The feature-map height and width of an NCHW output, checking its channel count.
fn map_dims(o: &RawOutput, channels: usize, what: &str) -> Result<(usize, usize)> {
    let s = &o.shape;
    let (c, h, w) = match s.len() {
        4 => (s[1], s[2], s[3]),
        3 => (s[0], s[1], s[2]),
        _ => {
            return Err(Error::Invalid(format!(
                "RetinaFace {what} output has shape {s:?}; NCHW expected"
            )))
        }
    };
    if c as usize != channels || (c * h * w) as usize != o.data.len() {
        return Err(Error::Invalid(format!(
            "RetinaFace {what} output has shape {s:?}; {channels} channels expected"
        )));
    }
    Ok((h as usize, w as usize))
}

impl super::Decoder for InsightfaceRetinaDecoder {
    fn decode(
        &self,
        outputs: &[RawOutput],
        _w: usize,
        _h: usize,
        threshold: f32,
    ) -> Result<Vec<Face>> {
        if outputs.len() != 9 {
            return Err(Error::Invalid(
                "insightface RetinaFace needs 9 outputs".into(),
            ));
        }
        let mut faces = Vec::new();
        for (k, (stride, scales)) in STRIDES.iter().zip(SCALES).enumerate() {
            let (cls, bbox, lmk) = (&outputs[3 * k], &outputs[3 * k + 1], &outputs[3 * k + 2]);
            let (fh, fw) = map_dims(cls, 2 * A, "score")?;
            if map_dims(bbox, 4 * A, "box")? != (fh, fw)
                || map_dims(lmk, 10 * A, "landmark")? != (fh, fw)
            {
                return Err(Error::Invalid(format!(
                    "RetinaFace stride {stride}: outputs disagree on the map size"
                )));
            }
            let plane = fh * fw;
            let s = *stride as f32;
            for y in 0..fh {
                for x in 0..fw {
                    let at = y * fw + x;
                    for (a, scale) in scales.iter().enumerate() {
                        let score = cls.data[(A + a) * plane + at];
                        if score < threshold {
                            continue;
                        }
                        let size = BASE * scale;
                        let x1 = 7.5 - 0.5 * (size - 1.0) + x as f32 * s;
                        let y1 = 7.5 - 0.5 * (size - 1.0) + y as f32 * s;
                        let width = size; // x2 - x1 + 1
                        let ctr_x = x1 + 0.5 * (width - 1.0);
                        let ctr_y = y1 + 0.5 * (width - 1.0);
                        let d = |c: usize| bbox.data[(a * 4 + c) * plane + at];
                        let pcx = d(0) * width + ctr_x;
                        let pcy = d(1) * width + ctr_y;
                        let pw = d(2).exp() * width;
                        let ph = d(3).exp() * width;
                        let bbox = [
                            pcx - 0.5 * (pw - 1.0),
                            pcy - 0.5 * (ph - 1.0),
                            pcx + 0.5 * (pw - 1.0),
                            pcy + 0.5 * (ph - 1.0),
                        ];
                        let mut landmarks = [[0f32; 2]; 5];
                        for (p, pt) in landmarks.iter_mut().enumerate() {
                            let l = |xy: usize| lmk.data[(a * 10 + p * 2 + xy) * plane + at];
                            *pt = [l(0) * width + ctr_x, l(1) * width + ctr_y];
                        }
                        faces.push(Face {
                            bbox,
                            score,
                            landmarks,
                        });
                    }
                }
            }
        }
        Ok(faces)
    }
}
