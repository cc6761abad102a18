/* spikeconv: the event-driven convolution and the channels-last kernels against the planar
 * reference kernels, the plan's view of real architectures, and whole sessions on the fast
 * path against the dense path on a real JPEG. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "onespike/arch.h"
#include "layers.h"
#include "onespike/session.h"
#include "spikeconv.h"
#include "testutil.h"

/* x (CHW) -> HWC */
static void to_hwc(const float *x, int c, int hw, float *y)
{
    for (int ch = 0; ch < c; ch++)
        for (int p = 0; p < hw; p++)
            y[(size_t)p * c + ch] = x[(size_t)ch * hw + p];
}

/* 0/1 values, each 1 with probability rate. */
static void fill_spikes(float *x, size_t n, uint32_t seed, float rate)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (tu_rand(&seed) + 1.0f) / 2.0f < rate ? 1.0f : 0.0f;
}

/* The plan's layout of w [oc][ic][kh][kw], for kernels tested without a net. */
static float *relayout(const os_conv_shape *s, const float *w)
{
    float *wt = malloc(sizeof *wt * os_spike_layout_rows(s) * (size_t)s->out_c);
    os_spike_layout(s, w, wt);
    return wt;
}

static void test_index(void **state)
{
    (void)state;
    /* 3 positions x 4 channels, channels-last */
    const float x[12] = {0, 1, 0, 1, /**/ 0, 0, 0, 0, /**/ 1, 1, 1, 1};
    uint16_t idx[12], cnt[3];
    os_spike_index(x, 4, 3, idx, cnt);
    assert_int_equal(cnt[0], 2);
    assert_int_equal(cnt[1], 0);
    assert_int_equal(cnt[2], 4);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 3);
    for (int k = 0; k < 4; k++)
        assert_int_equal(idx[8 + k], k);
}

/* Each instruction set's index kernel gives the scalar reference's lists and counts exactly:
 * channel counts with and without a tail of fewer than 8, firing from none to all, and
 * non-zero values other than 1 (a max pool of spikes is 0/1, but the index must not care). */
static void index_matches_scalar(os_isa isa)
{
    const os_spike_kernels *kern = os_spike_kernels_for(isa);
    if (!kern) {
        print_message("skipped: this CPU or build has no %s kernels\n", os_isa_name(isa));
        skip();
    }
    const int channels[] = {1, 5, 8, 13, 32, 64, 100, 256};
    const float rates[] = {0.0f, 0.1f, 0.25f, 0.5f, 1.0f};
    enum { HW = 37 };
    for (size_t a = 0; a < sizeof channels / sizeof *channels; a++)
        for (size_t r = 0; r < sizeof rates / sizeof *rates; r++) {
            const int c = channels[a];
            const size_t n = (size_t)c * HW;
            float *x = malloc(n * sizeof *x);
            uint16_t *want = malloc(n * 2), *got = malloc(n * 2), wc[HW], gc[HW];
            fill_spikes(x, n, 7000 + (uint32_t)(a * 11 + r), rates[r]);
            for (size_t i = 0; i < n; i += 7)
                x[i] *= 2.5f;
            const size_t tw = os_spike_index(x, c, HW, want, wc);
            const size_t tg = os_spike_kernels_index(kern, x, c, HW, got, gc);
            assert_int_equal(tg, tw);
            for (int p = 0; p < HW; p++) {
                assert_int_equal(gc[p], wc[p]);
                if (memcmp(got + (size_t)p * c, want + (size_t)p * c, wc[p] * sizeof *got))
                    fail_msg("%s: c %d rate %.2f position %d: lists differ", os_isa_name(isa),
                             c, rates[r], p);
            }
            free(x), free(want), free(got);
        }
}

static void test_index_scalar(void **state)
{
    (void)state;
    index_matches_scalar(OS_ISA_SCALAR);
}

static void test_index_avx2(void **state)
{
    (void)state;
    index_matches_scalar(OS_ISA_AVX2);
}

static void test_index_avx512(void **state)
{
    (void)state;
    index_matches_scalar(OS_ISA_AVX512);
}

/* Each set's fused first LIF step and index gives os_lif_first's spikes (bit for bit) and
 * os_spike_index's lists of them, and the same lists without writing the spikes, which
 * os_spike_unindex gives back: membranes around the threshold, exactly on it, NaN and signed
 * zeros, channel counts off the lanes. */
static void lif_index_matches(os_isa isa)
{
    const os_spike_kernels *kern = os_spike_kernels_for(isa);
    if (!kern) {
        print_message("skipped: this CPU or build has no %s kernels\n", os_isa_name(isa));
        skip();
    }
    const int channels[] = {1, 5, 8, 16, 17, 32, 33, 64, 100};
    const float odd[] = {1.25f, -0.0f, 0.0f, NAN, INFINITY, -INFINITY, 1.2500001f};
    enum { HW = 23 };
    for (size_t a = 0; a < sizeof channels / sizeof *channels; a++) {
        const int c = channels[a];
        const size_t n = (size_t)c * HW;
        float *in = malloc(n * sizeof *in), *sw = malloc(n * sizeof *sw);
        float *sg = malloc(n * sizeof *sg);
        uint16_t *want = malloc(n * 2), *got = malloc((n + OS_SPIKE_INDEX_SLACK) * 2);
        uint16_t wc[HW], gc[HW];
        uint32_t seed = 900 + (uint32_t)a;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1664525u + 1013904223u;
            in[i] = seed % 7 == 0 ? odd[(seed >> 9) % 7]
                                  : (float)(seed >> 8) / 16777216.0f * 4.0f - 1.0f;
        }
        os_lif_first(NULL, in, n, 1.25f, sw);
        const size_t tw = os_spike_index(sw, c, HW, want, wc);
        const size_t tg = os_spike_kernels_lif_index(kern, in, c, HW, 1.25f, sg, got, gc);
        assert_int_equal(tg, tw);
        assert_memory_equal(sg, sw, n * sizeof *sw);
        for (int p = 0; p < HW; p++) {
            assert_int_equal(gc[p], wc[p]);
            if (memcmp(got + (size_t)p * c, want + (size_t)p * c, wc[p] * sizeof *got))
                fail_msg("%s: c %d position %d: lists differ", os_isa_name(isa), c, p);
        }
        /* the lists alone (no spikes written): the same lists; unindexed, the same spikes */
        memset(got, 0xff, (n + OS_SPIKE_INDEX_SLACK) * 2);
        memset(gc, 0xff, sizeof gc);
        assert_int_equal(os_spike_kernels_lif_index(kern, in, c, HW, 1.25f, NULL, got, gc), tw);
        for (int p = 0; p < HW; p++) {
            assert_int_equal(gc[p], wc[p]);
            if (memcmp(got + (size_t)p * c, want + (size_t)p * c, wc[p] * sizeof *got))
                fail_msg("%s: c %d position %d: lists alone differ", os_isa_name(isa), c, p);
        }
        for (size_t i = 0; i < n; i++)
            sg[i] = NAN;
        os_spike_unindex(got, gc, c, HW, sg);
        assert_memory_equal(sg, sw, n * sizeof *sw);
        free(in), free(sw), free(sg), free(want), free(got);
    }
}

static void test_lif_index_scalar(void **state)
{
    (void)state;
    lif_index_matches(OS_ISA_SCALAR);
}

static void test_lif_index_avx2(void **state)
{
    (void)state;
    lif_index_matches(OS_ISA_AVX2);
}

static void test_lif_index_avx512(void **state)
{
    (void)state;
    lif_index_matches(OS_ISA_AVX512);
}

/* Active inputs in the window of output (oy, ox): the rows an event-driven sum adds. */
static int window_active(const os_conv_shape *s, const uint16_t *cnt, int oy, int ox)
{
    int n = 0;
    for (int ky = 0; ky < s->kh; ky++)
        for (int kx = 0; kx < s->kw; kx++) {
            const int iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
            if (iy >= 0 && iy < s->in_h && ix >= 0 && ix < s->in_w)
                n += cnt[iy * s->in_w + ix];
        }
    return n;
}

/* Every kernel (direct for 8/16/32/64 outputs; blocks of 128, 64, 32, 16, 8 and the generic
 * tail otherwise; AVX-512's 16..256 and int8's 16..256, with flushes past 256 rows) and the window
 * shapes of VGG/ResNet: the event-driven sum equals the naive double-precision convolution to
 * float rounding; with int8 rows, it equals the scalar set's exactly and the naive one within
 * the quantization's bound; with fp16 rows, exactly what the same set's fp32 kernels give on
 * the rows widened back to fp32. */
static void conv_matches_naive(os_isa isa)
{
    const os_spike_kernels *kern = os_spike_kernels_for(isa);
    const os_spike_kernels *scalar = os_spike_kernels_for(OS_ISA_SCALAR);
    if (!kern) {
        print_message("skipped: this CPU or build has no %s kernels\n", os_isa_name(isa));
        skip();
    }
    const os_conv_shape shapes[] = {
        {5, 7, 6, 13, 3, 3, 1, 1},   {32, 16, 16, 32, 3, 3, 1, 1}, {32, 8, 8, 64, 1, 1, 2, 0},
        {16, 5, 5, 72, 3, 3, 2, 1},  {64, 2, 2, 256, 3, 3, 1, 1},  {8, 4, 4, 5, 3, 3, 1, 0},
        {12, 6, 6, 100, 3, 3, 1, 1}, {4, 9, 9, 24, 5, 5, 2, 2},    {6, 5, 5, 8, 3, 3, 1, 1},
        {9, 4, 4, 16, 1, 1, 1, 0},   {24, 5, 5, 128, 3, 3, 1, 1},  {16, 4, 4, 256, 1, 1, 1, 0},
        {10, 5, 5, 48, 3, 3, 2, 1},  {48, 4, 4, 200, 3, 3, 1, 1},  {72, 4, 4, 32, 3, 3, 1, 1},
        /* the row lists' edges: fewer channels than 4, one past a register (AVX2's 16 row
         * numbers, AVX-512's 32: the furthest writes past a list), one past two registers (the
         * first counted loop) */
        {3, 5, 5, 16, 3, 3, 1, 1},   {17, 4, 4, 32, 3, 3, 1, 1},   {33, 4, 4, 16, 3, 3, 2, 1},
        {65, 4, 4, 32, 3, 3, 1, 1},
        /* weights past FAR_BYTES in both formats (4.7 MB fp32, 1.2 MB int8): rows prefetched */
        {512, 3, 3, 256, 3, 3, 1, 1},
    };
    const float rates[] = {0.0f, 0.2f, 1.0f};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const os_conv_shape *s = &shapes[k];
        const int oh = os_conv_out_h(s), ow = os_conv_out_w(s), hw = s->in_h * s->in_w;
        const size_t nin = (size_t)s->in_c * hw, nout = (size_t)s->out_c * oh * ow;
        const size_t nw = (size_t)s->out_c * s->in_c * s->kh * s->kw;
        float *x = malloc(nin * 4), *xh = malloc(nin * 4), *w = malloc(nw * 4);
        float *b = malloc((size_t)s->out_c * 4), *want = malloc(nout * 4), *wanth = malloc(nout * 4);
        float *got = malloc(nout * 4);
        /* the index with the slack the kernels may read; its entries set, as a session's are */
        uint16_t *idx = calloc(nin + OS_SPIKE_INDEX_SLACK, 2), *cnt = malloc((size_t)hw * 2);
        uint16_t *rows = malloc(os_spike_rows_scratch(s) * sizeof *rows);
        float *col = malloc((size_t)s->kh * s->kw * s->in_c * oh * ow * 4);
        int8_t *wq = malloc(os_spike_layout_rows(s) * (size_t)s->out_c);
        float *scale = malloc((size_t)s->out_c * 4), *qref = malloc(nout * 4);
        const size_t nrow_w = os_spike_layout_rows(s) * (size_t)s->out_c;
        uint16_t *wh = malloc(nrow_w * 2);
        float *wide = malloc(nrow_w * 4);
        tu_fill(w, nw, 100 + (uint32_t)k, 1.0f);
        tu_fill(b, (size_t)s->out_c, 200 + (uint32_t)k, 0.5f);
        float *wt = relayout(s, w);
        /* fp16 rows, and the same rows widened back to fp32 */
        assert_true(os_spike_to_f16(wt, nrow_w, wh));
        for (size_t i = 0; i < nrow_w; i++)
            wide[i] = os_f32_from_f16(wh[i]);
        /* 1e-4; float rounding grows with the terms a sum adds, so more for the one shape of
         * more than 1,024 (4,608) */
        const double tol = 1e-4 * fmax(1.0, (double)(s->kh * s->kw * s->in_c) / 1024.0);
        for (size_t r = 0; r < sizeof rates / sizeof *rates; r++) {
            fill_spikes(x, nin, 300 + (uint32_t)(k * 7 + r), rates[r]);
            to_hwc(x, s->in_c, hw, xh);
            os_spike_index(xh, s->in_c, hw, idx, cnt);
            os_conv2d_naive(s, x, w, (k & 1) ? NULL : b, want);
            to_hwc(want, s->out_c, oh * ow, wanth);
            os_spike_conv(kern, s, idx, cnt, wt, (k & 1) ? NULL : b, got, rows);
            double worst = 0;
            for (size_t i = 0; i < nout; i++)
                worst = fmax(worst, fabs(got[i] - wanth[i]));
            if (worst > tol)
                fail_msg("%s: shape %zu rate %.1f: max |spike conv - naive| = %g", os_isa_name(isa), k,
                         rates[r], worst);
            /* int8 rows: the scalar set's floats exactly, and the fp32 sum within the
             * quantization's bound (half a step per active row) */
            os_spike_quantize(wt, os_spike_layout_rows(s), (size_t)s->out_c, wq, scale);
            os_spike_conv_q8(scalar, s, idx, cnt, wq, scale, (k & 1) ? NULL : b, qref, rows);
            os_spike_conv_q8(kern, s, idx, cnt, wq, scale, (k & 1) ? NULL : b, got, rows);
            if (memcmp(got, qref, nout * sizeof *got) != 0)
                fail_msg("%s: shape %zu rate %.1f: int8 rows differ from the scalar set's",
                         os_isa_name(isa), k, rates[r]);
            for (int q = 0; q < oh * ow; q++) {
                const int act = window_active(s, cnt, q / ow, q % ow);
                for (int o = 0; o < s->out_c; o++) {
                    const size_t i = (size_t)q * s->out_c + o;
                    const double bound = act * scale[o] * 0.5 + 1e-4;
                    if (fabs(got[i] - wanth[i]) > bound)
                        fail_msg("%s: shape %zu rate %.1f: int8 |%g - %g| > %g", os_isa_name(isa),
                                 k, rates[r], got[i], wanth[i], bound);
                }
            }
            /* fp16 rows: exactly the fp32 kernels' floats on the widened rows, same set */
            os_spike_conv(kern, s, idx, cnt, wide, (k & 1) ? NULL : b, qref, rows);
            os_spike_conv_f16(kern, s, idx, cnt, wh, (k & 1) ? NULL : b, got, rows);
            if (memcmp(got, qref, nout * sizeof *got) != 0)
                fail_msg("%s: shape %zu rate %.1f: fp16 rows differ from fp32 on the widened rows",
                         os_isa_name(isa), k, rates[r]);
            /* the dense product a session falls back to when most inputs fired */
            os_conv2d_hwc_wt(s, xh, wt, (k & 1) ? NULL : b, got, col);
            worst = 0;
            for (size_t i = 0; i < nout; i++)
                worst = fmax(worst, fabs(got[i] - wanth[i]));
            if (worst > tol)
                fail_msg("shape %zu rate %.1f: max |dense hwc conv - naive| = %g", k, rates[r], worst);
        }
        free(x), free(xh), free(w), free(b), free(want), free(wanth), free(got);
        free(idx), free(cnt), free(rows), free(wt), free(col), free(wq), free(scale), free(qref);
        free(wh), free(wide);
    }
}

/* Each instruction set's kernels against the naive convolution; a set this machine cannot run
 * is reported as skipped. */
static void test_conv_matches_naive_scalar(void **state)
{
    (void)state;
    conv_matches_naive(OS_ISA_SCALAR);
}

static void test_conv_matches_naive_avx2(void **state)
{
    (void)state;
    conv_matches_naive(OS_ISA_AVX2);
}

static void test_conv_matches_naive_avx512(void **state)
{
    (void)state;
    conv_matches_naive(OS_ISA_AVX512);
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("f16c"))) static uint16_t f16c_from(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
__attribute__((target("f16c"))) static float f16c_to(uint16_t h)
{
    return _cvtsh_ss(h);
}
#define HAVE_F16C_TEST 1
#endif

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* binary16 <-> fp32: every half widens and narrows back to itself (NaNs aside), known values and
 * ties round as IEEE says, values past the range become infinities (which os_spike_to_f16
 * refuses); where the CPU has F16C, every half and 2^22 float bit patterns (all exponents, the
 * low mantissa bits that decide rounding included) convert exactly as the hardware does. */
static void test_f16_conversion(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        const float f = os_f32_from_f16((uint16_t)h);
        if (isnan(f))
            assert_true((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu));
        else
            assert_int_equal(os_f16_from_f32(f), h);
    }
    assert_int_equal(os_f16_from_f32(1.0f), 0x3c00);
    assert_int_equal(os_f16_from_f32(-2.0f), 0xc000);
    assert_int_equal(os_f16_from_f32(65504.0f), 0x7bff);
    assert_int_equal(os_f16_from_f32(65519.0f), 0x7bff);   /* below the tie: the largest half */
    assert_int_equal(os_f16_from_f32(65520.0f), 0x7c00);   /* the tie rounds to even: infinity */
    assert_int_equal(os_f16_from_f32(1.0f + 0x1p-11f), 0x3c00); /* tie, to even (down) */
    assert_int_equal(os_f16_from_f32(1.0f + 0x3p-11f), 0x3c02); /* tie, to even (up) */
    assert_int_equal(os_f16_from_f32(0x1p-24f), 0x0001);  /* the smallest subnormal */
    assert_int_equal(os_f16_from_f32(0x1p-25f), 0x0000);  /* half of it: tie to even, zero */
    assert_int_equal(os_f16_from_f32(0x1.000002p-25f), 0x0001);
    assert_int_equal(os_f16_from_f32(-0.0f), 0x8000);
    assert_true(os_f32_from_f16(0x0001) == 0x1p-24f);
    float ok[2] = {1.5f, -65504.0f}, bad[2] = {0.25f, 70000.0f};
    uint16_t h2[2];
    assert_true(os_spike_to_f16(ok, 2, h2));
    assert_false(os_spike_to_f16(bad, 2, h2));
#ifdef HAVE_F16C_TEST
    if (!os_isa_cpu_f16c()) {
        print_message("F16C comparison skipped: this CPU lacks F16C\n");
        return;
    }
    for (uint32_t h = 0; h < 0x10000u; h++)
        if (!isnan(f16c_to((uint16_t)h)))
            assert_int_equal(bits_of(os_f32_from_f16((uint16_t)h)), bits_of(f16c_to((uint16_t)h)));
    uint32_t x = 12345;
    for (uint32_t i = 0; i < (1u << 22); i++) {
        x = x * 1664525u + 1013904223u;
        uint32_t u = (i << 10) ^ (x & 0x3ffu) ^ (x & 0x80000000u); /* every exponent */
        float f;
        memcpy(&f, &u, sizeof f);
        if (isnan(f))
            continue;
        if (os_f16_from_f32(f) != f16c_from(f))
            fail_msg("float %08x: ours %04x, F16C %04x", u, os_f16_from_f32(f), f16c_from(f));
    }
#else
    print_message("F16C comparison skipped: not an x86-64 GCC build\n");
#endif
}

/* Rows at the int8 extreme (every weight of a channel equal: q = 127) summed past several int16
 * flushes: 72 channels x 9 taps = 648 active rows per output, 82,296 in int32; a flush that
 * came late would wrap. Every set this machine runs gives 648 * 127 exactly, for out_c taking
 * each kind of block (and a generic tail). */
static void test_q8_sums_do_not_wrap(void **state)
{
    (void)state;
    const int hw = 9, rows_n = 9 * 72, max_oc = 256;
    static float x[72 * 9], w[256 * 9 * 72], wt[(9 * 72 + 1) * 256], scale[256], y[9 * 256];
    static int8_t wq[(9 * 72 + 1) * 256];
    static uint16_t idx[72 * 9 + OS_SPIKE_INDEX_SLACK], cnt[9];
    static uint16_t rows[9 * 72 + OS_SPIKE_INDEX_SLACK];
    for (int i = 0; i < 72 * 9; i++)
        x[i] = 1.0f;
    for (int i = 0; i < rows_n * max_oc; i++)
        w[i] = 0.5f;
    os_spike_index(x, 72, hw, idx, cnt);
    const int ocs[] = {200, 32, 64, 128, 256};
    for (size_t d = 0; d < sizeof ocs / sizeof *ocs; d++) {
        const os_conv_shape t = {72, 3, 3, ocs[d], 3, 3, 1, 1};
        assert_true(os_spike_rows_scratch(&t) <= sizeof rows / sizeof *rows);
        os_spike_layout(&t, w, wt);
        os_spike_quantize(wt, os_spike_layout_rows(&t), (size_t)t.out_c, wq, scale);
        for (int isa = 0; isa < OS_ISA_COUNT; isa++) {
            const os_spike_kernels *k = os_spike_kernels_for((os_isa)isa);
            if (!k) {
                if (d == 0)
                    print_message("%s: skipped, this CPU or build lacks it\n",
                                  os_isa_name((os_isa)isa));
                continue;
            }
            os_spike_conv_q8(k, &t, idx, cnt, wq, scale, NULL, y, rows);
            /* the centre output sees all 648 rows: 648 * 127 * (0.5 / 127) */
            const float want = scale[0] * (float)(rows_n * 127);
            for (int o = 0; o < t.out_c; o++)
                assert_true(y[4 * t.out_c + o] == want);
            assert_true(fabsf(want - 324.0f) < 1e-3f);
        }
    }
}

/* The channels-last dense conv (the image layer), max pool, global average pool and the
 * transpose back, against their planar forms. */
/* The first layer's kernel (os_spike_image_conv) for each instruction set against the naive
 * planar conv, channels-last: the stem's shape, maps with border rows and columns on every
 * side, a 5x5 kernel (25 taps), and shapes no kernel takes (24 channels; 36 taps) through the
 * fallback. The scalar set has no such kernel: it is os_conv2d_hwc itself. */
static void image_conv_matches_naive(os_isa isa)
{
    const os_spike_kernels *kern = os_spike_kernels_for(isa);
    if (!kern) {
        print_message("skipped: this CPU or build has no %s kernels\n", os_isa_name(isa));
        skip();
    }
    static const os_conv_shape cases[] = {
        {3, 96, 96, 32, 3, 3, 2, 1}, {3, 11, 9, 8, 3, 3, 2, 1}, {3, 10, 7, 16, 3, 3, 1, 1},
        {1, 9, 8, 64, 5, 5, 1, 2},   {2, 6, 5, 8, 3, 3, 1, 0},  {3, 8, 8, 24, 3, 3, 1, 1},
        {4, 8, 8, 8, 3, 3, 1, 1},
        /* rows wider than the AVX-512 kernel's 8 positions at a time, not a multiple of them */
        {3, 13, 21, 32, 3, 3, 1, 1}, {3, 12, 19, 16, 3, 3, 1, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const os_conv_shape *s = &cases[c];
        const int ohw = os_conv_out_h(s) * os_conv_out_w(s);
        const size_t nx = (size_t)s->in_c * s->in_h * s->in_w, ny = (size_t)s->out_c * ohw;
        const size_t nw = (size_t)s->out_c * s->in_c * s->kh * s->kw;
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)s->out_c * 4);
        float *want = malloc(ny * 4), *wanth = malloc(ny * 4), *got = malloc(ny * 4);
        float *col = malloc(nw / (size_t)s->out_c * (size_t)ohw * 4), *wt = malloc(nw * 4);
        assert_true(x && w && b && want && wanth && got && col && wt);
        tu_fill(x, nx, 11 + (uint32_t)c, 1.0f);
        tu_fill(w, nw, 12 + (uint32_t)c, 0.5f);
        tu_fill(b, (size_t)s->out_c, 13 + (uint32_t)c, 0.5f);
        os_conv2d_naive(s, x, w, (c & 1) ? NULL : b, want);
        to_hwc(want, s->out_c, ohw, wanth);
        os_spike_image_weights(nw / (size_t)s->out_c, s->out_c, w, wt);
        os_spike_image_conv(kern, s, x, wt, w, (c & 1) ? NULL : b, got, col);
        for (size_t i = 0; i < ny; i++)
            if (fabsf(got[i] - wanth[i]) > 1e-4f)
                fail_msg("%s, case %zu, value %zu: %g, naive %g", os_isa_name(isa), c, i,
                         (double)got[i], (double)wanth[i]);
        free(x), free(w), free(b), free(want), free(wanth), free(got), free(col), free(wt);
    }
}

static void test_image_conv_scalar(void **state)
{
    (void)state;
    image_conv_matches_naive(OS_ISA_SCALAR);
}
static void test_image_conv_avx2(void **state)
{
    (void)state;
    image_conv_matches_naive(OS_ISA_AVX2);
}
static void test_image_conv_avx512(void **state)
{
    (void)state;
    image_conv_matches_naive(OS_ISA_AVX512);
}

static void test_hwc_kernels(void **state)
{
    (void)state;
    enum { IC = 3, H = 11, W = 9, OC = 10 };
    const os_conv_shape s = {IC, H, W, OC, 3, 3, 2, 1};
    const int oh = os_conv_out_h(&s), ow = os_conv_out_w(&s), ohw = oh * ow;
    static float x[IC * H * W], w[OC * IC * 9], b[OC], want[OC * H * W], got[OC * H * W];
    static float wanth[OC * H * W], col[IC * 9 * H * W], back[OC * H * W];
    tu_fill(x, sizeof x / 4, 1, 1.0f);
    tu_fill(w, sizeof w / 4, 2, 0.5f);
    tu_fill(b, OC, 3, 0.5f);
    os_conv2d_naive(&s, x, w, b, want);
    to_hwc(want, OC, ohw, wanth);
    os_conv2d_hwc(&s, x, w, b, got, col);
    for (int i = 0; i < OC * ohw; i++)
        assert_true(fabsf(got[i] - wanth[i]) < 1e-4f);

    /* pooling on the conv's output: max pool 3/2/1 and gap, exactly equal */
    const int ph = os_pool_out(oh, 3, 2, 1), pw = os_pool_out(ow, 3, 2, 1);
    static float pw_chw[OC * H * W], pw_hwc[OC * H * W], p_hwc_chw[OC * H * W];
    os_maxpool2d(want, OC, oh, ow, 3, 2, 1, pw_chw);
    os_maxpool2d_hwc(wanth, OC, oh, ow, 3, 2, 1, pw_hwc);
    to_hwc(pw_chw, OC, ph * pw, p_hwc_chw);
    assert_memory_equal(pw_hwc, p_hwc_chw, sizeof(float) * OC * ph * pw);
    float g1[OC], g2[OC];
    os_global_avgpool(want, OC, (size_t)ohw, g1);
    os_global_avgpool_hwc(wanth, OC, (size_t)ohw, g2);
    assert_memory_equal(g1, g2, sizeof g1);
    os_hwc_to_chw(wanth, OC, (size_t)ohw, back);
    assert_memory_equal(back, want, sizeof(float) * OC * ohw);
}

/* A model of the given layer list and tensors, written to dir/m.safetensors and loaded. */
static os_model *from_layers(const char *layers, int side, const os_tensor_view *t, size_t n,
                             const char *dir)
{
    char path[300];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    json_t *doc = tu_doc(layers, side, side, 3, 1);
    os_model *m = tu_write_load(path, doc, t, n);
    json_decref(doc);
    return m;
}

/* A fast-path and a dense-path session of m at T steps (spikes counted), both having
 * classified the JPEG into pf / pd (classes floats each). */
static void fast_and_dense(os_model *m, int T, const unsigned char *jpeg, size_t len,
                           os_session **fast, os_session **dense, float *pf, float *pd)
{
    os_session_opts of = {.timesteps = T, .count_spikes = true};
    os_session_opts od = {.timesteps = T, .count_spikes = true, .dense = true};
    assert_int_equal(os_session_create(m, &of, fast), OS_OK);
    assert_int_equal(os_session_create(m, &od, dense), OS_OK);
    assert_int_equal(os_session_classify(*fast, jpeg, len, pf), OS_OK);
    assert_int_equal(os_session_classify(*dense, jpeg, len, pd), OS_OK);
}

/* fast_and_dense at T = 1 on the airplane fixture. */
static void fast_and_dense_fixture(os_model *m, os_session **fast, os_session **dense, float *pf,
                                   float *pd)
{
    size_t len;
    unsigned char *jpeg = tu_slurp(FIXTURE_DIR "/ucm_airplane00.jpg", &len);
    assert_non_null(jpeg);
    fast_and_dense(m, 1, jpeg, len, fast, dense, pf, pd);
    free(jpeg);
}

static os_model *build(const char *arch, int units, const char *dir)
{
    os_arch_opts o = {.name = arch, .width_mult = 0.25, .input = 32, .classes = 7,
                      .units = units, .unit_at = 2, .spiking = true, .batchnorm = false,
                      .threshold = 0.6f, .leak = 0.9f, .seed = 5};
    return tu_arch_model(&o, dir);
}

/* Every recipe runs completely on the fast path: only the first conv reads the image, every
 * other conv is event-driven, every LIF is binary. */
static void test_plan_of_recipes(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    const char *archs[] = {"resnet18", "resnet20", "vgg11", "vgg16", "msresnet18", "msresnet20"};
    for (size_t k = 0; k < sizeof archs / sizeof *archs; k++) {
        os_model *m = build(archs[k], 1, dir);
        const os_net *net = os_model_net(m);
        const os_spike_plan *p = os_model_spike_plan(m);
        assert_true(os_spike_plan_complete(p));
        int dense = 0, event = 0;
        for (int i = 0; i < os_net_count(net); i++) {
            const os_layer *L = os_net_layer(net, i);
            if (L->op == OS_OP_LIF)
                assert_true(os_spike_plan_binary(p, i));
            if (L->op == OS_OP_GAP || L->op == OS_OP_LINEAR || L->op == OS_OP_ADD)
                assert_false(os_spike_plan_binary(p, i));
            if (L->op != OS_OP_CONV)
                continue;
            if (L->from[0] == OS_NET_INPUT) {
                dense++;
                assert_null(os_spike_plan_weights(p, i));
                /* the first layer's copy for its direct kernel: [in_c*kh*kw][out_c] */
                const float *iw = os_spike_plan_image_weights(p, i);
                assert_non_null(iw);
                const int o = L->out - 1, r = L->fan_in - 2;
                assert_true(iw[(size_t)r * L->out + o] == L->weight[(size_t)o * L->fan_in + r]);
                continue;
            }
            assert_null(os_spike_plan_image_weights(p, i));
            event++;
            const float *wt = os_spike_plan_weights(p, i);
            assert_non_null(wt);
            const int ic = os_net_layer(net, L->from[0])->c, taps = L->kh * L->kw;
            /* one weight, moved where an active input finds it */
            const int o = L->out - 1, c = ic / 2, t = taps - 1;
            assert_true(wt[((size_t)t * ic + c) * L->out + o] ==
                        L->weight[((size_t)o * ic + c) * taps + t]);
            /* then the zero row that pads a row list */
            for (int j = 0; j < L->out; j++)
                assert_true(wt[(size_t)taps * ic * L->out + j] == 0.0f);
        }
        assert_int_equal(dense, 1);
        assert_true(event > 4);
        assert_true(os_spike_plan_bytes(p) > 0);
        os_model_destroy(m);
    }
    tu_rmdir(dir);
}

/* Nets the channels-last path does not cover (average pooling; a conv reading a ReLU; pooling
 * of the image): the plan says so (sessions then run dense), and a conv of spikes in such a net
 * (c3) keeps no second copy of its weights. */
static void test_plan_incomplete(void **state)
{
    (void)state;
    static const char layers[] =
        "[{\"name\":\"c1\",\"op\":\"conv\",\"out\":4,\"kernel\":3,\"pad\":1,\"weight\":\"c1.w\"},"
        " {\"name\":\"r\",\"op\":\"relu\"},"
        " {\"name\":\"c2\",\"op\":\"conv\",\"out\":4,\"kernel\":3,\"pad\":1,\"weight\":\"c2.w\"},"
        " {\"name\":\"l\",\"op\":\"lif\",\"threshold\":0.5,\"leak\":1},"
        " {\"name\":\"c3\",\"op\":\"conv\",\"out\":4,\"kernel\":3,\"pad\":1,\"weight\":\"c2.w\"},"
        " {\"name\":\"p\",\"op\":\"avgpool\",\"kernel\":2},"
        " {\"name\":\"g\",\"op\":\"gap\"},"
        " {\"name\":\"fc\",\"op\":\"linear\",\"out\":3,\"weight\":\"fc.w\"}]";
    static float w1[4 * 3 * 9], w2[4 * 4 * 9], fc[3 * 4];
    tu_fill(w1, sizeof w1 / 4, 1, 0.5f);
    tu_fill(w2, sizeof w2 / 4, 2, 0.5f);
    tu_fill(fc, sizeof fc / 4, 3, 0.5f);
    const os_tensor_view t[] = {
        {"c1.w", 4, {4, 3, 3, 3}, w1, sizeof w1 / 4},
        {"c2.w", 4, {4, 4, 3, 3}, w2, sizeof w2 / 4},
        {"fc.w", 2, {3, 4}, fc, sizeof fc / 4},
    };
    char *dir = tu_tmpdir();
    os_model *m = from_layers(layers, 8, t, 3, dir);
    assert_false(os_spike_plan_complete(os_model_spike_plan(m)));
    assert_false(os_spike_plan_binary(os_model_spike_plan(m), 1)); /* relu */
    assert_true(os_spike_plan_binary(os_model_spike_plan(m), 3));
    assert_int_equal(os_spike_plan_bytes(os_model_spike_plan(m)), 0); /* no unused copies */
    os_model_destroy(m);

    /* pooling straight on the (planar) image: nothing else disqualifies this net */
    static const char on_image[] =
        "[{\"name\":\"p\",\"op\":\"maxpool\",\"kernel\":2},"
        " {\"name\":\"g\",\"op\":\"gap\"},"
        " {\"name\":\"fc\",\"op\":\"linear\",\"out\":3,\"weight\":\"fc3.w\"}]";
    static float fc3[3 * 3];
    tu_fill(fc3, 9, 4, 0.5f);
    const os_tensor_view t3[] = {{"fc3.w", 2, {3, 3}, fc3, 9}};
    m = from_layers(on_image, 8, t3, 1, dir);
    assert_false(os_spike_plan_complete(os_model_spike_plan(m)));
    os_model_destroy(m);
    tu_rmdir(dir);
}

/* Row numbers are 16 bits: a conv of spikes with more than OS_SPIKE_MAX_ROWS layout rows (3x3
 * taps of 7,282 channels and the zero row) makes the plan incomplete, so sessions run the net
 * dense; one channel fewer still fits, and its event-driven answers are the dense path's. */
static void test_plan_row_limit(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    for (int ic = 7281; ic <= 7282; ic++) {
        char layers[600];
        snprintf(layers, sizeof layers,
                 "[{\"name\":\"c1\",\"op\":\"conv\",\"out\":%d,\"kernel\":1,\"weight\":\"c1.w\"},"
                 " {\"name\":\"l1\",\"op\":\"lif\",\"threshold\":0.1,\"leak\":1},"
                 " {\"name\":\"c2\",\"op\":\"conv\",\"out\":2,\"kernel\":3,\"pad\":1,"
                 "  \"weight\":\"c2.w\"},"
                 " {\"name\":\"g\",\"op\":\"gap\"},"
                 " {\"name\":\"fc\",\"op\":\"linear\",\"out\":3,\"weight\":\"fc.w\"}]",
                 ic);
        const size_t n1 = (size_t)ic * 3, n2 = (size_t)2 * ic * 9;
        float *w1 = malloc(n1 * 4), *w2 = malloc(n2 * 4), fc[6] = {1, -1, -1, 1, 0.5f, 0.5f};
        tu_fill(w1, n1, 5, 0.5f);
        tu_fill(w2, n2, 6, 0.1f);
        const os_tensor_view t[] = {
            {"c1.w", 4, {ic, 3, 1, 1}, w1, n1},
            {"c2.w", 4, {2, ic, 3, 3}, w2, n2},
            {"fc.w", 2, {3, 2}, fc, 6},
        };
        os_model *m = from_layers(layers, 4, t, 3, dir);
        const bool fits = 9 * ic + 1 <= OS_SPIKE_MAX_ROWS;
        assert_int_equal(os_spike_plan_complete(os_model_spike_plan(m)), fits);
        if (fits) {
            os_session *fast, *dense;
            float pf[3], pd[3];
            fast_and_dense_fixture(m, &fast, &dense, pf, pd);
            uint64_t s1, n;
            assert_true(os_session_spikes(fast, 0, &s1, &n));
            assert_true(s1 > 0 && (double)s1 <= OS_SPIKE_DENSE_RATE * (double)n); /* event-driven */
            for (int c = 0; c < 3; c++)
                assert_true(fabsf(pf[c] - pd[c]) < 1e-5f);
            os_session_destroy(fast);
            os_session_destroy(dense);
        }
        os_model_destroy(m);
        free(w1), free(w2);
    }
    tu_rmdir(dir);
}

/* Whole networks on a real JPEG: the fast path's probabilities and spike counts against the
 * dense path's, at T = 1 and T = 3. Float summation order differs, so a membrane within
 * rounding of its threshold may flip a spike; the fixture has none (the counts match). */
static void test_session_fast_equals_dense(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    size_t len;
    unsigned char *jpeg = tu_slurp(FIXTURE_DIR "/ucm_airplane00.jpg", &len);
    assert_non_null(jpeg);
    const char *archs[] = {"resnet18", "vgg11", "msresnet20"};
    for (size_t k = 0; k < sizeof archs / sizeof *archs; k++) {
        os_model *m = build(archs[k], 1, dir);
        for (int T = 1; T <= 3; T += 2) {
            os_session *fast, *dense;
            float pf[7], pd[7];
            fast_and_dense(m, T, jpeg, len, &fast, &dense, pf, pd);
            double worst = 0;
            for (int c = 0; c < 7; c++)
                worst = fmax(worst, fabs(pf[c] - pd[c]));
            printf("%s T=%d: max |p_fast - p_dense| = %g\n", archs[k], T, worst);
            assert_true(worst < 1e-5);
            uint64_t sf, nf, sd, nd, total = 0;
            for (int i = 0; os_session_spikes(fast, i, &sf, &nf); i++) {
                assert_true(os_session_spikes(dense, i, &sd, &nd));
                assert_int_equal(nf, nd);
                assert_int_equal(sf, sd);
                total += sf;
            }
            assert_true(total > 0); /* the net fires: the event path did work */
            os_session_destroy(fast);
            os_session_destroy(dense);
        }
        os_model_destroy(m);
    }
    free(jpeg);
    tu_rmdir(dir);
}

/* A layer that fires almost everywhere (its conv's bias is far above its threshold) makes the
 * next conv take the dense channels-last product: the same answers as the dense path. */
static void test_session_dense_fallback(void **state)
{
    (void)state;
    static const char layers[] =
        "[{\"name\":\"c1\",\"op\":\"conv\",\"out\":8,\"kernel\":3,\"pad\":1,\"weight\":\"c1.w\",\"bias\":\"c1.b\"},"
        " {\"name\":\"l1\",\"op\":\"lif\",\"threshold\":0.5,\"leak\":1},"
        " {\"name\":\"c2\",\"op\":\"conv\",\"out\":8,\"kernel\":3,\"pad\":1,\"weight\":\"c2.w\",\"bias\":\"c2.b\"},"
        " {\"name\":\"l2\",\"op\":\"lif\",\"threshold\":0.3,\"leak\":1},"
        " {\"name\":\"g\",\"op\":\"gap\"},"
        " {\"name\":\"fc\",\"op\":\"linear\",\"out\":3,\"weight\":\"fc.w\"}]";
    static float w1[8 * 3 * 9], b1[8], w2[8 * 8 * 9], b2[8], fc[3 * 8];
    tu_fill(w1, sizeof w1 / 4, 1, 0.1f);
    for (int i = 0; i < 8; i++)
        b1[i] = 5.0f;
    tu_fill(w2, sizeof w2 / 4, 2, 0.5f);
    tu_fill(b2, 8, 3, 0.5f);
    tu_fill(fc, sizeof fc / 4, 4, 1.0f);
    const os_tensor_view t[] = {
        {"c1.w", 4, {8, 3, 3, 3}, w1, sizeof w1 / 4}, {"c1.b", 1, {8}, b1, 8},
        {"c2.w", 4, {8, 8, 3, 3}, w2, sizeof w2 / 4}, {"c2.b", 1, {8}, b2, 8},
        {"fc.w", 2, {3, 8}, fc, sizeof fc / 4},
    };
    char *dir = tu_tmpdir();
    os_model *m = from_layers(layers, 16, t, 5, dir);
    assert_true(os_spike_plan_complete(os_model_spike_plan(m)));
    os_session *fast, *dense;
    float pf[3], pd[3];
    fast_and_dense_fixture(m, &fast, &dense, pf, pd);
    for (int c = 0; c < 3; c++)
        assert_true(fabsf(pf[c] - pd[c]) < 1e-6f);
    uint64_t s1, n1, s2f, n2, s2d;
    assert_true(os_session_spikes(fast, 0, &s1, &n1));
    assert_true((double)s1 > OS_SPIKE_DENSE_RATE * (double)n1); /* c2 takes the fallback */
    assert_true(os_spike_plan_dense_at(os_model_spike_plan(m), s1, n1));
    assert_false(os_spike_plan_dense_at(os_model_spike_plan(m), n1 / 2, n1));
    assert_true(os_session_spikes(fast, 1, &s2f, &n2));
    assert_true(os_session_spikes(dense, 1, &s2d, &n2));
    assert_int_equal(s2f, s2d);
    assert_true(s2f > 0 && s2f < n2); /* l2's pattern depends on c2's values */
    os_session_destroy(fast);
    os_session_destroy(dense);
    /* fp16 rows sum at any rate, widened to fp32 or not: c2 the same floats both ways (a
     * widened layer that took the fallback would sum in SGEMM's order) */
    char path[320];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    size_t len;
    unsigned char *jpeg = tu_slurp(FIXTURE_DIR "/ucm_airplane00.jpg", &len);
    assert_non_null(jpeg);
    float ph[2][3];
    for (int w = 0; w < 2; w++) {
        const os_model_opts moh = {.weights = "fp16"};
        os_model *mh = NULL;
        os_session *s = NULL;
        setenv(OS_SPIKE_F16_WIDEN_ENV, w ? "18446744073709551615" : "0", 1);
        assert_int_equal(os_model_load_ex(path, &moh, &mh), OS_OK);
        unsetenv(OS_SPIKE_F16_WIDEN_ENV);
        const os_spike_plan *plan = os_model_spike_plan(mh);
        for (int i = 0; i < os_net_count(os_model_net(mh)); i++)
            if (os_spike_plan_event(plan, i))
                assert_true((os_spike_plan_weights(plan, i) != NULL) == (w == 1));
        assert_false(os_spike_plan_dense_at(plan, n1, n1)); /* every input fired: still rows */
        assert_int_equal(os_session_create(mh, NULL, &s), OS_OK);
        assert_int_equal(os_session_classify(s, jpeg, len, ph[w]), OS_OK);
        os_session_destroy(s);
        os_model_destroy(mh);
    }
    assert_memory_equal(ph[0], ph[1], sizeof ph[0]);
    free(jpeg);
    os_model_destroy(m);
    tu_rmdir(dir);
}

/* Every instruction set this machine runs, chosen by option and by ONESPIKE_ISA, against the
 * scalar set on whole networks: the same answers on the fixture (fp32: probabilities to float
 * rounding; int8: identical). A set it lacks is refused with OS_EINVAL and reported skipped. */
static void test_session_isa_override(void **state)
{
    (void)state;
    char *dir = tu_tmpdir(), path[320];
    size_t len;
    unsigned char *jpeg = tu_slurp(FIXTURE_DIR "/ucm_airplane00.jpg", &len);
    assert_non_null(jpeg);
    os_model *m = build("msresnet18", 1, dir), *mq = NULL, *mh = NULL;
    snprintf(path, sizeof path, "%s/msresnet18.safetensors", dir);
    const os_model_opts mo = {.weights = "int8"}, moh = {.weights = "fp16"};
    assert_int_equal(os_model_load_ex(path, &mo, &mq), OS_OK);
    assert_int_equal(os_model_load_ex(path, &moh, &mh), OS_OK);
    assert_string_equal(os_model_weights(m), "fp32");
    assert_string_equal(os_model_weights(mq), "int8");
    float ref[7], refq[7], refh[7], p[7];
    os_session *s = NULL;
    const os_session_opts scalar = {.isa = "scalar"};
    assert_int_equal(os_session_create(m, &scalar, &s), OS_OK);
    assert_string_equal(os_session_isa(s), "scalar");
    assert_int_equal(os_session_classify(s, jpeg, len, ref), OS_OK);
    os_session_destroy(s);
    assert_int_equal(os_session_create(mq, &scalar, &s), OS_OK);
    assert_string_equal(os_session_weights(s), "int8");
    assert_int_equal(os_session_classify(s, jpeg, len, refq), OS_OK);
    os_session_destroy(s);
    assert_int_equal(os_session_create(mh, &scalar, &s), OS_OK);
    assert_string_equal(os_session_weights(s), "fp16");
    assert_int_equal(os_session_classify(s, jpeg, len, refh), OS_OK);
    os_session_destroy(s);
    int top, topq, got;
    os_topk(ref, 7, 1, &top);
    os_topk(refq, 7, 1, &topq);
    for (int isa = OS_ISA_SCALAR; isa < OS_ISA_COUNT; isa++) {
        const char *name = os_isa_name((os_isa)isa);
        const os_session_opts o = {.isa = name};
        char line[64];
        if (!os_isa_supported((os_isa)isa)) {
            assert_int_equal(os_session_create(m, &o, &s), OS_EINVAL);
            assert_null(s);
            assert_int_equal(os_session_describe(m, &o, line, sizeof line), OS_EINVAL);
            print_message("%s: skipped (this CPU lacks it; refused: %s)\n", name, os_errdetail());
            continue;
        }
        for (int by_env = 0; by_env < 2; by_env++) {
            if (by_env)
                setenv(OS_SESSION_ISA_ENV, name, 1);
            const os_session_opts *oo = by_env ? NULL : &o;
            assert_int_equal(os_session_create(m, oo, &s), OS_OK);
            assert_string_equal(os_session_isa(s), name);
            assert_string_equal(os_session_backend(s), "event");
            assert_int_equal(os_session_describe(m, oo, line, sizeof line), OS_OK);
            char want[64];
            snprintf(want, sizeof want, "event, %s, fp32", name);
            assert_string_equal(line, want);
            assert_int_equal(os_session_classify(s, jpeg, len, p), OS_OK);
            os_topk(p, 7, 1, &got);
            assert_int_equal(got, top);
            for (int c = 0; c < 7; c++)
                assert_true(fabsf(p[c] - ref[c]) < 1e-5f);
            os_session_destroy(s);
            assert_int_equal(os_session_create(mq, oo, &s), OS_OK);
            assert_int_equal(os_session_classify(s, jpeg, len, p), OS_OK);
            assert_memory_equal(p, refq, sizeof p);
            os_session_destroy(s);
            assert_int_equal(os_session_create(mh, oo, &s), OS_OK);
            assert_int_equal(os_session_classify(s, jpeg, len, p), OS_OK);
            for (int c = 0; c < 7; c++) /* fp32 sums: another set, another order */
                assert_true(fabsf(p[c] - refh[c]) < 1e-5f);
            os_session_destroy(s);
            /* every fp16 layer widened to fp32, and none: the same floats as mh's plan */
            for (int w = 0; w < 2; w++) {
                float pw[7];
                os_model *mw = NULL;
                setenv(OS_SPIKE_F16_WIDEN_ENV, w ? "18446744073709551615" : "0", 1);
                assert_int_equal(os_model_load_ex(path, &moh, &mw), OS_OK);
                unsetenv(OS_SPIKE_F16_WIDEN_ENV);
                assert_int_equal(os_session_create(mw, oo, &s), OS_OK);
                assert_int_equal(os_session_classify(s, jpeg, len, pw), OS_OK);
                assert_memory_equal(pw, p, sizeof p);
                os_session_destroy(s);
                os_model_destroy(mw);
            }
            unsetenv(OS_SESSION_ISA_ENV);
        }
        print_message("%s: same answers as scalar (fp32, int8 and fp16; fp16 widened or not "
                      "identical)\n",
                      name);
    }
    /* int8 against fp32 on this net: the same answer here (the measured share on real images
     * is in docs/results) */
    assert_int_equal(topq, top);
    int toph;
    os_topk(refh, 7, 1, &toph);
    assert_int_equal(toph, top);
    const os_session_opts bad = {.isa = "sse9"};
    assert_int_equal(os_session_create(m, &bad, &s), OS_EINVAL);
    setenv(OS_SESSION_ISA_ENV, "neon", 1);
    assert_int_equal(os_session_create(m, NULL, &s), OS_EINVAL);
    assert_non_null(strstr(os_errdetail(), OS_SESSION_ISA_ENV));
    unsetenv(OS_SESSION_ISA_ENV);
    /* the dense path names no kernel set */
    const os_session_opts dense = {.dense = true};
    char line[64];
    assert_int_equal(os_session_describe(m, &dense, line, sizeof line), OS_OK);
    assert_string_equal(line, "dense");
    os_model_destroy(mq);
    os_model_destroy(mh);
    os_model_destroy(m);
    free(jpeg);
    tu_rmdir(dir);
}

/* The weight format: chosen at load (option over ONESPIKE_WEIGHTS over fp32), an unknown name
 * refused before the file is read, an int8 plan a quarter of fp32's bytes (plus scales), an
 * fp16 plan half of them. */
static void test_weights_format(void **state)
{
    (void)state;
    char *dir = tu_tmpdir(), path[320];
    os_model *m = build("resnet18", 1, dir), *mq = NULL, *me = NULL;
    snprintf(path, sizeof path, "%s/resnet18.safetensors", dir);
    const os_model_opts bad = {.weights = "fp8"};
    assert_int_equal(os_model_load_ex(path, &bad, &mq), OS_EINVAL);
    assert_null(mq);
    setenv(OS_MODEL_WEIGHTS_ENV, "int8", 1);
    assert_int_equal(os_model_load(path, &me), OS_OK);
    const os_model_opts fp32 = {.weights = "fp32"};
    assert_int_equal(os_model_load_ex(path, &fp32, &mq), OS_OK); /* the option wins */
    unsetenv(OS_MODEL_WEIGHTS_ENV);
    assert_string_equal(os_model_weights(me), "int8");
    assert_string_equal(os_model_weights(mq), "fp32");
    const os_spike_plan *pf = os_model_spike_plan(m), *pq = os_model_spike_plan(me);
    assert_int_equal(os_spike_plan_format(pq), OS_SPIKE_INT8);
    size_t scales = 0;
    const os_net *net = os_model_net(m);
    for (int i = 0; i < os_net_count(net); i++) {
        const float *sc = NULL;
        assert_int_equal(os_spike_plan_event(pf, i), os_spike_plan_event(pq, i));
        if (!os_spike_plan_event(pq, i))
            continue;
        assert_null(os_spike_plan_weights(pq, i));
        assert_non_null(os_spike_plan_weights_q8(pq, i, &sc));
        assert_null(os_spike_plan_weights_q8(pf, i, &sc));
        scales += (size_t)os_net_layer(net, i)->out * sizeof(float);
    }
    assert_int_equal(os_spike_plan_bytes(pq), os_spike_plan_bytes(pf) / 4 + scales);
    /* fp16: half of fp32's bytes, binary16 rows only (none widened) */
    os_model *mh = NULL;
    const os_model_opts fp16 = {.weights = "fp16"};
    size_t widen = 1;
    setenv(OS_SPIKE_F16_WIDEN_ENV, "-1", 1); /* no byte count: the load is refused, naming it */
    assert_int_equal(os_model_load_ex(path, &fp16, &mh), OS_EINVAL);
    assert_null(mh);
    assert_non_null(strstr(os_errdetail(), OS_SPIKE_F16_WIDEN_ENV));
    setenv(OS_SPIKE_F16_WIDEN_ENV, "0", 1);
    assert_int_equal(os_spike_f16_widen_default(&widen), OS_OK);
    assert_int_equal(widen, 0);
    assert_int_equal(os_model_load_ex(path, &fp16, &mh), OS_OK);
    unsetenv(OS_SPIKE_F16_WIDEN_ENV);
    assert_string_equal(os_model_weights(mh), "fp16");
    const os_spike_plan *ph = os_model_spike_plan(mh);
    assert_int_equal(os_spike_plan_format(ph), OS_SPIKE_FP16);
    for (int i = 0; i < os_net_count(net); i++) {
        const float *sc = NULL;
        assert_int_equal(os_spike_plan_event(ph, i), os_spike_plan_event(pf, i));
        assert_null(os_spike_plan_weights(ph, i));
        assert_null(os_spike_plan_weights_q8(ph, i, &sc));
        assert_true((os_spike_plan_weights_f16(ph, i) != NULL) == os_spike_plan_event(ph, i));
    }
    assert_int_equal(os_spike_plan_bytes(ph), os_spike_plan_bytes(pf) / 2);
    /* widened where the fp32 rows fit the bound: those layers fp32 (binary16's values), the
     * rest binary16 */
    /* the bound: the first event-driven conv's fp32 rows, rounded up to the cache line each
     * layer's rows start on (as the plan counts a layer's bytes against the bound) */
    size_t bound = 0, want = 0;
    for (int i = 0; i < os_net_count(net) && !bound; i++)
        if (os_spike_plan_event(pf, i)) {
            const os_layer *L = os_net_layer(net, i);
            bound = ((size_t)(L->fan_in + 1) * (size_t)L->out * sizeof(float) + 63) / 64 * 64;
        }
    os_spike_plan *pw = NULL, *pall = NULL;
    assert_int_equal(os_spike_plan_create_widen(net, OS_SPIKE_FP16, bound, &pw), OS_OK);
    assert_int_equal(os_spike_plan_create_widen(net, OS_SPIKE_FP16, SIZE_MAX, &pall), OS_OK);
    int widened = 0, kept = 0;
    for (int i = 0; i < os_net_count(net); i++) {
        if (!os_spike_plan_event(pf, i))
            continue;
        const os_layer *L = os_net_layer(net, i);
        const size_t n = (size_t)(L->fan_in + 1) * (size_t)L->out;
        const bool wide = (n * sizeof(float) + 63) / 64 * 64 <= bound;
        const float *w = os_spike_plan_weights(pw, i);
        assert_true((w != NULL) == wide);
        assert_true((os_spike_plan_weights_f16(pw, i) != NULL) == !wide);
        assert_non_null(os_spike_plan_weights(pall, i));
        assert_null(os_spike_plan_weights_f16(pall, i));
        want += wide ? n * sizeof(float) : n * sizeof(uint16_t);
        widened += wide, kept += !wide;
        const uint16_t *h = os_spike_plan_weights_f16(ph, i); /* binary16's values, widened */
        const float *wa = os_spike_plan_weights(pall, i);
        for (size_t j = 0; j < n; j++)
            assert_true(wa[j] == os_f32_from_f16(h[j]));
    }
    assert_true(widened > 0 && kept > 0);
    assert_int_equal(os_spike_plan_bytes(pw), want);
    assert_int_equal(os_spike_plan_bytes(pall), os_spike_plan_bytes(pf));
    os_spike_plan_destroy(pw);
    os_spike_plan_destroy(pall);
    os_model_destroy(mh);
    os_model_destroy(m);
    os_model_destroy(mq);
    os_model_destroy(me);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index),
        cmocka_unit_test(test_index_scalar),
        cmocka_unit_test(test_index_avx2),
        cmocka_unit_test(test_index_avx512),
        cmocka_unit_test(test_lif_index_scalar),
        cmocka_unit_test(test_lif_index_avx2),
        cmocka_unit_test(test_lif_index_avx512),
        cmocka_unit_test(test_conv_matches_naive_scalar),
        cmocka_unit_test(test_conv_matches_naive_avx2),
        cmocka_unit_test(test_conv_matches_naive_avx512),
        cmocka_unit_test(test_q8_sums_do_not_wrap),
        cmocka_unit_test(test_f16_conversion),
        cmocka_unit_test(test_hwc_kernels),
        cmocka_unit_test(test_image_conv_scalar),
        cmocka_unit_test(test_image_conv_avx2),
        cmocka_unit_test(test_image_conv_avx512),
        cmocka_unit_test(test_plan_of_recipes),
        cmocka_unit_test(test_plan_row_limit),
        cmocka_unit_test(test_plan_incomplete),
        cmocka_unit_test(test_session_fast_equals_dense),
        cmocka_unit_test(test_session_dense_fallback),
        cmocka_unit_test(test_session_isa_override),
        cmocka_unit_test(test_weights_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
