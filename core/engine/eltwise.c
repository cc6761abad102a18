/* eltwise.c - the event path's element-wise layers per instruction set (see eltwise.h). */
#include "eltwise.h"

#include <math.h>

#include "layers.h"
#include "spikeconv.h"

static const os_eltwise eltwise_scalar = {
    OS_ISA_SCALAR, os_lif_first, os_lif_step, os_add, os_maxpool2d_hwc,
};

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

/* One set of the four kernels on VEC registers of W floats; the last n % W elements (and a
 * pooled layer's last c % W channels) go through the reference, which computes the same
 * floats. ABOVE(v, t) is 1.0f where v > t (ordered and quiet, as isgreater), else 0. */
#define ELTWISE_SET(SFX, ISA, TARGET, VEC, W, LOAD, STORE, SET1, ADD, SUB, MUL, MAX, ABOVE)     \
    TARGET static void lif_first_##SFX(float *restrict u, const float *restrict in, size_t n,   \
                                       float threshold, float *restrict spike)                  \
    {                                                                                            \
        const VEC t = SET1(threshold), zero = SET1(0.0f);                                        \
        size_t i = 0;                                                                            \
        for (; i + (W) <= n; i += (W)) {                                                         \
            const VEC v = ADD(LOAD(in + i), zero);                                               \
            const VEC s = ABOVE(v, t);                                                           \
            STORE(spike + i, s);                                                                 \
            if (u)                                                                               \
                STORE(u + i, SUB(v, MUL(t, s)));                                                 \
        }                                                                                        \
        os_lif_first(u ? u + i : NULL, in + i, n - i, threshold, spike + i);                     \
    }                                                                                            \
    TARGET static void lif_step_##SFX(float *restrict u, const float *restrict in, size_t n,    \
                                      float threshold, float leak, float *restrict spike)       \
    {                                                                                            \
        const VEC t = SET1(threshold), l = SET1(leak);                                           \
        size_t i = 0;                                                                            \
        for (; i + (W) <= n; i += (W)) {                                                         \
            const VEC v = ADD(MUL(l, LOAD(u + i)), LOAD(in + i));                                \
            const VEC s = ABOVE(v, t);                                                           \
            STORE(u + i, SUB(v, MUL(t, s)));                                                     \
            STORE(spike + i, s);                                                                 \
        }                                                                                        \
        os_lif_step(u + i, in + i, n - i, threshold, leak, spike + i);                           \
    }                                                                                            \
    TARGET static void add_##SFX(const float *a, const float *b, size_t n, float *restrict y)  \
    {                                                                                            \
        size_t i = 0;                                                                            \
        for (; i + (W) <= n; i += (W))                                                           \
            STORE(y + i, ADD(LOAD(a + i), LOAD(b + i)));                                         \
        os_add(a + i, b + i, n - i, y + i);                                                      \
    }                                                                                            \
    /* max(x, acc) is x > acc ? x : acc, the reference's select, to the bit */                   \
    TARGET static void maxpool_hwc_##SFX(const float *x, int c, int h, int w, int k,             \
                                         int stride, int pad, float *y)                          \
    {                                                                                            \
        const int oh = os_pool_out(h, k, stride, pad), ow = os_pool_out(w, k, stride, pad);      \
        const int cv = c - c % (W);                                                              \
        for (int oy = 0; oy < oh; oy++)                                                          \
            for (int ox = 0; ox < ow; ox++) {                                                    \
                int y0, y1, x0, x1;                                                              \
                os_pool_window(oy, ox, h, w, k, stride, pad, &y0, &y1, &x0, &x1);                \
                float *yq = y + ((size_t)oy * (size_t)ow + (size_t)ox) * (size_t)c;              \
                const float init = y0 < y1 && x0 < x1 ? -INFINITY : 0.0f;                        \
                for (int ch = 0; ch < cv; ch += (W)) {                                           \
                    VEC acc = SET1(init);                                                        \
                    for (int iy = y0; iy < y1; iy++)                                             \
                        for (int ix = x0; ix < x1; ix++)                                         \
                            acc = MAX(LOAD(x + ((size_t)iy * (size_t)w + (size_t)ix) *           \
                                                   (size_t)c + (size_t)ch),                      \
                                      acc);                                                      \
                    STORE(yq + ch, acc);                                                         \
                }                                                                                \
                for (int ch = cv; ch < c; ch++) {                                                \
                    float m = init;                                                              \
                    for (int iy = y0; iy < y1; iy++)                                             \
                        for (int ix = x0; ix < x1; ix++) {                                       \
                            const float v =                                                      \
                                x[((size_t)iy * (size_t)w + (size_t)ix) * (size_t)c + (size_t)ch]; \
                            m = v > m ? v : m;                                                   \
                        }                                                                        \
                    yq[ch] = m;                                                                  \
                }                                                                                \
            }                                                                                    \
    }                                                                                            \
    static const os_eltwise eltwise_##SFX = {                                                    \
        ISA, lif_first_##SFX, lif_step_##SFX, add_##SFX, maxpool_hwc_##SFX,                      \
    };

#define ABOVE_AVX2(v, t) _mm256_and_ps(_mm256_cmp_ps(v, t, _CMP_GT_OQ), _mm256_set1_ps(1.0f))
ELTWISE_SET(avx2, OS_ISA_AVX2, __attribute__((target("avx2"))), __m256, 8, _mm256_loadu_ps,
            _mm256_storeu_ps, _mm256_set1_ps, _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps,
            _mm256_max_ps, ABOVE_AVX2)

#define ABOVE_AVX512(v, t) \
    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, t, _CMP_GT_OQ), _mm512_set1_ps(1.0f))
ELTWISE_SET(avx512, OS_ISA_AVX512, __attribute__((target("avx512f,avx512bw,avx512vl,avx2"))),
            __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_add_ps,
            _mm512_sub_ps, _mm512_mul_ps, _mm512_max_ps, ABOVE_AVX512)
#define ELTWISE_WIDE 1
#endif

const os_eltwise *os_eltwise_for(os_isa isa)
{
    if (!os_isa_supported(isa))
        return NULL;
    switch (isa) {
    case OS_ISA_SCALAR: return &eltwise_scalar;
#ifdef ELTWISE_WIDE
    case OS_ISA_AVX2: return &eltwise_avx2;
    case OS_ISA_AVX512: return &eltwise_avx512;
#endif
    default: return NULL;
    }
}
