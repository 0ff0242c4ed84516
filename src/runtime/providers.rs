//! Execution providers. The CPU path runs every model on ONNX Runtime's CPU provider; `--device N`
//! puts every model on GPU N: TensorRT first (fp16 by default; engines and timing caches kept on
//! disk, keyed by model, GPU and TensorRT version; one optimisation profile covering the batch
//! sizes the pipeline uses), with ONNX Runtime's CUDA provider behind it for any node TensorRT
//! does not take, the CUDA provider alone when TensorRT cannot be registered, and an error —
//! never a silent CPU run — when the CUDA provider cannot be. (ONNX Runtime still gives the CPU
//! the few shape-computation nodes the CUDA provider hands it, as it is designed to.)
//!
//! The GPU build of ONNX Runtime and the CUDA, cuDNN and TensorRT libraries come from the package
//! registry (`scripts/setup.sh --gpu` installs the wheels into the project's `.facetv`) or the
//! system; they are preloaded from there before ONNX Runtime looks for them by name.

use std::path::{Path, PathBuf};

use ort::ep;
use ort::session::builder::SessionBuilder;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::models::{InputSpec, ModelSpec};

/// The largest batch a model is run with (frames for detectors, faces for classifiers): the
/// TensorRT profiles are built for 1 to this many.
pub const MAX_BATCH: usize = 32;

/// Where the models run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Provider {
    #[default]
    Cpu,
    Gpu {
        device: usize,
        precision: Precision,
    },
}

/// Arithmetic of TensorRT engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Half precision where TensorRT finds it accurate and faster (ages within 0.5 years).
    #[default]
    Fp16,
    /// Single precision throughout (ages within 0.05 years of the CPU path).
    Fp32,
}

/// Where a session ended up.
#[derive(Clone, Debug, PartialEq)]
pub enum Placement {
    Cpu,
    TensorRt {
        engines: PathBuf,
        precision: Precision,
    },
    Cuda {
        tensorrt_unavailable: String,
    },
}

impl Placement {
    /// How results made here are labelled (`device` in the options): the engines' arithmetic
    /// shows in the last digits, so a results folder keeps to one label.
    pub fn label(&self) -> &'static str {
        match self {
            Placement::Cpu => "cpu",
            Placement::TensorRt {
                precision: Precision::Fp16,
                ..
            } => "tensorrt-fp16",
            Placement::TensorRt {
                precision: Precision::Fp32,
                ..
            } => "tensorrt-fp32",
            Placement::Cuda { .. } => "cuda",
        }
    }
}

/// TensorRT optimisation profile shapes, as the provider's options spell them
/// (`input:1x3x64x64`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub min: String,
    pub opt: String,
    pub max: String,
}

/// The profile for a model input: batches 1 to `MAX_BATCH`; a fixed-size input at its size, a
/// fully convolutional detector from one `multiple` square up to `max_side` square, optimised for
/// 16:9 frames (the broadcast case) at full batch.
pub fn profile(input: &InputSpec, max_side: usize) -> Profile {
    let dims = |n: usize, h: usize, w: usize| format!("{}:{n}x3x{h}x{w}", input.name);
    match input.size {
        Some([w, h]) => Profile {
            min: dims(1, h, w),
            opt: dims(MAX_BATCH, h, w),
            max: dims(MAX_BATCH, h, w),
        },
        None => {
            let m = input.multiple.max(1);
            let side = max_side.div_ceil(m) * m;
            let wide = (max_side * 9 / 16).div_ceil(m) * m;
            Profile {
                min: dims(1, m, m),
                opt: dims(MAX_BATCH, wide, side),
                max: dims(MAX_BATCH, side, side),
            }
        }
    }
}

/// Where TensorRT keeps the engines and timing cache of one model on one kind of GPU with one
/// TensorRT version: an engine built for another GPU model or TensorRT is never reused.
pub fn engine_dir(
    home: &Path,
    model_sha256: &str,
    gpu_name: &str,
    arch: &str,
    tensorrt: &str,
    precision: Precision,
) -> PathBuf {
    let gpu: String = gpu_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let precision = match precision {
        Precision::Fp16 => "fp16",
        Precision::Fp32 => "fp32",
    };
    home.join("cache/tensorrt").join(format!(
        "{}-{gpu}-{arch}-trt{tensorrt}-{precision}",
        &model_sha256[..model_sha256.len().min(16)]
    ))
}

/// The libraries ONNX Runtime's CUDA and TensorRT providers open by name (CUDA 13, cuDNN 9,
/// TensorRT 10), by file-name prefix up to the major version.
const GPU_LIBRARIES: [&str; 11] = [
    "libcudart.so.13",
    "libcublasLt.so.13",
    "libcublas.so.13",
    "libcufft.so.12",
    "libcurand.so.10",
    "libnvrtc.so.13",
    "libcudnn",
    "libnvinfer.so.10",
    "libnvinfer_plugin.so.10",
    "libnvonnxparser.so.10",
    "libnvinfer_builder_resource.so.10",
];

/// Loads those libraries from the folders `gpu::library_dirs` lists, in its order (so
/// `FACETV_CUDA_LIB_DIR` and the project's `.facetv/cuda` win over pip wheels elsewhere), one copy
/// of each name; libraries that need another one first are retried until nothing more loads.
fn preload_gpu_libraries() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        let wanted = |name: &str| {
            GPU_LIBRARIES.iter().any(|w| name.starts_with(w))
                && (!name.starts_with("libcudnn") || name.contains(".so.9"))
        };
        let mut seen = std::collections::HashSet::new();
        let mut pending = Vec::new();
        for dir in crate::gpu::library_dirs() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(wanted))
                .collect();
            files.sort();
            for f in files {
                // One file per soname (`libcudnn_ops.so.9` from the first folder that has it).
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let soname = name.split(".so").next().unwrap_or(name).to_string();
                if seen.insert(soname) {
                    pending.push(f);
                }
            }
        }
        loop {
            let before = pending.len();
            pending.retain(|p| !crate::gpu::load_global(p));
            if pending.len() == before {
                break;
            }
        }
    });
}

/// The TensorRT version loaded (e.g. `10.13.0`), or `None` without TensorRT.
fn tensorrt_version() -> Option<String> {
    let name = c"libnvinfer.so.10";
    // SAFETY: dlopen/dlsym of a library by name; `getInferLibVersion` takes no arguments and
    // returns an int (NvInferRuntime.h).
    unsafe {
        let handle = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        if handle.is_null() {
            return None;
        }
        let symbol = libc::dlsym(handle, c"getInferLibVersion".as_ptr());
        if symbol.is_null() {
            return None;
        }
        let get: extern "C" fn() -> i32 = std::mem::transmute(symbol);
        let v = get();
        Some(format!("{}.{}.{}", v / 10_000, (v / 100) % 100, v % 100))
    }
}

/// Puts the session on GPU `device` (see the module comment).
pub fn on_gpu(
    builder: SessionBuilder,
    spec: &ModelSpec,
    path: &Path,
    (device, stream): (usize, Option<usize>),
    precision: Precision,
    max_side: usize,
) -> Result<(SessionBuilder, Placement)> {
    preload_gpu_libraries();
    let (gpu_name, arch) = crate::gpu::device::describe(device)?;
    let (builder, placement) = match tensorrt_version() {
        None => (
            builder,
            Placement::Cuda {
                tensorrt_unavailable: "libnvinfer.so.10 (TensorRT 10) was not found".into(),
            },
        ),
        Some(version) => {
            let sha = match &spec.sha256 {
                Some(s) => s.clone(),
                None => crate::models::store::sha256_file(path)?,
            };
            let dir = engine_cache(&engine_dir(
                &crate::home::facetv_home(),
                &sha,
                &gpu_name,
                &arch,
                &version,
                precision,
            ));
            let p = profile(&spec.input, max_side);
            let dir_text = dir.display().to_string();
            let tensorrt = ep::TensorRT::default()
                .with_device_id(device as i32)
                .with_fp16(precision == Precision::Fp16)
                .with_engine_cache(true)
                .with_engine_cache_path(&dir_text)
                .with_timing_cache(true)
                .with_timing_cache_path(&dir_text)
                .with_profile_min_shapes(p.min)
                .with_profile_opt_shapes(p.opt)
                .with_profile_max_shapes(p.max);
            // SAFETY: the stream belongs to this GPU's primary context and outlives the session
            // (`DevicePlane` keeps it, and the analyzer drops the plane last).
            let tensorrt = match stream {
                Some(s) => unsafe { tensorrt.with_compute_stream(s as *mut ()) },
                None => tensorrt,
            }
            .build()
            .error_on_failure();
            match builder.with_execution_providers([tensorrt]) {
                Ok(b) => (
                    b,
                    Placement::TensorRt {
                        engines: dir,
                        precision,
                    },
                ),
                Err(e) => {
                    let message = e.to_string();
                    (
                        e.recover(),
                        Placement::Cuda {
                            tensorrt_unavailable: message,
                        },
                    )
                }
            }
        }
    };
    // Behind TensorRT for the nodes it does not take, or alone.
    let cuda = ep::CUDA::default().with_device_id(device as i32);
    // SAFETY: as for TensorRT above; both providers of a session share its stream.
    let cuda = match stream {
        Some(s) => unsafe { cuda.with_compute_stream(s as *mut ()) },
        None => cuda,
    }
    .build()
    .error_on_failure();
    match builder.with_execution_providers([cuda]) {
        Ok(b) => Ok((b, placement)),
        Err(e) => Err(Error::Gpu(format!(
            "model '{}' cannot run on GPU {device}: ONNX Runtime's CUDA provider: {e}{}. The GPU path needs the GPU build of ONNX Runtime with CUDA 13 and cuDNN 9 (and TensorRT 10 for TensorRT): run scripts/setup.sh --gpu, see docs/GPU.md",
            spec.name,
            match &placement {
                Placement::Cuda { tensorrt_unavailable } => format!("; TensorRT: {tensorrt_unavailable}"),
                _ => String::new(),
            }
        ))),
    }
}

/// The engine folder, made if missing; where it cannot be (a read-only image), a folder under
/// the system's temporary directory, with a warning (engines are then rebuilt per machine).
fn engine_cache(dir: &Path) -> PathBuf {
    match std::fs::create_dir_all(dir) {
        Ok(()) => dir.to_path_buf(),
        Err(e) => {
            let fallback = std::env::temp_dir()
                .join("facetv-tensorrt")
                .join(dir.file_name().unwrap_or_default());
            tracing::warn!(
                "cannot use {} for TensorRT engines ({e}); using {} (bind a writable cache folder to keep them)",
                dir.display(),
                fallback.display()
            );
            let _ = std::fs::create_dir_all(&fallback);
            fallback
        }
    }
}

/// Holds an exclusive lock on an engine folder while a session is built, so processes sharing
/// the folder (Slurm tasks on one file system) never read an engine another is still writing.
pub fn lock_engines(dir: &Path) -> Option<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .ok()?;
    // SAFETY: flock on an open file descriptor; released when the file is closed.
    let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
    (locked == 0).then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ChannelOrder;

    fn input(size: Option<[usize; 2]>, multiple: usize) -> InputSpec {
        InputSpec {
            name: "input".into(),
            size,
            multiple,
            channel_order: ChannelOrder::Bgr,
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }

    #[test]
    fn fixed_size_models_get_their_size_at_every_batch() {
        let p = profile(&input(Some([64, 64]), 1), 640);
        assert_eq!(p.min, "input:1x3x64x64");
        assert_eq!(p.opt, "input:32x3x64x64");
        assert_eq!(p.max, "input:32x3x64x64");
    }

    #[test]
    fn convolutional_detectors_cover_every_canvas_up_to_the_longer_side() {
        let p = profile(&input(None, 32), 640);
        assert_eq!(p.min, "input:1x3x32x32");
        assert_eq!(p.opt, "input:32x3x384x640");
        assert_eq!(p.max, "input:32x3x640x640");
        // The canvases the CPU path builds lie inside: 1080p → 640×360 → 640×384.
        assert_eq!(profile(&input(None, 32), 1000).max, "input:32x3x1024x1024");
    }

    #[test]
    fn engines_are_kept_apart_by_model_gpu_tensorrt_and_precision() {
        let home = Path::new("/h");
        let sha = "ab".repeat(32);
        let a = engine_dir(
            home,
            &sha,
            "NVIDIA H200",
            "sm_90",
            "10.13.0",
            Precision::Fp16,
        );
        assert_eq!(
            a,
            Path::new("/h/cache/tensorrt/abababababababab-NVIDIA_H200-sm_90-trt10.13.0-fp16")
        );
        let other = [
            engine_dir(
                home,
                &"cd".repeat(32),
                "NVIDIA H200",
                "sm_90",
                "10.13.0",
                Precision::Fp16,
            ),
            engine_dir(home, &sha, "NVIDIA L4", "sm_89", "10.13.0", Precision::Fp16),
            engine_dir(
                home,
                &sha,
                "NVIDIA H200",
                "sm_90",
                "10.14.1",
                Precision::Fp16,
            ),
            engine_dir(
                home,
                &sha,
                "NVIDIA H200",
                "sm_90",
                "10.13.0",
                Precision::Fp32,
            ),
        ];
        assert!(other.iter().all(|o| *o != a));
    }
}
