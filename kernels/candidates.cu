// Detector output → candidates, on the device: of the RetinaFace (biubug6 layout) priors of each
// frame, only those scoring at least `threshold` are copied, as rows of 16 floats
// [prior index, score, 4 box offsets, 10 landmark offsets], into `capacity` slots per frame; the
// host reads `counts` and the used rows (a few dozen floats instead of 16,800 × 16), sorts them by
// prior index, decodes them and runs NMS. A frame with more candidates than slots reports its
// full count so the host can fall back to the whole output.
// Grid: x over priors, y over the batch. Twin: detect::retinaface_biubug6 (the threshold test).
#include "facetv.cuh"

extern "C" __global__ void compact_candidates(const float* loc, const float* conf,
                                              const float* landmarks, int priors, float threshold,
                                              int capacity, int* counts, float* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int f = blockIdx.y;
    if (i >= priors) return;
    long long k = (long long)f * priors + i;
    float score = conf[k * 2 + 1];
    if (!(score >= threshold)) return;
    int slot = atomicAdd(&counts[f], 1);
    if (slot >= capacity) return;
    float* o = out + ((long long)f * capacity + slot) * 16;
    o[0] = (float)i;  // exact: priors < 2^24
    o[1] = score;
    for (int j = 0; j < 4; ++j) o[2 + j] = loc[k * 4 + j];
    for (int j = 0; j < 10; ++j) o[6 + j] = landmarks[k * 10 + j];
}
