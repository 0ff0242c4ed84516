//! ONNX Runtime: finding the shared library, loading it once per process, and building sessions
//! with explicit threading and no silent execution-provider fallback.

pub mod binding;
pub mod providers;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::error::{Error, Result};
use crate::home;
use crate::models::ModelSpec;

static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
static LOADING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Resolves the ONNX Runtime library: `explicit` (the `--ort-lib` flag), `$FACETV_ORT_LIB`,
/// `$ORT_DYLIB_PATH`, then `libonnxruntime.so*` in `<facetv home>/lib` (the CPU build) and
/// `<facetv home>/cuda/onnxruntime/capi` (the GPU build; first when `gpu`), or beside the
/// executable.
pub fn find_ort_library(explicit: Option<&Path>, gpu: bool) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    for var in ["FACETV_ORT_LIB", "ORT_DYLIB_PATH"] {
        if let Some(p) = std::env::var_os(var) {
            return Ok(PathBuf::from(p));
        }
    }
    // The GPU build (`scripts/setup.sh --gpu`; its providers are loaded from beside it) for GPU
    // runs, the CPU build for CPU runs; either stands in for the other when alone.
    let (cpu_build, gpu_build) = (
        home::facetv_home().join("lib"),
        home::facetv_home().join("cuda/onnxruntime/capi"),
    );
    let mut dirs = if gpu {
        vec![gpu_build, cpu_build]
    } else {
        vec![cpu_build, gpu_build]
    };
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("lib"));
        dirs.push(exe_dir);
    }
    for dir in &dirs {
        if let Some(lib) = newest_library_in(dir) {
            return Ok(lib);
        }
    }
    Err(Error::Runtime(format!(
        "libonnxruntime.so not found (looked in {}); run scripts/setup.sh, or pass --ort-lib / set FACETV_ORT_LIB to the library file",
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    )))
}

fn newest_library_in(dir: &Path) -> Option<PathBuf> {
    let mut libs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    libs.sort();
    libs.pop()
}

/// Loads ONNX Runtime (once per process) and returns the environment.
pub fn environment(explicit: Option<&Path>) -> Result<&'static ort::environment::Environment> {
    environment_for(explicit, false)
}

/// As `environment`; `gpu`: the models are to run on a GPU, so the GPU build installed by
/// `scripts/setup.sh --gpu` is preferred (CPU runs keep the CPU build even where both exist).
pub fn environment_for(
    explicit: Option<&Path>,
    gpu: bool,
) -> Result<&'static ort::environment::Environment> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let _loading = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let path = find_ort_library(explicit, gpu)?;
    check_shared_object(&path)?;
    // ort reports a library it cannot use as an error; a panic inside the loader is turned into
    // one too so a bad file can never take the process down.
    let built = std::panic::catch_unwind(|| -> std::result::Result<_, String> {
        ort::init_from(&path)
            .map_err(|e| e.to_string())?
            .with_name("facetv")
            .build()
            .map_err(|e| e.to_string())
    })
    .map_err(|_| "the ONNX Runtime loader panicked".to_string())
    .and_then(|r| r);
    match built {
        Ok(env) => Ok(ENVIRONMENT.get_or_init(|| env)),
        Err(e) => Err(Error::Runtime(format!(
            "{}: cannot load ({e}); it must be ONNX Runtime ≥ 1.17 for Linux x86-64 (scripts/setup.sh installs 1.32)",
            path.display()
        ))),
    }
}

fn check_shared_object(path: &Path) -> Result<()> {
    let mut magic = [0u8; 4];
    let ok = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .map_err(|e| {
            Error::Runtime(format!(
                "{}: {e}; run scripts/setup.sh or fix --ort-lib",
                path.display()
            ))
        });
    ok?;
    if &magic != b"\x7fELF" {
        return Err(Error::Runtime(format!(
            "{}: not a shared library (no ELF header); point --ort-lib at libonnxruntime.so",
            path.display()
        )));
    }
    Ok(())
}

/// Threading for one session. ONNX Runtime's own pool does the parallel work inside a model; the
/// pipeline keeps one session per model, so intra-op threads default to the machine's cores.
#[derive(Clone, Copy, Debug)]
pub struct SessionOptions {
    pub intra_threads: usize,
    pub provider: providers::Provider,
    /// On a GPU: the CUDA stream (`CUstream`) the session runs on, when the pipeline gives each
    /// model its own (`gpu::frames::DevicePlane`); ONNX Runtime's own stream otherwise.
    pub compute_stream: Option<usize>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            intra_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            provider: providers::Provider::Cpu,
            compute_stream: None,
        }
    }
}

/// Opens an ONNX model on the CPU, or on a GPU (`providers`), and says where it ended up;
/// `max_side` is the longest canvas side a detector is fed (for the GPU's optimisation profile).
pub fn open_session(
    spec: &ModelSpec,
    path: &Path,
    opts: SessionOptions,
    max_side: usize,
) -> Result<(Session, providers::Placement)> {
    let env = environment(None)?;
    let name = spec.name.as_str();
    let model_err = |e: String| Error::model(name, path, e);
    let mut builder = Session::builder(env)
        .map_err(|e| model_err(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| model_err(e.to_string()))?
        .with_intra_threads(opts.intra_threads)
        .map_err(|e| model_err(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| model_err(e.to_string()))?
        // The pipeline's stages run at the same time; idle ONNX Runtime threads that spin take
        // the cores from decoding and the other model (measured on a 1080p clip with 2 cores:
        // 8.3–8.7 s with spinning, 6.8–6.9 s without; no difference on face-dense clips).
        .with_intra_op_spinning(false)
        .map_err(|e| model_err(e.to_string()))?
        // Memory patterns are planned per input shape; with batches of varying size they pile up
        // (measured: peak RSS of a 60-minute run doubled). Off, memory stays flat.
        .with_memory_pattern(false)
        .map_err(|e| model_err(e.to_string()))?;
    let providers::Provider::Gpu { device, precision } = opts.provider else {
        let session = builder
            .commit_from_file(path)
            .map_err(|e| model_err(format!("ONNX Runtime cannot load it ({e}); the file is damaged or not an ONNX model: delete it and run `facetv-gpu models fetch`")))?;
        return Ok((session, providers::Placement::Cpu));
    };
    let (mut builder, placement) = providers::on_gpu(
        builder,
        spec,
        path,
        (device, opts.compute_stream),
        precision,
        max_side,
    )?;
    // TensorRT builds or loads its engines while the session is made: one process at a time per
    // engine folder.
    let _lock = match &placement {
        providers::Placement::TensorRt { engines, .. } => {
            tracing::info!(
                "model {name}: TensorRT on GPU {device} (engines in {}; the first run builds them, which takes minutes)",
                engines.display()
            );
            providers::lock_engines(engines)
        }
        providers::Placement::Cuda {
            tensorrt_unavailable,
        } => {
            tracing::warn!(
                "model {name}: ONNX Runtime's CUDA provider on GPU {device}; TensorRT unavailable: {tensorrt_unavailable}"
            );
            None
        }
        providers::Placement::Cpu => None,
    };
    let session = builder.commit_from_file(path).map_err(|e| {
        Error::Gpu(format!(
            "model '{name}' cannot be set up on GPU {device} ({}): {e}",
            placement.label()
        ))
    })?;
    Ok((session, placement))
}
