// Face alignment for a batch: every face of every frame warped in one launch, each with its own
// chip → frame matrix (the inverse of the similarity transform, 6 doubles), into 224×224 BGR
// chips. OpenCV warpAffine arithmetic: source position in 10-bit fixed point rounded to 1/32
// pixel, 4 neighbours with 15-bit weights, black outside the frame.
// Grid: x, y over the chip, z over the faces. Twin: align::warp::warp_affine.
#include "facetv.cuh"

template <typename Source>
__device__ inline void warp_one(const Source& src, int src_w, int src_h, const double* m,
                                int size, unsigned char* chip) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= size || y >= size) return;
    const double ab_scale = 1024.0;
    const long long round_delta = 16;  // AB_SCALE / INTER_TAB / 2
    long long x0 = (long long)rint((m[1] * (double)y + m[2]) * ab_scale) + round_delta;
    long long y0 = (long long)rint((m[4] * (double)y + m[5]) * ab_scale) + round_delta;
    long long adx = (long long)rint(m[0] * (double)x * ab_scale);
    long long ady = (long long)rint(m[3] * (double)x * ab_scale);
    long long xs = (x0 + adx) >> 5;
    long long ys = (y0 + ady) >> 5;
    long long ix = xs >> 5, fx = xs & 31;
    long long iy = ys >> 5, fy = ys & 31;
    long long w[4] = {(32 - fx) * (32 - fy) * 32, fx * (32 - fy) * 32, (32 - fx) * fy * 32,
                      fx * fy * 32};
    long long acc[3] = {0, 0, 0};
    for (int k = 0; k < 4; ++k) {
        long long px = ix + (k & 1), py = iy + (k >> 1);
        if (px < 0 || py < 0 || px >= src_w || py >= src_h) continue;
        int bgr[3];
        src.pixel((int)px, (int)py, bgr);
        for (int c = 0; c < 3; ++c) acc[c] += bgr[c] * w[k];
    }
    unsigned char* o = chip + ((long long)y * size + x) * 3;
    for (int c = 0; c < 3; ++c) {
        long long v = (acc[c] + (1 << 14)) >> 15;
        o[c] = (unsigned char)(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
}

// Face j comes from frame `face_frame[j]`; `chip_to_frame[6j..6j+6]` is its matrix; chips are
// written one after the other, `size × size × 3` bytes each.
extern "C" __global__ void warp_faces_bgr(const unsigned char* const* frames, int pitch, int src_w,
                                          int src_h, const int* face_frame,
                                          const double* chip_to_frame, int size,
                                          unsigned char* chips) {
    int j = blockIdx.z;
    BgrSource src;
    src.data = frames[face_frame[j]];
    src.pitch = pitch;
    warp_one(src, src_w, src_h, chip_to_frame + 6 * j, size,
             chips + (long long)j * size * size * 3);
}

extern "C" __global__ void warp_faces_nv12(const unsigned char* const* luma,
                                           const unsigned char* const* chroma, int pitch,
                                           YuvToBgr k, int src_w, int src_h, const int* face_frame,
                                           const double* chip_to_frame, int size,
                                           unsigned char* chips) {
    int j = blockIdx.z;
    Nv12Source src;
    src.luma = luma[face_frame[j]];
    src.chroma = chroma[face_frame[j]];
    src.pitch = pitch;
    src.k = k;
    warp_one(src, src_w, src_h, chip_to_frame + 6 * j, size,
             chips + (long long)j * size * size * 3);
}
