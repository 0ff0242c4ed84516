//! A batch of sampled frames where they live — host memory on the CPU path, GPU memory (NVDEC's
//! NV12 surfaces) on the GPU path — and the two things the pipeline does with their pixels: the
//! detector's input and the aligned face chips. Detection and alignment are written once against
//! this trait (`detect::OnnxDetector::detect`, `analyze::FaceFinder::find`), so both back ends
//! share their batching, geometry and ordering; only the pixel work differs: `HostFrames` here
//! (`preprocess`, `align::warp`), `gpu::frames::DeviceFrames` (our CUDA kernels, whose CPU twins
//! are those same functions).

use std::ops::Range;

use crate::align::{Affine, CHIP_SIZE};
use crate::error::{Error, Result};
use crate::image::BgrImage;
use crate::models::InputSpec;
use crate::preprocess::{fill_nchw, resize_longer_side};
use crate::runtime::binding::BoundInput;

pub trait Frames {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (width, height) of frame `i`, in the pixels faces are reported in.
    fn size(&self, i: usize) -> (usize, usize);

    /// The detector input of frames `range`: each resized so its longer side is `max_side`
    /// (`gpu::params::Resize::longer_side`), top-left on a `canvas` (width, height) padded with
    /// raw 0, normalised by `spec`; NCHW float32, bound where it was written.
    fn detector_input(
        &mut self,
        range: Range<usize>,
        max_side: usize,
        canvas: (usize, usize),
        spec: &InputSpec,
    ) -> Result<BoundInput<'_>>;

    /// One `CHIP_SIZE`² BGR chip per face, in order: (frame index, frame → chip matrix), cut as
    /// `align::warp::warp_affine` does.
    fn chips(&mut self, faces: &[(usize, Affine)]) -> Result<Vec<BgrImage>>;

    /// Frame `i` in host memory, where it is there (margin crops need it).
    fn host(&self, i: usize) -> Option<&BgrImage>;
}

/// Frames in host memory: the CPU path.
pub struct HostFrames<'a> {
    frames: &'a [&'a BgrImage],
    input: Vec<f32>,
}

impl<'a> HostFrames<'a> {
    pub fn new(frames: &'a [&'a BgrImage]) -> HostFrames<'a> {
        HostFrames {
            frames,
            input: Vec::new(),
        }
    }
}

impl Frames for HostFrames<'_> {
    fn len(&self) -> usize {
        self.frames.len()
    }

    fn size(&self, i: usize) -> (usize, usize) {
        (self.frames[i].width, self.frames[i].height)
    }

    fn detector_input(
        &mut self,
        range: Range<usize>,
        max_side: usize,
        (cw, ch): (usize, usize),
        spec: &InputSpec,
    ) -> Result<BoundInput<'_>> {
        let per = 3 * cw * ch;
        let n = range.len();
        self.input.clear();
        self.input.resize(per * n, 0.0);
        for (frame, out) in self.frames[range]
            .iter()
            .zip(self.input.chunks_exact_mut(per))
        {
            let resized = resize_longer_side(frame, max_side);
            fill_nchw(&resized.image, spec, cw, ch, out);
        }
        BoundInput::host(&mut self.input, [n, 3, ch, cw])
    }

    fn chips(&mut self, faces: &[(usize, Affine)]) -> Result<Vec<BgrImage>> {
        faces
            .iter()
            .map(|(i, m)| {
                let frame = self.frames.get(*i).ok_or_else(|| {
                    Error::Invalid(format!(
                        "face of frame {i} in a batch of {}",
                        self.frames.len()
                    ))
                })?;
                Ok(crate::align::warp::warp_affine(
                    frame, m, CHIP_SIZE, CHIP_SIZE,
                ))
            })
            .collect()
    }

    fn host(&self, i: usize) -> Option<&BgrImage> {
        self.frames.get(i).copied()
    }
}
