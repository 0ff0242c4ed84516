// Lets the kernel sources compile as plain C++ on the host, so the CPU tests run the kernels' own
// code (kernels/host/emulate.cpp): the CUDA qualifiers vanish, the thread and block indices become
// per-thread globals set by the emulated launch, and atomics are plain updates (one host thread
// runs a whole launch).
#ifndef FACETV_CUDA_HOST_H
#define FACETV_CUDA_HOST_H
#include <math.h>
#include <string.h>

#define __global__
#define __device__

struct dim3 {
    unsigned x, y, z;
};
extern thread_local dim3 blockIdx, blockDim, threadIdx;

inline unsigned int __float_as_uint(float f) {
    unsigned int u;
    memcpy(&u, &f, sizeof u);
    return u;
}

inline float __uint_as_float(unsigned int u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

inline int atomicAdd(int* p, int v) {
    int old = *p;
    *p += v;
    return old;
}
#endif
