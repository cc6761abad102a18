/* vec.c - the training loop's element-wise kernels per instruction set (see vec.h). */
#include "vec.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "onespike/session.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define VEC_AVX2 1
#endif

/* ---- scalar reference --------------------------------------------------------------------- */

/* The partial sums of the whole groups of VEC_LANES are in acc; the rest, from i on, and then
 * the lanes in order are added to one total. Shared by every set, so all finish alike. */
static double finish(const double acc[VEC_LANES], const float *x, size_t i, size_t n)
{
    double tail = 0.0;
    for (; i < n; i++)
        tail += (double)x[i];
    for (int j = 0; j < VEC_LANES; j++)
        tail += acc[j];
    return tail;
}

static double finish_sq(const double acc[VEC_LANES], const float *x, size_t i, size_t n,
                        double mean)
{
    double tail = 0.0;
    for (; i < n; i++) {
        const double d = (double)x[i] - mean;
        tail += d * d;
    }
    for (int j = 0; j < VEC_LANES; j++)
        tail += acc[j];
    return tail;
}

static void finish_dy(const double a[VEC_LANES], const double b[VEC_LANES], const float *x,
                      const float *dy, size_t i, size_t n, double mean, double *sdy, double *sdyd)
{
    double ta = 0.0, tb = 0.0;
    for (; i < n; i++) {
        const double g = (double)dy[i];
        ta += g;
        tb += g * ((double)x[i] - mean);
    }
    for (int j = 0; j < VEC_LANES; j++) {
        ta += a[j];
        tb += b[j];
    }
    *sdy = ta;
    *sdyd = tb;
}

static double sum_scalar(const float *x, size_t n)
{
    double acc[VEC_LANES] = {0};
    size_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES)
        for (int j = 0; j < VEC_LANES; j++)
            acc[j] += (double)x[i + j];
    return finish(acc, x, i, n);
}

static double sum_sq_dev_scalar(const float *x, size_t n, double mean)
{
    double acc[VEC_LANES] = {0};
    size_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES)
        for (int j = 0; j < VEC_LANES; j++) {
            const double d = (double)x[i + j] - mean;
            acc[j] += d * d;
        }
    return finish_sq(acc, x, i, n, mean);
}

static void sum_dy_dev_scalar(const float *x, const float *dy, size_t n, double mean, double *sdy,
                              double *sdyd)
{
    double a[VEC_LANES] = {0}, b[VEC_LANES] = {0};
    size_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES)
        for (int j = 0; j < VEC_LANES; j++) {
            const double g = (double)dy[i + j];
            a[j] += g;
            b[j] += g * ((double)x[i + j] - mean);
        }
    finish_dy(a, b, x, dy, i, n, mean, sdy, sdyd);
}

static void adamw_scalar(float *x, const float *g, float *m, float *v, size_t n, float b1,
                         float b2, float lr_wd, float step, float denom, float eps)
{
    for (size_t j = 0; j < n; j++) {
        m[j] = b1 * m[j] + (1 - b1) * g[j];
        v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
        x[j] -= lr_wd * x[j];
        x[j] -= step * m[j] / (sqrtf(v[j]) * denom + eps);
    }
}

/* r = u / thr (= x + 1); the surrogate dS/du = slope * max(0, 1 - |r - 1|) (a select, so
 * NaN gives 0 as the comparison does); gs, gu the gradients at the spike and the membrane. */
static void lif_bwd_step_scalar(const float *ut, const float *st, const float *gt, const float *up,
                                const float *sp, float *dt, float *gv, float *athr, float *aleak,
                                size_t m, float thr, float slope, float leak)
{
    for (size_t i = 0; i < m; i++) {
        const float r = ut[i] / thr;
        const float tri = 1.0f - fabsf(r - 1.0f);
        const float dsdu = slope * (tri > 0.0f ? tri : 0.0f);
        const float gs = gt[i] - thr * gv[i];
        const float gu = gv[i] + gs * dsdu;
        const float vprev = up[i] - thr * sp[i];
        athr[i] += gs * (-r * dsdu) - gv[i] * st[i];
        aleak[i] += gu * vprev;
        dt[i] = gu; /* after the last read of gt[i]: dt may be gt */
        gv[i] = leak * gu;
    }
}

/* ---- AVX2 (without FMA: each multiply and add rounds as the reference's) ---------------------- */

#ifdef VEC_AVX2
#define AVX2 __attribute__((target("avx2")))

/* Lanes 0-3 and 4-7 of a group of 8 floats, widened. */
AVX2 static inline __m256d lo4(const float *p)
{
    return _mm256_cvtps_pd(_mm_loadu_ps(p));
}
AVX2 static inline __m256d hi4(const float *p)
{
    return _mm256_cvtps_pd(_mm_loadu_ps(p + 4));
}

AVX2 static double sum_avx2(const float *x, size_t n)
{
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES) {
        a0 = _mm256_add_pd(a0, lo4(x + i));
        a1 = _mm256_add_pd(a1, hi4(x + i));
    }
    double acc[VEC_LANES];
    _mm256_storeu_pd(acc, a0);
    _mm256_storeu_pd(acc + 4, a1);
    return finish(acc, x, i, n);
}

AVX2 static double sum_sq_dev_avx2(const float *x, size_t n, double mean)
{
    const __m256d mu = _mm256_set1_pd(mean);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES) {
        const __m256d d0 = _mm256_sub_pd(lo4(x + i), mu), d1 = _mm256_sub_pd(hi4(x + i), mu);
        a0 = _mm256_add_pd(a0, _mm256_mul_pd(d0, d0));
        a1 = _mm256_add_pd(a1, _mm256_mul_pd(d1, d1));
    }
    double acc[VEC_LANES];
    _mm256_storeu_pd(acc, a0);
    _mm256_storeu_pd(acc + 4, a1);
    return finish_sq(acc, x, i, n, mean);
}

AVX2 static void sum_dy_dev_avx2(const float *x, const float *dy, size_t n, double mean,
                                 double *sdy, double *sdyd)
{
    const __m256d mu = _mm256_set1_pd(mean);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    __m256d b0 = _mm256_setzero_pd(), b1 = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES) {
        const __m256d g0 = lo4(dy + i), g1 = hi4(dy + i);
        a0 = _mm256_add_pd(a0, g0);
        a1 = _mm256_add_pd(a1, g1);
        b0 = _mm256_add_pd(b0, _mm256_mul_pd(g0, _mm256_sub_pd(lo4(x + i), mu)));
        b1 = _mm256_add_pd(b1, _mm256_mul_pd(g1, _mm256_sub_pd(hi4(x + i), mu)));
    }
    double a[VEC_LANES], b[VEC_LANES];
    _mm256_storeu_pd(a, a0);
    _mm256_storeu_pd(a + 4, a1);
    _mm256_storeu_pd(b, b0);
    _mm256_storeu_pd(b + 4, b1);
    finish_dy(a, b, x, dy, i, n, mean, sdy, sdyd);
}

AVX2 static void adamw_avx2(float *x, const float *g, float *m, float *v, size_t n, float b1,
                            float b2, float lr_wd, float step, float denom, float eps)
{
    const __m256 vb1 = _mm256_set1_ps(b1), vc1 = _mm256_set1_ps(1 - b1);
    const __m256 vb2 = _mm256_set1_ps(b2), vc2 = _mm256_set1_ps(1 - b2);
    const __m256 vlw = _mm256_set1_ps(lr_wd), vst = _mm256_set1_ps(step);
    const __m256 vden = _mm256_set1_ps(denom), veps = _mm256_set1_ps(eps);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 gj = _mm256_loadu_ps(g + j);
        const __m256 mj = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + j)),
                                        _mm256_mul_ps(vc1, gj));
        const __m256 vj = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + j)),
                                        _mm256_mul_ps(_mm256_mul_ps(vc2, gj), gj));
        __m256 xj = _mm256_loadu_ps(x + j);
        xj = _mm256_sub_ps(xj, _mm256_mul_ps(vlw, xj));
        const __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vj), vden), veps);
        xj = _mm256_sub_ps(xj, _mm256_div_ps(_mm256_mul_ps(vst, mj), den));
        _mm256_storeu_ps(m + j, mj);
        _mm256_storeu_ps(v + j, vj);
        _mm256_storeu_ps(x + j, xj);
    }
    adamw_scalar(x + j, g + j, m + j, v + j, n - j, b1, b2, lr_wd, step, denom, eps);
}

AVX2 static void lif_bwd_step_avx2(const float *ut, const float *st, const float *gt,
                                   const float *up, const float *sp, float *dt, float *gv,
                                   float *athr, float *aleak, size_t m, float thr, float slope,
                                   float leak)
{
    const __m256 vthr = _mm256_set1_ps(thr), vslope = _mm256_set1_ps(slope);
    const __m256 vleak = _mm256_set1_ps(leak), one = _mm256_set1_ps(1.0f);
    const __m256 zero = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= m; i += 8) {
        const __m256 r = _mm256_div_ps(_mm256_loadu_ps(ut + i), vthr);
        const __m256 tri = _mm256_sub_ps(one, _mm256_andnot_ps(sign, _mm256_sub_ps(r, one)));
        const __m256 pos = _mm256_and_ps(_mm256_cmp_ps(tri, zero, _CMP_GT_OQ), tri);
        const __m256 dsdu = _mm256_mul_ps(vslope, pos);
        const __m256 g = _mm256_loadu_ps(gv + i);
        const __m256 gs = _mm256_sub_ps(_mm256_loadu_ps(gt + i), _mm256_mul_ps(vthr, g));
        const __m256 gu = _mm256_add_ps(g, _mm256_mul_ps(gs, dsdu));
        const __m256 vprev =
            _mm256_sub_ps(_mm256_loadu_ps(up + i), _mm256_mul_ps(vthr, _mm256_loadu_ps(sp + i)));
        const __m256 nr = _mm256_xor_ps(r, sign);
        const __m256 dthr = _mm256_sub_ps(_mm256_mul_ps(gs, _mm256_mul_ps(nr, dsdu)),
                                          _mm256_mul_ps(g, _mm256_loadu_ps(st + i)));
        _mm256_storeu_ps(athr + i, _mm256_add_ps(_mm256_loadu_ps(athr + i), dthr));
        _mm256_storeu_ps(aleak + i,
                         _mm256_add_ps(_mm256_loadu_ps(aleak + i), _mm256_mul_ps(gu, vprev)));
        _mm256_storeu_ps(dt + i, gu);
        _mm256_storeu_ps(gv + i, _mm256_mul_ps(vleak, gu));
    }
    lif_bwd_step_scalar(ut + i, st + i, gt + i, up + i, sp + i, dt + i, gv + i, athr + i,
                        aleak + i, m - i, thr, slope, leak);
}
#endif

/* ---- the sets ----------------------------------------------------------------------------- */

static const os_vec_kernels vec_scalar = {sum_scalar,   sum_sq_dev_scalar,   sum_dy_dev_scalar,
                                          adamw_scalar, lif_bwd_step_scalar, OS_ISA_SCALAR};
#ifdef VEC_AVX2
static const os_vec_kernels vec_avx2 = {sum_avx2,   sum_sq_dev_avx2,   sum_dy_dev_avx2,
                                        adamw_avx2, lif_bwd_step_avx2, OS_ISA_AVX2};
#endif

const os_vec_kernels *os_vec_kernels_for(os_isa isa)
{
    if (!os_isa_supported(isa))
        return NULL;
    switch (isa) {
    case OS_ISA_SCALAR: return &vec_scalar;
#ifdef VEC_AVX2
    case OS_ISA_AVX2:
    case OS_ISA_AVX512: return &vec_avx2; /* memory-bound: 512-bit lanes would not pay */
#endif
    default: return NULL;
    }
}

static const os_vec_kernels *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    const char *name = getenv(OS_SESSION_ISA_ENV);
    os_isa isa;
    if (name && os_isa_parse(name, &isa) && os_vec_kernels_for(isa))
        chosen = os_vec_kernels_for(isa);
    else /* unset, "auto", or a set the sessions will refuse with a clear error */
        chosen = os_vec_kernels_for(os_isa_best());
    if (!chosen)
        chosen = &vec_scalar;
}

const os_vec_kernels *os_vec(void)
{
    pthread_once(&chosen_once, choose);
    return chosen;
}
