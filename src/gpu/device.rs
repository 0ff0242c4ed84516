//! One GPU: its primary context (the one FFmpeg's NVDEC and ONNX Runtime's CUDA providers use
//! too, so device pointers pass between them without copies), our kernels compiled for it, and a
//! stream per pipeline stage joined by events.

use std::sync::Arc;

use cudarc::driver::{sys, CudaContext, CudaStream};

use super::launch::Kernels;
use crate::error::{Error, Result};

pub struct Gpu {
    ctx: Arc<CudaContext>,
    pub ordinal: usize,
    pub name: String,
    /// NVRTC's name of the architecture, e.g. `sm_90`.
    pub arch: String,
    pub kernels: Kernels,
}

/// A stream per stage of the GPU pipeline: frame → model input, detector inference, face
/// alignment (chips and classifier input), classifier inference. Work on one stage's stream
/// overlaps with the others'; `handoff` orders them where a stage consumes another's output.
pub struct StageStreams {
    pub prepare: Arc<CudaStream>,
    pub detect: Arc<CudaStream>,
    pub align: Arc<CudaStream>,
    pub classify: Arc<CudaStream>,
}

/// Makes `later` wait (on the device, the host does not block) for everything queued on
/// `earlier` so far: an event recorded on one stage's stream and waited for by the next.
pub fn handoff(earlier: &CudaStream, later: &CudaStream) -> Result<()> {
    later.join(earlier).map_err(|e| {
        Error::Gpu(format!(
            "ordering two stages' streams: {}",
            super::driver_error_text(&e)
        ))
    })
}

fn driver_error(ordinal: usize, what: &str) -> impl Fn(cudarc::driver::DriverError) -> Error + '_ {
    move |e| {
        Error::Gpu(format!(
            "GPU {ordinal}: {what}: {}",
            super::driver_error_text(&e)
        ))
    }
}

/// How many GPUs the driver shows (after `CUDA_VISIBLE_DEVICES`); an error without the driver.
pub fn count() -> Result<usize> {
    super::ensure_driver()?;
    super::guarded(|| {
        CudaContext::device_count()
            .map(|n| n.max(0) as usize)
            .map_err(|e| {
                Error::Gpu(format!(
                    "the NVIDIA driver cannot list GPUs: {}; check `nvidia-smi` and CUDA_VISIBLE_DEVICES, or use --device cpu",
                    super::driver_error_text(&e)
                ))
            })
    })
}

/// Memory one GPU pipeline is given room for (its ONNX Runtime arenas and TensorRT engines, the
/// decoder's surfaces, a few batches of frames) when choosing how many run on a GPU.
const PIPELINE_MEMORY: usize = 4 << 30;

/// How many videos to process at once on GPU `ordinal` by default: one per video decoder
/// (NVDEC engine) the GPU has — a session uses one engine, so fewer leave engines idle — and at
/// most one per `PIPELINE_MEMORY` of its memory. Engine counts are NVIDIA's published ones for
/// the data-centre GPUs; 2 for others.
pub fn default_jobs(ordinal: usize) -> Result<usize> {
    super::guarded(|| {
        let ctx = context(ordinal)?;
        let (name, _) = name_and_arch(&ctx, ordinal)?;
        let memory = ctx
            .total_mem()
            .map_err(driver_error(ordinal, "reading its memory size"))?;
        Ok(nvdec_engines(&name).min(memory / PIPELINE_MEMORY).max(1))
    })
}

/// NVDEC engines of a GPU by its name.
fn nvdec_engines(name: &str) -> usize {
    let has = |model: &str| {
        name.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == model)
    };
    let any = |models: &[&str]| models.iter().any(|m| has(m));
    if any(&[
        "H100", "H200", "H800", "H20", "GH200", "B100", "B200", "GB200",
    ]) {
        7
    } else if any(&["A100", "A800"]) {
        5
    } else if any(&["L4", "A30"]) {
        4
    } else if any(&["L40", "L40S"]) {
        3
    } else {
        2
    }
}

/// The name and architecture (`sm_90`) of GPU `ordinal`, checked to exist.
pub fn describe(ordinal: usize) -> Result<(String, String)> {
    super::guarded(|| name_and_arch(&*context(ordinal)?, ordinal))
}

fn name_and_arch(ctx: &CudaContext, ordinal: usize) -> Result<(String, String)> {
    let name = ctx
        .name()
        .map_err(driver_error(ordinal, "reading its name"))?;
    let (major, minor) = ctx
        .compute_capability()
        .map_err(driver_error(ordinal, "reading its compute capability"))?;
    Ok((name, format!("sm_{major}{minor}")))
}

/// The primary context of GPU `ordinal`, after checking the driver and that the GPU exists.
fn context(ordinal: usize) -> Result<Arc<CudaContext>> {
    let count = count()?;
    if ordinal >= count {
        let visible = std::env::var("CUDA_VISIBLE_DEVICES")
            .map(|v| format!(" (CUDA_VISIBLE_DEVICES={v})"))
            .unwrap_or_default();
        return Err(Error::Gpu(format!(
            "there is no GPU {ordinal}: this machine shows {count}{visible}; GPUs are numbered from 0"
        )));
    }
    CudaContext::new(ordinal).map_err(driver_error(ordinal, "creating its context"))
}

impl Gpu {
    /// Opens GPU `ordinal` (as numbered after `CUDA_VISIBLE_DEVICES`) and loads our kernels for
    /// it, compiling them on first use.
    pub fn open(ordinal: usize) -> Result<Gpu> {
        super::guarded(|| Gpu::open_context(context(ordinal)?, ordinal))
    }

    fn open_context(ctx: Arc<CudaContext>, ordinal: usize) -> Result<Gpu> {
        let (name, arch) = name_and_arch(&ctx, ordinal)?;
        let cubin = super::cubin_for(&arch)?;
        let kernels = Kernels::load(&ctx, cubin)
            .map_err(|e| Error::Gpu(format!("GPU {ordinal} ({name}, {arch}): {e}")))?;
        Ok(Gpu {
            ctx,
            ordinal,
            name,
            arch,
            kernels,
        })
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    pub fn new_stream(&self) -> Result<Arc<CudaStream>> {
        self.ctx
            .new_stream()
            .map_err(driver_error(self.ordinal, "creating a stream"))
    }

    pub fn stage_streams(&self) -> Result<StageStreams> {
        Ok(StageStreams {
            prepare: self.new_stream()?,
            detect: self.new_stream()?,
            align: self.new_stream()?,
            classify: self.new_stream()?,
        })
    }

    /// The memory bandwidth the GPU's data sheet values give (memory clock × bus width × 2 for
    /// double data rate), bytes/s; `None` where the driver does not report them.
    pub fn nominal_bandwidth(&self) -> Option<f64> {
        use sys::CUdevice_attribute_enum::*;
        let clock_khz = self
            .ctx
            .attribute(CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)
            .ok()?;
        let bus_bits = self
            .ctx
            .attribute(CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)
            .ok()?;
        (clock_khz > 0 && bus_bits > 0)
            .then(|| 2.0 * clock_khz as f64 * 1e3 * bus_bits as f64 / 8.0)
    }

    pub fn total_memory(&self) -> Result<usize> {
        self.ctx
            .total_mem()
            .map_err(driver_error(self.ordinal, "reading its memory size"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nvdec_engines_by_gpu_name() {
        use super::nvdec_engines;
        assert_eq!(nvdec_engines("NVIDIA H200"), 7);
        assert_eq!(nvdec_engines("NVIDIA H100 80GB HBM3"), 7);
        assert_eq!(nvdec_engines("NVIDIA A100-SXM4-80GB"), 5);
        assert_eq!(nvdec_engines("NVIDIA A100 80GB PCIe"), 5);
        assert_eq!(nvdec_engines("NVIDIA L4"), 4);
        assert_eq!(nvdec_engines("NVIDIA L40S"), 3);
        assert_eq!(nvdec_engines("NVIDIA B200"), 7);
        assert_eq!(nvdec_engines("Tesla T4"), 2);
    }
}
