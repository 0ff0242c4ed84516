// The kernels, compiled for the CPU and launched by looping over the grid exactly as the GPU
// launch configuration in src/gpu/launch.rs lays it out. Built by build.rs with
// -ffp-contract=off; used only by the tests that compare kernels with their CPU twins.
#include "cuda_host.h"

#include "../align.cu"
#include "../candidates.cu"
#include "../model_input.cu"

thread_local dim3 blockIdx, blockDim, threadIdx;

template <typename Body>
static void launch(dim3 grid, dim3 block, Body body) {
    blockDim = block;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx)
                for (unsigned ty = 0; ty < block.y; ++ty)
                    for (unsigned tx = 0; tx < block.x; ++tx) {
                        blockIdx = dim3{bx, by, bz};
                        threadIdx = dim3{tx, ty, 0};
                        body();
                    }
}

static unsigned cover(int n, unsigned block) { return (unsigned)((n + (int)block - 1) / (int)block); }

// `half`: write float16 bits (`out` is unsigned short) instead of float32.
extern "C" void emu_bgr_to_model_input(const unsigned char* const* frames, int count, int pitch,
                                       Resize r, int canvas_w, int canvas_h, Normalize n, int half,
                                       void* out) {
    launch(dim3{cover(canvas_w, 16), cover(canvas_h, 16), (unsigned)count}, dim3{16, 16, 1}, [&] {
        if (half)
            bgr_to_model_input_f16(frames, pitch, r, canvas_w, canvas_h, n, (unsigned short*)out);
        else
            bgr_to_model_input(frames, pitch, r, canvas_w, canvas_h, n, (float*)out);
    });
}

extern "C" void emu_nv12_to_model_input(const unsigned char* const* luma,
                                        const unsigned char* const* chroma, int count, int pitch,
                                        YuvToBgr k, Resize r, int canvas_w, int canvas_h,
                                        Normalize n, int half, void* out) {
    launch(dim3{cover(canvas_w, 16), cover(canvas_h, 16), (unsigned)count}, dim3{16, 16, 1}, [&] {
        if (half)
            nv12_to_model_input_f16(luma, chroma, pitch, k, r, canvas_w, canvas_h, n,
                                    (unsigned short*)out);
        else
            nv12_to_model_input(luma, chroma, pitch, k, r, canvas_w, canvas_h, n, (float*)out);
    });
}

// The float16 conversion alone, element by element.
extern "C" void emu_f16_bits(const float* in, int count, unsigned short* out) {
    for (int i = 0; i < count; ++i) out[i] = f16_bits(in[i]);
}

extern "C" void emu_compact_candidates(const float* loc, const float* conf, const float* landmarks,
                                       int priors, int count, float threshold, int capacity,
                                       int* counts, float* out) {
    launch(dim3{cover(priors, 256), (unsigned)count, 1}, dim3{256, 1, 1}, [&] {
        compact_candidates(loc, conf, landmarks, priors, threshold, capacity, counts, out);
    });
}

extern "C" void emu_warp_faces_bgr(const unsigned char* const* frames, int pitch, int src_w,
                                   int src_h, const int* face_frame, const double* chip_to_frame,
                                   int faces, int size, unsigned char* chips) {
    launch(dim3{cover(size, 16), cover(size, 16), (unsigned)faces}, dim3{16, 16, 1}, [&] {
        warp_faces_bgr(frames, pitch, src_w, src_h, face_frame, chip_to_frame, size, chips);
    });
}

extern "C" void emu_warp_faces_nv12(const unsigned char* const* luma,
                                    const unsigned char* const* chroma, int pitch, YuvToBgr k,
                                    int src_w, int src_h, const int* face_frame,
                                    const double* chip_to_frame, int faces, int size,
                                    unsigned char* chips) {
    launch(dim3{cover(size, 16), cover(size, 16), (unsigned)faces}, dim3{16, 16, 1}, [&] {
        warp_faces_nv12(luma, chroma, pitch, k, src_w, src_h, face_frame, chip_to_frame, size,
                        chips);
    });
}
