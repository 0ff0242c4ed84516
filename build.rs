//! Records the source revision in the binary, so every summary names the exact code that made it,
//! and compiles the CUDA kernels in `kernels/` as C++ for the host (kernels/host/emulate.cpp), so
//! the tests run the kernels' own code against their CPU twins. (The GPU compiles the same sources
//! with NVRTC at run time; `src/gpu` embeds them.) The host objects are only linked where a test
//! calls them.

fn main() {
    let revision = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--exclude", "*"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FACETV_REVISION={revision}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");

    println!("cargo:rerun-if-changed=kernels");
    cc::Build::new()
        .cpp(true)
        .file("kernels/host/emulate.cpp")
        .flag("-std=c++17")
        // Float expressions must round as written, like the Rust twins and the GPU build
        // (NVRTC --fmad=false).
        .flag("-ffp-contract=off")
        .opt_level(2)
        .warnings(true)
        .compile("facetv_kernels_host");
}
