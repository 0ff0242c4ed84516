// Frames → model input for a whole batch in one launch: bilinear resize (the CPU path's exact
// arithmetic), top-left on a `canvas_w × canvas_h` canvas, normalised, NCHW float32 or float16
// (`*_f16`: the float32 value rounded to nearest even, for fp16 engines). Serves the
// detector (frames → 640 canvas) and the classifiers (224 chips → 64×64, canvas = image).
// Grid: x, y over the canvas, z over the batch. Twin: preprocess::resize_longer_side + fill_nchw.
#include "facetv.cuh"

__device__ inline void store(float* o, float v) { *o = v; }
__device__ inline void store(unsigned short* o, float v) { *o = f16_bits(v); }

template <typename Source, typename Out>
__device__ inline void write_model_input(const Source& src, const Resize& r, int canvas_w,
                                         int canvas_h, const Normalize& n, Out* out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= canvas_w || y >= canvas_h) return;
    long long plane = (long long)canvas_w * canvas_h;
    Out* o = out + (long long)blockIdx.z * 3 * plane + (long long)y * canvas_w + x;
    if (x < r.dst_w && y < r.dst_h) {
        int bgr[3];
        resized_pixel(src, r, x, y, bgr);
        for (int c = 0; c < 3; ++c)
            store(o + c * plane, ((float)bgr[n.src_channel[c]] - n.mean[c]) * n.inv_std[c]);
    } else {
        for (int c = 0; c < 3; ++c) store(o + c * plane, (0.0f - n.mean[c]) * n.inv_std[c]);
    }
}

// `frames[i]`: packed BGR, `pitch` bytes per row, all `r.src_w × r.src_h`.
template <typename Out>
__device__ inline void bgr_frames(const unsigned char* const* frames, int pitch, const Resize& r,
                                  int canvas_w, int canvas_h, const Normalize& n, Out* out) {
    BgrSource src;
    src.data = frames[blockIdx.z];
    src.pitch = pitch;
    write_model_input(src, r, canvas_w, canvas_h, n, out);
}

// `luma[i]`, `chroma[i]`: the NV12 planes of frame i (one pitch for both, as NVDEC allocates).
template <typename Out>
__device__ inline void nv12_frames(const unsigned char* const* luma,
                                   const unsigned char* const* chroma, int pitch,
                                   const YuvToBgr& k, const Resize& r, int canvas_w, int canvas_h,
                                   const Normalize& n, Out* out) {
    Nv12Source src;
    src.luma = luma[blockIdx.z];
    src.chroma = chroma[blockIdx.z];
    src.pitch = pitch;
    src.k = k;
    write_model_input(src, r, canvas_w, canvas_h, n, out);
}

extern "C" __global__ void bgr_to_model_input(const unsigned char* const* frames, int pitch,
                                              Resize r, int canvas_w, int canvas_h, Normalize n,
                                              float* out) {
    bgr_frames(frames, pitch, r, canvas_w, canvas_h, n, out);
}

extern "C" __global__ void bgr_to_model_input_f16(const unsigned char* const* frames, int pitch,
                                                  Resize r, int canvas_w, int canvas_h,
                                                  Normalize n, unsigned short* out) {
    bgr_frames(frames, pitch, r, canvas_w, canvas_h, n, out);
}

extern "C" __global__ void nv12_to_model_input(const unsigned char* const* luma,
                                               const unsigned char* const* chroma, int pitch,
                                               YuvToBgr k, Resize r, int canvas_w, int canvas_h,
                                               Normalize n, float* out) {
    nv12_frames(luma, chroma, pitch, k, r, canvas_w, canvas_h, n, out);
}

extern "C" __global__ void nv12_to_model_input_f16(const unsigned char* const* luma,
                                                   const unsigned char* const* chroma, int pitch,
                                                   YuvToBgr k, Resize r, int canvas_w,
                                                   int canvas_h, Normalize n, unsigned short* out) {
    nv12_frames(luma, chroma, pitch, k, r, canvas_w, canvas_h, n, out);
}
