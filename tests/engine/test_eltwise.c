/* Each instruction set's element-wise kernels (core/engine/eltwise.c) against the reference ones,
 * bit for bit: lengths around the vector widths, values at the threshold, signed zeros, NaN and
 * infinities; max pooling with padding, uneven windows and channel counts off the lanes. A set
 * this machine cannot run is reported as skipped. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "eltwise.h"
#include "layers.h"
#include "spikeconv.h"

static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 17, *s ^= *s << 5;
    return *s;
}

/* Values around threshold 1.5 with the awkward ones mixed in. */
static void fill(float *x, size_t n, uint32_t seed)
{
    static const float odd[] = {1.5f,      -0.0f,     0.0f,       NAN,
                                INFINITY, -INFINITY, 1.5000001f, 1.4999999f};
    for (size_t i = 0; i < n; i++) {
        const uint32_t r = next(&seed);
        x[i] = r % 5 == 0 ? odd[(r >> 8) % 8] : ((float)(r >> 8) / 16777216.0f) * 4.0f - 1.0f;
    }
}

static void same_bits(const float *a, const float *b, size_t n, const char *what, size_t len)
{
    if (memcmp(a, b, n * sizeof *a))
        fail_msg("%s differs from the reference at length %zu", what, len);
}

static const os_eltwise *set_or_skip(os_isa isa)
{
    const os_eltwise *e = os_eltwise_for(isa);
    if (!e) {
        print_message("skipped: this CPU or build has no %s kernels\n", os_isa_name(isa));
        skip();
    }
    assert_int_equal(e->isa, isa);
    return e;
}

static void elementwise_match(os_isa isa)
{
    const os_eltwise *e = set_or_skip(isa);
    const size_t lens[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 1000};
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
        const size_t n = lens[k], bytes = (n ? n : 1) * sizeof(float);
        float *in = malloc(bytes), *in2 = malloc(bytes), *u0 = malloc(bytes);
        float *uw = malloc(bytes), *ug = malloc(bytes), *sw = malloc(bytes), *sg = malloc(bytes);
        fill(in, n, 11 + (uint32_t)k), fill(in2, n, 97 + (uint32_t)k), fill(u0, n, 5 + (uint32_t)k);

        os_lif_first(uw, in, n, 1.5f, sw);
        e->lif_first(ug, in, n, 1.5f, sg);
        same_bits(uw, ug, n, "lif_first membrane", n);
        same_bits(sw, sg, n, "lif_first spikes", n);
        os_lif_first(NULL, in, n, 1.5f, sw); /* T = 1: no membrane kept */
        e->lif_first(NULL, in, n, 1.5f, sg);
        same_bits(sw, sg, n, "lif_first spikes without membrane", n);

        memcpy(uw, u0, n * sizeof *uw), memcpy(ug, u0, n * sizeof *ug);
        os_lif_step(uw, in, n, 1.5f, 0.97f, sw);
        e->lif_step(ug, in, n, 1.5f, 0.97f, sg);
        same_bits(uw, ug, n, "lif_step membrane", n);
        same_bits(sw, sg, n, "lif_step spikes", n);

        os_add(in, in2, n, uw);
        e->add(in, in2, n, ug);
        same_bits(uw, ug, n, "add", n);
        free(in), free(in2), free(u0), free(uw), free(ug), free(sw), free(sg);
    }
}

static void maxpool_match(os_isa isa)
{
    const os_eltwise *e = set_or_skip(isa);
    /* c, h, w, k, stride, pad: the stem's 2x2/2, overlapping 3x3/2 with padding, channel
     * counts below, at and past the lanes */
    const int shapes[][6] = {{32, 48, 48, 2, 2, 0}, {16, 7, 9, 3, 2, 1}, {5, 6, 6, 2, 2, 0},
                             {17, 5, 5, 3, 1, 1},   {33, 4, 7, 2, 1, 0}, {64, 3, 3, 3, 2, 1},
                             {1, 5, 4, 2, 2, 1}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const int c = shapes[k][0], h = shapes[k][1], w = shapes[k][2], kk = shapes[k][3];
        const int st = shapes[k][4], pad = shapes[k][5];
        const size_t nin = (size_t)c * h * w;
        const size_t nout = (size_t)c * os_pool_out(h, kk, st, pad) * os_pool_out(w, kk, st, pad);
        float *x = malloc(nin * sizeof *x), *yw = malloc(nout * sizeof *yw);
        float *yg = malloc(nout * sizeof *yg);
        fill(x, nin, 300 + (uint32_t)k);
        os_maxpool2d_hwc(x, c, h, w, kk, st, pad, yw);
        e->maxpool_hwc(x, c, h, w, kk, st, pad, yg);
        same_bits(yw, yg, nout, "maxpool_hwc", (size_t)c);
        free(x), free(yw), free(yg);
    }
}

#define PER_ISA(NAME)                                                                              \
    static void test_##NAME##_scalar(void **state)                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        NAME(OS_ISA_SCALAR);                                                                       \
    }                                                                                              \
    static void test_##NAME##_avx2(void **state)                                                   \
    {                                                                                              \
        (void)state;                                                                               \
        NAME(OS_ISA_AVX2);                                                                         \
    }                                                                                              \
    static void test_##NAME##_avx512(void **state)                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        NAME(OS_ISA_AVX512);                                                                       \
    }
PER_ISA(elementwise_match)
PER_ISA(maxpool_match)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elementwise_match_scalar),
        cmocka_unit_test(test_elementwise_match_avx2),
        cmocka_unit_test(test_elementwise_match_avx512),
        cmocka_unit_test(test_maxpool_match_scalar),
        cmocka_unit_test(test_maxpool_match_avx2),
        cmocka_unit_test(test_maxpool_match_avx512),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
