/* layers.c - forward kernels on single images, planar float CHW (contract in layers.h).
 *
 * Convolution is im2col + one SGEMM: the kernel-sized patches of the input are laid out as the
 * columns of a [in_c*kh*kw][out_h*out_w] matrix, so the whole layer becomes
 * y[out_c][out_h*out_w] = w[out_c][in_c*kh*kw] * col. A 1x1 stride-1 unpadded convolution needs
 * no patches: the input already is that matrix, and SGEMM reads it directly.
 */
#include "layers.h"
#include "im2col.h"

#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* Shapes and counts that reach CBLAS must fit its int arguments. */
static int to_blas_int(size_t v)
{
    assert(v <= (size_t)INT_MAX);
    return (int)v;
}

static void check_conv_shape(const os_conv_shape *s)
{
    assert(s != NULL);
    assert(s->in_c >= 1 && s->in_h >= 1 && s->in_w >= 1 && s->out_c >= 1);
    assert(s->kh >= 1 && s->kw >= 1);
    assert(s->stride >= 1 && s->pad >= 0);
    assert(s->in_h + 2 * s->pad >= s->kh && s->in_w + 2 * s->pad >= s->kw);
    (void)s;
}

int os_conv_out_h(const os_conv_shape *s)
{
    check_conv_shape(s);
    return (s->in_h + 2 * s->pad - s->kh) / s->stride + 1;
}

int os_conv_out_w(const os_conv_shape *s)
{
    check_conv_shape(s);
    return (s->in_w + 2 * s->pad - s->kw) / s->stride + 1;
}

size_t os_conv_col_floats(const os_conv_shape *s)
{
    if (os_conv_is_direct(s))
        return 0;
    const size_t rows = (size_t)s->in_c * (size_t)s->kh * (size_t)s->kw;
    return rows * (size_t)os_conv_out_h(s) * (size_t)os_conv_out_w(s);
}

void os_conv2d(const os_conv_shape *s, const float *x, const float *w, const float *b, float *y,
               float *col)
{
    const int oh = os_conv_out_h(s);
    const int ow = os_conv_out_w(s);
    const size_t n = (size_t)oh * (size_t)ow;
    const size_t k = (size_t)s->in_c * (size_t)s->kh * (size_t)s->kw;
    assert(x != NULL && w != NULL && y != NULL);

    const float *patches = x;
    if (!os_conv_is_direct(s)) {
        assert(col != NULL);
        os_im2col(s, oh, ow, x, col, (size_t)oh * (size_t)ow);
        patches = col;
    }

    /* With a bias, y starts as the bias broadcast over each output plane and SGEMM adds to it
     * (beta = 1); without one, beta = 0 makes SGEMM overwrite whatever y held. */
    float beta = 0.0f;
    if (b != NULL) {
        for (int oc = 0; oc < s->out_c; oc++) {
            float *yc = y + (size_t)oc * n;
            for (size_t i = 0; i < n; i++)
                yc[i] = b[oc];
        }
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->out_c, to_blas_int(n),
                to_blas_int(k), 1.0f, w, to_blas_int(k), patches, to_blas_int(n), beta, y,
                to_blas_int(n));
}

void os_conv2d_naive(const os_conv_shape *s, const float *x, const float *w, const float *b,
                     float *y)
{
    const int oh = os_conv_out_h(s);
    const int ow = os_conv_out_w(s);
    assert(x != NULL && w != NULL && y != NULL);

    for (int oc = 0; oc < s->out_c; oc++) {
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                double acc = b != NULL ? (double)b[oc] : 0.0;
                for (int ic = 0; ic < s->in_c; ic++) {
                    for (int ky = 0; ky < s->kh; ky++) {
                        const int iy = oy * s->stride - s->pad + ky;
                        if (iy < 0 || iy >= s->in_h)
                            continue;
                        for (int kx = 0; kx < s->kw; kx++) {
                            const int ix = ox * s->stride - s->pad + kx;
                            if (ix < 0 || ix >= s->in_w)
                                continue;
                            const size_t wi =
                                (((size_t)oc * s->in_c + ic) * s->kh + ky) * s->kw + kx;
                            const size_t xi = ((size_t)ic * s->in_h + iy) * s->in_w + ix;
                            acc += (double)w[wi] * (double)x[xi];
                        }
                    }
                }
                y[((size_t)oc * oh + oy) * ow + ox] = (float)acc;
            }
        }
    }
}

void os_channel_affine(float *x, int c, size_t hw, const float *scale, const float *shift)
{
    assert(c >= 0);
    for (int ch = 0; ch < c; ch++) {
        float *xc = x + (size_t)ch * hw;
        const float a = scale[ch];
        const float d = shift[ch];
        for (size_t i = 0; i < hw; i++)
            xc[i] = xc[i] * a + d;
    }
}

void os_relu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void os_add_inplace(float *y, const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a[i];
}

void os_add(const float *a, const float *b, size_t n, float *restrict y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

int os_pool_out(int in, int k, int stride, int pad)
{
    assert(in >= 1 && k >= 1 && stride >= 1 && pad >= 0);
    assert(in + 2 * pad >= k);
    return (in + 2 * pad - k) / stride + 1;
}

void os_maxpool2d(const float *x, int c, int h, int w, int k, int stride, int pad, float *y)
{
    const int oh = os_pool_out(h, k, stride, pad);
    const int ow = os_pool_out(w, k, stride, pad);
    const size_t plane = (size_t)h * (size_t)w;

    for (int ch = 0; ch < c; ch++) {
        const float *xc = x + (size_t)ch * plane;
        float *yc = y + (size_t)ch * (size_t)oh * (size_t)ow;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                int y0, y1, x0, x1;
                os_pool_window(oy, ox, h, w, k, stride, pad, &y0, &y1, &x0, &x1);
                /* A window made only of padding cannot occur for pad < k (every window then
                 * touches the image); should a caller build one anyway, it yields 0, the value
                 * the padding stands for, rather than -inf. */
                float m = y0 < y1 && x0 < x1 ? -INFINITY : 0.0f;
                for (int iy = y0; iy < y1; iy++) {
                    const float *row = xc + (size_t)iy * (size_t)w;
                    for (int ix = x0; ix < x1; ix++)
                        m = row[ix] > m ? row[ix] : m;
                }
                yc[(size_t)oy * (size_t)ow + ox] = m;
            }
        }
    }
}

void os_avgpool2d(const float *x, int c, int h, int w, int k, int stride, int pad, float *y)
{
    const int oh = os_pool_out(h, k, stride, pad);
    const int ow = os_pool_out(w, k, stride, pad);
    const size_t plane = (size_t)h * (size_t)w;
    const float inv_area = 1.0f / (float)(k * k); /* count_include_pad: padding counts */

    for (int ch = 0; ch < c; ch++) {
        const float *xc = x + (size_t)ch * plane;
        float *yc = y + (size_t)ch * (size_t)oh * (size_t)ow;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                int y0, y1, x0, x1;
                os_pool_window(oy, ox, h, w, k, stride, pad, &y0, &y1, &x0, &x1);
                float sum = 0.0f;
                for (int iy = y0; iy < y1; iy++) {
                    const float *row = xc + (size_t)iy * (size_t)w;
                    for (int ix = x0; ix < x1; ix++)
                        sum += row[ix];
                }
                yc[(size_t)oy * (size_t)ow + ox] = sum * inv_area;
            }
        }
    }
}

void os_global_avgpool(const float *x, int c, size_t hw, float *y)
{
    assert(hw >= 1);
    for (int ch = 0; ch < c; ch++) {
        const float *xc = x + (size_t)ch * hw;
        double sum = 0.0;
        for (size_t i = 0; i < hw; i++)
            sum += xc[i];
        y[ch] = (float)(sum / (double)hw);
    }
}

void os_linear(const float *x, int in, int out, const float *w, const float *b, float *y)
{
    assert(in >= 1 && out >= 1);
    assert(x != NULL && w != NULL && y != NULL);
    /* y is set explicitly rather than relying on beta = 0: whether BLAS level-2 routines
     * overwrite a NaN already in y with beta = 0 has varied between OpenBLAS releases. */
    for (int o = 0; o < out; o++)
        y[o] = b != NULL ? b[o] : 0.0f;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, 1.0f, y, 1);
}

void os_lif_first(float *restrict u, const float *restrict in, size_t n, float threshold,
                  float *restrict spike)
{
    for (size_t i = 0; i < n; i++) {
        const float v = in[i] + 0.0f; /* leak * 0 + in, to the bit (-0 becomes +0 there too) */
        const float s = (float)isgreater(v, threshold);
        spike[i] = s;
        if (u)
            u[i] = v - threshold * s;
    }
}

void os_lif_step(float *restrict u, const float *restrict in, size_t n, float threshold,
                 float leak, float *restrict spike)
{
    for (size_t i = 0; i < n; i++) {
        const float v = leak * u[i] + in[i];
        /* strict: u == threshold does not fire. isgreater is the quiet form of v > threshold
         * (same result, NaN included); with the signalling > GCC keeps a branch, which
         * mispredicts at these firing rates, instead of vectorising the loop. */
        const float s = (float)isgreater(v, threshold);
        u[i] = v - threshold * s;
        spike[i] = s;
    }
}

void os_softmax(const float *x, int n, float *p)
{
    assert(n >= 1);
    /* Subtracting the maximum keeps every exponent <= 0, so expf cannot overflow; the largest
     * term is exactly 1 and the sum is at least 1. Each p[i] is written only after x[i] has been
     * read, so p may alias x. */
    float m = x[0];
    for (int i = 1; i < n; i++)
        m = x[i] > m ? x[i] : m;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        p[i] = expf(x[i] - m);
        sum += p[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++)
        p[i] *= inv;
}
