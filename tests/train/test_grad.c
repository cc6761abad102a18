/* test_grad.c - the training kernels of core/train/grad.c.
 *
 * Every backward pass is held to central finite differences of a scalar loss
 * L = sum_i r[i] * y[i] (fixed pseudo-random r, so every output and every path matters; a
 * constant r would, for instance, make BatchNorm's output sum independent of x). The loss is
 * summed in double; the perturbation actually applied is measured after rounding to float, so
 * the step is exact. Each check prints its worst relative error on one line, where
 *   err = |analytic - numeric| / max(|analytic|, |numeric|, ABS_TOL / REL_TOL)
 * i.e. relative to the gradient where it is large and absolute (ABS_TOL) where it is small; a
 * check fails above REL_TOL, and also fails if the gradient is nowhere large enough for the
 * relative part to bite (a vacuous check).
 *
 * LIF is checked in its soft mode (S = integral of the surrogate), where the forward pass is
 * differentiable and its exact derivative is what the backward pass computes; the hard mode is
 * held bit for bit to os_lif_step, and one BPTT case is worked by hand.
 */
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

#include "grad.h"
#include "layers.h"

#define REL_TOL 1e-2
#define ABS_TOL 1e-3
#define FD_EPS  1e-3
/* Hand-computed values and bit-level bookkeeping (accumulation, aliasing). */
#define HAND_EPS 1e-6
#define BN_EPS   1e-5f
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------------------------ */

/* xorshift32: deterministic data, the same on every machine. */
static uint32_t rng_next(uint32_t *st)
{
    uint32_t x = *st;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *st = x;
}

/* Uniform in [lo, hi). */
static void fill_uniform(float *p, size_t n, uint32_t *st, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) {
        const double u = (double)(rng_next(st) >> 8) / (double)(1u << 24);
        p[i] = (float)(lo + (hi - lo) * u);
    }
}

static float *alloc_floats(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

static float *zeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

/* Fill with NaN so any element a "write" kernel forgets shows up. */
static void poison(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
}

static double dot_d(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Compare the analytic gradient of `param` (n floats) with central differences of f. */
static double check_grad(const char *name, loss_fn f, void *ctx, float *param, size_t n,
                         const float *analytic)
{
    double worst = 0.0, biggest = 0.0, wa = 0.0, wn = 0.0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        const float keep = param[i];
        param[i] = (float)((double)keep + FD_EPS);
        const double xp = param[i];
        const double lp = f(ctx);
        param[i] = (float)((double)keep - FD_EPS);
        const double xm = param[i];
        const double lm = f(ctx);
        param[i] = keep;
        const double num = (lp - lm) / (xp - xm);
        const double a = analytic[i];
        const double scale = fmax(fmax(fabs(a), fabs(num)), ABS_TOL / REL_TOL);
        const double err = fabs(a - num) / scale;
        if (!(err <= worst)) { /* also catches NaN */
            worst = err;
            wi = i;
            wa = a;
            wn = num;
        }
        biggest = fmax(biggest, fabs(a));
    }
    printf("grad check %-46s max rel err %.2e  (%zu values, max |grad| %.3g)\n", name, worst, n,
           biggest);
    if (!(worst <= REL_TOL))
        fail_msg("%s: index %zu analytic %.9g numeric %.9g (rel err %.3g > %g)", name, wi, wa, wn,
                 worst, REL_TOL);
    if (!(biggest >= ABS_TOL / REL_TOL))
        fail_msg("%s: gradient at most %g everywhere: the check would not see an error", name,
                 biggest);
    return worst;
}

/* got == want * factor + offset elementwise, to HAND_EPS relative: accumulation checks. */
static void assert_affine(const char *what, const float *got, const float *want, size_t n,
                          float factor, float offset)
{
    for (size_t i = 0; i < n; i++) {
        const double w = (double)want[i] * factor + offset;
        if (!(fabs((double)got[i] - w) <= HAND_EPS * fmax(1.0, fabs(w))))
            fail_msg("%s: index %zu got %.9g want %.9g", what, i, (double)got[i], w);
    }
}

static void assert_near(const char *what, double got, double want)
{
    if (!(fabs(got - want) <= HAND_EPS * fmax(1.0, fabs(want))))
        fail_msg("%s: got %.9g want %.9g", what, got, want);
}

/* ---- convolution -------------------------------------------------------------------------- */

typedef struct {
    os_conv_shape s;
    const char *name;
} conv_case;

static const conv_case conv_cases[] = {
    {{3, 7, 6, 4, 3, 3, 1, 1}, "conv 3x3 s1 p1"},
    {{2, 8, 9, 3, 3, 3, 2, 1}, "conv 3x3 s2 p1"},
    {{3, 6, 5, 5, 1, 1, 1, 0}, "conv 1x1 s1 p0 (direct)"},
    {{2, 7, 7, 3, 1, 1, 2, 0}, "conv 1x1 s2 p0"},
    {{2, 6, 7, 3, 2, 3, 2, 2}, "conv 2x3 s2 p2 (all-pad windows)"},
    {{3, 5, 5, 2, 5, 5, 1, 0}, "conv 5x5 s1 p0 (one output)"},
    {{2, 9, 8, 3, 3, 3, 3, 1}, "conv 3x3 s3 p1"},
    {{2, 4, 3, 2, 5, 5, 1, 2}, "conv 5x5 s1 p2 (same size, the shift wider than a row)"},
};

typedef struct {
    os_conv_shape s;
    float *x, *w, *b, *y, *col, *r;
    size_t ny;
} conv_ctx;

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    os_conv2d(&c->s, c->x, c->w, c->b, c->y, c->col);
    return dot_d(c->r, c->y, c->ny);
}

static void test_conv_backward(void **state)
{
    const conv_case *cc = *state;
    conv_ctx c = {.s = cc->s};
    const os_conv_shape *s = &c.s;
    const size_t nx = (size_t)s->in_c * s->in_h * s->in_w;
    const size_t nw = (size_t)s->out_c * s->in_c * s->kh * s->kw;
    const size_t ncol = os_conv_col_floats(s);
    c.ny = (size_t)s->out_c * os_conv_out_h(s) * os_conv_out_w(s);
    uint32_t rng = 0x2545f491u ^ (uint32_t)(nx * 131 + nw);

    c.x = alloc_floats(nx);
    c.w = alloc_floats(nw);
    c.b = alloc_floats((size_t)s->out_c);
    c.y = alloc_floats(c.ny);
    c.r = alloc_floats(c.ny);
    c.col = ncol ? alloc_floats(ncol) : NULL; /* exactly the advertised scratch */
    fill_uniform(c.x, nx, &rng, -1.0f, 1.0f);
    fill_uniform(c.w, nw, &rng, -1.0f, 1.0f);
    fill_uniform(c.b, (size_t)s->out_c, &rng, -1.0f, 1.0f);
    fill_uniform(c.r, c.ny, &rng, -1.0f, 1.0f);

    float *dw = zeros(nw), *db = zeros((size_t)s->out_c), *dx = alloc_floats(nx);
    poison(dx, nx);
    if (c.col)
        poison(c.col, ncol);
    os_conv2d_backward(s, c.x, c.w, c.r, dw, db, dx, c.col);

    char name[96];
    snprintf(name, sizeof name, "%s dw", cc->name);
    check_grad(name, conv_loss, &c, c.w, nw, dw);
    snprintf(name, sizeof name, "%s db", cc->name);
    check_grad(name, conv_loss, &c, c.b, (size_t)s->out_c, db);
    snprintf(name, sizeof name, "%s dx", cc->name);
    check_grad(name, conv_loss, &c, c.x, nx, dx);

    /* dw and db accumulate; dx may be NULL (first layer). */
    float *dw2 = alloc_floats(nw), *db2 = alloc_floats((size_t)s->out_c);
    memcpy(dw2, dw, nw * sizeof(float));
    memcpy(db2, db, (size_t)s->out_c * sizeof(float));
    os_conv2d_backward(s, c.x, c.w, c.r, dw2, db2, NULL, c.col);
    assert_affine("conv dw accumulates", dw2, dw, nw, 2.0f, 0.0f);
    assert_affine("conv db accumulates", db2, db, (size_t)s->out_c, 2.0f, 0.0f);

    free(c.x);
    free(c.w);
    free(c.b);
    free(c.y);
    free(c.r);
    free(c.col);
    free(dw);
    free(db);
    free(dx);
    free(dw2);
    free(db2);
}

/* ---- linear ------------------------------------------------------------------------------- */

enum { LIN_N = 5, LIN_IN = 7, LIN_OUT = 4 };

typedef struct {
    float x[LIN_N * LIN_IN], w[LIN_OUT * LIN_IN], b[LIN_OUT], y[LIN_N * LIN_OUT],
        r[LIN_N * LIN_OUT];
} linear_ctx;

static double linear_loss(void *p)
{
    linear_ctx *c = p;
    os_linear_batch(c->x, LIN_N, LIN_IN, LIN_OUT, c->w, c->b, c->y);
    return dot_d(c->r, c->y, COUNT(c->y));
}

static void test_linear(void **state)
{
    (void)state;
    linear_ctx c;
    uint32_t rng = 0xa511e9b3u;
    fill_uniform(c.x, COUNT(c.x), &rng, -1.0f, 1.0f);
    fill_uniform(c.w, COUNT(c.w), &rng, -1.0f, 1.0f);
    fill_uniform(c.b, COUNT(c.b), &rng, -1.0f, 1.0f);
    fill_uniform(c.r, COUNT(c.r), &rng, -1.0f, 1.0f);

    /* The batch forward agrees with os_linear row by row, with and without bias. */
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        const float *b = with_bias ? c.b : NULL;
        poison(c.y, COUNT(c.y));
        os_linear_batch(c.x, LIN_N, LIN_IN, LIN_OUT, c.w, b, c.y);
        for (int r = 0; r < LIN_N; r++) {
            float ref[LIN_OUT];
            os_linear(c.x + r * LIN_IN, LIN_IN, LIN_OUT, c.w, b, ref);
            for (int o = 0; o < LIN_OUT; o++)
                assert_near("linear batch vs os_linear", c.y[r * LIN_OUT + o], ref[o]);
        }
    }

    float dw[LIN_OUT * LIN_IN] = {0}, db[LIN_OUT] = {0}, dx[LIN_N * LIN_IN];
    poison(dx, COUNT(dx));
    os_linear_backward(c.x, c.w, c.r, LIN_N, LIN_IN, LIN_OUT, dw, db, dx);
    check_grad("linear dw", linear_loss, &c, c.w, COUNT(c.w), dw);
    check_grad("linear db", linear_loss, &c, c.b, COUNT(c.b), db);
    check_grad("linear dx", linear_loss, &c, c.x, COUNT(c.x), dx);

    float dw2[COUNT(dw)], db2[COUNT(db)];
    memcpy(dw2, dw, sizeof dw);
    memcpy(db2, db, sizeof db);
    os_linear_backward(c.x, c.w, c.r, LIN_N, LIN_IN, LIN_OUT, dw2, db2, NULL);
    assert_affine("linear dw accumulates", dw2, dw, COUNT(dw), 2.0f, 0.0f);
    assert_affine("linear db accumulates", db2, db, COUNT(db), 2.0f, 0.0f);
}

/* ---- BatchNorm, training mode ------------------------------------------------------------- */

enum { BN_N = 3, BN_C = 4, BN_HW = 6, BN_SIZE = BN_N * BN_C * BN_HW };

typedef struct {
    float x[BN_SIZE], gamma[BN_C], beta[BN_C], y[BN_SIZE], r[BN_SIZE];
    float mean[BN_C], invstd[BN_C];
} bn_ctx;

static double bn_loss(void *p)
{
    bn_ctx *c = p;
    double acc[2 * BN_C + 1];
    os_bn_train_forward(c->x, BN_N, BN_C, BN_HW, c->gamma, c->beta, BN_EPS, NULL, acc, c->y, c->mean,
                        c->invstd);
    return dot_d(c->r, c->y, BN_SIZE);
}

static void test_bn(void **state)
{
    (void)state;
    bn_ctx c;
    uint32_t rng = 0x3c6ef372u;
    /* Channels with different means and spreads, gammas of both signs. */
    for (int i = 0; i < BN_N; i++)
        for (int ch = 0; ch < BN_C; ch++)
            fill_uniform(c.x + (i * BN_C + ch) * BN_HW, BN_HW, &rng, -0.5f * (ch + 1) + ch,
                         0.5f * (ch + 1) + ch);
    fill_uniform(c.gamma, BN_C, &rng, 0.5f, 1.5f);
    c.gamma[1] = -c.gamma[1];
    fill_uniform(c.beta, BN_C, &rng, -1.0f, 1.0f);
    fill_uniform(c.r, BN_SIZE, &rng, -1.0f, 1.0f);

    bn_loss(&c);
    /* Each output channel has mean beta and biased variance gamma^2 * var / (var + eps). */
    for (int ch = 0; ch < BN_C; ch++) {
        double m = 0.0, v = 0.0, xm = 0.0, xv = 0.0;
        for (int i = 0; i < BN_N; i++)
            for (int j = 0; j < BN_HW; j++) {
                m += c.y[(i * BN_C + ch) * BN_HW + j];
                xm += c.x[(i * BN_C + ch) * BN_HW + j];
            }
        m /= BN_N * BN_HW;
        xm /= BN_N * BN_HW;
        for (int i = 0; i < BN_N; i++)
            for (int j = 0; j < BN_HW; j++) {
                const double d = c.y[(i * BN_C + ch) * BN_HW + j] - m;
                const double e = c.x[(i * BN_C + ch) * BN_HW + j] - xm;
                v += d * d;
                xv += e * e;
            }
        v /= BN_N * BN_HW;
        xv /= BN_N * BN_HW;
        assert_near("bn output mean", m, c.beta[ch]);
        assert_near("bn output variance", v,
                    (double)c.gamma[ch] * c.gamma[ch] * xv / (xv + (double)BN_EPS));
        assert_near("bn saved mean", c.mean[ch], xm);
        assert_near("bn saved invstd", c.invstd[ch], 1.0 / sqrt(xv + (double)BN_EPS));
    }

    float dx[BN_SIZE], dgamma[BN_C] = {0}, dbeta[BN_C] = {0};
    double acc[2 * BN_C + 1];
    poison(dx, BN_SIZE);
    os_bn_backward(c.x, c.r, BN_N, BN_C, BN_HW, c.gamma, c.mean, c.invstd, NULL, acc, dx, dgamma, dbeta);
    check_grad("bn train dx (through batch stats)", bn_loss, &c, c.x, BN_SIZE, dx);
    check_grad("bn train dgamma", bn_loss, &c, c.gamma, BN_C, dgamma);
    check_grad("bn train dbeta", bn_loss, &c, c.beta, BN_C, dbeta);

    /* dgamma and dbeta accumulate; dx is written, the same whatever dx held. */
    float dx2[BN_SIZE], dgamma2[BN_C], dbeta2[BN_C];
    memcpy(dgamma2, dgamma, sizeof dgamma);
    memcpy(dbeta2, dbeta, sizeof dbeta);
    for (int i = 0; i < BN_SIZE; i++)
        dx2[i] = 1e3f;
    os_bn_backward(c.x, c.r, BN_N, BN_C, BN_HW, c.gamma, c.mean, c.invstd, NULL, acc, dx2, dgamma2, dbeta2);
    assert_affine("bn dgamma accumulates", dgamma2, dgamma, BN_C, 2.0f, 0.0f);
    assert_affine("bn dbeta accumulates", dbeta2, dbeta, BN_C, 2.0f, 0.0f);
    assert_affine("bn dx is written", dx2, dx, BN_SIZE, 1.0f, 0.0f);
}

/* A channel far from zero: x = 1000 + U[-1, 1). One-pass E[x^2] - E[x]^2 in float would lose
 * every digit of the variance (1000^2 against 1/3); the two-pass double statistics do not. */
static void test_bn_large_mean(void **state)
{
    (void)state;
    enum { N = 2, HW = 500 };
    float x[N * HW], y[N * HW], mean, invstd;
    const float gamma = 2.0f, beta = 0.5f;
    uint32_t rng = 0xdeadbeefu;
    fill_uniform(x, N * HW, &rng, 999.0f, 1001.0f);
    double acc[3];
    os_bn_train_forward(x, N, 1, HW, &gamma, &beta, BN_EPS, NULL, acc, y, &mean, &invstd);

    double m = 0.0, v = 0.0;
    for (int i = 0; i < N * HW; i++)
        m += x[i];
    m /= N * HW;
    for (int i = 0; i < N * HW; i++)
        v += (x[i] - m) * (x[i] - m);
    v /= N * HW;
    assert_near("bn large-mean mean", mean, m);
    if (!(fabs(invstd * sqrt(v + (double)BN_EPS) - 1.0) <= 1e-5))
        fail_msg("bn large-mean invstd %.9g, want %.9g", (double)invstd, 1.0 / sqrt(v + 1e-5));
    double ym = 0.0, yv = 0.0;
    for (int i = 0; i < N * HW; i++)
        ym += y[i];
    ym /= N * HW;
    for (int i = 0; i < N * HW; i++)
        yv += (y[i] - ym) * (y[i] - ym);
    yv /= N * HW;
    /* y keeps x's rounding (ulp(1000) = 6e-5 against a spread of 0.58): a looser bound. */
    if (!(fabs(ym - beta) <= 1e-4 && fabs(sqrt(yv) - gamma) <= 1e-3))
        fail_msg("bn large-mean output mean %.6g std %.6g, want %g and %g", ym, sqrt(yv),
                 (double)beta, (double)gamma);
}

/* ---- ReLU --------------------------------------------------------------------------------- */

enum { RELU_N = 40 };

typedef struct {
    float x[RELU_N], y[RELU_N], r[RELU_N];
} relu_ctx;

static double relu_loss(void *p)
{
    relu_ctx *c = p;
    memcpy(c->y, c->x, sizeof c->x);
    os_relu(c->y, RELU_N);
    return dot_d(c->r, c->y, RELU_N);
}

static void test_relu(void **state)
{
    (void)state;
    relu_ctx c;
    uint32_t rng = 0x1234567u;
    fill_uniform(c.x, RELU_N, &rng, -1.0f, 1.0f);
    for (int i = 0; i < RELU_N; i++) /* keep 0.05 from the kink: the step cannot cross it */
        c.x[i] += c.x[i] >= 0.0f ? 0.05f : -0.05f;
    fill_uniform(c.r, RELU_N, &rng, -1.0f, 1.0f);
    relu_loss(&c);
    float dx[RELU_N];
    poison(dx, RELU_N);
    os_relu_backward(c.y, c.r, RELU_N, dx);
    check_grad("relu dx", relu_loss, &c, c.x, RELU_N, dx);
}

/* ---- pooling ------------------------------------------------------------------------------ */

typedef struct {
    int c, h, w, k, stride, pad;
    bool max;
    const char *name;
} pool_case;

static const pool_case pool_cases[] = {
    {2, 7, 7, 3, 2, 1, true, "maxpool 3x3 s2 p1 (overlapping)"},
    {2, 6, 6, 2, 2, 0, true, "maxpool 2x2 s2 p0"},
    {1, 5, 6, 3, 1, 1, true, "maxpool 3x3 s1 p1"},
    {2, 7, 6, 3, 2, 1, false, "avgpool 3x3 s2 p1"},
    {2, 5, 5, 2, 1, 1, false, "avgpool 2x2 s1 p1"},
    {1, 6, 6, 2, 2, 0, false, "avgpool 2x2 s2 p0"},
};

typedef struct {
    const pool_case *pc;
    float *x, *y, *r;
    size_t ny;
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *c = p;
    const pool_case *pc = c->pc;
    if (pc->max)
        os_maxpool2d(c->x, pc->c, pc->h, pc->w, pc->k, pc->stride, pc->pad, c->y);
    else
        os_avgpool2d(c->x, pc->c, pc->h, pc->w, pc->k, pc->stride, pc->pad, c->y);
    return dot_d(c->r, c->y, c->ny);
}

static void test_pool_backward(void **state)
{
    const pool_case *pc = *state;
    pool_ctx c = {.pc = pc};
    const size_t nx = (size_t)pc->c * pc->h * pc->w;
    c.ny = (size_t)pc->c * os_pool_out(pc->h, pc->k, pc->stride, pc->pad) *
           os_pool_out(pc->w, pc->k, pc->stride, pc->pad);
    c.x = alloc_floats(nx);
    c.y = alloc_floats(c.ny);
    c.r = alloc_floats(c.ny);
    uint32_t rng = 0x71c0ffeeu ^ (uint32_t)nx;

    /* No ties, and no two values within 2 * FD_EPS of each other: a shuffled ladder of distinct
     * values 0.01 apart, half of them negative (so padding, were it counted as 0, would win). */
    for (size_t i = 0; i < nx; i++)
        c.x[i] = 0.01f * ((float)i - 0.5f * (float)nx);
    for (size_t i = nx - 1; i > 0; i--) {
        const size_t j = rng_next(&rng) % (i + 1);
        const float t = c.x[i];
        c.x[i] = c.x[j];
        c.x[j] = t;
    }
    fill_uniform(c.r, c.ny, &rng, -1.0f, 1.0f);

    float *dx = zeros(nx);
    if (pc->max) {
        os_maxpool2d_backward(c.x, c.r, pc->c, pc->h, pc->w, pc->k, pc->stride, pc->pad, dx);
    } else {
        os_avgpool2d_backward(c.r, pc->c, pc->h, pc->w, pc->k, pc->stride, pc->pad, dx);
    }
    char name[96];
    snprintf(name, sizeof name, "%s dx", pc->name);
    check_grad(name, pool_loss, &c, c.x, nx, dx);

    /* dx accumulates */
    float *dx2 = alloc_floats(nx);
    for (size_t i = 0; i < nx; i++)
        dx2[i] = dx[i] + 1.0f;
    if (pc->max)
        os_maxpool2d_backward(c.x, c.r, pc->c, pc->h, pc->w, pc->k, pc->stride, pc->pad, dx2);
    else
        os_avgpool2d_backward(c.r, pc->c, pc->h, pc->w, pc->k, pc->stride, pc->pad, dx2);
    assert_affine("pool dx accumulates", dx2, dx, nx, 2.0f, 1.0f);

    free(c.x);
    free(c.y);
    free(c.r);
    free(dx);
    free(dx2);
}

enum { GAP_C = 3, GAP_HW = 10 };

typedef struct {
    float x[GAP_C * GAP_HW], y[GAP_C], r[GAP_C];
} gap_ctx;

static double gap_loss(void *p)
{
    gap_ctx *c = p;
    os_global_avgpool(c->x, GAP_C, GAP_HW, c->y);
    return dot_d(c->r, c->y, GAP_C);
}

static void test_global_avgpool(void **state)
{
    (void)state;
    gap_ctx c;
    uint32_t rng = 0x600dcafeu;
    fill_uniform(c.x, COUNT(c.x), &rng, -1.0f, 1.0f);
    /* dy / hw is small: a large r keeps the check above the absolute floor. */
    fill_uniform(c.r, GAP_C, &rng, 2.0f, 8.0f);
    c.r[1] = -c.r[1];
    float dx[GAP_C * GAP_HW] = {0};
    os_global_avgpool_backward(c.r, GAP_C, GAP_HW, dx);
    check_grad("global avgpool dx", gap_loss, &c, c.x, COUNT(c.x), dx);
}

/* ---- softmax cross-entropy ---------------------------------------------------------------- */

enum { XE_N = 4, XE_K = 5 };

typedef struct {
    float logits[XE_N * XE_K];
    int labels[XE_N];
    float smoothing;
} xent_ctx;

static double xent_loss(void *p)
{
    xent_ctx *c = p;
    return os_softmax_xent(c->logits, XE_N, XE_K, c->labels, c->smoothing, NULL, NULL);
}

static void check_xent(float smoothing, const char *name)
{
    xent_ctx c = {.labels = {0, 3, 4, 1}, .smoothing = smoothing};
    uint32_t rng = 0x5eed1234u;
    fill_uniform(c.logits, COUNT(c.logits), &rng, -3.0f, 3.0f);
    float d[XE_N * XE_K];
    poison(d, COUNT(d));
    int correct = -1;
    const float loss = os_softmax_xent(c.logits, XE_N, XE_K, c.labels, smoothing, d, &correct);
    assert_true(isfinite(loss) && loss > 0.0f);
    assert_true(correct >= 0 && correct <= XE_N);
    /* softmax and target each sum to 1, so each row of the gradient sums to 0 */
    for (int r = 0; r < XE_N; r++) {
        double s = 0.0;
        for (int j = 0; j < XE_K; j++)
            s += d[r * XE_K + j];
        assert_near("xent dlogits row sum", s, 0.0);
    }
    check_grad(name, xent_loss, &c, c.logits, COUNT(c.logits), d);
}

static void test_xent_grad(void **state)
{
    (void)state;
    check_xent(0.0f, "softmax xent dlogits, smoothing 0");
    check_xent(0.1f, "softmax xent dlogits, smoothing 0.1");
}

/* Three rows of three logits:
 *   row 0: (0, ln 2, ln 5), label 2:  p = (1/8, 2/8, 5/8), argmax 2 = label (correct)
 *   row 1: (2, 2 + ln 3, 2), label 0: p = (1/5, 3/5, 1/5), argmax 1 (wrong)
 *   row 2: (1000, 0, -1000), label 0: p = (1, e^-1000, e^-2000): naive exp overflows (correct)
 * smoothing 0: losses ln(8/5), ln 5, ~0; mean = (ln 8) / 3 = ln 2 = 0.693147181.
 * smoothing 0.1, targets 0.1/3 off-label and 0.9 + 0.1/3 on it, loss = -sum t log p:
 *   row 0: (0.1/3)(ln 8 + ln 4) + (0.9 + 0.1/3) ln(8/5) = 0.554194522
 *   row 1: (0.9 + 0.1/3) ln 5 + (0.1/3)(ln(5/3) + ln 5) = 1.572817565
 *   row 2: (0.1/3)(1000 + 2000)                         = 100
 *   mean = 34.0423373623 */
static void test_xent_hand(void **state)
{
    (void)state;
    /* one row per line */
    /* clang-format off */
    const float logits[9] = {0.0f,    logf(2.0f),        logf(5.0f),
                             2.0f,    2.0f + logf(3.0f), 2.0f,
                             1000.0f, 0.0f,              -1000.0f};
    /* clang-format on */
    const int labels[3] = {2, 0, 0};
    float d[9];
    int correct = -1;
    float loss = os_softmax_xent(logits, 3, 3, labels, 0.0f, d, &correct);
    assert_near("xent loss, smoothing 0", loss, 0.693147181);
    assert_int_equal(correct, 2);
    /* row 0 gradient (p - onehot) / 3 */
    assert_near("xent dlogits[0]", d[0], 1.0 / 8 / 3);
    assert_near("xent dlogits[2]", d[2], (5.0 / 8 - 1.0) / 3);
    for (int j = 0; j < 9; j++)
        assert_true(isfinite(d[j]));
    assert_near("xent dlogits row 2 label", d[6], 0.0);

    loss = os_softmax_xent(logits, 3, 3, labels, 0.1f, NULL, &correct);
    if (!(fabs(loss - 34.0423373623) <= 1e-6 * 34.04))
        fail_msg("xent loss, smoothing 0.1: got %.9g want 34.0423373623", (double)loss);
    assert_int_equal(correct, 2);
    printf("xent hand: loss %.9g (ln 2 = 0.693147181), smoothed %.9g (34.0423374)\n",
           (double)os_softmax_xent(logits, 3, 3, labels, 0.0f, NULL, NULL), (double)loss);
}

/* ---- LIF through time --------------------------------------------------------------------- */

enum { LIF_T = 3, LIF_N = 300 }; /* more neurons than one processing block */

typedef struct {
    float in[LIF_T * LIF_N], u[LIF_T * LIF_N], s[LIF_T * LIF_N], r[LIF_T * LIF_N];
    float thr, leak;
    float height; /* surrogate gamma: the soft forward's and the backward's */
} lif_ctx;

static void lif_ptrs(lif_ctx *c, const float *in[LIF_T], float *u[LIF_T], float *s[LIF_T])
{
    for (int t = 0; t < LIF_T; t++) {
        in[t] = c->in + t * LIF_N;
        u[t] = c->u + t * LIF_N;
        s[t] = c->s + t * LIF_N;
    }
}

static double lif_loss(void *p)
{
    lif_ctx *c = p;
    const float *in[LIF_T];
    float *u[LIF_T], *s[LIF_T];
    lif_ptrs(c, in, u, s);
    os_lif_forward_seq(in, LIF_T, LIF_N, c->thr, c->leak, c->height, u, s);
    return dot_d(c->r, c->s, LIF_T * LIF_N);
}

/* Soft mode, T = 3, L = sum_t sum_i r[t][i] s[t][i], thr = 0.9, leak = 0.8; inputs uniform in
 * [lo[t], hi[t]) * thr. Two data sets:
 *  - "mixed": inputs in [0, 2) * thr put u/thr - 1 mostly inside the surrogate's support
 *    (-1, 1), where every path carries weight.
 *  - "saturated t=0": the first step drives every neuron past u = 2 thr, where S is flat at
 *    gamma (dS/du = 0), and the later inputs bring the membrane back into the support. At t = 0
 *    the threshold then acts only through the reset, v0 = u0 - thr * gamma, so that term (-gv * s
 *    in dthr) is no longer swamped by the surrogate's own dS/dthr: dropping it moves dthr by
 *    about 16 %, where the mixed data move it by under 1 %, inside the tolerance. */
static void check_lif_soft(const char *name, const float lo[LIF_T], const float hi[LIF_T],
                           uint32_t seed, float height)
{
    static lif_ctx c; /* large: off the stack */
    c.thr = 0.9f;
    c.leak = 0.8f;
    c.height = height;
    uint32_t rng = seed;
    for (int t = 0; t < LIF_T; t++)
        fill_uniform(c.in + t * LIF_N, LIF_N, &rng, lo[t] * c.thr, hi[t] * c.thr);
    fill_uniform(c.r, COUNT(c.r), &rng, -1.0f, 1.0f);
    lif_loss(&c);

    size_t active = 0;
    for (size_t i = 0; i < COUNT(c.u); i++)
        active += fabsf(c.u[i] / c.thr - 1.0f) < 1.0f;
    assert_true(active > COUNT(c.u) / 2); /* the data exercise the surrogate */

    const float *u[LIF_T], *s[LIF_T], *ds[LIF_T];
    static float din_all[LIF_T * LIF_N];
    float *din[LIF_T];
    for (int t = 0; t < LIF_T; t++) {
        u[t] = c.u + t * LIF_N;
        s[t] = c.s + t * LIF_N;
        ds[t] = c.r + t * LIF_N;
        din[t] = din_all + t * LIF_N;
    }
    poison(din_all, COUNT(din_all));
    double dthr = 0.0, dleak = 0.0;
    os_lif_backward_seq(u, s, ds, LIF_T, LIF_N, c.thr, c.leak, c.height, din, &dthr, &dleak);
    const float gthr = (float)dthr, gleak = (float)dleak;

    char label[96];
    snprintf(label, sizeof label, "lif soft T=3 %s din (all steps)", name);
    check_grad(label, lif_loss, &c, c.in, COUNT(c.in), din_all);
    snprintf(label, sizeof label, "lif soft T=3 %s dthr", name);
    check_grad(label, lif_loss, &c, &c.thr, 1, &gthr);
    snprintf(label, sizeof label, "lif soft T=3 %s dleak", name);
    check_grad(label, lif_loss, &c, &c.leak, 1, &gleak);
}

static void test_lif_soft_grad(void **state)
{
    (void)state;
    const float mixed_lo[LIF_T] = {0.0f, 0.0f, 0.0f}, mixed_hi[LIF_T] = {2.0f, 2.0f, 2.0f};
    check_lif_soft("mixed", mixed_lo, mixed_hi, 0xfeedf00du, OS_SURROGATE_GAMMA);
    /* u0 in [2.2, 3) thr; v0 = u0 - 0.3 thr; 0.8 v0 in [1.5, 2.2) thr; u1 = that + in1 */
    const float sat_lo[LIF_T] = {2.2f, -1.6f, -0.2f}, sat_hi[LIF_T] = {3.0f, -0.2f, 1.2f};
    check_lif_soft("saturated t=0", sat_lo, sat_hi, 0x0badcafeu, OS_SURROGATE_GAMMA);
    /* --surrogate-gamma: the backward follows the height it is given (the soft forward too). */
    check_lif_soft("mixed, gamma 1", mixed_lo, mixed_hi, 0xfeedf00du, 1.0f);
}

/* Hard mode is T calls of os_lif_step, bit for bit: spikes, and the membrane before and after
 * reset. Includes neurons that land exactly on the threshold (strict >: no spike) and one ulp
 * above it. */
static void test_lif_hard_matches_step(void **state)
{
    (void)state;
    static const struct {
        float thr, leak;
    } params[] = {{0.7f, 0.9f}, {1.0f, 1.0f}, {0.35f, 0.25f}};
    static lif_ctx c;
    for (size_t p = 0; p < COUNT(params); p++) {
        c.thr = params[p].thr;
        c.leak = params[p].leak;
        c.height = 0.0f; /* hard: the Heaviside step */
        uint32_t rng = 0xabcdef01u + (uint32_t)p;
        fill_uniform(c.in, COUNT(c.in), &rng, -0.5f, 1.5f * c.thr);
        c.in[0] = c.thr;                          /* u = thr exactly: no spike */
        c.in[1] = nextafterf(c.thr, INFINITY);    /* one ulp above: spike */
        c.in[2] = c.thr;                          /* t = 0 lands on threshold, */
        c.in[LIF_N + 2] = c.thr - c.leak * c.thr; /* t = 1 near it again */
        lif_loss(&c);

        float state_u[LIF_N] = {0}, spike[LIF_N];
        size_t fired = 0;
        for (int t = 0; t < LIF_T; t++) {
            const float *in = c.in + t * LIF_N;
            const float *u = c.u + t * LIF_N;
            const float *s = c.s + t * LIF_N;
            for (int i = 0; i < LIF_N; i++) { /* membrane before reset */
                const float before = c.leak * state_u[i] + in[i];
                if (memcmp(&before, &u[i], sizeof before) != 0)
                    fail_msg("lif hard u[%d][%d] = %.9g, step gives %.9g", t, i, (double)u[i],
                             (double)before);
            }
            os_lif_step(state_u, in, LIF_N, c.thr, c.leak, spike);
            if (memcmp(spike, s, sizeof spike) != 0)
                fail_msg("lif hard spikes differ from os_lif_step at t = %d", t);
            for (int i = 0; i < LIF_N; i++) {
                const float after = u[i] - c.thr * s[i];
                if (memcmp(&after, &state_u[i], sizeof after) != 0)
                    fail_msg("lif hard v[%d][%d] = %.9g, step gives %.9g", t, i, (double)after,
                             (double)state_u[i]);
                fired += s[i] == 1.0f;
                assert_true(s[i] == 0.0f || s[i] == 1.0f);
            }
        }
        assert_true(c.s[0] == 0.0f && c.s[1] == 1.0f && c.s[2] == 0.0f);
        assert_true(fired > 0 && fired < (size_t)LIF_T * LIF_N);
    }
}

/* One neuron, T = 2, hard forward, surrogate backward; gamma = 0.3, thr = 0.8, leak = 0.5,
 * in = (1.2, 0.5), dL/ds = (1, 2). dS/du = (gamma/thr) max(0, 1 - |u/thr - 1|), 0.375 * tri.
 *   t=0: u0 = 1.2 > 0.8, s0 = 1, v0 = 0.4
 *   t=1: u1 = 0.5 * 0.4 + 0.5 = 0.7, s1 = 0, v1 = 0.7
 * backward, t=1 (gv1 = 0):
 *   gs1 = 2;  u1/thr = 0.875, dS/du = 0.375 * 0.875 = 0.328125
 *   gu1 = 2 * 0.328125 = 0.65625 = din1;  gv0 = 0.5 * gu1 = 0.328125
 *   dleak += gu1 * v0 = 0.2625;  dthr += gs1 * (-0.875 * 0.328125) = -0.57421875
 * t=0:
 *   gs0 = 1 - 0.8 * 0.328125 = 0.7375;  u0/thr = 1.5, dS/du = 0.375 * 0.5 = 0.1875
 *   gu0 = 0.328125 + 0.7375 * 0.1875 = 0.46640625 = din0;  dleak += gu0 * v(-1) = 0
 *   dthr += 0.7375 * (-1.5 * 0.1875) - gv0 * s0 = -0.207421875 - 0.328125 = -0.535546875
 * total: din = (0.46640625, 0.65625), dthr = -1.109765625, dleak = 0.2625. */
static void test_lif_hand_bptt(void **state)
{
    (void)state;
    const float thr = 0.8f, leak = 0.5f;
    const float in0 = 1.2f, in1 = 0.5f;
    float u0, u1, s0, s1;
    const float *in[2] = {&in0, &in1};
    float *u[2] = {&u0, &u1}, *s[2] = {&s0, &s1};
    os_lif_forward_seq(in, 2, 1, thr, leak, 0.0f, u, s);
    assert_true(s0 == 1.0f && s1 == 0.0f);
    assert_near("lif hand u0", u0, 1.2);
    assert_near("lif hand u1", u1, 0.7);

    float g[2] = {1.0f, 2.0f}, d[2];
    const float *cu[2] = {&u0, &u1}, *cs[2] = {&s0, &s1}, *ds[2] = {&g[0], &g[1]};
    float *din[2] = {&d[0], &d[1]};
    double dthr = 1.0, dleak = -1.0; /* accumulated onto */
    os_lif_backward_seq(cu, cs, ds, 2, 1, thr, leak, OS_SURROGATE_GAMMA, din, &dthr, &dleak);
    assert_near("lif hand din0", d[0], 0.46640625);
    assert_near("lif hand din1", d[1], 0.65625);
    assert_near("lif hand dthr", dthr - 1.0, -1.109765625);
    assert_near("lif hand dleak", dleak + 1.0, 0.2625);

    /* din may alias ds */
    float *alias[2] = {&g[0], &g[1]};
    dthr = dleak = 0.0;
    os_lif_backward_seq(cu, cs, ds, 2, 1, thr, leak, OS_SURROGATE_GAMMA, alias, &dthr,
                        &dleak);
    assert_true(g[0] == d[0] && g[1] == d[1]);
    assert_near("lif hand dthr (aliased)", dthr, -1.109765625);
    printf("lif hand T=2: din %.9g %.9g dthr %.9g dleak %.9g\n", (double)d[0], (double)d[1], dthr,
           dleak);
}


/* Difference relative to the size of the value (sums of thousands of terms). */
static double rel_diff(float a, float b)
{
    return fabs((double)a - (double)b) / fmax(1.0, fabs((double)a));
}

/* The batched convolution is the per-image one, rearranged: same outputs and gradients (the
 * data gradient of stride-1 convs by another route, a convolution of dy); shapes 5 and 6 have
 * an im2col of one image over the chunk's cache budget (one image a chunk) or taking two of the
 * three images (chunks of 2 and 1). */
static void test_conv_batch_matches_single(void **state)
{
    (void)state;
    static const os_conv_shape cases[] = {
        {3, 9, 7, 4, 3, 3, 1, 1}, {5, 8, 8, 6, 3, 3, 2, 1},   {4, 6, 6, 3, 1, 1, 1, 0},
        {2, 5, 4, 3, 2, 3, 2, 2}, {32, 32, 32, 8, 3, 3, 1, 1}, {24, 24, 24, 4, 3, 3, 1, 1},
        /* the data gradient as a convolution: pad 0 (its pad 2), a 5x5 kernel, out > in, a
         * 2x2 kernel (its pad 0), a rectangular kernel (col2im instead) */
        {3, 7, 6, 5, 3, 3, 1, 0}, {4, 9, 8, 3, 5, 5, 1, 2}, {2, 6, 5, 7, 3, 3, 1, 1},
        {3, 5, 6, 4, 2, 2, 1, 1}, {3, 6, 6, 4, 3, 1, 1, 1}};
    enum { N = 3 };
    uint32_t st = 77;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const os_conv_shape *s = &cases[c];
        size_t in = (size_t)s->in_c * s->in_h * s->in_w;
        size_t out = (size_t)s->out_c * os_conv_out_h(s) * os_conv_out_w(s);
        size_t wn = (size_t)s->out_c * s->in_c * s->kh * s->kw;
        float *x = malloc(N * in * sizeof *x), *dy = malloc(N * out * sizeof *dy);
        float *w = malloc(wn * sizeof *w), *b = malloc((size_t)s->out_c * sizeof *b);
        float *y1 = malloc(N * out * sizeof *y1), *y2 = malloc(N * out * sizeof *y2);
        float *dx1 = malloc(N * in * sizeof *dx1), *dx2 = malloc(N * in * sizeof *dx2);
        float *dw1 = calloc(wn, sizeof *dw1), *dw2 = calloc(wn, sizeof *dw2);
        float *db1 = calloc((size_t)s->out_c, sizeof *db1), *db2 = calloc((size_t)s->out_c, sizeof *db2);
        float *col = malloc((os_conv_col_floats(s) + 1) * sizeof *col);
        float *bcol = malloc(os_conv_batch_floats(s, N) * sizeof *bcol);
        float *tmp = malloc(N * (in > out ? in : out) * sizeof *tmp);
        fill_uniform(x, N * in, &st, -1, 1);
        fill_uniform(dy, N * out, &st, -1, 1);
        fill_uniform(w, wn, &st, -1, 1);
        fill_uniform(b, (size_t)s->out_c, &st, -1, 1);
        for (int i = 0; i < N; i++) {
            os_conv2d(s, x + i * in, w, b, y1 + i * out, col);
            os_conv2d_backward(s, x + i * in, w, dy + i * out, dw1, db1, dx1 + i * in, col);
        }
        os_conv2d_batch(s, N, x, w, b, y2, bcol, tmp);
        os_conv2d_backward_batch(s, N, x, w, dy, dw2, db2, dx2, bcol, tmp);
        double d = 0;
        for (size_t i = 0; i < N * out; i++)
            d = fmax(d, rel_diff(y1[i], y2[i]));
        for (size_t i = 0; i < N * in; i++)
            d = fmax(d, rel_diff(dx1[i], dx2[i]));
        for (size_t i = 0; i < wn; i++)
            d = fmax(d, rel_diff(dw1[i], dw2[i]));
        for (int i = 0; i < s->out_c; i++)
            d = fmax(d, rel_diff(db1[i], db2[i]));
        printf("conv batch vs single, case %zu: max |diff| = %g\n", c, d);
        assert_true(d < 1e-4);
        free(x), free(dy), free(w), free(b), free(y1), free(y2), free(dx1), free(dx2);
        free(dw1), free(dw2), free(db1), free(db2), free(col), free(bcol), free(tmp);
    }
}


/* Distillation loss: its gradient against central differences of the loss itself. */
static void test_distill_gradient(void **state)
{
    (void)state;
    enum { N = 3, K = 5 };
    uint32_t st = 91;
    float zs[N * K], zt[N * K], g[N * K];
    fill_uniform(zs, N * K, &st, -6, 6);
    fill_uniform(zt, N * K, &st, -3, 3);
    const float scale = 3, tau = 2, w = 0.7f;
    memset(g, 0, sizeof g);
    float loss = os_distill_kl(zs, zt, N, K, scale, tau, w, g);
    assert_true(loss > 0);
    double worst = 0;
    for (int i = 0; i < N * K; i++) {
        const float eps = 1e-2f, keep = zs[i];
        zs[i] = keep + eps;
        double up = os_distill_kl(zs, zt, N, K, scale, tau, w, NULL);
        zs[i] = keep - eps;
        double down = os_distill_kl(zs, zt, N, K, scale, tau, w, NULL);
        zs[i] = keep;
        double fd = w * (up - down) / (2 * eps);
        worst = fmax(worst, fabs(fd - g[i]) / fmax(1e-2, fabs(fd)));
    }
    printf("grad check distillation                                   max rel err %.2e\n", worst);
    assert_true(worst < 2e-2);
    /* Identical distributions: zero loss, zero gradient. */
    float same[K] = {1, 2, 3, 4, 5}, sum3[K], g0[K] = {0};
    for (int j = 0; j < K; j++)
        sum3[j] = 3 * same[j];
    assert_true(fabsf(os_distill_kl(sum3, same, 1, K, 3, 1, 1, g0)) < 1e-6f);
    for (int j = 0; j < K; j++)
        assert_true(fabsf(g0[j]) < 1e-6f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_batch_matches_single),
        cmocka_unit_test(test_distill_gradient),
        cmocka_unit_test_prestate_setup_teardown(test_conv_backward, NULL, NULL,
                                                 (void *)&conv_cases[0]),
        cmocka_unit_test_prestate_setup_teardown(test_conv_backward, NULL, NULL,
                                                 (void *)&conv_cases[1]),
        cmocka_unit_test_prestate_setup_teardown(test_conv_backward, NULL, NULL,
                                                 (void *)&conv_cases[2]),
        cmocka_unit_test_prestate_setup_teardown(test_conv_backward, NULL, NULL,
                                                 (void *)&conv_cases[3]),
        cmocka_unit_test_prestate_setup_teardown(test_conv_backward, NULL, NULL,
                                                 (void *)&conv_cases[4]),
        cmocka_unit_test_prestate_setup_teardown(test_conv_backward, NULL, NULL,
                                                 (void *)&conv_cases[5]),
        cmocka_unit_test_prestate_setup_teardown(test_conv_backward, NULL, NULL,
                                                 (void *)&conv_cases[6]),
        cmocka_unit_test_prestate_setup_teardown(test_conv_backward, NULL, NULL,
                                                 (void *)&conv_cases[7]),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_bn),
        cmocka_unit_test(test_bn_large_mean),
        cmocka_unit_test(test_relu),
        cmocka_unit_test_prestate_setup_teardown(test_pool_backward, NULL, NULL,
                                                 (void *)&pool_cases[0]),
        cmocka_unit_test_prestate_setup_teardown(test_pool_backward, NULL, NULL,
                                                 (void *)&pool_cases[1]),
        cmocka_unit_test_prestate_setup_teardown(test_pool_backward, NULL, NULL,
                                                 (void *)&pool_cases[2]),
        cmocka_unit_test_prestate_setup_teardown(test_pool_backward, NULL, NULL,
                                                 (void *)&pool_cases[3]),
        cmocka_unit_test_prestate_setup_teardown(test_pool_backward, NULL, NULL,
                                                 (void *)&pool_cases[4]),
        cmocka_unit_test_prestate_setup_teardown(test_pool_backward, NULL, NULL,
                                                 (void *)&pool_cases[5]),
        cmocka_unit_test(test_global_avgpool),
        cmocka_unit_test(test_xent_grad),
        cmocka_unit_test(test_xent_hand),
        cmocka_unit_test(test_lif_soft_grad),
        cmocka_unit_test(test_lif_hard_matches_step),
        cmocka_unit_test(test_lif_hand_bptt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
