//! The GPU back end of `frames::Frames`: a batch of decoded NV12 frames in GPU memory (copied out
//! of NVDEC's surfaces once, `DevicePlane::keep`) turned into the detector's input and the face
//! chips by our kernels where the frames are. No frame goes to the host: the detector reads its
//! input from device memory (`BoundInput::cuda`), and only the finished 224² chips come back
//! (they are written as JPEG and classified from there).
//!
//! The geometry (which frames, which resize, which canvas, which matrices) comes from the shared
//! code in `detect` and `analyze`; the pixel arithmetic is the kernels', whose CPU twins are the
//! CPU path's own functions. `emulated::EmulatedFrames` runs this same sequence with the kernels'
//! code compiled for the CPU, which is how the tests check it without a GPU.

use std::ops::Range;
use std::sync::Arc;

use cudarc::driver::result::memcpy_dtod_async;
use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut};

use super::device::Gpu;
use super::launch::{FaceTable, FrameBatch, FrameFormat};
use super::params::{Normalize, Nv12Layout, Resize};
use super::pool::{DeviceAllocator, Pool, Pooled};
use crate::align::similarity::invert;
use crate::align::{Affine, CHIP_SIZE};
use crate::error::{Error, Result};
use crate::frames::Frames;
use crate::image::BgrImage;
use crate::models::InputSpec;
use crate::runtime::binding::BoundInput;

/// One GPU pipeline's device resources: the GPU with our kernels, a stream per model (the
/// detector's also runs the kernels, so they and its inference stay in order), a stream that
/// copies decoded frames out of NVDEC's surfaces, and the pools the buffers come from.
pub struct DevicePlane {
    gpu: Gpu,
    detect: Arc<CudaStream>,
    /// The classifiers' streams, kept alive as long as their sessions.
    models: Vec<Arc<CudaStream>>,
    copy: Arc<CudaStream>,
    frames: Arc<Pool<DeviceAllocator<u8>>>,
    inputs: Arc<Pool<DeviceAllocator<f32>>>,
    chips: Arc<Pool<DeviceAllocator<u8>>>,
}

/// A sampled frame in GPU memory, for the GPU path's kernels: an NV12 picture of `layout`. A
/// copy in a pooled buffer of ours, not FFmpeg's surface: FFmpeg 5.1 hands out NVDEC's own
/// decode surfaces, a few dozen at most, and frames held by the pipeline's queues would leave
/// the decoder none.
pub struct DeviceFrame {
    buffer: Pooled<DeviceAllocator<u8>>,
    stream: Arc<CudaStream>,
    layout: Nv12Layout,
}

impl std::fmt::Debug for DeviceFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceFrame({:?})", self.layout)
    }
}

impl DeviceFrame {
    /// (width, height) in the pixels faces are reported in.
    pub fn size(&self) -> (usize, usize) {
        (self.layout.width, self.layout.height)
    }

    /// Device addresses of the luma and chroma planes.
    fn planes(&self) -> (u64, u64) {
        let (ptr, _read) = self.buffer.device_ptr(&self.stream);
        (ptr, ptr + self.layout.luma_len() as u64)
    }

    /// The frame as BGR in host memory, converted as the kernels convert it
    /// (`gpu::twin::nv12_to_bgr`), for the few places that need host pixels.
    pub fn to_host(&self) -> Result<BgrImage> {
        let l = self.layout;
        let nv12 = self
            .stream
            .clone_dtoh(&self.buffer.slice(..l.luma_len() + l.chroma_len()))
            .map_err(gpu_error("copying a frame to the host"))?;
        self.stream
            .synchronize()
            .map_err(gpu_error("copying a frame to the host"))?;
        let (luma, chroma) = nv12.split_at(l.luma_len());
        Ok(super::twin::nv12_to_bgr(
            luma, chroma, l.width, l.height, l.pitch, &l.colour,
        ))
    }
}

impl DevicePlane {
    /// Opens GPU `device` (compiling the kernels on first use).
    pub fn open(device: usize) -> Result<DevicePlane> {
        let gpu = Gpu::open(device)?;
        let detect = gpu.new_stream()?;
        let copy = gpu.new_stream()?;
        Ok(DevicePlane {
            inputs: Pool::new(DeviceAllocator::new(detect.clone())),
            chips: Pool::new(DeviceAllocator::new(detect.clone())),
            frames: Pool::new(DeviceAllocator::new(copy.clone())),
            copy,
            detect,
            models: Vec::new(),
            gpu,
        })
    }

    /// Copies a decoded NV12 picture of `layout` (`planes`: luma and chroma addresses of
    /// FFmpeg's surface, `nvdec::nv12_surface`) into a buffer of ours, finished before returning
    /// so the surface can go back to the decoder at once.
    pub fn keep(&self, planes: (u64, u64), layout: Nv12Layout) -> Result<DeviceFrame> {
        let (luma, chroma) = (layout.luma_len(), layout.chroma_len());
        let mut buffer = self.frames.take(luma + chroma)?;
        let ctx = self.gpu.context();
        ctx.bind_to_thread()
            .map_err(gpu_error("using the GPU from the decoder"))?;
        // FFmpeg's NVDEC maps its output on the context's legacy default stream, which our
        // streams (non-blocking) do not wait for.
        ctx.default_stream()
            .synchronize()
            .map_err(gpu_error("waiting for the decoder"))?;
        {
            let (dst, _written) = buffer.device_ptr_mut(&self.copy);
            // SAFETY: the source planes hold `pitch` × rows bytes of a decoded picture in this
            // GPU's primary context (FFmpeg's frame is alive while this runs); the destination
            // holds both.
            unsafe {
                let s = self.copy.cu_stream();
                memcpy_dtod_async(dst, planes.0, luma, s)
                    .and_then(|()| memcpy_dtod_async(dst + luma as u64, planes.1, chroma, s))
            }
            .map_err(gpu_error("copying a decoded frame"))?;
        }
        self.copy
            .synchronize()
            .map_err(gpu_error("copying a decoded frame"))?;
        Ok(DeviceFrame {
            buffer,
            stream: self.copy.clone(),
            layout,
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

    /// A batch of frames kept on this GPU (`keep`, finished there), ready for the kernels.
    pub fn frames<'a>(&'a self, frames: Vec<&'a DeviceFrame>) -> DeviceFrames<'a> {
        DeviceFrames {
            plane: self,
            frames,
            input: None,
        }
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

/// Consecutive frames of `range` with the same layout (`layout(i)`: frame i's): one kernel
/// launch each.
pub(crate) fn runs(range: Range<usize>, layout: impl Fn(usize) -> Nv12Layout) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for i in range {
        match runs.last_mut() {
            Some(r) if layout(r.start) == layout(i) => r.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    runs
}

/// Each run of a batch's detector input and where its values go in the input of frames from
/// `start` on (`per` values a frame).
pub(crate) fn input_slices(
    runs: Vec<Range<usize>>,
    start: usize,
    per: usize,
) -> impl Iterator<Item = (Range<usize>, Range<usize>)> {
    runs.into_iter().map(move |run| {
        let values = (run.start - start) * per..(run.end - start) * per;
        (run, values)
    })
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
        runs(range, |i| self.frames[i].layout)
    }

    /// The kernels' view of frames `run` (all of one layout).
    fn batch(&self, run: Range<usize>) -> Result<FrameBatch<'static>> {
        let layout = self.frames[run.start].layout;
        let planes: Vec<(u64, u64)> = self.frames[run].iter().map(|f| f.planes()).collect();
        // SAFETY: every frame holds an NV12 picture of this layout in this GPU's memory, in a
        // buffer its `DeviceFrame` keeps for the life of `self`, written (and finished) by
        // `DevicePlane::keep`.
        unsafe {
            FrameBatch::from_raw(
                &self.plane.detect,
                FrameFormat::Nv12(layout.colour),
                layout.dims(),
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
        self.frames[i].size()
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
        for (run, values) in input_slices(self.runs(range.clone()), range.start, per) {
            let batch = self.batch(run)?;
            let r = Resize::longer_side(batch.width, batch.height, max_side);
            let mut out = input.slice_mut(values);
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
