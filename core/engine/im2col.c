/* im2col.c - the patch matrix of a convolution and its adjoint; see im2col.h. */
#include "im2col.h"

#include <stdint.h>
#include <string.h>

#include "isa.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define IM2COL_AVX2 1
#endif

bool os_conv_is_direct(const os_conv_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
}

/* Smallest o >= 0 with o*stride + off >= 0, i.e. ceil(-off / stride) for negative off. */
static int first_inside(int off, int stride)
{
    return off >= 0 ? 0 : (-off + stride - 1) / stride;
}

/* Smallest o >= 0 with o*stride + off >= limit: one past the last o that lands inside. */
static int end_inside(int off, int limit, int stride)
{
    const int room = limit - off;
    return room <= 0 ? 0 : (room + stride - 1) / stride;
}

/* Clamp a half-open range [*lo, *hi) of output positions to [0, n); an empty range stays empty. */
static void clamp_range(int *lo, int *hi, int n)
{
    if (*lo > n)
        *lo = n;
    if (*hi > n)
        *hi = n;
    if (*hi < *lo)
        *hi = *lo;
}

/* The valid output rows [*oy0, *oy1) and columns [*ox0, *ox1) of kernel tap (ky, kx): those
 * whose input cell lies inside the image. The same ranges as layers.c's im2col, so the backward
 * pass reads and writes exactly the cells the forward pass read. */
static void tap_range(const os_conv_shape *s, int oh, int ow, int ky, int kx, int *oy0, int *oy1,
                      int *ox0, int *ox1)
{
    const int st = s->stride;
    *oy0 = first_inside(ky - s->pad, st);
    *oy1 = end_inside(ky - s->pad, s->in_h, st);
    clamp_range(oy0, oy1, oh);
    *ox0 = first_inside(kx - s->pad, st);
    *ox1 = end_inside(kx - s->pad, s->in_w, st);
    clamp_range(ox0, ox1, ow);
}

/* Maps narrower than this (the 2-16 wide maps of a 64 px ResNet's later stages) are filled
 * with one select per cell; wider ones with memset/memcpy per output row. With a few floats per
 * row the library calls cost more than the copy: im2col was a third of a training epoch. */
#define WIDE_ROW 32
#define MAX_TAPS 64

/* The small maps' zero fills are a few floats each: gcc would turn each loop into a memset
 * call that costs more than the stores. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_MEMSET_CALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_MEMSET_CALLS
#endif

/* A stride-1 conv whose output is its input's size ("same" padding): each tap's plane of col
 * is the input plane shifted by one flat offset, yoff*in_w + xoff. So a tap is one long copy
 * (vectorised, however narrow the rows) plus zeros: the rows outside the image, and in every
 * other row the |xoff| cells the shift wrapped in from the neighbouring row. */
static bool same_shift(const os_conv_shape *s, int oh, int ow)
{
    return s->stride == 1 && oh == s->in_h && ow == s->in_w;
}

NO_MEMSET_CALLS static void tap_plane_shift(float *dst, const float *xc, int oh, int ow, int oy0, int oy1, int ox0,
                            int ox1, long off)
{
    const long plane = (long)oh * ow, j0 = (long)oy0 * ow, j1 = (long)oy1 * ow;
    long a = j0, b = j1;
    if (a + off < 0) /* only the wrapped cell(s) of the first valid row, zeroed below */
        a = -off;
    if (b + off > plane)
        b = plane - off;
    if (a > plane) /* a shift past the whole plane (a 1x1 map): nothing to copy */
        a = plane;
    if (b < a)
        b = a;
    for (long j = 0; j < a; j++)
        dst[j] = 0.0f;
    for (long j = a; j < b; j++)
        dst[j] = xc[j + off];
    for (long j = b; j < plane; j++)
        dst[j] = 0.0f;
    for (int oy = oy0; oy < oy1; oy++) {
        float *row = dst + (long)oy * ow;
        for (int ox = 0; ox < ox0; ox++)
            row[ox] = 0.0f;
        for (int ox = ox1; ox < ow; ox++)
            row[ox] = 0.0f;
    }
}

/* One row of a tap: zeros left of ox0, the input from ox0 to ox1, zeros from ox1 (loops the
 * compiler vectorises: no select per cell). */
NO_MEMSET_CALLS static inline void tap_row(float *dst, const float *xr, int ow, int ox0, int ox1, int st, int xoff)
{
    for (int ox = 0; ox < ox0; ox++)
        dst[ox] = 0.0f;
    if (st == 1) {
        for (int ox = ox0; ox < ox1; ox++) /* ox + xoff >= 0 from ox0 on */
            dst[ox] = xr[ox + xoff];
    } else {
        for (int ox = ox0; ox < ox1; ox++)
            dst[ox] = xr[ox * st + xoff];
    }
    for (int ox = ox1; ox < ow; ox++)
        dst[ox] = 0.0f;
}

/* The narrow form: each tap's valid ranges worked out once for all channels. */
NO_MEMSET_CALLS static void im2col_narrow(const os_conv_shape *s, int oh, int ow, const float *x, float *col,
                          size_t ld)
{
    const int st = s->stride, taps = s->kh * s->kw;
    const size_t plane = (size_t)s->in_h * (size_t)s->in_w;
    const bool same = same_shift(s, oh, ow);
    int r[MAX_TAPS][4];
    for (int t = 0; t < taps; t++)
        tap_range(s, oh, ow, t / s->kw, t % s->kw, &r[t][0], &r[t][1], &r[t][2], &r[t][3]);
    float *dst_row = col;
    for (int ic = 0; ic < s->in_c; ic++) {
        const float *xc = x + (size_t)ic * plane;
        for (int t = 0; t < taps; t++, dst_row += ld) {
            const int yoff = t / s->kw - s->pad, xoff = t % s->kw - s->pad;
            const int oy0 = r[t][0], oy1 = r[t][1], ox0 = r[t][2], ox1 = r[t][3];
            if (same) {
                tap_plane_shift(dst_row, xc, oh, ow, oy0, oy1, ox0, ox1,
                                (long)yoff * s->in_w + xoff);
                continue;
            }
            for (int j = 0; j < oy0 * ow; j++)
                dst_row[j] = 0.0f;
            for (int oy = oy0; oy < oy1; oy++)
                tap_row(dst_row + (size_t)oy * (size_t)ow,
                        xc + (size_t)(oy * st + yoff) * (size_t)s->in_w, ow, ox0, ox1, st, xoff);
            for (int j = oy1 * ow; j < oh * ow; j++)
                dst_row[j] = 0.0f;
        }
    }
}

#ifdef IM2COL_AVX2
/* Masked form of a "same" stride-1 conv's im2col, for planes of at most MASK_CELLS cells (the
 * feature maps of training and of the deep layers): each tap's plane is the input plane shifted
 * by one flat offset, read with one mask per 8 cells that zeroes the cells whose input lies
 * outside the image (masked lanes are not read, so the reads may start before the plane or run
 * past it). Taps outer, channels inner, so each tap's masks are worked out once: one masked load
 * and one store per 8 cells, no per-row fix-ups. The result is the scalar form's, float for
 * float. */
#define MASK_CELLS 1024 /* up to a 32x32 plane */

static bool masked_shift_fits(const os_conv_shape *s, int oh, int ow)
{
    return same_shift(s, oh, ow) && (size_t)oh * (size_t)ow <= MASK_CELLS;
}

__attribute__((target("avx2"))) static void im2col_masked_avx2(const os_conv_shape *s, int oh,
                                                               int ow, const float *x,
                                                               float *col, size_t ld)
{
    const int taps = s->kh * s->kw, plane = oh * ow, nv = (plane + 7) / 8, full = plane / 8;
    /* each cell's output row and column; the lanes past the plane get a row no tap reaches */
    int32_t oy[MASK_CELLS + 8], ox[MASK_CELLS + 8];
    for (int j = 0, y = 0, xx = 0; j < nv * 8; j++) {
        oy[j] = j < plane ? y : 1 << 24, ox[j] = j < plane ? xx : 0;
        if (++xx == ow)
            xx = 0, y++;
    }
    __m256i mask[MASK_CELLS / 8 + 1];
    const __m256i none = _mm256_set1_epi32(-1), h = _mm256_set1_epi32(s->in_h),
                  w = _mm256_set1_epi32(s->in_w);
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(plane - 8 * full),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int t = 0; t < taps; t++) {
        const int yoff = t / s->kw - s->pad, xoff = t % s->kw - s->pad;
        for (int v = 0; v < nv; v++) {
            const __m256i y = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(oy + 8 * v)),
                                               _mm256_set1_epi32(yoff));
            const __m256i xv = _mm256_add_epi32(
                _mm256_loadu_si256((const __m256i *)(ox + 8 * v)), _mm256_set1_epi32(xoff));
            const __m256i in_y = _mm256_and_si256(_mm256_cmpgt_epi32(y, none),
                                                  _mm256_cmpgt_epi32(h, y));
            const __m256i in_x = _mm256_and_si256(_mm256_cmpgt_epi32(xv, none),
                                                  _mm256_cmpgt_epi32(w, xv));
            mask[v] = _mm256_and_si256(in_y, in_x);
        }
        /* formed as an integer: the shifted start may lie outside the plane */
        const intptr_t shift = ((intptr_t)yoff * s->in_w + xoff) * (intptr_t)sizeof(float);
        for (int ic = 0; ic < s->in_c; ic++) {
            const intptr_t src = (intptr_t)(x + (size_t)ic * (size_t)plane) + shift;
            float *dst = col + ((size_t)ic * (size_t)taps + (size_t)t) * ld;
            int v = 0;
            for (; v < full; v++)
                _mm256_storeu_ps(dst + 8 * v,
                                 _mm256_maskload_ps((const float *)(src + 32 * v), mask[v]));
            if (v < nv)
                _mm256_maskstore_ps(dst + 8 * v, tail,
                                    _mm256_maskload_ps((const float *)(src + 32 * v), mask[v]));
        }
    }
}
#endif

void os_im2col(const os_conv_shape *s, int oh, int ow, const float *x, float *col, size_t ld)
{
#ifdef IM2COL_AVX2
    if (masked_shift_fits(s, oh, ow) && os_isa_supported(OS_ISA_AVX2)) {
        im2col_masked_avx2(s, oh, ow, x, col, ld);
        return;
    }
#endif
    os_im2col_scalar(s, oh, ow, x, col, ld);
}

/* col row (ic, ky, kx), column (oy, ox) = x[ic][oy*stride-pad+ky][ox*stride-pad+kx], 0 outside.
 * Rows of col are ld floats apart (ld = oh*ow for one image; n*oh*ow when several images sit
 * side by side in one matrix). Wide maps: rows outside the image are a memset, a row's padding
 * on either side a memset, its valid span a memcpy (stride 1) or a strided gather. */
void os_im2col_scalar(const os_conv_shape *s, int oh, int ow, const float *x, float *col,
                      size_t ld)
{
    if ((ow < WIDE_ROW || same_shift(s, oh, ow)) && s->kh * s->kw <= MAX_TAPS) {
        im2col_narrow(s, oh, ow, x, col, ld);
        return;
    }
    const int st = s->stride;
    const size_t plane = (size_t)s->in_h * (size_t)s->in_w;
    const size_t n = ld;
    float *dst_row = col;

    for (int ic = 0; ic < s->in_c; ic++) {
        const float *xc = x + (size_t)ic * plane;
        for (int ky = 0; ky < s->kh; ky++) {
            for (int kx = 0; kx < s->kw; kx++, dst_row += n) {
                int oy0, oy1, ox0, ox1;
                tap_range(s, oh, ow, ky, kx, &oy0, &oy1, &ox0, &ox1);
                const int yoff = ky - s->pad, xoff = kx - s->pad;
                const size_t span = (size_t)(ox1 - ox0);
                const size_t tail = (size_t)(ow - ox1);

                memset(dst_row, 0, (size_t)oy0 * (size_t)ow * sizeof(float));
                for (int oy = oy0; oy < oy1; oy++) {
                    float *dst = dst_row + (size_t)oy * (size_t)ow;
                    memset(dst, 0, (size_t)ox0 * sizeof(float));
                    if (span > 0) {
                        /* formed only when it points inside the image */
                        const float *src = xc + (size_t)(oy * st + yoff) * (size_t)s->in_w +
                                           (size_t)(ox0 * st + xoff);
                        float *d = dst + ox0;
                        if (st == 1) {
                            memcpy(d, src, span * sizeof(float));
                        } else {
                            for (size_t i = 0; i < span; i++)
                                d[i] = src[i * (size_t)st];
                        }
                    }
                    memset(dst + ox1, 0, tail * sizeof(float));
                }
                memset(dst_row + (size_t)oy1 * (size_t)ow, 0,
                       (size_t)(oh - oy1) * (size_t)ow * sizeof(float));
            }
        }
    }
}

/* col2im of a "same" stride-1 conv: per tap, the cells im2col left at zero (rows outside,
 * wrapped cells) are zeroed in col, then the tap's plane is one flat add into dx. */
NO_MEMSET_CALLS static void col2im_shift(const os_conv_shape *s, int oh, int ow, float *col, float *dx, size_t ld)
{
    const size_t plane = (size_t)oh * (size_t)ow;
    float *src_row = col;
    for (int ic = 0; ic < s->in_c; ic++) {
        float *dc = dx + (size_t)ic * plane;
        for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++, src_row += ld) {
                int oy0, oy1, ox0, ox1;
                tap_range(s, oh, ow, ky, kx, &oy0, &oy1, &ox0, &ox1);
                const long off = (long)(ky - s->pad) * s->in_w + (kx - s->pad);
                long a = (long)oy0 * ow, b = (long)oy1 * ow;
                if (a + off < 0)
                    a = -off;
                if (b + off > (long)plane)
                    b = (long)plane - off;
                for (int oy = oy0; oy < oy1; oy++) {
                    float *row = src_row + (long)oy * ow;
                    for (int ox = 0; ox < ox0; ox++)
                        row[ox] = 0.0f;
                    for (int ox = ox1; ox < ow; ox++)
                        row[ox] = 0.0f;
                }
                for (long j = a; j < b; j++)
                    dc[j + off] += src_row[j];
            }
    }
}

/* The adjoint of im2col: dx[ic][iy][ix] += every col entry that im2col copied from that cell.
 * Entries im2col set to zero (padding) are dropped. dx must be initialised by the caller. */
void os_col2im_add(const os_conv_shape *s, int oh, int ow, float *col, float *dx, size_t ld)
{
    const int st = s->stride;
    const size_t plane = (size_t)s->in_h * (size_t)s->in_w;
    const size_t n = ld;
    if (same_shift(s, oh, ow)) {
        col2im_shift(s, oh, ow, col, dx, ld);
        return;
    }
    const float *src_row = col;

    for (int ic = 0; ic < s->in_c; ic++) {
        float *dc = dx + (size_t)ic * plane;
        for (int ky = 0; ky < s->kh; ky++) {
            for (int kx = 0; kx < s->kw; kx++, src_row += n) {
                int oy0, oy1, ox0, ox1;
                tap_range(s, oh, ow, ky, kx, &oy0, &oy1, &ox0, &ox1);
                if (ox1 <= ox0)
                    continue;
                const int yoff = ky - s->pad, xoff = kx - s->pad;
                const size_t span = (size_t)(ox1 - ox0);
                for (int oy = oy0; oy < oy1; oy++) {
                    const float *src = src_row + (size_t)oy * (size_t)ow + ox0;
                    float *d =
                        dc + (size_t)(oy * st + yoff) * (size_t)s->in_w + (size_t)(ox0 * st + xoff);
                    if (st == 1) {
                        for (size_t i = 0; i < span; i++)
                            d[i] += src[i];
                    } else {
                        for (size_t i = 0; i < span; i++)
                            d[i * (size_t)st] += src[i];
                    }
                }
            }
        }
    }
}
