// Shared device code of facetv's kernels. Every function here has a CPU twin in the Rust crate
// (named in its comment) and must compute the same bits: kernels are compiled without fused
// multiply-add (NVRTC --fmad=false), and the host build used by the tests with
// -ffp-contract=off, so float expressions round exactly as the Rust code's do.
//
// The same sources compile three ways: with NVRTC for the GPU, and as C++ on the host
// (kernels/host/) so the CPU tests run the kernels' own code against the twins.
#ifndef FACETV_CUH
#define FACETV_CUH

// Model input layout: resized image at the top-left of a canvas, NCHW float, `(v - mean) ·
// inv_std` per output channel, which takes source channel `src_channel` (BGR order: 0 = B).
// Twin: preprocess::fill_nchw.
struct Normalize {
    float mean[3];
    float inv_std[3];
    int src_channel[3];
};

// A bilinear resize `src_w × src_h → dst_w × dst_h` with source pixels per destination pixel
// `step_x`, `step_y`. Twin: image::resize_bilinear_scaled.
struct Resize {
    int src_w, src_h, dst_w, dst_h;
    double step_x, step_y;
};

// NV12 → BGR: `Y' = (Y - y_offset) · y_scale`, `U' = (U - 128) · uv_scale` (V' alike),
// R = Y' + r_v·V', G = Y' - g_u·U' - g_v·V', B = Y' + b_u·U', rounded to nearest even and
// clamped; chroma of each 2×2 block is shared. Twin: gpu::twin::nv12_to_bgr.
struct YuvToBgr {
    float y_offset, y_scale, uv_scale;
    float r_v, g_u, g_v, b_u;
};

// float → IEEE 754 half, as bits, rounded to nearest even (what __float2half_rn computes); NaN
// becomes the quiet NaN 0x7e00 (CUDA's __float2half_rn gives 0x7fff; no model input is NaN).
// Twin: gpu::twin::f16_bits.
__device__ inline unsigned short f16_bits(float f) {
    unsigned int x = __float_as_uint(f);
    unsigned int sign = (x >> 16) & 0x8000u;
    unsigned int a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return (unsigned short)(sign | 0x7e00u);
    // 65520 and above round to infinity.
    if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);
    // Below 2^-14 the half is subnormal, counted in units of 2^-24: the scaling is exact, and
    // rintf rounds to nearest even (1024 units is the smallest normal, which is also its bits).
    if (a < 0x38800000u) return (unsigned short)(sign | (unsigned int)rintf(__uint_as_float(a) * 16777216.0f));
    // Rebias the exponent (127 → 15) and round the 13 dropped mantissa bits to nearest even.
    unsigned int r = a - 0x38000000u;
    r += 0xfffu + ((r >> 13) & 1u);
    return (unsigned short)(sign | (r >> 13));
}

struct Tap {
    int i0, i1, w0, w1;
};

__device__ inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Source pixels and 11-bit weights of destination pixel `d` along one axis; along x a position
// outside the image takes the border pixel at full weight, along y only the indices are clamped
// (OpenCV). Twin: image::axis_taps.
__device__ inline Tap axis_tap(int d, int src_len, double step, int clamp_weights) {
    float f = (float)(((double)d + 0.5) * step - 0.5);
    int s = (int)floorf(f);
    float frac = f - (float)s;
    int last = src_len - 1;
    if (clamp_weights && s < 0) { s = 0; frac = 0.0f; }
    if (clamp_weights && s >= last) { s = last; frac = 0.0f; }
    Tap t;
    t.i0 = clamp_int(s, 0, last);
    t.i1 = clamp_int(s + 1, 0, last);
    t.w0 = (int)rintf((1.0f - frac) * 2048.0f);
    t.w1 = (int)rintf(frac * 2048.0f);
    return t;
}

// OpenCV's vector arithmetic for the vertical pass. Twin: image::vertical_blend.
__device__ inline int vertical_blend(int a, int b, int w0, int w1) {
    int na = clamp_int(a >> 4, -32768, 32767);
    int nb = clamp_int(b >> 4, -32768, 32767);
    int v = ((na * w0) >> 16) + ((nb * w1) >> 16);
    return clamp_int((v + 2) >> 2, 0, 255);
}

// Packed BGR rows.
struct BgrSource {
    const unsigned char* data;
    int pitch;
    __device__ inline void pixel(int x, int y, int bgr[3]) const {
        const unsigned char* p = data + (long long)y * pitch + x * 3;
        bgr[0] = p[0];
        bgr[1] = p[1];
        bgr[2] = p[2];
    }
};

// NV12 as NVDEC writes it: a Y plane, then interleaved U, V at half resolution.
struct Nv12Source {
    const unsigned char* luma;
    const unsigned char* chroma;
    int pitch;
    YuvToBgr k;
    __device__ inline void pixel(int x, int y, int bgr[3]) const {
        float Y = ((float)luma[(long long)y * pitch + x] - k.y_offset) * k.y_scale;
        const unsigned char* uv = chroma + (long long)(y >> 1) * pitch + (x >> 1) * 2;
        float U = ((float)uv[0] - 128.0f) * k.uv_scale;
        float V = ((float)uv[1] - 128.0f) * k.uv_scale;
        float r = Y + k.r_v * V;
        float g = Y - k.g_u * U - k.g_v * V;
        float b = Y + k.b_u * U;
        bgr[0] = clamp_int((int)rintf(b), 0, 255);
        bgr[1] = clamp_int((int)rintf(g), 0, 255);
        bgr[2] = clamp_int((int)rintf(r), 0, 255);
    }
};

// One pixel of the resized image.
template <typename Source>
__device__ inline void resized_pixel(const Source& src, const Resize& r, int x, int y, int bgr[3]) {
    Tap tx = axis_tap(x, r.src_w, r.step_x, 1);
    Tap ty = axis_tap(y, r.src_h, r.step_y, 0);
    int a0[3], a1[3], b0[3], b1[3];
    src.pixel(tx.i0, ty.i0, a0);
    src.pixel(tx.i1, ty.i0, a1);
    src.pixel(tx.i0, ty.i1, b0);
    src.pixel(tx.i1, ty.i1, b1);
    for (int c = 0; c < 3; ++c) {
        int h0 = a0[c] * tx.w0 + a1[c] * tx.w1;
        int h1 = b0[c] * tx.w0 + b1[c] * tx.w1;
        bgr[c] = vertical_blend(h0, h1, ty.w0, ty.w1);
    }
}

#endif
