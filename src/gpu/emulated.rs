//! The kernels' own code, compiled for the CPU by build.rs (kernels/host/emulate.cpp), checked
//! here against the CPU twins on every test run: the GPU runs the same source, so what differs
//! there is only the hardware's arithmetic, which `scripts/device-check.sh` measures.

use super::params::{InputElement, Normalize, Nv12Layout, Resize, YuvToBgr};
use crate::image::BgrImage;

extern "C" {
    fn emu_bgr_to_model_input(
        frames: *const *const u8,
        count: i32,
        pitch: i32,
        r: Resize,
        canvas_w: i32,
        canvas_h: i32,
        n: Normalize,
        half: i32,
        out: *mut std::ffi::c_void,
    );
    fn emu_nv12_to_model_input(
        luma: *const *const u8,
        chroma: *const *const u8,
        count: i32,
        pitch: i32,
        k: YuvToBgr,
        r: Resize,
        canvas_w: i32,
        canvas_h: i32,
        n: Normalize,
        half: i32,
        out: *mut std::ffi::c_void,
    );
    fn emu_f16_bits(input: *const f32, count: i32, out: *mut u16);
    fn emu_compact_candidates(
        loc: *const f32,
        conf: *const f32,
        landmarks: *const f32,
        priors: i32,
        count: i32,
        threshold: f32,
        capacity: i32,
        counts: *mut i32,
        out: *mut f32,
    );
    fn emu_warp_faces_bgr(
        frames: *const *const u8,
        pitch: i32,
        src_w: i32,
        src_h: i32,
        face_frame: *const i32,
        chip_to_frame: *const f64,
        faces: i32,
        size: i32,
        chips: *mut u8,
    );
    fn emu_warp_faces_nv12(
        luma: *const *const u8,
        chroma: *const *const u8,
        pitch: i32,
        k: YuvToBgr,
        src_w: i32,
        src_h: i32,
        face_frame: *const i32,
        chip_to_frame: *const f64,
        faces: i32,
        size: i32,
        chips: *mut u8,
    );
}

/// The kernels' pointer-array arguments: one entry per frame (or per plane of each frame).
fn pointers<'a>(planes: impl Iterator<Item = &'a [u8]>) -> Vec<*const u8> {
    planes.map(<[u8]>::as_ptr).collect()
}

/// NCHW input for a batch of packed-BGR frames of one size.
pub fn bgr_to_model_input<T: InputElement>(
    frames: &[&[u8]],
    pitch: usize,
    r: Resize,
    canvas: (usize, usize),
    n: Normalize,
) -> Vec<T> {
    let ptrs = pointers(frames.iter().copied());
    let mut out = vec![T::from_f32(f32::NAN); frames.len() * 3 * canvas.0 * canvas.1];
    // SAFETY: every frame holds `pitch · r.src_h` bytes and `out` the whole batch's input.
    unsafe {
        emu_bgr_to_model_input(
            ptrs.as_ptr(),
            frames.len() as i32,
            pitch as i32,
            r,
            canvas.0 as i32,
            canvas.1 as i32,
            n,
            T::HALF as i32,
            out.as_mut_ptr().cast(),
        );
    }
    out
}

/// NCHW input for a batch of NV12 frames of one size.
pub fn nv12_to_model_input<T: InputElement>(
    frames: &[(&[u8], &[u8])],
    pitch: usize,
    k: YuvToBgr,
    r: Resize,
    canvas: (usize, usize),
    n: Normalize,
) -> Vec<T> {
    let (luma, chroma) = (
        pointers(frames.iter().map(|f| f.0)),
        pointers(frames.iter().map(|f| f.1)),
    );
    let mut out = vec![T::from_f32(f32::NAN); frames.len() * 3 * canvas.0 * canvas.1];
    // SAFETY: as above, with the luma and chroma planes of `pitch`-byte rows.
    unsafe {
        emu_nv12_to_model_input(
            luma.as_ptr(),
            chroma.as_ptr(),
            frames.len() as i32,
            pitch as i32,
            k,
            r,
            canvas.0 as i32,
            canvas.1 as i32,
            n,
            T::HALF as i32,
            out.as_mut_ptr().cast(),
        );
    }
    out
}

/// The kernels' float16 conversion applied to each value.
pub fn f16_bits(values: &[f32]) -> Vec<u16> {
    let mut out = vec![0u16; values.len()];
    // SAFETY: both buffers hold `values.len()` elements.
    unsafe { emu_f16_bits(values.as_ptr(), values.len() as i32, out.as_mut_ptr()) };
    out
}

/// Candidate rows per frame (in the kernel's slot order) and each frame's full count.
pub fn compact_candidates(
    loc: &[f32],
    conf: &[f32],
    landmarks: &[f32],
    frames: usize,
    threshold: f32,
    capacity: usize,
) -> (Vec<i32>, Vec<f32>) {
    let priors = conf.len() / 2 / frames;
    let mut counts = vec![0i32; frames];
    let mut out = vec![0f32; frames * capacity * 16];
    // SAFETY: the outputs hold `frames · priors` rows; `out` holds `capacity` rows per frame.
    unsafe {
        emu_compact_candidates(
            loc.as_ptr(),
            conf.as_ptr(),
            landmarks.as_ptr(),
            priors as i32,
            frames as i32,
            threshold,
            capacity as i32,
            counts.as_mut_ptr(),
            out.as_mut_ptr(),
        );
    }
    (counts, out)
}

/// `size`² BGR chips, one per face (`face_frame[j]` indexes `frames`; `chip_to_frame` 6 per face).
pub fn warp_faces_bgr(
    frames: &[&[u8]],
    pitch: usize,
    src: (usize, usize),
    face_frame: &[i32],
    chip_to_frame: &[f64],
    size: usize,
) -> Vec<u8> {
    let ptrs = pointers(frames.iter().copied());
    let mut chips = vec![0u8; face_frame.len() * size * size * 3];
    // SAFETY: frames as above; `face_frame` indexes are < frames.len() (checked by callers).
    unsafe {
        emu_warp_faces_bgr(
            ptrs.as_ptr(),
            pitch as i32,
            src.0 as i32,
            src.1 as i32,
            face_frame.as_ptr(),
            chip_to_frame.as_ptr(),
            face_frame.len() as i32,
            size as i32,
            chips.as_mut_ptr(),
        );
    }
    chips
}

/// As `warp_faces_bgr`, reading NV12 frames.
#[allow(clippy::too_many_arguments)]
pub fn warp_faces_nv12(
    frames: &[(&[u8], &[u8])],
    pitch: usize,
    k: YuvToBgr,
    src: (usize, usize),
    face_frame: &[i32],
    chip_to_frame: &[f64],
    size: usize,
) -> Vec<u8> {
    let (luma, chroma) = (
        pointers(frames.iter().map(|f| f.0)),
        pointers(frames.iter().map(|f| f.1)),
    );
    let mut chips = vec![0u8; face_frame.len() * size * size * 3];
    // SAFETY: as above.
    unsafe {
        emu_warp_faces_nv12(
            luma.as_ptr(),
            chroma.as_ptr(),
            pitch as i32,
            k,
            src.0 as i32,
            src.1 as i32,
            face_frame.as_ptr(),
            chip_to_frame.as_ptr(),
            face_frame.len() as i32,
            size as i32,
            chips.as_mut_ptr(),
        );
    }
    chips
}

/// An NV12 frame of `layout` in host memory, as NVDEC lays it out.
pub struct Nv12Frame<'a> {
    pub luma: &'a [u8],
    pub chroma: &'a [u8],
    pub layout: Nv12Layout,
}

/// `frames::Frames` over NV12 frames in host memory, with the kernels' own code: the same steps
/// as `gpu::frames::DeviceFrames` (runs of one geometry, the same parameters and face tables), so
/// the GPU path's logic is checked on every CPU test run.
pub struct EmulatedFrames<'a> {
    pub frames: Vec<Nv12Frame<'a>>,
    input: Vec<f32>,
}

impl<'a> EmulatedFrames<'a> {
    pub fn new(frames: Vec<Nv12Frame<'a>>) -> EmulatedFrames<'a> {
        EmulatedFrames {
            frames,
            input: Vec::new(),
        }
    }

    fn runs(&self, range: std::ops::Range<usize>) -> Vec<std::ops::Range<usize>> {
        super::frames::runs(range, |i| self.frames[i].layout)
    }

    fn planes(&self, run: &std::ops::Range<usize>) -> Vec<(&'a [u8], &'a [u8])> {
        self.frames[run.clone()]
            .iter()
            .map(|f| (f.luma, f.chroma))
            .collect()
    }
}

impl crate::frames::Frames for EmulatedFrames<'_> {
    fn len(&self) -> usize {
        self.frames.len()
    }

    fn size(&self, i: usize) -> (usize, usize) {
        (self.frames[i].layout.width, self.frames[i].layout.height)
    }

    fn detector_input(
        &mut self,
        range: std::ops::Range<usize>,
        max_side: usize,
        canvas: (usize, usize),
        spec: &crate::models::InputSpec,
    ) -> crate::error::Result<crate::runtime::binding::BoundInput<'_>> {
        let per = 3 * canvas.0 * canvas.1;
        let mut input = vec![f32::NAN; per * range.len()];
        for (run, values) in super::frames::input_slices(self.runs(range.clone()), range.start, per)
        {
            let f = self.frames[run.start].layout;
            input[values].copy_from_slice(&nv12_to_model_input::<f32>(
                &self.planes(&run),
                f.pitch,
                f.colour,
                Resize::longer_side(f.width, f.height, max_side),
                canvas,
                Normalize::from(spec),
            ));
        }
        self.input = input;
        crate::runtime::binding::BoundInput::host(
            &mut self.input,
            [range.len(), 3, canvas.1, canvas.0],
        )
    }

    fn chips(
        &mut self,
        faces: &[(usize, crate::align::Affine)],
    ) -> crate::error::Result<Vec<BgrImage>> {
        use crate::align::CHIP_SIZE;
        let mut chips = Vec::with_capacity(faces.len());
        for (run, ours) in super::frames::faces_per_run(&self.runs(0..self.frames.len()), faces)? {
            let f = self.frames[run.start].layout;
            let face_frame: Vec<i32> = ours.iter().map(|(i, _)| *i as i32).collect();
            let chip_to_frame: Vec<f64> = ours.iter().flat_map(|(_, m)| *m).collect();
            let bytes = warp_faces_nv12(
                &self.planes(&run),
                f.pitch,
                f.colour,
                (f.width, f.height),
                &face_frame,
                &chip_to_frame,
                CHIP_SIZE,
            );
            for chip in bytes.chunks_exact(CHIP_SIZE * CHIP_SIZE * 3) {
                chips.push(BgrImage::from_raw(CHIP_SIZE, CHIP_SIZE, chip.to_vec())?);
            }
        }
        Ok(chips)
    }

    fn host(&self, _: usize) -> Option<&BgrImage> {
        None
    }
}
