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

/* col row (ic, ky, kx), column (oy, ox) = x[ic][oy*stride-pad+ky][ox*stride-pad+kx], 0 outside.
 * A copy of layers.c's im2col (static there; layers.h is a finished public contract that need
 * not grow an internal helper): rows outside the image are a memset, a row's padding on either
 * side a memset, its valid span a memcpy (stride 1) or a strided gather. */
/* Rows of col are ld floats apart (ld = oh*ow for one image; n*oh*ow when several images sit
 * side by side in one matrix). */
void os_im2col(const os_conv_shape *s, int oh, int ow, const float *x, float *col, size_t ld)
{
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

/* The adjoint of im2col: dx[ic][iy][ix] += every col entry that im2col copied from that cell.
 * Entries im2col set to zero (padding) are dropped. dx must be initialised by the caller. */
void os_col2im_add(const os_conv_shape *s, int oh, int ow, const float *col, float *dx,
                   size_t ld)
{
    const int st = s->stride;
    const size_t plane = (size_t)s->in_h * (size_t)s->in_w;
    const size_t n = ld;
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
