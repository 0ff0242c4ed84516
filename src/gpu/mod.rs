//! The GPU data plane's building blocks. `kernels/*.cu` are our CUDA kernels, embedded in the
//! binary and compiled at run time with NVRTC for the GPU present (cached per architecture);
//! `params` holds their parameter structs; every kernel has a CPU twin (`twin`, or the CPU path's
//! own function) and the tests run the kernels' own source on the CPU against them (`emulated`).
//! `device` owns a GPU (primary context, a stream per stage), `launch` the typed kernel launches,
//! `pool` the reusable device buffers, `check` the kernel-versus-twin check run on a GPU.
//!
//! CUDA is loaded at run time (cudarc with dynamic loading), so this builds and runs on machines
//! without it; a missing library is a clear error, never a crash.

pub mod check;
pub mod device;
pub mod fixtures;
pub mod frames;
pub mod launch;
pub mod params;
pub mod pool;
pub mod twin;

#[cfg(test)]
mod emulated;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The kernel sources in dependency order (the shared header first).
const SOURCES: [(&str, &str); 4] = [
    ("facetv.cuh", include_str!("../../kernels/facetv.cuh")),
    (
        "model_input.cu",
        include_str!("../../kernels/model_input.cu"),
    ),
    ("candidates.cu", include_str!("../../kernels/candidates.cu")),
    ("align.cu", include_str!("../../kernels/align.cu")),
];

/// The kernels NVRTC must find in the compiled program.
pub const KERNELS: [&str; 7] = [
    "bgr_to_model_input",
    "bgr_to_model_input_f16",
    "nv12_to_model_input",
    "nv12_to_model_input_f16",
    "compact_candidates",
    "warp_faces_bgr",
    "warp_faces_nv12",
];

/// All kernels as one NVRTC program: the header once, then each file without its `#include`.
pub fn program_source() -> String {
    SOURCES
        .iter()
        .map(|(name, text)| {
            let body: Vec<&str> = text
                .lines()
                .filter(|l| l.trim() != "#include \"facetv.cuh\"")
                .collect();
            format!("// ---- kernels/{name}\n{}\n", body.join("\n"))
        })
        .collect()
}

/// Folders searched for CUDA libraries, in order: `$FACETV_CUDA_LIB_DIR`, the project's
/// `.facetv/cuda` (where `scripts/setup.sh` puts the NVRTC wheel, and `--gpu` the CUDA, cuDNN and
/// TensorRT wheels), pip-installed NVIDIA wheels (`site-packages/nvidia/*/lib`, e.g. PyTorch's;
/// `tensorrt_libs`), the CUDA toolkit.
pub fn library_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("FACETV_CUDA_LIB_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    let mut wheels = vec![crate::home::facetv_home().join("cuda")];
    wheels.extend(python_site_packages());
    for root in wheels {
        if let Ok(entries) = std::fs::read_dir(root.join("nvidia")) {
            let mut libs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path().join("lib"))
                .filter(|p| p.is_dir())
                .collect();
            libs.sort();
            dirs.extend(libs);
        }
        let tensorrt = root.join("tensorrt_libs");
        if tensorrt.is_dir() {
            dirs.push(tensorrt);
        }
    }
    dirs.extend(["/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu"].map(PathBuf::from));
    dirs
}

fn python_site_packages() -> Vec<PathBuf> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import site,sys; print('\\n'.join(site.getsitepackages()+[site.getusersitepackages()]))"])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(PathBuf::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Loads the library at `path` with its symbols global, so later lookups by name (cudarc's, ONNX
/// Runtime's) find it already loaded. The handle is kept for the process.
pub fn load_global(path: &std::path::Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: dlopen of a shared library by path.
    !unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) }.is_null()
}

/// Loads the first `prefix*` library found (e.g. `libnvrtc.so.13`). Returns the file loaded.
fn preload(prefix: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .collect();
        found.sort();
        if let Some(path) = found.into_iter().find(|p| load_global(p)) {
            return Some(path);
        }
    }
    None
}

/// Makes NVRTC loadable or says what to install.
pub fn ensure_nvrtc() -> Result<()> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    // Preloaded before cudarc's first lookup, which remembers its answer.
    // NVRTC opens its builtins library by name when compiling: load it first, from the same place.
    let found = FOUND.get_or_init(|| {
        let dirs = library_dirs();
        preload("libnvrtc-builtins.so", &dirs);
        preload("libnvrtc.so", &dirs)
    });
    // SAFETY: only loads the library; no NVRTC function is called.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Ok(());
    }
    Err(Error::Gpu(match found {
        Some(path) => format!(
            "{}: cannot be used as NVRTC (CUDA 13 is needed)",
            path.display()
        ),
        None => "NVRTC (libnvrtc.so.13), which compiles the GPU kernels, was not found: run scripts/setup.sh (it installs the nvidia-cuda-nvrtc wheel into .facetv/cuda), install the CUDA 13 toolkit, or set FACETV_CUDA_LIB_DIR to the folder holding it".into(),
    }))
}

/// Makes sure the NVIDIA driver library can be loaded, or says what is missing.
pub fn ensure_driver() -> Result<()> {
    // SAFETY: only tries to load the library; no driver function is called.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        return Ok(());
    }
    Err(Error::Gpu(
        "the NVIDIA driver library (libcuda.so.1) was not found: GPU work needs an NVIDIA GPU \
         with driver 580 or newer (CUDA 13); jobs run on the CPU with --device cpu (or auto, \
         which falls back to the CPU)"
            .into(),
    ))
}

/// A driver error in words: CUDA's own description and its code.
pub fn driver_error_text(e: &cudarc::driver::DriverError) -> String {
    match e.error_string() {
        Ok(text) => format!("{} ({:?})", text.to_string_lossy(), e.0),
        Err(_) => format!("{:?}", e.0),
    }
}

/// Runs `f`, which calls into the NVIDIA driver, turning a panic of the driver bindings (a
/// `libcuda.so.1` that lacks a function, i.e. a driver older than CUDA 13 or not NVIDIA's) into
/// an error, without printing the panic. Nests, and is safe on any number of threads: the panic
/// hook, installed once, stays silent only on a thread inside `guarded`.
pub fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    thread_local! {
        static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if DEPTH.with(|d| d.get()) == 0 {
                previous(info);
            }
        }));
    });
    DEPTH.with(|d| d.set(d.get() + 1));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(Error::Gpu(format!(
            "the NVIDIA driver library (libcuda.so.1) cannot be used ({what}): driver 580 or newer (CUDA 13) is needed; jobs run on the CPU with --device cpu"
        )))
    })
}

/// NVRTC options: native code for the GPU, no fused multiply-add (floats round as the twins').
fn compile_options(arch: &str) -> [String; 3] {
    [
        format!("--gpu-architecture={arch}"),
        "--fmad=false".into(),
        "--std=c++17".into(),
    ]
}

/// The kernels compiled for `arch`, from the cache (`$FACETV_KERNEL_CACHE`, default
/// `$FACETV_HOME/cache/kernels`) or compiled
/// now and stored there (atomically; a cache that cannot be written only costs the compile
/// next time). The file name covers the source, the options and NVRTC's version, so a changed
/// kernel or NVRTC never gets a stale binary.
pub fn cubin_for(arch: &str) -> Result<Vec<u8>> {
    use sha2::{Digest, Sha256};
    ensure_nvrtc()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: writes two ints; NVRTC is loaded (ensure_nvrtc).
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| Error::Gpu(format!("NVRTC version: {e}")))?;
    let mut key = Sha256::new();
    key.update(program_source());
    key.update(compile_options(arch).join(" "));
    key.update(format!("nvrtc {major}.{minor}"));
    let digest = hex::encode(key.finalize());
    let dir = std::env::var_os("FACETV_KERNEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::home::facetv_home().join("cache/kernels"));
    let path = dir.join(format!("{arch}-{}.cubin", &digest[..16]));
    if let Ok(cubin) = std::fs::read(&path) {
        return Ok(cubin);
    }
    let cubin = compile(arch)?;
    if let Err(e) = crate::models::store::write_atomic(&path, &cubin) {
        tracing::warn!("cannot cache the compiled kernels: {e}");
    }
    Ok(cubin)
}

/// Compiles every kernel for `arch` (e.g. `sm_90`) to a cubin: native code for that GPU, which a
/// driver of the same CUDA major version loads (PTX from a newer NVRTC than the driver would not).
/// Fused multiply-add is off so float results round as the CPU twins' do.
pub fn compile(arch: &str) -> Result<Vec<u8>> {
    use cudarc::nvrtc::{result, sys};
    ensure_nvrtc()?;
    let err = |what: &str, e: String| {
        Error::Gpu(format!(
            "compiling the CUDA kernels for {arch}: {what}: {e}"
        ))
    };
    let source =
        std::ffi::CString::new(program_source()).map_err(|e| err("source", e.to_string()))?;
    let program =
        result::create_program(&source, None).map_err(|e| err("create", e.to_string()))?;
    let options = compile_options(arch);
    // SAFETY: `program` is a live NVRTC program until destroyed below; the buffers are sized by
    // NVRTC's own size queries.
    unsafe {
        let compiled = result::compile_program(program, &options);
        let outcome = match compiled {
            Err(e) => {
                let log = result::get_program_log(program)
                    .map(|l| {
                        String::from_utf8_lossy(&l.iter().map(|c| *c as u8).collect::<Vec<_>>())
                            .trim_end_matches('\0')
                            .to_string()
                    })
                    .unwrap_or_default();
                Err(err("NVRTC", format!("{e}\n{log}")))
            }
            Ok(()) => {
                let mut size = 0usize;
                sys::nvrtcGetCUBINSize(program, &mut size)
                    .result()
                    .map_err(|e| err("cubin size", e.to_string()))
                    .and_then(|()| {
                        let mut cubin = vec![0u8; size];
                        sys::nvrtcGetCUBIN(program, cubin.as_mut_ptr().cast())
                            .result()
                            .map(|()| cubin)
                            .map_err(|e| err("cubin", e.to_string()))
                    })
            }
        };
        let _ = result::destroy_program(program);
        outcome
    }
}
