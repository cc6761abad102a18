/* test_layers.c - forward kernels of core/engine/layers.c against hand-computed values and, for the
 * im2col + SGEMM convolution, against the direct-summation reference on pseudo-random data. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "im2col.h"
#include "isa.h"
#include "layers.h"

/* Tolerances. Hand-computed values are exact in decimal; float rounding keeps them within
 * VALUE_EPS. The BLAS convolution may sum in another order than the double-precision reference,
 * so it is held to CONV_REL_TOL of the output's magnitude. */
#define VALUE_EPS 1e-6f
#define CONV_REL_TOL 1e-4
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void assert_floats(const float *got, const float *want, size_t n, float eps)
{
    for (size_t i = 0; i < n; i++) {
        if (!(fabsf(got[i] - want[i]) <= eps))
            fail_msg("index %zu: got %.9g, want %.9g (eps %g)", i, (double)got[i],
                     (double)want[i], (double)eps);
    }
}

/* Exact equality, for 0/1 spikes and values that float arithmetic must reproduce exactly. */
static void assert_floats_exact(const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!(got[i] == want[i]))
            fail_msg("index %zu: got %.9g, want exactly %.9g", i, (double)got[i],
                     (double)want[i]);
    }
}

static float *alloc_floats(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

/* Fill with NaN so any element a kernel forgets to write shows up in the comparison. */
static void poison(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
}

/* ---- convolution: im2col + SGEMM against the naive reference ------------------------------ */

/* xorshift32: deterministic data, the same on every machine. */
static uint32_t rng_next(uint32_t *st)
{
    uint32_t x = *st;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *st = x;
}

/* Uniform in [-1, 1). */
static void fill_random(float *p, size_t n, uint32_t *st)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((double)(rng_next(st) >> 8) / (double)(1u << 23) - 1.0);
}

typedef struct {
    os_conv_shape s;
    int bias;
} conv_case;

static double conv_max_abs_diff; /* over every case; printed by the group teardown */

static const conv_case conv_cases[] = {
    {{3, 32, 32, 8, 3, 3, 1, 1}, 1},   /* 3x3 s1 p1 */
    {{3, 32, 32, 8, 3, 3, 2, 1}, 0},   /* 3x3 s2 p1 */
    {{16, 32, 32, 8, 1, 1, 1, 0}, 1},  /* 1x1 s1 p0: SGEMM straight on x */
    {{16, 13, 11, 8, 1, 1, 1, 0}, 0},  /* same path, odd sizes, no bias */
    {{8, 13, 11, 5, 1, 1, 2, 0}, 1},   /* 1x1 s2 p0: im2col subsamples */
    {{3, 32, 32, 6, 5, 5, 1, 2}, 0},   /* 5x5 s1 p2 */
    {{3, 32, 32, 16, 7, 7, 2, 3}, 1},  /* 7x7 s2 p3 (ResNet stem) */
    {{4, 13, 11, 5, 3, 1, 1, 1}, 1},   /* 3x1, kh != kw */
    {{2, 13, 11, 3, 1, 5, 2, 2}, 0},   /* 1x5 s2 p2 */
    {{3, 13, 11, 4, 3, 3, 3, 0}, 1},   /* stride equal to the kernel, odd sizes */
    {{2, 5, 4, 3, 4, 4, 2, 3}, 1},     /* padding nearly as wide as the kernel */
    {{1, 1, 1, 2, 3, 3, 1, 1}, 1},     /* 1x1 image, 3x3 kernel: all but the centre is padding */
    {{64, 16, 16, 32, 3, 3, 1, 1}, 1}, /* deep reduction, K = 576 */
    {{2, 4, 3, 3, 5, 5, 1, 2}, 1},     /* same size, the tap shift wider than a row */
};

static void test_conv_vs_naive(void **state)
{
    const conv_case *c = *state;
    const os_conv_shape *s = &c->s;
    const int oh = os_conv_out_h(s);
    const int ow = os_conv_out_w(s);
    assert_int_equal(oh, (s->in_h + 2 * s->pad - s->kh) / s->stride + 1);
    assert_int_equal(ow, (s->in_w + 2 * s->pad - s->kw) / s->stride + 1);

    const size_t nx = (size_t)s->in_c * s->in_h * s->in_w;
    const size_t nw = (size_t)s->out_c * s->in_c * s->kh * s->kw;
    const size_t ny = (size_t)s->out_c * oh * ow;
    const size_t ncol = os_conv_col_floats(s);
    const int direct = s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
    if (direct)
        assert_int_equal(ncol, 0);
    else
        assert_int_equal(ncol, (size_t)s->in_c * s->kh * s->kw * oh * ow);

    uint32_t rng = 0x9e3779b9u ^ (uint32_t)(nx * 31 + nw);
    float *x = alloc_floats(nx), *w = alloc_floats(nw), *b = alloc_floats((size_t)s->out_c);
    float *y = alloc_floats(ny), *ref = alloc_floats(ny);
    /* Exactly the advertised scratch (none for the direct path), so ASan catches an overrun. */
    float *col = ncol ? alloc_floats(ncol) : NULL;
    fill_random(x, nx, &rng);
    fill_random(w, nw, &rng);
    fill_random(b, (size_t)s->out_c, &rng);
    poison(y, ny);
    poison(ref, ny);
    if (col)
        poison(col, ncol);

    const float *bias = c->bias ? b : NULL;
    os_conv2d(s, x, w, bias, y, col);
    os_conv2d_naive(s, x, w, bias, ref);

    double mag = 1.0, worst = 0.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < ny; i++) {
        assert_true(isfinite(ref[i]));
        if (fabs(ref[i]) > mag)
            mag = fabs(ref[i]);
    }
    for (size_t i = 0; i < ny; i++) {
        const double d = fabs((double)y[i] - (double)ref[i]);
        if (isnan(d)) { /* an element never written (poisoned) or a NaN produced */
            worst = INFINITY;
            worst_i = i;
            break;
        }
        if (d > worst) {
            worst = d;
            worst_i = i;
        }
    }
    if (worst > conv_max_abs_diff && isfinite(worst))
        conv_max_abs_diff = worst;
    if (!(worst <= CONV_REL_TOL * mag))
        fail_msg("conv in %dx%dx%d out_c %d k %dx%d s%d p%d: |diff| %g at %zu (got %g want %g)",
                 s->in_c, s->in_h, s->in_w, s->out_c, s->kh, s->kw, s->stride, s->pad, worst,
                 worst_i, (double)y[worst_i], (double)ref[worst_i]);

    free(x);
    free(w);
    free(b);
    free(y);
    free(ref);
    free(col);
}

/* ---- convolution: hand-computed values pin the semantics ---------------------------------- */

/* x = 1 2 3    w = 1 2    cross-correlation (kernel not flipped):
 *     4 5 6        3 4    y[0][0] = 1*1 + 2*2 + 3*4 + 4*5 = 37
 *     7 8 9               y[0][1] = 1*2 + 2*3 + 3*5 + 4*6 = 47
 *                         y[1][0] = 1*4 + 2*5 + 3*7 + 4*8 = 67
 *                         y[1][1] = 1*5 + 2*6 + 3*8 + 4*9 = 77
 * (a true convolution would give 23 at [0][0]). */
static void test_conv_hand_cross_correlation(void **state)
{
    (void)state;
    const os_conv_shape s = {1, 3, 3, 1, 2, 2, 1, 0};
    const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const float w[4] = {1, 2, 3, 4};
    const float want[4] = {37, 47, 67, 77};
    float y[4], ref[4], col[16];
    assert_int_equal(os_conv_out_h(&s), 2);
    assert_int_equal(os_conv_out_w(&s), 2);
    assert_int_equal(os_conv_col_floats(&s), 16);
    poison(y, 4);
    os_conv2d(&s, x, w, NULL, y, col);
    assert_floats_exact(y, want, 4);
    os_conv2d_naive(&s, x, w, NULL, ref);
    assert_floats_exact(ref, want, 4);
}

/* Weight layout [out_c][in_c][kh][kw] and bias per output channel.
 * x channel 0 = 1..9 as above, channel 1 = 10 * channel 0.
 * w[0][0] = 1 2 / 3 4, w[0][1] = 0 0 / 0 1, b[0] = 0.5:
 *   y0 = (37 47 / 67 77) + 10 * (5 6 / 8 9) + 0.5 = 87.5 107.5 / 147.5 167.5
 * w[1][0] = 0 0 / 0 0, w[1][1] = 1 0 / 0 0 (top-left tap of channel 1), b[1] = -1:
 *   y1 = 10 * (1 2 / 4 5) - 1 = 9 19 / 39 49 */
static void test_conv_hand_layout_bias(void **state)
{
    (void)state;
    const os_conv_shape s = {2, 3, 3, 2, 2, 2, 1, 0};
    const float x[18] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50, 60, 70, 80, 90};
    const float w[16] = {1, 2, 3, 4, 0, 0, 0, 1, /* out 0: in 0, in 1 */
                         0, 0, 0, 0, 1, 0, 0, 0}; /* out 1: in 0, in 1 */
    const float b[2] = {0.5f, -1.0f};
    const float want[8] = {87.5f, 107.5f, 147.5f, 167.5f, 9, 19, 39, 49};
    float y[8], ref[8], col[32];
    assert_int_equal(os_conv_col_floats(&s), 32);
    poison(y, 8);
    os_conv2d(&s, x, w, b, y, col);
    assert_floats_exact(y, want, 8);
    os_conv2d_naive(&s, x, w, b, ref);
    assert_floats_exact(ref, want, 8);
}

/* Zero padding and stride: 3x3 all-ones kernel, pad 1, stride 2 on 1..9 gives a 2x2 output whose
 * windows are centred on the corners, so each sums the 2x2 block of the image at that corner:
 *   1+2+4+5 = 12   2+3+5+6 = 16
 *   4+5+7+8 = 24   5+6+8+9 = 28 */
static void test_conv_hand_pad_stride(void **state)
{
    (void)state;
    const os_conv_shape s = {1, 3, 3, 1, 3, 3, 2, 1};
    const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const float w[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const float want[4] = {12, 16, 24, 28};
    float y[4], ref[4], col[36];
    assert_int_equal(os_conv_out_h(&s), 2);
    assert_int_equal(os_conv_out_w(&s), 2);
    assert_int_equal(os_conv_col_floats(&s), 36);
    poison(y, 4);
    poison(col, 36);
    os_conv2d(&s, x, w, NULL, y, col);
    assert_floats_exact(y, want, 4);
    os_conv2d_naive(&s, x, w, NULL, ref);
    assert_floats_exact(ref, want, 4);
}

/* 1x1, stride 1, no padding: no scratch, col may be NULL; y = 2*x0 - x1 + 1. */
static void test_conv_hand_pointwise(void **state)
{
    (void)state;
    const os_conv_shape s = {2, 1, 3, 1, 1, 1, 1, 0};
    const float x[6] = {1, 2, 3, 10, 20, 30};
    const float w[2] = {2, -1};
    const float b[1] = {1};
    const float want[3] = {-7, -15, -23};
    float y[3];
    assert_int_equal(os_conv_col_floats(&s), 0);
    poison(y, 3);
    os_conv2d(&s, x, w, b, y, NULL);
    assert_floats_exact(y, want, 3);
}

static void test_conv_out_size(void **state)
{
    (void)state;
    const os_conv_shape stem = {3, 224, 224, 64, 7, 7, 2, 3};
    assert_int_equal(os_conv_out_h(&stem), 112);
    assert_int_equal(os_conv_out_w(&stem), 112);
    const os_conv_shape odd = {1, 13, 11, 1, 3, 3, 2, 1};
    assert_int_equal(os_conv_out_h(&odd), 7); /* (13 + 2 - 3) / 2 + 1 */
    assert_int_equal(os_conv_out_w(&odd), 6); /* (11 + 2 - 3) / 2 + 1, floor */
    const os_conv_shape tall = {1, 13, 11, 1, 3, 1, 1, 0};
    assert_int_equal(os_conv_out_h(&tall), 11);
    assert_int_equal(os_conv_out_w(&tall), 11);
}

/* ---- LIF ---------------------------------------------------------------------------------- */

/* threshold 1.0, leak 0.9; u = 0.9*u + in; spike = u > 1; u -= spike.
 *
 *           inputs (step 1, 2, 3)   step 1           step 2                  step 3
 * n0        1.2, 0, 0               u 1.2 -> fire,   0.18        no          0.162     no
 *                                   u = 0.2
 * n1        0.6, 0.5, 0             0.6   no         0.54+0.5 = 1.04 fire,   0.036     no
 *                                                    u = 0.04
 * n2        1.0, 0, 0               1.0   no (strict >), keeps 1.0
 *                                                    0.9         no          0.81      no
 * n3        2.5, 0, 0               2.5 -> fire,     1.35 -> fire,           0.315     no
 *                                   u = 1.5 (one threshold subtracted, not reset to 0)
 *                                                    u = 0.35
 * n4        0.6, 0.45, 0            0.6   no         0.54+0.45 = 0.99 no     0.891     no
 *                                                    (without the leak: 1.05, a spike)
 * n5        -0.5, 0.3, 1.5          -0.5  no         -0.45+0.3 = -0.15 no    -0.135+1.5 = 1.365
 *                                   (negative potential is kept)             fire, u = 0.365 */
static void test_lif_three_steps(void **state)
{
    (void)state;
    enum { N = 6, STEPS = 3 };
    const float threshold = 1.0f, leak = 0.9f;
    const float in[STEPS][N] = {
        {1.2f, 0.6f, 1.0f, 2.5f, 0.6f, -0.5f},
        {0.0f, 0.5f, 0.0f, 0.0f, 0.45f, 0.3f},
        {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.5f},
    };
    const float want_u[STEPS][N] = {
        {0.2f, 0.6f, 1.0f, 1.5f, 0.6f, -0.5f},
        {0.18f, 0.04f, 0.9f, 0.35f, 0.99f, -0.15f},
        {0.162f, 0.036f, 0.81f, 0.315f, 0.891f, 0.365f},
    };
    const float want_s[STEPS][N] = {
        {1, 0, 0, 1, 0, 0},
        {0, 1, 0, 1, 0, 0},
        {0, 0, 0, 0, 0, 1},
    };
    float u[N] = {0};
    float spike[N];
    for (int t = 0; t < STEPS; t++) {
        poison(spike, N);
        os_lif_step(u, in[t], N, threshold, leak, spike);
        assert_floats_exact(spike, want_s[t], N);
        assert_floats(u, want_u[t], N, VALUE_EPS);
    }
    /* Exactly at threshold: no spike and the membrane is left untouched. */
    float u2[1] = {0}, s2[1];
    const float at[1] = {1.0f};
    os_lif_step(u2, at, 1, 1.0f, 0.9f, s2);
    assert_true(s2[0] == 0.0f);
    assert_true(u2[0] == 1.0f);
}

/* ---- pooling ------------------------------------------------------------------------------ */

/* Channel 0 is -(1..16) as 4x4, channel 1 is +(1..16). k 3, stride 2, pad 1 -> 2x2 windows:
 *   (0,0): rows 0-1, cols 0-1: 1 2 5 6           (0,1): rows 0-1, cols 1-3: 2 3 4 6 7 8
 *   (1,0): rows 1-3, cols 0-1: 5 6 9 10 13 14    (1,1): rows 1-3, cols 1-3: 6 7 8 10 11 12 14 15 16
 * Max ignores padding, so on the negative channel it is -1 -2 -5 -6 (not 0 from the padding);
 * on the positive one 6 8 14 16. Average divides by 9 with padding counted as zero:
 *   sums 14 30 57 99 -> 14/9 30/9 57/9 11. */
static void test_pool_padded(void **state)
{
    (void)state;
    float x[32];
    for (int i = 0; i < 16; i++) {
        x[i] = -(float)(i + 1);
        x[16 + i] = (float)(i + 1);
    }
    assert_int_equal(os_pool_out(4, 3, 2, 1), 2);

    const float want_max[8] = {-1, -2, -5, -6, 6, 8, 14, 16};
    float y[8];
    poison(y, 8);
    os_maxpool2d(x, 2, 4, 4, 3, 2, 1, y);
    assert_floats_exact(y, want_max, 8);

    const float want_avg[8] = {-14.0f / 9, -30.0f / 9, -57.0f / 9, -11.0f,
                               14.0f / 9,  30.0f / 9,  57.0f / 9,  11.0f};
    poison(y, 8);
    os_avgpool2d(x, 2, 4, 4, 3, 2, 1, y);
    assert_floats(y, want_avg, 8, VALUE_EPS);
}

/* 2x2 stride 2, no padding, on a 4x5 image (the last column is dropped by the floor):
 *    3 -1  0  2  9
 *   -4  5  1 -2  9
 *    0  0 -3 -3  9
 *    7 -8 -1 -5  9
 * max: 5 2 / 7 -1     avg: 3/4 1/4 / -1/4 -12/4 */
static void test_pool_plain(void **state)
{
    (void)state;
    const float x[20] = {3, -1, 0, 2, 9, -4, 5, 1, -2, 9, 0, 0, -3, -3, 9, 7, -8, -1, -5, 9};
    assert_int_equal(os_pool_out(5, 2, 2, 0), 2);
    assert_int_equal(os_pool_out(32, 3, 2, 1), 16);
    float y[4];
    const float want_max[4] = {5, 2, 7, -1};
    poison(y, 4);
    os_maxpool2d(x, 1, 4, 5, 2, 2, 0, y);
    assert_floats_exact(y, want_max, 4);
    const float want_avg[4] = {0.75f, 0.25f, -0.25f, -3.0f};
    poison(y, 4);
    os_avgpool2d(x, 1, 4, 5, 2, 2, 0, y);
    assert_floats_exact(y, want_avg, 4);
}

static void test_global_avgpool(void **state)
{
    (void)state;
    const float x[8] = {1, 2, 3, 6, -1, 0, 4, -7}; /* 2 channels of 4 */
    const float want[2] = {3.0f, -1.0f};
    float y[2];
    poison(y, 2);
    os_global_avgpool(x, 2, 4, y);
    assert_floats_exact(y, want, 2);
}

/* ---- linear, softmax, element-wise -------------------------------------------------------- */

/* w = 1 2 3 / 4 5 6, x = 1 -1 2: w.x = 1-2+6 = 5, 4-5+12 = 11; with b = 0.5 -1: 5.5 10. */
static void test_linear(void **state)
{
    (void)state;
    const float w[6] = {1, 2, 3, 4, 5, 6};
    const float x[3] = {1, -1, 2};
    const float b[2] = {0.5f, -1.0f};
    float y[2];
    const float want_nobias[2] = {5, 11};
    const float want_bias[2] = {5.5f, 10};
    poison(y, 2); /* NULL bias must overwrite, not accumulate into, y */
    os_linear(x, 3, 2, w, NULL, y);
    assert_floats_exact(y, want_nobias, 2);
    poison(y, 2);
    os_linear(x, 3, 2, w, b, y);
    assert_floats_exact(y, want_bias, 2);
}

/* softmax(1, 2, 3) = (e^-2, e^-1, 1) / (1 + e^-1 + e^-2) = 0.0900305732 0.2447284711 0.6652409558
 * softmax(1000, 1001) = (1, e) / (1 + e) shifted = 0.2689414214 0.7310585786 */
static void test_softmax(void **state)
{
    (void)state;
    const float x[3] = {1, 2, 3};
    const float want[3] = {0.0900305732f, 0.2447284711f, 0.6652409558f};
    float p[3];
    os_softmax(x, 3, p);
    assert_floats(p, want, 3, VALUE_EPS);
    assert_float_equal((p[0] + p[1] + p[2]), 1.0f, VALUE_EPS);

    /* expf(1000) overflows: only the max-subtracted form gives finite answers. */
    const float big[2] = {1000, 1001};
    const float want_big[2] = {0.2689414214f, 0.7310585786f};
    float pb[2];
    os_softmax(big, 2, pb);
    assert_floats(pb, want_big, 2, VALUE_EPS);
    const float tiny[2] = {-1000, -1001};
    const float want_tiny[2] = {0.7310585786f, 0.2689414214f};
    os_softmax(tiny, 2, pb);
    assert_floats(pb, want_tiny, 2, VALUE_EPS);

    /* In place: p == x gives what the separate call gave. */
    float inplace[3] = {1, 2, 3};
    os_softmax(inplace, 3, inplace);
    assert_floats_exact(inplace, p, 3);

    const float one[1] = {-42};
    float p1[1];
    os_softmax(one, 1, p1);
    assert_true(p1[0] == 1.0f);

    /* Ten classes of mixed sign: sums to 1. */
    const float ten[10] = {0.3f, -2, 7, 7, 1e-3f, -50, 12, 3, 0, -0.5f};
    float p10[10];
    os_softmax(ten, 10, p10);
    float sum = 0;
    for (int i = 0; i < 10; i++) {
        assert_true(p10[i] >= 0.0f && p10[i] <= 1.0f);
        sum += p10[i];
    }
    assert_float_equal(sum, 1.0f, VALUE_EPS);
    assert_true(p10[2] == p10[3]);
}

static void test_relu(void **state)
{
    (void)state;
    float x[6] = {-1, 0, 2.5f, -1e-4f, 1e-30f, -INFINITY};
    const float want[6] = {0, 0, 2.5f, 0, 1e-30f, 0};
    os_relu(x, 6);
    assert_floats_exact(x, want, 6);
}

/* Channel 0: x*2 + 0.5 on 1 2 3 -> 2.5 4.5 6.5; channel 1: x*-1 + 3 on -1 0 1 -> 4 3 2. */
static void test_channel_affine(void **state)
{
    (void)state;
    float x[6] = {1, 2, 3, -1, 0, 1};
    const float scale[2] = {2, -1}, shift[2] = {0.5f, 3};
    const float want[6] = {2.5f, 4.5f, 6.5f, 4, 3, 2};
    os_channel_affine(x, 2, 3, scale, shift);
    assert_floats_exact(x, want, 6);
}

static void test_add(void **state)
{
    (void)state;
    float y[3] = {1, 2, 3};
    const float a[3] = {0.5f, -2, 10};
    const float want[3] = {1.5f, 0, 13};
    os_add_inplace(y, a, 3);
    assert_floats_exact(y, want, 3);
}

static int print_conv_diff(void **state)
{
    (void)state;
    printf("conv im2col+BLAS vs naive: max |diff| = %g\n", conv_max_abs_diff);
    return 0;
}

#define CONV_CASE(i, name) {name, test_conv_vs_naive, NULL, NULL, (void *)&conv_cases[i]}

/* Shapes for the im2col checks: planes with and without a tail of fewer than 8 cells, 1x1 to
 * 5x5 kernels, a 1x1 map (every shift but the centre's past the whole plane), and maps the
 * AVX2 form does not take (stride 2, 33x33). */
static const os_conv_shape im2col_cases[] = {
    {3, 2, 2, 1, 3, 3, 1, 1},   {5, 3, 5, 1, 3, 3, 1, 1},   {4, 4, 4, 1, 3, 3, 1, 1},
    {2, 7, 9, 1, 5, 5, 1, 2},   {6, 16, 16, 1, 3, 3, 1, 1}, {3, 32, 32, 1, 3, 3, 1, 1},
    {2, 6, 6, 1, 1, 1, 1, 0},   {2, 8, 8, 1, 3, 3, 2, 1},   {2, 33, 33, 1, 3, 3, 1, 1},
    {3, 12, 12, 1, 3, 3, 1, 1}, {2, 1, 1, 1, 3, 3, 1, 1},   {2, 1, 1, 1, 5, 5, 1, 2}};

/* The patch matrix of case k by f, as the second of three images side by side (ld = 3*hw + 1),
 * in a matrix filled with 7 beforehand. */
static float *im2col_case(size_t k,
                          void (*f)(const os_conv_shape *, int, int, const float *, float *,
                                    size_t),
                          size_t *len, size_t *hw_out, size_t *ld_out)
{
    const os_conv_shape *s = &im2col_cases[k];
    const int oh = os_conv_out_h(s), ow = os_conv_out_w(s);
    const size_t hw = (size_t)oh * ow, rows = (size_t)s->in_c * s->kh * s->kw;
    const size_t in = (size_t)s->in_c * s->in_h * s->in_w, ld = 3 * hw + 1;
    float *x = malloc(in * sizeof *x), *col = malloc(rows * ld * sizeof *col);
    assert_true(x && col);
    uint32_t seed = 5 + (uint32_t)k;
    for (size_t i = 0; i < in; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f + 0.5f; /* never 0: a copied cell shows */
    }
    for (size_t i = 0; i < rows * ld; i++)
        col[i] = 7.0f;
    f(s, oh, ow, x, col + hw, ld);
    free(x);
    *len = rows * ld, *hw_out = hw, *ld_out = ld;
    return col;
}

/* The portable form writes its image's columns and nothing else (a 1x1 map's shifts used to
 * zero cells of the next row). */
static void test_im2col_stays_in_its_columns(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof im2col_cases / sizeof *im2col_cases; k++) {
        size_t len, hw, ld;
        float *col = im2col_case(k, os_im2col_scalar, &len, &hw, &ld);
        for (size_t i = 0; i < len; i++) {
            const bool mine = i % ld >= hw && i % ld < 2 * hw;
            if (mine ? col[i] == 7.0f : col[i] != 7.0f)
                fail_msg("case %zu: cell %zu of row %zu %s", k, i % ld, i / ld,
                         mine ? "not written" : "written outside the image's columns");
        }
        free(col);
    }
}

/* os_im2col's AVX2 masked form (small "same" stride-1 maps) gives the portable form's patch
 * matrix float for float. Skipped where the CPU has no AVX2. */
static void test_im2col_avx2_matches_scalar(void **state)
{
    (void)state;
    if (!os_isa_supported(OS_ISA_AVX2)) {
        print_message("skipped: this CPU or build has no avx2 kernels\n");
        skip();
    }
    for (size_t k = 0; k < sizeof im2col_cases / sizeof *im2col_cases; k++) {
        size_t len, hw, ld;
        float *a = im2col_case(k, os_im2col, &len, &hw, &ld);
        float *b = im2col_case(k, os_im2col_scalar, &len, &hw, &ld);
        if (memcmp(a, b, len * sizeof *a))
            fail_msg("case %zu: patch matrices differ", k);
        free(a), free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CONV_CASE(0, "conv_vs_naive_3x3_s1_p1_bias"),
        CONV_CASE(1, "conv_vs_naive_3x3_s2_p1"),
        CONV_CASE(2, "conv_vs_naive_1x1_s1_p0_direct_bias"),
        CONV_CASE(3, "conv_vs_naive_1x1_s1_p0_direct_13x11"),
        CONV_CASE(4, "conv_vs_naive_1x1_s2_p0_13x11_bias"),
        CONV_CASE(5, "conv_vs_naive_5x5_s1_p2"),
        CONV_CASE(6, "conv_vs_naive_7x7_s2_p3_bias"),
        CONV_CASE(7, "conv_vs_naive_3x1_s1_p1_13x11_bias"),
        CONV_CASE(8, "conv_vs_naive_1x5_s2_p2_13x11"),
        CONV_CASE(9, "conv_vs_naive_3x3_s3_p0_13x11_bias"),
        CONV_CASE(10, "conv_vs_naive_4x4_s2_p3_5x4_bias"),
        CONV_CASE(11, "conv_vs_naive_3x3_s1_p1_1x1_image"),
        CONV_CASE(12, "conv_vs_naive_3x3_s1_p1_64ch"),
        CONV_CASE(13, "conv_vs_naive_5x5_s1_p2_4x3_bias"),
        cmocka_unit_test(test_conv_hand_cross_correlation),
        cmocka_unit_test(test_conv_hand_layout_bias),
        cmocka_unit_test(test_conv_hand_pad_stride),
        cmocka_unit_test(test_conv_hand_pointwise),
        cmocka_unit_test(test_conv_out_size),
        cmocka_unit_test(test_lif_three_steps),
        cmocka_unit_test(test_pool_padded),
        cmocka_unit_test(test_pool_plain),
        cmocka_unit_test(test_global_avgpool),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_channel_affine),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_im2col_stays_in_its_columns),
        cmocka_unit_test(test_im2col_avx2_matches_scalar),
    };
    _Static_assert(COUNT(conv_cases) == 14, "one CONV_CASE entry per conv_cases row");
    return cmocka_run_group_tests(tests, NULL, print_conv_diff);
}
