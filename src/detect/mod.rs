//! Face detection: frame → boxes, scores and five landmarks in frame pixels.
//!
//! The frame is resized so its longer side is `max_side` (the research seed's rule), padded at the
//! bottom/right to the model's input, normalised by the manifest convention, run through ONNX
//! Runtime, and the raw outputs are decoded by the model family's decoder. Candidates above the
//! score threshold go through NMS, are mapped back to frame pixels, boxes are clamped to the frame
//! (landmarks are not), and faces are ordered by (x1, y1, x2, y2) as in the seed.

pub mod nms;
pub mod retinaface_biubug6;
pub mod retinaface_insightface;
pub mod scrfd;

use std::ops::Range;
use std::path::Path;

use ort::session::{Session, SessionOutputs};
use ort::value::ValueType;

use crate::error::{Error, Result};
use crate::frames::{Frames, HostFrames};
use crate::gpu::params::Resize;
use crate::image::BgrImage;
use crate::models::{Family, ModelSpec};
use crate::preprocess::longer_side_scale;
use crate::runtime::binding::{run_in_place, BoundInput};
use crate::runtime::providers::{Placement, MAX_BATCH};
use crate::runtime::{open_session, SessionOptions};

/// One detected face in frame pixels. Landmarks: left eye, right eye, nose, left mouth corner,
/// right mouth corner, left/right as seen in the image.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    /// x1, y1, x2, y2.
    pub bbox: [f32; 4],
    pub score: f32,
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    /// The box clamped to a `width`×`height` frame (what the tables report).
    pub fn clamped_bbox(&self, width: usize, height: usize) -> [f32; 4] {
        let (w, h) = (width as f32, height as f32);
        let [x1, y1, x2, y2] = self.bbox;
        [
            x1.clamp(0.0, w),
            y1.clamp(0.0, h),
            x2.clamp(0.0, w),
            y2.clamp(0.0, h),
        ]
    }
}

/// One model output for one image: its shape without the batch dimension and its values.
pub struct RawOutput<'a> {
    pub shape: Vec<i64>,
    pub data: &'a [f32],
}

/// Decodes one image's raw outputs into candidate faces in detector-input pixels.
pub trait Decoder: Send + Sync {
    fn decode(
        &self,
        outputs: &[RawOutput],
        input_w: usize,
        input_h: usize,
        threshold: f32,
    ) -> Result<Vec<Face>>;
}

#[derive(Clone, Copy, Debug)]
pub struct DetectOptions {
    /// Minimum face score (seed: 0.8).
    pub threshold: f32,
    /// NMS IoU (seed: 0.4).
    pub nms_iou: f32,
    /// The frame's longer side is resized to this (seed: 640).
    pub max_side: usize,
    /// Faces whose shorter box side is below this many frame pixels are dropped (0 keeps all).
    pub min_face: f32,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            threshold: 0.8,
            nms_iou: 0.4,
            max_side: 640,
            min_face: 0.0,
        }
    }
}

/// Anything that finds faces in a batch of frames.
pub trait Detector: Send {
    fn name(&self) -> &str;
    /// Where the model runs.
    fn placement(&self) -> &Placement;
    /// Faces per frame, in the same order as `frames`.
    fn detect(&mut self, frames: &mut dyn Frames) -> Result<Vec<Vec<Face>>>;

    /// `detect` on images in host memory.
    fn detect_images(&mut self, frames: &[&BgrImage]) -> Result<Vec<Vec<Face>>> {
        self.detect(&mut HostFrames::new(frames))
    }
}

/// A detector running an ONNX model on ONNX Runtime.
pub struct OnnxDetector {
    spec: ModelSpec,
    session: Session,
    decoder: Box<dyn Decoder>,
    opts: DetectOptions,
    /// Whether the graph takes a batch dimension larger than one.
    batched: bool,
    placement: Placement,
}

impl OnnxDetector {
    pub fn open(
        spec: &ModelSpec,
        path: &Path,
        opts: DetectOptions,
        session_opts: SessionOptions,
    ) -> Result<Self> {
        let decoder: Box<dyn Decoder> = match spec.family {
            Family::RetinafaceBiubug6 => Box::new(retinaface_biubug6::Biubug6Decoder::new()),
            Family::Scrfd => Box::new(scrfd::ScrfdDecoder),
            Family::RetinafaceInsightface => {
                Box::new(retinaface_insightface::InsightfaceRetinaDecoder)
            }
            Family::WideResnet => {
                return Err(Error::model(
                    &spec.name,
                    path,
                    "is an age/gender model, not a detector",
                ));
            }
        };
        if let Some([w, h]) = spec.input.size {
            if opts.max_side > w.min(h) {
                return Err(Error::Invalid(format!(
                    "--max-side {} does not fit detector '{}' with its fixed {w}x{h} input; use --max-side {} or less",
                    opts.max_side,
                    spec.name,
                    w.min(h)
                )));
            }
        }
        let (session, placement) = open_session(spec, path, session_opts, opts.max_side)?;
        let batched = check_io(spec, path, &session)?;
        Ok(OnnxDetector {
            spec: spec.clone(),
            session,
            decoder,
            opts,
            batched,
            placement,
        })
    }

    /// The input canvas for a set of resized frames: the model's fixed size, or the largest
    /// resized frame rounded up to the model's multiple.
    fn canvas(&self, sizes: impl Iterator<Item = (usize, usize)>) -> (usize, usize) {
        if let Some([w, h]) = self.spec.input.size {
            return (w, h);
        }
        let m = self.spec.input.multiple;
        let (w, h) = sizes.fold((m, m), |(a, b), (w, h)| (a.max(w), b.max(h)));
        (w.div_ceil(m) * m, h.div_ceil(m) * m)
    }

    fn run_batch(
        &mut self,
        frames: &mut dyn Frames,
        range: Range<usize>,
    ) -> Result<Vec<Vec<Face>>> {
        let max_side = self.opts.max_side;
        let sizes: Vec<(usize, usize)> = range.clone().map(|i| frames.size(i)).collect();
        let (cw, ch) = self.canvas(sizes.iter().map(|&(w, h)| {
            let r = Resize::longer_side(w, h, max_side);
            (r.dst_w as usize, r.dst_h as usize)
        }));
        let input = frames.detector_input(range, max_side, (cw, ch), &self.spec.input)?;
        let candidates = self.infer(&input, (cw, ch))?;
        Ok(candidates
            .into_iter()
            .zip(sizes)
            .map(|(c, (w, h))| self.finish(c, longer_side_scale(w, h, max_side), (w, h)))
            .collect())
    }

    /// Candidate faces per frame, in detector pixels, for a batch already in the model's input
    /// layout on a `canvas` (host memory, or device memory on the GPU path).
    pub fn infer(
        &mut self,
        input: &BoundInput<'_>,
        (cw, ch): (usize, usize),
    ) -> Result<Vec<Vec<Face>>> {
        let n = input.batch();
        let (decoder, threshold) = (&self.decoder, self.opts.threshold);
        let names = &self.spec.outputs;
        let read = |results: &SessionOutputs<'_>| {
            let mut raw = Vec::with_capacity(names.len());
            for name in names {
                let (shape, data) = results[name.as_str()]
                    .try_extract_tensor::<f32>()
                    .map_err(|e| format!("output {name}: {e}"))?;
                raw.push((shape.to_vec(), data));
            }
            (0..n)
                .map(|i| {
                    let per_image: Vec<RawOutput> = raw
                        .iter()
                        .map(|(shape, data)| {
                            let len = data.len() / n;
                            let inner = if shape.first() == Some(&(n as i64)) && shape.len() > 2 {
                                shape[1..].to_vec()
                            } else {
                                shape.clone()
                            };
                            RawOutput {
                                shape: inner,
                                data: &data[i * len..(i + 1) * len],
                            }
                        })
                        .collect();
                    decoder
                        .decode(&per_image, cw, ch, threshold)
                        .map_err(|e| e.to_string())
                })
                .collect()
        };
        run_in_place(
            &mut self.session,
            &self.spec.name,
            (self.spec.input.name.as_str(), input),
            read,
        )
    }

    /// NMS in detector pixels, back to frame pixels, filter small faces, order. Boxes keep the
    /// detector's values (they may reach past the frame: the margin crop needs the true size);
    /// the tables clamp them.
    fn finish(&self, candidates: Vec<Face>, scale: f64, (w, h): (usize, usize)) -> Vec<Face> {
        let inv = (1.0 / scale) as f32;
        let mut faces: Vec<Face> = nms::nms(candidates, self.opts.nms_iou)
            .into_iter()
            .map(|mut f| {
                f.bbox = f.bbox.map(|v| v * inv);
                for p in &mut f.landmarks {
                    p[0] *= inv;
                    p[1] *= inv;
                }
                f
            })
            .filter(|f| {
                let [x1, y1, x2, y2] = f.clamped_bbox(w, h);
                (x2 - x1).min(y2 - y1) >= self.opts.min_face
            })
            .collect();
        sort_faces(&mut faces);
        faces
    }
}

/// Orders faces by (x1, y1, x2, y2), the research seed's order, which fixes face indices.
pub fn sort_faces(faces: &mut [Face]) {
    faces.sort_by(|a, b| {
        a.bbox
            .iter()
            .zip(b.bbox.iter())
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}

/// Checks the graph's input and outputs against the manifest; returns whether it is batched.
pub(crate) fn check_io(spec: &ModelSpec, path: &Path, session: &Session) -> Result<bool> {
    let bad = |m: String| Error::model(&spec.name, path, m);
    let input = session
        .inputs()
        .iter()
        .find(|i| i.name() == spec.input.name)
        .ok_or_else(|| {
            let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
            bad(format!(
                "has no input '{}' (inputs: {}); is this the right model file?",
                spec.input.name,
                names.join(", ")
            ))
        })?;
    let ValueType::Tensor { shape, .. } = input.dtype() else {
        return Err(bad("input is not a tensor".into()));
    };
    let dims: &[i64] = shape;
    let expected_hw = spec.input.size.map(|[w, h]| [h as i64, w as i64]);
    let ok = dims.len() == 4
        && (dims[1] == 3 || dims[1] < 0)
        && match expected_hw {
            Some(hw) => (dims[2] == hw[0] || dims[2] < 0) && (dims[3] == hw[1] || dims[3] < 0),
            None => true,
        };
    if !ok {
        return Err(bad(format!(
            "input '{}' has shape {dims:?}; the manifest expects [N, 3, {}]",
            spec.input.name,
            expected_hw
                .map(|[h, w]| format!("{h}, {w}"))
                .unwrap_or_else(|| "H, W".into())
        )));
    }
    for name in &spec.outputs {
        if !session.outputs().iter().any(|o| o.name() == name) {
            let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
            return Err(bad(format!(
                "has no output '{name}' (outputs: {})",
                names.join(", ")
            )));
        }
    }
    let outputs_batched = session.outputs().iter().all(|o| match o.dtype() {
        ValueType::Tensor { shape, .. } => shape.first().is_some_and(|d| *d < 0),
        _ => false,
    });
    Ok(dims[0] < 0 && outputs_batched)
}

impl Detector for OnnxDetector {
    fn placement(&self) -> &Placement {
        &self.placement
    }

    fn name(&self) -> &str {
        &self.spec.name
    }

    fn detect(&mut self, frames: &mut dyn Frames) -> Result<Vec<Vec<Face>>> {
        let step = if self.batched { MAX_BATCH } else { 1 };
        let mut out = Vec::with_capacity(frames.len());
        for start in (0..frames.len()).step_by(step) {
            let end = (start + step).min(frames.len());
            out.extend(self.run_batch(frames, start..end)?);
        }
        Ok(out)
    }
}
