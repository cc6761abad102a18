/* im2col.c - the patch matrix of a convolution and its adjoint; see im2col.h. */
#include "im2col.h"

#include <string.h>

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

/* col row (ic, ky, kx), column (oy, ox) = x[ic][oy*stride-pad+ky][ox*stride-pad+kx], 0 outside.
 * Rows of col are ld floats apart (ld = oh*ow for one image; n*oh*ow when several images sit
 * side by side in one matrix). Wide maps: rows outside the image are a memset, a row's padding
 * on either side a memset, its valid span a memcpy (stride 1) or a strided gather. */
void os_im2col(const os_conv_shape *s, int oh, int ow, const float *x, float *col, size_t ld)
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
