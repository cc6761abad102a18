/* vec.h - the training loop's element-wise hot spots, per instruction set: the double-precision
 * reductions of BatchNorm (and of biases and LIF parameters), the AdamW update and the LIF
 * backward step of BPTT.
 *
 * Every set computes exactly what the scalar reference computes, bit for bit: the reductions
 * keep the reference's VEC_LANES independent partial sums (lane j adds elements j, j + 8, ...
 * in order) and combine them in the reference's order; the update is element-wise, so lanes
 * change nothing; no set contracts a multiply and an add into one rounding (the wide sets are
 * compiled without FMA). So ONESPIKE_ISA changes only their speed (a run's weights can still
 * differ between CPU types through OpenBLAS, whose SGEMM kernels differ).
 *
 * The set is chosen once per process: ONESPIKE_ISA (scalar, avx2, avx512: avx512 uses the AVX2
 * kernels, which already saturate these memory-bound loops) if set and runnable, else the
 * widest set this CPU runs.
 */
#ifndef ONESPIKE_TRAIN_VEC_H
#define ONESPIKE_TRAIN_VEC_H

#include <stddef.h>

#include "isa.h"

#define VEC_LANES 8

typedef struct {
    double (*sum)(const float *x, size_t n);                    /* sum x */
    /* sum (x - mean)^2: the second pass of a two-pass variance, so no cancellation between
     * E[x^2] and E[x]^2 when the mean is large against the spread */
    double (*sum_sq_dev)(const float *x, size_t n, double mean);
    /* *sdy = sum dy, *sdyd = sum dy * (x - mean) */
    void (*sum_dy_dev)(const float *x, const float *dy, size_t n, double mean, double *sdy,
                       double *sdyd);
    /* AdamW on n elements: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g g; x -= lr_wd x;
     * x -= step * m / (sqrt(v) * denom + eps). */
    void (*adamw)(float *x, const float *g, float *m, float *v, size_t n, float b1, float b2,
                  float lr_wd, float step, float denom, float eps);
    /* One time step of the LIF backward pass (grad.c's os_lif_backward_seq) on m neurons: from
     * the step's membrane ut, spikes st, output gradient gt and the previous step's up, sp,
     * write the input gradient dt (may be gt) and update the carried gradient gv and the
     * per-neuron threshold and leak sums athr, aleak. */
    void (*lif_bwd_step)(const float *ut, const float *st, const float *gt, const float *up,
                         const float *sp, float *dt, float *gv, float *athr, float *aleak,
                         size_t m, float thr, float slope, float leak);
    os_isa isa;
} os_vec_kernels;

/* The set for isa, or NULL if this CPU or build cannot run it. */
const os_vec_kernels *os_vec_kernels_for(os_isa isa);

/* The process's set (see above); never NULL. Thread-safe. */
const os_vec_kernels *os_vec(void);

#endif
