/* eltwise.h - the event path's element-wise layers per instruction set: the LIF step (the
 * first, from a zero membrane, and later ones), the residual add and channels-last max pooling.
 *
 * The reference kernels (layers.h: os_lif_first, os_lif_step, os_add; spikeconv.h:
 * os_maxpool2d_hwc) are compiled for the generic x86-64 target, so 4 lanes; here each comes
 * again for AVX2 and AVX-512. Every one is element-wise (no reduction, no multiply-add
 * contraction: the build passes -ffp-contract=off and the kernels use separate multiply and
 * add), so every set gives the reference's floats bit for bit, signed zeros and infinities
 * included, and NaN where the reference gives NaN (which NaN payload, when both operands of an
 * add are NaNs, IEEE leaves open and the compiler may swap them): the set changes only speed. A session takes the set of its event kernels (ONESPIKE_ISA).
 */
#ifndef ONESPIKE_ELTWISE_H
#define ONESPIKE_ELTWISE_H

#include <stddef.h>

#include "isa.h"

typedef struct {
    os_isa isa;
    /* os_lif_first: spike = v > threshold for v = in + 0 (quiet: NaN does not fire); if u is
     * not NULL, u = v - threshold * spike */
    void (*lif_first)(float *restrict u, const float *restrict in, size_t n, float threshold,
                      float *restrict spike);
    /* os_lif_step: v = leak * u + in, then as lif_first */
    void (*lif_step)(float *restrict u, const float *restrict in, size_t n, float threshold,
                     float leak, float *restrict spike);
    /* os_add: y = a + b (y is neither a nor b) */
    void (*add)(const float *a, const float *b, size_t n, float *restrict y);
    /* os_maxpool2d_hwc: channels-last max pooling, k x k windows */
    void (*maxpool_hwc)(const float *x, int c, int h, int w, int k, int stride, int pad,
                        float *y);
} os_eltwise;

/* The kernels for isa, or NULL if this build or CPU lacks it (os_isa_supported). */
const os_eltwise *os_eltwise_for(os_isa isa);

#endif
