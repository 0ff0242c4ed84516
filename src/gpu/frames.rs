//! The GPU back end of `frames::Frames`: a batch of NVDEC surfaces (NV12, in the GPU's primary
//! context) turned into the detector's input and the face chips by our kernels where the frames
//! are. Nothing of a frame is copied: the detector reads its input from device memory
//! (`BoundInput::cuda`), and only the finished 224² chips come back to the host (they are
//! written as JPEG and classified from there).
//!
//! The geometry (which frames, which resize, which canvas, which matrices) comes from the shared
//! code in `detect` and `analyze`; the pixel arithmetic is the kernels', whose CPU twins are the
//! CPU path's own functions. `emulated::EmulatedFrames` runs this same sequence with the kernels'
//! code compiled for the CPU, which is how the tests check it without a GPU.

use std::ops::Range;
use std::sync::Arc;

use cudarc::driver::{CudaStream, DevicePtr};

use super::device::Gpu;
use super::launch::{FaceTable, FrameBatch, FrameFormat};
use super::params::{Normalize, Resize};
use super::pool::{DeviceAllocator, Pool, Pooled};
use crate::align::similarity::invert;
use crate::align::{Affine, CHIP_SIZE};
use crate::decode::nvdec::DeviceFrame;
use crate::error::{Error, Result};
use crate::frames::Frames;
use crate::image::BgrImage;
use crate::models::InputSpec;
use crate::runtime::binding::BoundInput;

/// One GPU pipeline's device resources: the GPU with our kernels, a stream per model (the
/// detector's also runs the kernels, so they and its inference stay in order), and the pools
/// the batches' buffers come from.
pub struct DevicePlane {
    gpu: Gpu,
    detect: Arc<CudaStream>,
    /// The classifiers' streams, kept alive as long as their sessions.
    models: Vec<Arc<CudaStream>>,
    inputs: Arc<Pool<DeviceAllocator<f32>>>,
    chips: Arc<Pool<DeviceAllocator<u8>>>,
}

impl DevicePlane {
    /// Opens GPU `device` (compiling the kernels on first use).
    pub fn open(device: usize) -> Result<DevicePlane> {
        let gpu = Gpu::open(device)?;
        let detect = gpu.new_stream()?;
        Ok(DevicePlane {
            inputs: Pool::new(DeviceAllocator::new(detect.clone())),
            chips: Pool::new(DeviceAllocator::new(detect.clone())),
            detect,
            models: Vec::new(),
            gpu,
        })
    }

    pub fn device(&self) -> usize {
        self.gpu.ordinal
    }

    /// The detector's stream as ONNX Runtime takes it (`user_compute_stream`).
    pub fn detector_stream(&self) -> usize {
        self.detect.cu_stream() as usize
    }

    /// A new stream for another model's session, kept here as long as the plane.
    pub fn model_stream(&mut self) -> Result<usize> {
        let stream = self.gpu.new_stream()?;
        let raw = stream.cu_stream() as usize;
        self.models.push(stream);
        Ok(raw)
    }

    /// A batch of decoded frames of this GPU, ready for the kernels.
    pub fn frames<'a>(&'a self, frames: Vec<&'a DeviceFrame>) -> Result<DeviceFrames<'a>> {
        // FFmpeg copies each decoded picture into its frame on the context's legacy default
        // stream, which our streams (non-blocking) do not wait for: wait for it here.
        self.gpu
            .context()
            .default_stream()
            .synchronize()
            .map_err(gpu_error("waiting for the decoder's copies"))?;
        Ok(DeviceFrames {
            plane: self,
            frames,
            input: None,
        })
    }
}

fn gpu_error(what: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    move |e| Error::Gpu(format!("GPU: {what}: {}", super::driver_error_text(&e)))
}

/// Frames of one batch on the GPU (see the module comment).
pub struct DeviceFrames<'a> {
    plane: &'a DevicePlane,
    frames: Vec<&'a DeviceFrame>,
    /// The last detector input, kept until the next one (ONNX Runtime reads it in place).
    input: Option<Pooled<DeviceAllocator<f32>>>,
}

/// Consecutive frames of `range` with the same `key` (geometry, colour): one kernel launch each.
pub(crate) fn runs<K: PartialEq>(
    range: Range<usize>,
    key: impl Fn(usize) -> K,
) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for i in range {
        match runs.last_mut() {
            Some(r) if key(r.start) == key(i) => r.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    runs
}

/// A run of frames and its faces: (frame index within the run, chip → frame matrix).
pub(crate) type RunFaces = (Range<usize>, Vec<(usize, [f64; 6])>);

/// The faces of each run, as the warp kernel takes them: frame index within the run and the chip
/// → frame matrix. Faces must come in frame order (as `FaceFinder::find` lists them), so the
/// chips, cut run after run, come out in the faces' order.
pub(crate) fn faces_per_run(
    runs: &[Range<usize>],
    faces: &[(usize, Affine)],
) -> Result<Vec<RunFaces>> {
    let frames = runs.last().map_or(0, |r| r.end);
    if faces.windows(2).any(|w| w[0].0 > w[1].0) || faces.iter().any(|(i, _)| *i >= frames) {
        return Err(Error::Invalid(format!(
            "faces must be listed in frame order, of frames of the batch (of {frames})"
        )));
    }
    Ok(runs
        .iter()
        .map(|run| {
            let ours = faces
                .iter()
                .filter(|(i, _)| run.contains(i))
                .map(|(i, m)| (i - run.start, invert(m)))
                .collect();
            (run.clone(), ours)
        })
        .collect())
}

impl DeviceFrames<'_> {
    fn runs(&self, range: Range<usize>) -> Vec<Range<usize>> {
        let f = &self.frames;
        runs(range, |i| {
            (f[i].width, f[i].height, f[i].pitch, f[i].colour)
        })
    }

    /// The kernels' view of frames `run` (all of one geometry).
    fn batch(&self, run: Range<usize>) -> Result<FrameBatch<'static>> {
        let first = self.frames[run.start];
        let planes: Vec<(u64, u64)> = self.frames[run].iter().map(|f| f.planes()).collect();
        // SAFETY: every frame holds an NV12 picture of this geometry in this GPU's memory (the
        // primary context FFmpeg decodes in), kept by its `DeviceFrame` reference for the life
        // of `self`; the decoder's writes finished before `frames` returned.
        unsafe {
            FrameBatch::from_raw(
                &self.plane.detect,
                FrameFormat::Nv12(first.colour),
                (first.width, first.height, first.pitch),
                &planes,
            )
        }
    }
}

impl Frames for DeviceFrames<'_> {
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
        canvas: (usize, usize),
        spec: &InputSpec,
    ) -> Result<BoundInput<'_>> {
        let plane = self.plane;
        let stream = &plane.detect;
        let per = 3 * canvas.0 * canvas.1;
        let mut input = plane.inputs.take(per * range.len())?;
        let start = range.start;
        for run in self.runs(range.clone()) {
            let batch = self.batch(run.clone())?;
            let r = Resize::longer_side(batch.width, batch.height, max_side);
            let mut out = input.slice_mut((run.start - start) * per..(run.end - start) * per);
            plane.gpu.kernels.model_input::<f32>(
                stream,
                &batch,
                r,
                canvas,
                Normalize::from(spec),
                &mut out,
            )?;
        }
        // ONNX Runtime runs the detector on this stream when its provider takes it; waiting here
        // keeps the order whichever stream it uses.
        stream
            .synchronize()
            .map_err(gpu_error("preparing the detector input"))?;
        let ptr = {
            let (ptr, _read) = input.device_ptr(stream);
            ptr
        };
        self.input = Some(input);
        let shape = [range.len(), 3, canvas.1, canvas.0];
        // SAFETY: `ptr` holds the batch's input, written above and finished (synchronised); the
        // buffer stays in `self.input` until the next call or the end of the batch, after the
        // run that reads it.
        Ok(unsafe { BoundInput::cuda(ptr, plane.device() as i32, shape) })
    }

    fn chips(&mut self, faces: &[(usize, Affine)]) -> Result<Vec<BgrImage>> {
        let stream = &self.plane.detect;
        let chip_len = CHIP_SIZE * CHIP_SIZE * 3;
        let mut chips = Vec::with_capacity(faces.len());
        for (run, ours) in faces_per_run(&self.runs(0..self.frames.len()), faces)? {
            if ours.is_empty() {
                continue;
            }
            let batch = self.batch(run)?;
            let table = FaceTable::upload(stream, &batch, &ours)?;
            let mut out = self.plane.chips.take(ours.len() * chip_len)?;
            let mut view = out.slice_mut(..ours.len() * chip_len);
            self.plane
                .gpu
                .kernels
                .warp_faces(stream, &batch, &table, CHIP_SIZE, &mut view)?;
            let host = stream
                .clone_dtoh(&out.slice(..ours.len() * chip_len))
                .map_err(gpu_error("copying face chips to the host"))?;
            stream
                .synchronize()
                .map_err(gpu_error("copying face chips to the host"))?;
            for bytes in host.chunks_exact(chip_len) {
                chips.push(BgrImage::from_raw(CHIP_SIZE, CHIP_SIZE, bytes.to_vec())?);
            }
        }
        Ok(chips)
    }

    fn host(&self, _: usize) -> Option<&BgrImage> {
        None
    }
}
