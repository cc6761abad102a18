/* test_vec.c - core/train/vec.c: every instruction set's training kernels give the scalar
 * reference's results bit for bit (sums in double over lengths with and without a tail of
 * fewer than 8, from unaligned starts, around a large mean; several AdamW steps; LIF backward
 * steps, in place too), and the reference itself is right (exact sums of integers, a
 * hand-worked AdamW step and LIF step). A set this CPU
 * or build lacks is reported as skipped.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "onespike/session.h"
#include "testutil.h"
#include "vec.h"

static const os_vec_kernels *ref(void)
{
    const os_vec_kernels *k = os_vec_kernels_for(OS_ISA_SCALAR);
    assert_non_null(k);
    return k;
}

static const os_vec_kernels *wide_or_skip(os_isa isa)
{
    const os_vec_kernels *k = os_vec_kernels_for(isa);
    if (!k) {
        print_message("skipped: this CPU or build has no %s kernels\n", os_isa_name(isa));
        skip();
    }
    return k;
}

static void assert_same_double(double got, double want, const char *what, size_t n)
{
    if (memcmp(&got, &want, sizeof got))
        fail_msg("%s, n %zu: %.17g differs from the reference's %.17g", what, n, got, want);
}

/* The process's set follows ONESPIKE_ISA (read once: this case runs first). */
static void process_set_follows_env(void **state)
{
    (void)state;
    setenv(OS_SESSION_ISA_ENV, "scalar", 1);
    assert_int_equal(os_vec()->isa, OS_ISA_SCALAR);
    assert_ptr_equal(os_vec(), ref());
    unsetenv(OS_SESSION_ISA_ENV);
}

/* The reference's sums of small integers are exact, whatever the lanes. */
static void reference_sums_exact(void **state)
{
    (void)state;
    float x[203], dy[203];
    for (int i = 0; i < 203; i++)
        x[i] = (float)i, dy[i] = (float)(i % 5);
    for (size_t n = 0; n <= 203; n++) {
        double s = 0, sq = 0, sdy = 0, sdyd = 0, a, b;
        for (size_t i = 0; i < n; i++) {
            s += x[i];
            sq += (x[i] - 3.0) * (x[i] - 3.0);
            sdy += dy[i];
            sdyd += dy[i] * (x[i] - 3.0);
        }
        assert_true(ref()->sum(x, n) == s);
        assert_true(ref()->sum_sq_dev(x, n, 3.0) == sq);
        ref()->sum_dy_dev(x, dy, n, 3.0, &a, &b);
        assert_true(a == sdy && b == sdyd);
    }
}

static void sums_match(os_isa isa)
{
    const os_vec_kernels *k = wide_or_skip(isa);
    enum { N = 4099 + 1 };
    float *x = malloc(N * sizeof *x), *dy = malloc(N * sizeof *dy);
    assert_true(x && dy);
    for (int big = 0; big < 2; big++) {
        tu_fill(x, N, 11u + (uint32_t)big, 1.0f);
        tu_fill(dy, N, 23u + (uint32_t)big, 0.01f);
        const double mean = big ? 1000.0 : 0.0123;
        for (size_t i = 0; big && i < N; i++)
            x[i] += 1000.0f;
        const size_t lengths[] = {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 100, 1023, 4099};
        for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++)
            for (int off = 0; off < 2; off++) { /* off 1: starts 4 bytes past the allocation */
                const size_t n = lengths[l];
                const float *xs = x + off, *ds = dy + off;
                assert_same_double(k->sum(xs, n), ref()->sum(xs, n), "sum", n);
                assert_same_double(k->sum_sq_dev(xs, n, mean), ref()->sum_sq_dev(xs, n, mean),
                                   "sum_sq_dev", n);
                double a, b, ra, rb;
                k->sum_dy_dev(xs, ds, n, mean, &a, &b);
                ref()->sum_dy_dev(xs, ds, n, mean, &ra, &rb);
                assert_same_double(a, ra, "sum_dy_dev (dy)", n);
                assert_same_double(b, rb, "sum_dy_dev (dy * dev)", n);
            }
    }
    free(x);
    free(dy);
}

/* One AdamW step worked by hand: g = 0.5, m = 0.1, v = 0.04, x = 2. */
static void reference_adamw_by_hand(void **state)
{
    (void)state;
    float x = 2.0f, g = 0.5f, m = 0.1f, v = 0.04f;
    const float b1 = 0.9f, b2 = 0.999f, lr_wd = 0.001f, step = 0.01f, denom = 1.0f, eps = 1e-8f;
    ref()->adamw(&x, &g, &m, &v, 1, b1, b2, lr_wd, step, denom, eps);
    const double m1 = 0.9 * 0.1 + 0.1 * 0.5, v1 = 0.999 * 0.04 + 0.001 * 0.25;
    const double x1 = 2.0 - 0.001 * 2.0 - 0.01 * m1 / (sqrt(v1) + 1e-8);
    assert_float_equal(m, m1, 1e-7);
    assert_float_equal(v, v1, 1e-7);
    assert_float_equal(x, x1, 1e-6);
}

static void adamw_matches(os_isa isa)
{
    const os_vec_kernels *k = wide_or_skip(isa);
    const size_t lengths[] = {1, 7, 8, 9, 31, 1000, 4099};
    for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++) {
        const size_t n = lengths[l];
        float *buf = malloc(8 * n * sizeof *buf);
        assert_non_null(buf);
        float *x = buf, *m = buf + n, *v = buf + 2 * n, *g = buf + 3 * n;
        float *rx = buf + 4 * n, *rm = buf + 5 * n, *rv = buf + 6 * n;
        tu_fill(x, n, 5u + (uint32_t)l, 0.5f);
        memset(m, 0, 2 * n * sizeof *m); /* m and v start at 0, as the trainer's */
        memcpy(rx, x, 3 * n * sizeof *x);
        for (int s = 0; s < 3; s++) {
            tu_fill(g, n, 900u + (uint32_t)(s * 31 + (int)l), 0.1f);
            const double bc1 = 1.0 - pow(0.9, s + 1), bc2 = 1.0 - pow(0.999, s + 1);
            const float step = (float)(1e-3 / bc1), denom = (float)(1.0 / sqrt(bc2));
            k->adamw(x, g, m, v, n, 0.9f, 0.999f, 1e-3f * 5e-4f, step, denom, 1e-8f);
            ref()->adamw(rx, g, rm, rv, n, 0.9f, 0.999f, 1e-3f * 5e-4f, step, denom, 1e-8f);
        }
        if (memcmp(x, rx, 3 * n * sizeof *x))
            fail_msg("%s adamw, n %zu: x, m or v differ from the reference's", os_isa_name(isa),
                     n);
        free(buf);
    }
}

/* Three LIF backward steps, once with dt a buffer of its own and once in place (dt = gt), on
 * membranes spread around the threshold so the surrogate's window is entered and left. */
static void lif_bwd_matches(os_isa isa)
{
    const os_vec_kernels *k = wide_or_skip(isa);
    const size_t lengths[] = {1, 7, 8, 9, 31, 256};
    const float thr = 1.3f, slope = 0.3f / 1.3f, leak = 0.97f;
    for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++)
        for (int in_place = 0; in_place < 2; in_place++) {
            const size_t m = lengths[l];
            float *b = malloc(16 * m * sizeof *b);
            assert_non_null(b);
            float *ut = b, *st = b + m, *up = b + 2 * m, *sp = b + 3 * m;
            float *gt[2] = {b + 4 * m, b + 5 * m}, *dt[2], *gv[2] = {b + 6 * m, b + 7 * m};
            float *athr[2] = {b + 8 * m, b + 9 * m}, *aleak[2] = {b + 10 * m, b + 11 * m};
            float *own[2] = {b + 12 * m, b + 13 * m};
            for (int w = 0; w < 2; w++) {
                dt[w] = in_place ? gt[w] : own[w];
                memset(gv[w], 0, m * sizeof *b);
                memset(athr[w], 0, m * sizeof *b);
                memset(aleak[w], 0, m * sizeof *b);
            }
            for (int t = 0; t < 3; t++) {
                tu_fill(ut, m, 40u + (uint32_t)(t + 3 * (int)l), 2.0f * thr);
                tu_fill(up, m, 50u + (uint32_t)(t + 3 * (int)l), 2.0f * thr);
                tu_fill(gt[0], m, 60u + (uint32_t)(t + 3 * (int)l), 1.0f);
                memcpy(gt[1], gt[0], m * sizeof *b);
                for (size_t i = 0; i < m; i++) {
                    st[i] = ut[i] > thr ? 1.0f : 0.0f;
                    sp[i] = up[i] > thr ? 1.0f : 0.0f;
                }
                k->lif_bwd_step(ut, st, gt[0], up, sp, dt[0], gv[0], athr[0], aleak[0], m, thr,
                                slope, leak);
                ref()->lif_bwd_step(ut, st, gt[1], up, sp, dt[1], gv[1], athr[1], aleak[1], m,
                                    thr, slope, leak);
                const float *got[] = {dt[0], gv[0], athr[0], aleak[0]};
                const float *want[] = {dt[1], gv[1], athr[1], aleak[1]};
                for (int q = 0; q < 4; q++)
                    if (memcmp(got[q], want[q], m * sizeof *b))
                        fail_msg("%s lif step %d, m %zu%s: output %d differs", os_isa_name(isa),
                                 t, m, in_place ? " (in place)" : "", q);
            }
            free(b);
        }
}

/* The reference's step on one neuron, by hand: u = 1.5 thr is inside the surrogate's window. */
static void reference_lif_bwd_by_hand(void **state)
{
    (void)state;
    const float thr = 2.0f, slope = 0.25f, leak = 0.5f;
    float ut = 3.0f, st = 1.0f, gt = 0.4f, up = 1.0f, sp = 0.0f, dt, gv = 0.2f, athr = 0, aleak = 0;
    ref()->lif_bwd_step(&ut, &st, &gt, &up, &sp, &dt, &gv, &athr, &aleak, 1, thr, slope, leak);
    /* r = 1.5, tri = 0.5, dsdu = 0.125; gs = 0.4 - 2 * 0.2 = 0; gu = 0.2; vprev = 1 */
    assert_float_equal(dt, 0.2f, 1e-7);
    assert_float_equal(gv, 0.1f, 1e-7);
    assert_float_equal(aleak, 0.2f, 1e-7);
    assert_float_equal(athr, -0.2f, 1e-7); /* 0 * (-1.5 * 0.125) - 0.2 * 1 */
}

static void avx2_lif_bwd(void **state)
{
    (void)state;
    lif_bwd_matches(OS_ISA_AVX2);
}
static void avx512_lif_bwd(void **state)
{
    (void)state;
    lif_bwd_matches(OS_ISA_AVX512);
}

static void avx2_sums(void **state)
{
    (void)state;
    sums_match(OS_ISA_AVX2);
}
static void avx512_sums(void **state)
{
    (void)state;
    sums_match(OS_ISA_AVX512);
}
static void avx2_adamw(void **state)
{
    (void)state;
    adamw_matches(OS_ISA_AVX2);
}
static void avx512_adamw(void **state)
{
    (void)state;
    adamw_matches(OS_ISA_AVX512);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(process_set_follows_env),
        cmocka_unit_test(reference_sums_exact),
        cmocka_unit_test(reference_adamw_by_hand),
        cmocka_unit_test(avx2_sums),
        cmocka_unit_test(avx512_sums),
        cmocka_unit_test(avx2_adamw),
        cmocka_unit_test(avx512_adamw),
        cmocka_unit_test(reference_lif_bwd_by_hand),
        cmocka_unit_test(avx2_lif_bwd),
        cmocka_unit_test(avx512_lif_bwd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
