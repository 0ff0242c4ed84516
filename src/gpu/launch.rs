//! Typed launches of our kernels: each takes device buffers and the parameter structs of
//! `params`, checks every size against the buffers (a wrong size is an error, never an
//! out-of-bounds access) and queues the kernel on the given stream. The launch geometry here is
//! the one kernels/host/emulate.cpp reproduces on the CPU.

use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DeviceRepr,
    LaunchConfig, PushKernelArg, SyncOnDrop,
};

use super::params::{InputElement, Normalize, Resize, YuvToBgr};
use crate::error::{Error, Result};

// SAFETY: #[repr(C)] structs of plain numbers, laid out as their counterparts in facetv.cuh.
unsafe impl DeviceRepr for Resize {}
unsafe impl DeviceRepr for Normalize {}
unsafe impl DeviceRepr for YuvToBgr {}

/// Threads per block side for the image kernels (16 × 16), and per block for candidates.
const TILE: u32 = 16;
const CANDIDATE_BLOCK: u32 = 256;

pub struct Kernels {
    bgr_to_model_input: [CudaFunction; 2],
    nv12_to_model_input: [CudaFunction; 2],
    compact_candidates: CudaFunction,
    warp_faces_bgr: CudaFunction,
    warp_faces_nv12: CudaFunction,
}

/// How a batch's frames are stored.
#[derive(Debug, Clone, Copy)]
pub enum FrameFormat {
    /// Packed BGR, 3 bytes per pixel.
    Bgr,
    /// NVDEC's NV12: a Y plane and an interleaved UV plane at half resolution, one pitch for both,
    /// converted with these coefficients.
    Nv12(YuvToBgr),
}

/// Frames of one size in device memory, reached through a table of device pointers (one per
/// frame, or per plane for NV12), so frames are used where they are without copies.
///
/// Frames in buffers we own (`from_slices`) are tracked like kernel arguments: every launch that
/// reads them waits for their last write and records its read, so the buffers are not freed or
/// reused while a kernel on any stream still reads them. Frames we do not own (NVDEC surfaces,
/// `from_raw`) are the caller's to keep alive and ordered.
pub struct FrameBatch<'a> {
    pub format: FrameFormat,
    pub width: usize,
    pub height: usize,
    pub pitch: usize,
    count: usize,
    /// Frame (or luma) pointers, then for NV12 the chroma pointers.
    table: CudaSlice<u64>,
    planes: Vec<&'a CudaSlice<u8>>,
}

impl<'a> FrameBatch<'a> {
    /// Frames in our own buffers: `planes` holds one buffer per frame (BGR) or the luma and
    /// chroma buffers of each frame in turn (NV12).
    pub fn from_slices(
        stream: &Arc<CudaStream>,
        format: FrameFormat,
        dims: (usize, usize, usize),
        planes: &'a [CudaSlice<u8>],
    ) -> Result<FrameBatch<'a>> {
        let per_frame = match format {
            FrameFormat::Bgr => 1,
            FrameFormat::Nv12(_) => 2,
        };
        let short = planes
            .iter()
            .enumerate()
            .any(|(i, p)| p.len() < plane_len(format, dims, i % per_frame));
        if planes.len() % per_frame != 0 || short {
            return Err(Error::Gpu(format!(
                "{} frame buffers for {per_frame} plane(s) per frame, or one smaller than a frame of {}×{} with pitch {}",
                planes.len(),
                dims.0,
                dims.1,
                dims.2
            )));
        }
        let pointers: Vec<(u64, u64)> = planes
            .chunks(per_frame)
            .map(|f| {
                let luma = f[0].device_ptr(stream).0;
                let chroma = f.get(1).map_or(0, |c| c.device_ptr(stream).0);
                (luma, chroma)
            })
            .collect();
        let mut batch = Self::build(stream, format, dims, &pointers)?;
        batch.planes = planes.iter().collect();
        Ok(batch)
    }

    /// Frames in memory we do not own, e.g. NVDEC surfaces: `planes[i]` is frame i's pointer
    /// (BGR) or its (luma, chroma) pointers (NV12).
    ///
    /// # Safety
    /// Every pointer must hold a frame of `dims` (width, height, pitch) in this GPU's memory, stay
    /// allocated and unmodified until the kernels that read it have run (order later writers after
    /// them with an event), and be written before those kernels start.
    pub unsafe fn from_raw(
        stream: &Arc<CudaStream>,
        format: FrameFormat,
        dims: (usize, usize, usize),
        planes: &[(u64, u64)],
    ) -> Result<FrameBatch<'static>> {
        FrameBatch::build(stream, format, dims, planes)
    }

    fn build(
        stream: &Arc<CudaStream>,
        format: FrameFormat,
        (width, height, pitch): (usize, usize, usize),
        planes: &[(u64, u64)],
    ) -> Result<FrameBatch<'a>> {
        let min_pitch = match format {
            FrameFormat::Bgr => width * 3,
            FrameFormat::Nv12(_) => width.div_ceil(2) * 2,
        };
        if planes.is_empty() || width == 0 || height == 0 || pitch < min_pitch {
            return Err(Error::Gpu(format!(
                "a frame batch needs frames and a pitch of at least {min_pitch} bytes ({} frames of {width}×{height}, pitch {pitch})",
                planes.len()
            )));
        }
        let mut table: Vec<u64> = planes.iter().map(|p| p.0).collect();
        if let FrameFormat::Nv12(_) = format {
            table.extend(planes.iter().map(|p| p.1));
        }
        let table = stream
            .clone_htod(&table)
            .map_err(gpu("uploading frame pointers"))?;
        Ok(FrameBatch {
            format,
            width,
            height,
            pitch,
            count: planes.len(),
            table,
            planes: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn luma(&self) -> CudaView<'_, u64> {
        self.table.slice(..self.count)
    }

    fn chroma(&self) -> CudaView<'_, u64> {
        self.table.slice(self.count..)
    }

    /// For a launch on `stream`: waits for the tracked frames' last writes now and records their
    /// read when the returned guards are dropped (after the launch is queued).
    fn track<'s>(&'s self, stream: &'s CudaStream) -> Vec<SyncOnDrop<'s>> {
        self.planes.iter().map(|p| p.device_ptr(stream).1).collect()
    }
}

/// Bytes a plane of `format` at `dims` needs (plane 0: BGR image or luma; plane 1: chroma).
fn plane_len(
    format: FrameFormat,
    (_, height, pitch): (usize, usize, usize),
    plane: usize,
) -> usize {
    match (format, plane) {
        (FrameFormat::Nv12(_), 1) => pitch * height.div_ceil(2),
        _ => pitch * height,
    }
}

/// Faces to warp, uploaded: which frame of the batch each comes from (checked against the batch:
/// an index past the pointer table would read arbitrary memory) and its chip → frame matrix.
pub struct FaceTable {
    count: usize,
    /// The size of the batch the frame indices were checked against.
    batch: usize,
    face_frame: CudaSlice<i32>,
    chip_to_frame: CudaSlice<f64>,
}

impl FaceTable {
    /// `faces[j]`: (frame index in `frames`, 2×3 chip → frame matrix).
    pub fn upload(
        stream: &Arc<CudaStream>,
        frames: &FrameBatch<'_>,
        faces: &[(usize, [f64; 6])],
    ) -> Result<FaceTable> {
        let mut index = Vec::with_capacity(faces.len());
        for (f, _) in faces {
            if *f >= frames.len() {
                return Err(Error::Gpu(format!(
                    "face refers to frame {f} of a batch of {}",
                    frames.len()
                )));
            }
            index.push(*f as i32);
        }
        let mut matrices: Vec<f64> = faces.iter().flat_map(|(_, m)| *m).collect();
        // No faces is a valid no-op (`warp_faces` launches nothing); the buffers still need an
        // element to exist.
        index.resize(index.len().max(1), 0);
        matrices.resize(matrices.len().max(6), 0.0);
        let face_frame = stream
            .clone_htod(&index)
            .map_err(gpu("uploading the face table"))?;
        let chip_to_frame = stream
            .clone_htod(&matrices)
            .map_err(gpu("uploading the face table"))?;
        Ok(FaceTable {
            count: faces.len(),
            batch: frames.len(),
            face_frame,
            chip_to_frame,
        })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

fn gpu(what: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    move |e| Error::Gpu(format!("GPU: {what}: {}", super::driver_error_text(&e)))
}

fn check_len(what: &str, have: usize, need: usize) -> Result<()> {
    if have < need {
        return Err(Error::Gpu(format!(
            "{what}: buffer of {have} elements, {need} needed"
        )));
    }
    Ok(())
}

fn grid(x: usize, y: usize, z: usize, block: (u32, u32)) -> Result<LaunchConfig> {
    let cover = |n: usize, b: u32| (n as u64).div_ceil(b as u64);
    let (gx, gy) = (cover(x, block.0), cover(y, block.1));
    // CUDA's limits: 2^31 - 1 blocks along x, 65535 along y and z.
    if gx >= 1 << 31 || gy > 65_535 || z > 65_535 || x == 0 || y == 0 || z == 0 {
        return Err(Error::Gpu(format!(
            "launch of {x}×{y}×{z} is outside CUDA's grid limits"
        )));
    }
    Ok(LaunchConfig {
        grid_dim: (gx as u32, gy as u32, z as u32),
        block_dim: (block.0, block.1, 1),
        shared_mem_bytes: 0,
    })
}

impl Kernels {
    pub fn load(ctx: &Arc<CudaContext>, cubin: Vec<u8>) -> Result<Kernels> {
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(cubin))
            .map_err(gpu("loading the compiled kernels"))?;
        let f = |name: &str| {
            module.load_function(name).map_err(|e| {
                Error::Gpu(format!(
                    "GPU kernel {name}: {}",
                    super::driver_error_text(&e)
                ))
            })
        };
        Ok(Kernels {
            bgr_to_model_input: [f("bgr_to_model_input")?, f("bgr_to_model_input_f16")?],
            nv12_to_model_input: [f("nv12_to_model_input")?, f("nv12_to_model_input_f16")?],
            compact_candidates: f("compact_candidates")?,
            warp_faces_bgr: f("warp_faces_bgr")?,
            warp_faces_nv12: f("warp_faces_nv12")?,
        })
    }

    /// Frames → NCHW model input of `canvas` (w, h) per frame: resize `r` (from the frames' size),
    /// top-left, normalised by `n`; f32 or f16 (`u16` bits) by `T`.
    pub fn model_input<T: InputElement + DeviceRepr>(
        &self,
        stream: &Arc<CudaStream>,
        frames: &FrameBatch<'_>,
        r: Resize,
        canvas: (usize, usize),
        n: Normalize,
        out: &mut CudaViewMut<'_, T>,
    ) -> Result<()> {
        if (r.src_w as usize, r.src_h as usize) != (frames.width, frames.height)
            || r.dst_w as usize > canvas.0
            || r.dst_h as usize > canvas.1
        {
            return Err(Error::Gpu(format!(
                "model input: resize {r:?} does not fit frames of {}×{} and canvas {canvas:?}",
                frames.width, frames.height
            )));
        }
        check_len(
            "model input",
            out.len(),
            frames.len() * 3 * canvas.0 * canvas.1,
        )?;
        let cfg = grid(canvas.0, canvas.1, frames.len(), (TILE, TILE))?;
        let tracked = frames.track(stream);
        let (pitch, cw, ch) = (frames.pitch as i32, canvas.0 as i32, canvas.1 as i32);
        let luma = frames.luma();
        let chroma = frames.chroma();
        let launched = match frames.format {
            FrameFormat::Bgr => {
                let mut b = stream.launch_builder(&self.bgr_to_model_input[usize::from(T::HALF)]);
                b.arg(&luma)
                    .arg(&pitch)
                    .arg(&r)
                    .arg(&cw)
                    .arg(&ch)
                    .arg(&n)
                    .arg(out);
                // SAFETY: argument types and order are the kernel's; every buffer is sized for
                // the grid (checked above).
                unsafe { b.launch(cfg) }
            }
            FrameFormat::Nv12(k) => {
                let mut b = stream.launch_builder(&self.nv12_to_model_input[usize::from(T::HALF)]);
                b.arg(&luma)
                    .arg(&chroma)
                    .arg(&pitch)
                    .arg(&k)
                    .arg(&r)
                    .arg(&cw)
                    .arg(&ch)
                    .arg(&n)
                    .arg(out);
                // SAFETY: as above.
                unsafe { b.launch(cfg) }
            }
        };
        drop(tracked);
        launched
            .map(drop)
            .map_err(gpu("launching the model-input kernel"))
    }

    /// RetinaFace outputs of `frames` frames (`loc` 4, `conf` 2, `landmarks` 10 floats per prior)
    /// → per frame, the count of priors scoring ≥ `threshold` and up to `capacity` 16-float rows
    /// (prior, score, box, landmarks) in arbitrary order. `counts` is zeroed here.
    #[allow(clippy::too_many_arguments)]
    pub fn compact_candidates(
        &self,
        stream: &Arc<CudaStream>,
        (loc, conf, landmarks): (&CudaView<'_, f32>, &CudaView<'_, f32>, &CudaView<'_, f32>),
        frames: usize,
        threshold: f32,
        capacity: usize,
        counts: &mut CudaViewMut<'_, i32>,
        rows: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        if frames == 0 {
            return Ok(());
        }
        let priors = conf.len() / 2 / frames;
        check_len("candidate scores", conf.len(), frames * priors * 2)?;
        check_len("candidate boxes", loc.len(), frames * priors * 4)?;
        check_len("candidate landmarks", landmarks.len(), frames * priors * 10)?;
        check_len("candidate counts", counts.len(), frames)?;
        check_len("candidate rows", rows.len(), frames * capacity * 16)?;
        stream
            .memset_zeros(counts)
            .map_err(gpu("clearing candidate counts"))?;
        let cfg = grid(priors, frames, 1, (CANDIDATE_BLOCK, 1))?;
        let (p, cap) = (priors as i32, capacity as i32);
        let mut b = stream.launch_builder(&self.compact_candidates);
        b.arg(loc)
            .arg(conf)
            .arg(landmarks)
            .arg(&p)
            .arg(&threshold)
            .arg(&cap)
            .arg(counts)
            .arg(rows);
        // SAFETY: argument types and order are the kernel's; sizes checked above.
        unsafe { b.launch(cfg) }
            .map(drop)
            .map_err(gpu("launching the candidate kernel"))
    }

    /// One `size`² BGR chip per face of `faces`: face j is warped from its frame with its chip →
    /// frame matrix; black outside the frame. No faces: nothing is launched.
    pub fn warp_faces(
        &self,
        stream: &Arc<CudaStream>,
        frames: &FrameBatch<'_>,
        faces: &FaceTable,
        size: usize,
        chips: &mut CudaViewMut<'_, u8>,
    ) -> Result<()> {
        if faces.is_empty() {
            return Ok(());
        }
        if faces.batch != frames.len() {
            return Err(Error::Gpu(format!(
                "a face table for a batch of {} frames used with a batch of {}",
                faces.batch,
                frames.len()
            )));
        }
        let (face_frame, chip_to_frame) = (&faces.face_frame, &faces.chip_to_frame);
        check_len("chips", chips.len(), faces.len() * size * size * 3)?;
        let cfg = grid(size, size, faces.len(), (TILE, TILE))?;
        let tracked = frames.track(stream);
        let (pitch, w, h, s) = (
            frames.pitch as i32,
            frames.width as i32,
            frames.height as i32,
            size as i32,
        );
        let luma = frames.luma();
        let chroma = frames.chroma();
        let launched = match frames.format {
            FrameFormat::Bgr => {
                let mut b = stream.launch_builder(&self.warp_faces_bgr);
                b.arg(&luma)
                    .arg(&pitch)
                    .arg(&w)
                    .arg(&h)
                    .arg(face_frame)
                    .arg(chip_to_frame)
                    .arg(&s)
                    .arg(chips);
                // SAFETY: argument types and order are the kernel's; sizes and frame indices
                // checked above.
                unsafe { b.launch(cfg) }
            }
            FrameFormat::Nv12(k) => {
                let mut b = stream.launch_builder(&self.warp_faces_nv12);
                b.arg(&luma)
                    .arg(&chroma)
                    .arg(&pitch)
                    .arg(&k)
                    .arg(&w)
                    .arg(&h)
                    .arg(face_frame)
                    .arg(chip_to_frame)
                    .arg(&s)
                    .arg(chips);
                // SAFETY: as above.
                unsafe { b.launch(cfg) }
            }
        };
        drop(tracked);
        launched
            .map(drop)
            .map_err(gpu("launching the alignment kernel"))
    }
}
