/* grad.c - training kernels: backward passes, BatchNorm in training mode, the loss, and LIF
 * through time (contract in grad.h).
 *
 * Convolution backward reuses the forward's im2col view. With col[K][HW] the patches of x
 * (K = in_c*kh*kw) and y[out][HW] = w[out][K] * col, the gradients are two SGEMMs (os_gemm:
 * OpenBLAS or oneDNN, gemm.h):
 *   dw[out][K] += dy[out][HW] * col^T          (beta = 1: dw accumulates)
 *   dcol[K][HW] = w^T * dy                      (then col2im scatters dcol back onto dx)
 * The 1x1 stride-1 unpadded case needs no patches: x itself is col, and dx is dcol.
 *
 * Reductions (biases, BatchNorm statistics, LIF threshold and leak) are summed in double, with
 * several independent accumulators (vec.h: the AVX2 kernels keep them in vector lanes and give
 * the scalar reference's sums bit for bit).
 */
#include "gemm.h"
#include "grad.h"
#include "im2col.h"
#include "vec.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- reductions --------------------------------------------------------------------------- */

/* In double, VEC_LANES partial sums each, by the process's vector kernels (vec.h: every
 * instruction set gives the scalar reference's sums bit for bit). */
static double sum_floats(const float *x, size_t n)
{
    return os_vec()->sum(x, n);
}

/* ---- convolution -------------------------------------------------------------------------- */

void os_conv2d_backward(const os_conv_shape *s, const float *x, const float *w, const float *dy,
                        float *dw, float *db, float *dx, float *col)
{
    const int oh = os_conv_out_h(s);
    const int ow = os_conv_out_w(s);
    const size_t hw = (size_t)oh * (size_t)ow;
    const size_t k = (size_t)s->in_c * (size_t)s->kh * (size_t)s->kw;
    assert(x != NULL && w != NULL && dy != NULL && dw != NULL);

    if (db != NULL) {
        for (int oc = 0; oc < s->out_c; oc++)
            db[oc] += (float)sum_floats(dy + (size_t)oc * hw, hw);
    }

    const float *patches = x;
    const int direct = os_conv_is_direct(s);
    if (!direct) {
        assert(col != NULL);
        os_im2col(s, oh, ow, x, col, hw);
        patches = col;
    }
    os_gemm(false, true, s->out_c, k, hw, 1.0f, dy, hw, patches, hw, 1.0f, dw, k);

    if (dx == NULL)
        return;
    /* dcol = w^T * dy. beta = 0: BLAS defines C as not read then, so neither the patches left in
     * col nor whatever dx held can leak in. In the direct case dcol is dx itself. */
    float *dcol = direct ? dx : col;
    os_gemm(true, false, k, hw, s->out_c, 1.0f, w, k, dy, hw, 0.0f, dcol, hw);
    if (!direct) {
        memset(dx, 0, (size_t)s->in_c * (size_t)s->in_h * (size_t)s->in_w * sizeof(float));
        os_col2im_add(s, oh, ow, col, dx, hw);
    }
}

/* Images side by side in chunks: col is [K][c*hw] and the product [out][c*hw] for c images at
 * a time. One sgemm for several images keeps BLAS efficient on the small feature maps of deep
 * layers, where per-image products are a few columns wide; chunks keep col (the im2col of the
 * chunk, K*c*hw floats, nine times its input for a 3x3 conv) within the caches, where one matrix
 * for a whole batch of 32 was tens of MB written and read back from memory. */
#define COL_CHUNK_FLOATS (256u * 1024u) /* col's size a chunk aims at (1 MiB) */
#define CHUNK_MIN_COLS   256            /* but at least this many product columns */

static int conv_chunk(const os_conv_shape *s, int n)
{
    const size_t hw = (size_t)os_conv_out_h(s) * (size_t)os_conv_out_w(s);
    const size_t k = (size_t)s->in_c * (size_t)s->kh * (size_t)s->kw;
    if (k == 0 || hw == 0)
        return n;
    size_t c = COL_CHUNK_FLOATS / (k * hw);
    const size_t min_c = (CHUNK_MIN_COLS + hw - 1) / hw;
    if (c < min_c)
        c = min_c;
    return c < (size_t)n ? (int)c : n;
}

/* The data gradient of a stride-1 conv is itself a stride-1 conv: of dy, with the weights'
 * in and out swapped and each kernel flipped, padded by kh-1-pad, which gives back the input's
 * size. Computed that way it is im2col (of dy) and one sgemm with K = out*kh*kw, like a forward
 * pass, instead of an sgemm with K = out whose product is nine times dx, scattered back by
 * col2im. Square kernels only (one pad for both sides); a strided conv keeps col2im. */
static bool dx_as_conv(const os_conv_shape *s)
{
    return s->stride == 1 && s->kh == s->kw && s->pad <= s->kh - 1 && !os_conv_is_direct(s);
}

static os_conv_shape dx_shape(const os_conv_shape *s)
{
    return (os_conv_shape){s->out_c, os_conv_out_h(s), os_conv_out_w(s), s->in_c, s->kh, s->kw, 1,
                           s->kh - 1 - s->pad};
}

/* col's parts: the chunk's patches (of x, and for dx_as_conv of dy: the larger), then the
 * flipped weights. */
static size_t col_patch_floats(const os_conv_shape *s, int chunk)
{
    const size_t hw = (size_t)os_conv_out_h(s) * (size_t)os_conv_out_w(s);
    const size_t taps = (size_t)s->kh * (size_t)s->kw;
    size_t f = (size_t)s->in_c * taps * hw;
    if (dx_as_conv(s)) {
        const size_t g = (size_t)s->out_c * taps * (size_t)s->in_h * (size_t)s->in_w;
        f = g > f ? g : f;
    }
    return f * (size_t)chunk;
}

size_t os_conv_batch_floats(const os_conv_shape *s, int n)
{
    const size_t flipped = dx_as_conv(s) ? (size_t)s->in_c * (size_t)s->out_c *
                                               (size_t)s->kh * (size_t)s->kw
                                         : 0;
    return col_patch_floats(s, conv_chunk(s, n)) + flipped;
}

/* wf[i][o][ky][kx] = w[o][i][kh-1-ky][kw-1-kx] */
static void flip_weights(const os_conv_shape *s, const float *w, float *wf)
{
    const int taps = s->kh * s->kw;
    for (int o = 0; o < s->out_c; o++)
        for (int i = 0; i < s->in_c; i++) {
            const float *src = w + ((size_t)o * (size_t)s->in_c + (size_t)i) * (size_t)taps;
            float *dst = wf + ((size_t)i * (size_t)s->out_c + (size_t)o) * (size_t)taps;
            for (int t = 0; t < taps; t++)
                dst[t] = src[taps - 1 - t];
        }
}

/* The product [rows][c*hw] (image i's columns at i*hw) into c planar images of rows x hw. */
static void unchunk(const float *src, int rows, size_t hw, int c, const float *b, float *dst)
{
    const size_t ld = hw * (size_t)c;
    for (int i = 0; i < c; i++)
        for (int o = 0; o < rows; o++) {
            const float *p = src + (size_t)o * ld + (size_t)i * hw;
            float *q = dst + ((size_t)i * (size_t)rows + (size_t)o) * hw;
            const float bias = b ? b[o] : 0.0f;
            for (size_t j = 0; j < hw; j++)
                q[j] = p[j] + bias;
        }
}

void os_conv2d_batch(const os_conv_shape *s, int n, const float *x, const float *w, const float *b,
                     float *y, float *col, float *tmp)
{
    const int oh = os_conv_out_h(s), ow = os_conv_out_w(s), chunk = conv_chunk(s, n);
    const size_t hw = (size_t)oh * (size_t)ow;
    const size_t k = (size_t)s->in_c * (size_t)s->kh * (size_t)s->kw;
    const size_t in_size = (size_t)s->in_c * (size_t)s->in_h * (size_t)s->in_w;
    for (int i0 = 0; i0 < n; i0 += chunk) {
        const int c = n - i0 < chunk ? n - i0 : chunk;
        const size_t ld = hw * (size_t)c;
        float *yc = y + (size_t)i0 * (size_t)s->out_c * hw;
        for (int i = 0; i < c; i++)
            os_im2col(s, oh, ow, x + (size_t)(i0 + i) * in_size, col + (size_t)i * hw, ld);
        /* One image: the product is already its planar output. */
        os_gemm(false, false, s->out_c, ld, k, 1.0f, w, k, col, ld, 0.0f, c == 1 ? yc : tmp, ld);
        if (c > 1)
            unchunk(tmp, s->out_c, hw, c, b, yc);
        else if (b)
            for (int o = 0; o < s->out_c; o++)
                for (size_t j = 0; j < hw; j++)
                    yc[(size_t)o * hw + j] += b[o];
    }
}

void os_conv2d_backward_batch(const os_conv_shape *s, int n, const float *x, const float *w,
                              const float *dy, float *dw, float *db, float *dx, float *col,
                              float *tmp)
{
    const int oh = os_conv_out_h(s), ow = os_conv_out_w(s), chunk = conv_chunk(s, n);
    const size_t hw = (size_t)oh * (size_t)ow;
    const size_t k = (size_t)s->in_c * (size_t)s->kh * (size_t)s->kw;
    const size_t in_hw = (size_t)s->in_h * (size_t)s->in_w;
    const size_t in_size = (size_t)s->in_c * in_hw, out_size = (size_t)s->out_c * hw;
    const bool tconv = dx != NULL && dx_as_conv(s);
    const os_conv_shape ts = dx_shape(s);
    const size_t tk = (size_t)s->out_c * (size_t)s->kh * (size_t)s->kw;
    float *wf = col + col_patch_floats(s, chunk);
    if (tconv)
        flip_weights(s, w, wf);
    for (int i0 = 0; i0 < n; i0 += chunk) {
        const int c = n - i0 < chunk ? n - i0 : chunk;
        const size_t ld = hw * (size_t)c;
        for (int i = 0; i < c; i++) /* dy into the [out][c*hw] layout */
            for (int o = 0; o < s->out_c; o++)
                memcpy(tmp + (size_t)o * ld + (size_t)i * hw,
                       dy + ((size_t)(i0 + i) * (size_t)s->out_c + (size_t)o) * hw,
                       hw * sizeof(float));
        if (db != NULL)
            for (int o = 0; o < s->out_c; o++)
                db[o] += (float)sum_floats(tmp + (size_t)o * ld, ld);
        for (int i = 0; i < c; i++)
            os_im2col(s, oh, ow, x + (size_t)(i0 + i) * in_size, col + (size_t)i * hw, ld);
        os_gemm(false, true, s->out_c, k, ld, 1.0f, tmp, ld, col, ld, 1.0f, dw, k);
        if (dx == NULL)
            continue;
        float *dxc = dx + (size_t)i0 * in_size;
        if (tconv) { /* dx = the flipped weights convolved with dy; tmp is free again */
            const size_t ld2 = in_hw * (size_t)c;
            for (int i = 0; i < c; i++)
                os_im2col(&ts, s->in_h, s->in_w, dy + (size_t)(i0 + i) * out_size,
                          col + (size_t)i * in_hw, ld2);
            os_gemm(false, false, s->in_c, ld2, tk, 1.0f, wf, tk, col, ld2, 0.0f,
                    c == 1 ? dxc : tmp, ld2);
            if (c > 1)
                unchunk(tmp, s->in_c, in_hw, c, NULL, dxc);
            continue;
        }
        os_gemm(true, false, k, ld, s->out_c, 1.0f, w, k, tmp, ld, 0.0f, col, ld);
        memset(dxc, 0, (size_t)c * in_size * sizeof(float));
        for (int i = 0; i < c; i++)
            os_col2im_add(s, oh, ow, col + (size_t)i * hw, dxc + (size_t)i * in_size, ld);
    }
}

/* ---- linear ------------------------------------------------------------------------------- */

void os_linear_batch(const float *x, int n, int in, int out, const float *w, const float *b,
                     float *y)
{
    assert(n >= 1 && in >= 1 && out >= 1);
    assert(x != NULL && w != NULL && y != NULL);
    float beta = 0.0f;
    if (b != NULL) {
        for (int r = 0; r < n; r++)
            memcpy(y + (size_t)r * (size_t)out, b, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    /* y[n][out] = x[n][in] * w[out][in]^T (+ y) */
    os_gemm(false, true, n, out, in, 1.0f, x, in, w, in, beta, y, out);
}

void os_linear_backward(const float *x, const float *w, const float *dy, int n, int in, int out,
                        float *dw, float *db, float *dx)
{
    assert(n >= 1 && in >= 1 && out >= 1);
    assert(x != NULL && w != NULL && dy != NULL && dw != NULL);
    /* dw[out][in] += dy[n][out]^T * x[n][in] */
    os_gemm(true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (db != NULL) {
        /* a column sum over a batch: small, so a strided double loop is plenty */
        for (int o = 0; o < out; o++) {
            double acc = 0.0;
            for (int r = 0; r < n; r++)
                acc += (double)dy[(size_t)r * (size_t)out + (size_t)o];
            db[o] += (float)acc;
        }
    }
    if (dx != NULL) {
        /* dx[n][in] = dy[n][out] * w[out][in] */
        os_gemm(false, false, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
    }
}

/* ---- BatchNorm, training mode ------------------------------------------------------------- */

/* Channel ch of image i starts at x + (i*c + ch)*hw: a channel's N x H x W values are N runs of
 * hw contiguous floats. */
static size_t bn_at(int i, int c, int ch, size_t hw)
{
    return ((size_t)i * (size_t)c + (size_t)ch) * hw;
}

double os_bn_train_forward(const float *x, int n, int c, size_t hw, const float *gamma,
                           const float *beta, float eps, os_reduce *r, double *acc, float *y,
                           float *mean, float *invstd)
{
    assert(n >= 0 && c >= 1 && hw >= 1 && eps >= 0.0f);
    assert(x != NULL && gamma != NULL && beta != NULL && y != NULL);
    assert(mean != NULL && invstd != NULL && acc != NULL);
    const os_vec_kernels *vec = os_vec();
    for (int ch = 0; ch < c; ch++) {
        double sum = 0.0;
        for (int i = 0; i < n; i++)
            sum += vec->sum(x + bn_at(i, c, ch, hw), hw);
        acc[ch] = sum;
    }
    acc[c] = (double)n * (double)hw;
    if (r)
        r->sum(r, acc, (size_t)c + 1);
    const double count = acc[c];
    assert(count > 0);
    for (int ch = 0; ch < c; ch++)
        mean[ch] = (float)(acc[ch] / count);
    for (int ch = 0; ch < c; ch++) {
        const double mu = acc[ch] / count;
        double ss = 0.0;
        for (int i = 0; i < n; i++)
            ss += vec->sum_sq_dev(x + bn_at(i, c, ch, hw), hw, mu);
        acc[ch] = ss;
    }
    if (r)
        r->sum(r, acc, (size_t)c);
    for (int ch = 0; ch < c; ch++) {
        const double var = acc[ch] / count; /* biased, as the normalisation uses */
        invstd[ch] = (float)(1.0 / sqrt(var + (double)eps));

        /* (x - mean) first, then scale: a large mean cancels before it is multiplied. */
        const float m = mean[ch];
        const float scale = gamma[ch] * invstd[ch];
        const float shift = beta[ch];
        for (int i = 0; i < n; i++) {
            const size_t at = bn_at(i, c, ch, hw);
            const float *xc = x + at;
            float *yc = y + at;
            for (size_t j = 0; j < hw; j++)
                yc[j] = (xc[j] - m) * scale + shift;
        }
    }
    return count;
}

/* With xhat = (x - mean) * invstd and M = N*H*W values per channel, y = gamma * xhat + beta:
 *   dbeta = sum dy,  dgamma = sum dy * xhat,
 *   dx = gamma * invstd * (dy - dbeta / M - xhat * dgamma / M)
 * where dbeta and dgamma are this call's sums, not what the accumulators held before. The last
 * two terms are the paths through the batch mean and variance; with replicas, their sums and M
 * are the whole batch's. */
void os_bn_backward(const float *x, const float *dy, int n, int c, size_t hw, const float *gamma,
                    const float *mean, const float *invstd, os_reduce *r, double *acc,
                    float *dx, float *dgamma, float *dbeta)
{
    assert(n >= 0 && c >= 1 && hw >= 1);
    assert(x != NULL && dy != NULL && gamma != NULL && mean != NULL && invstd != NULL);
    assert(dx != NULL && dgamma != NULL && dbeta != NULL && acc != NULL);
    const os_vec_kernels *vec = os_vec();
    for (int ch = 0; ch < c; ch++) {
        const double mu = (double)mean[ch];
        double sdy = 0.0, sdyd = 0.0;
        for (int i = 0; i < n; i++) {
            const size_t at = bn_at(i, c, ch, hw);
            double a, b;
            vec->sum_dy_dev(x + at, dy + at, hw, mu, &a, &b);
            sdy += a;
            sdyd += b;
        }
        const double sdyx = sdyd * (double)invstd[ch]; /* sum dy * xhat */
        dbeta[ch] += (float)sdy;
        dgamma[ch] += (float)sdyx;
        acc[2 * ch] = sdy, acc[2 * ch + 1] = sdyx;
    }
    acc[2 * c] = (double)n * (double)hw;
    if (r)
        r->sum(r, acc, 2 * (size_t)c + 1);
    const double count = acc[2 * c];
    for (int ch = 0; ch < c; ch++) {
        const float m = mean[ch];
        const float isf = invstd[ch];
        const float k = gamma[ch] * isf;
        const float mean_dy = (float)(acc[2 * ch] / count);
        const float mean_dyx = (float)(acc[2 * ch + 1] / count);
        for (int i = 0; i < n; i++) {
            const size_t at = bn_at(i, c, ch, hw);
            const float *xc = x + at;
            const float *g = dy + at;
            float *d = dx + at;
            for (size_t j = 0; j < hw; j++) {
                const float xhat = (xc[j] - m) * isf;
                d[j] = k * (g[j] - mean_dy - xhat * mean_dyx);
            }
        }
    }
}

/* ---- elementwise and pooling -------------------------------------------------------------- */

void os_relu_backward(const float *y, const float *dy, size_t n, float *dx)
{
    /* dy is loaded unconditionally: the loop is then a select, which vectorises, where a
     * conditional load would not. */
    for (size_t i = 0; i < n; i++) {
        const float g = dy[i];
        dx[i] = y[i] > 0.0f ? g : 0.0f;
    }
}

void os_maxpool2d_backward(const float *x, const float *dy, int c, int h, int w, int k, int stride,
                           int pad, float *dx)
{
    const int oh = os_pool_out(h, k, stride, pad);
    const int ow = os_pool_out(w, k, stride, pad);
    const size_t plane = (size_t)h * (size_t)w;

    for (int ch = 0; ch < c; ch++) {
        const float *xc = x + (size_t)ch * plane;
        float *dc = dx + (size_t)ch * plane;
        const float *g = dy + (size_t)ch * (size_t)oh * (size_t)ow;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                int y0, y1, x0, x1;
                os_pool_window(oy, ox, h, w, k, stride, pad, &y0, &y1, &x0, &x1);
                /* The forward's scan: row-major, strict >, so the first maximum wins. A window
                 * with no cell above -inf (or only NaNs) has no winner and routes nothing. */
                float m = -INFINITY;
                size_t best = SIZE_MAX;
                for (int iy = y0; iy < y1; iy++) {
                    const size_t row = (size_t)iy * (size_t)w;
                    for (int ix = x0; ix < x1; ix++) {
                        if (xc[row + (size_t)ix] > m) {
                            m = xc[row + (size_t)ix];
                            best = row + (size_t)ix;
                        }
                    }
                }
                if (best != SIZE_MAX)
                    dc[best] += g[(size_t)oy * (size_t)ow + (size_t)ox];
            }
        }
    }
}

void os_avgpool2d_backward(const float *dy, int c, int h, int w, int k, int stride, int pad,
                           float *dx)
{
    const int oh = os_pool_out(h, k, stride, pad);
    const int ow = os_pool_out(w, k, stride, pad);
    const size_t plane = (size_t)h * (size_t)w;
    const float inv_area = 1.0f / (float)(k * k); /* count_include_pad, as the forward */

    for (int ch = 0; ch < c; ch++) {
        float *dc = dx + (size_t)ch * plane;
        const float *g = dy + (size_t)ch * (size_t)oh * (size_t)ow;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                int y0, y1, x0, x1;
                os_pool_window(oy, ox, h, w, k, stride, pad, &y0, &y1, &x0, &x1);
                const float v = g[(size_t)oy * (size_t)ow + (size_t)ox] * inv_area;
                for (int iy = y0; iy < y1; iy++) {
                    float *row = dc + (size_t)iy * (size_t)w;
                    for (int ix = x0; ix < x1; ix++)
                        row[ix] += v;
                }
            }
        }
    }
}

void os_global_avgpool_backward(const float *dy, int c, size_t hw, float *dx)
{
    assert(hw >= 1);
    for (int ch = 0; ch < c; ch++) {
        const float v = (float)((double)dy[ch] / (double)hw);
        float *dc = dx + (size_t)ch * hw;
        for (size_t i = 0; i < hw; i++)
            dc[i] += v;
    }
}

/* ---- loss --------------------------------------------------------------------------------- */

/* Per row, with z = logits - max and Z = sum exp(z), log p_j = z_j - log Z and
 *   loss = -sum_j t_j log p_j = log Z - sum_j t_j z_j      (sum_j t_j = 1)
 * Every exponent is <= 0 and the largest term of Z is 1, so nothing overflows, and a logit far
 * below the maximum underflows harmlessly to p = 0 while still entering the loss through z. */
float os_softmax_xent(const float *logits, int n, int k, const int *labels, float smoothing,
                      float *dlogits, int *correct)
{
    assert(n >= 1 && k >= 1);
    assert(logits != NULL && labels != NULL);
    assert(smoothing >= 0.0f && smoothing <= 1.0f);
    const double off = (double)smoothing / (double)k; /* target of every class */
    const double on = 1.0 - (double)smoothing + off;  /* target of the label */
    const double inv_n = 1.0 / (double)n;
    double total = 0.0;
    int hits = 0;

    for (int r = 0; r < n; r++) {
        const float *x = logits + (size_t)r * (size_t)k;
        const int label = labels[r];
        assert(label >= 0 && label < k);
        int arg = 0;
        for (int j = 1; j < k; j++)
            arg = x[j] > x[arg] ? j : arg; /* first maximum wins */
        const double m = (double)x[arg];
        double z_sum = 0.0, e_sum = 0.0;
        for (int j = 0; j < k; j++) {
            const double z = (double)x[j] - m;
            z_sum += z;
            e_sum += exp(z);
        }
        const double log_z = log(e_sum);
        const double z_label = (double)x[label] - m;
        total += log_z - ((on - off) * z_label + off * z_sum);
        hits += arg == label;

        if (dlogits != NULL) {
            float *d = dlogits + (size_t)r * (size_t)k;
            for (int j = 0; j < k; j++) {
                const double p = exp((double)x[j] - m - log_z);
                const double t = j == label ? on : off;
                d[j] = (float)((p - t) * inv_n);
            }
        }
    }
    if (correct != NULL)
        *correct = hits;
    return (float)(total * inv_n);
}

float os_distill_kl(const float *student, const float *teacher, int n, int k, float scale,
                    float tau, float weight, float *dlogits)
{
    double total = 0;
    for (int r = 0; r < n; r++) {
        const float *zs = student + (size_t)r * k, *zt = teacher + (size_t)r * k;
        double ms = -INFINITY, mt = -INFINITY, ss = 0, sumt = 0;
        for (int j = 0; j < k; j++) {
            ms = fmax(ms, zs[j] / (scale * tau));
            mt = fmax(mt, zt[j] / tau);
        }
        for (int j = 0; j < k; j++) {
            ss += exp(zs[j] / (scale * tau) - ms);
            sumt += exp(zt[j] / tau - mt);
        }
        double kl = 0;
        for (int j = 0; j < k; j++) {
            double lps = zs[j] / (scale * tau) - ms - log(ss);
            double lpt = zt[j] / tau - mt - log(sumt);
            double pt = exp(lpt), ps = exp(lps);
            kl += pt * (lpt - lps);
            /* d(tau^2 KL)/d zs = tau^2 * (ps - pt) / (scale * tau) */
            if (dlogits)
                dlogits[(size_t)r * k + j] += (float)(weight * tau * (ps - pt) / scale / n);
        }
        total += (double)tau * tau * kl;
    }
    return (float)(total / n);
}

/* ---- LIF through time --------------------------------------------------------------------- */

/* Neurons are processed in blocks of LIF_BLOCK so the per-neuron state that runs along the time
 * axis (membrane after reset forward, its gradient backward) lives in a small stack array: no
 * scratch argument, one pass over each time step's arrays, and a vectorisable inner loop. */
#define LIF_BLOCK 256

/* The integral of the surrogate, S(x) = int_{-inf}^{x} gamma * max(0, 1 - |t|) dt: 0 below -1,
 * a quadratic up to gamma/2 at 0, a quadratic up to gamma at 1, gamma above. */
static float lif_soft_spike(float x, float g)
{
    if (x < -1.0f)
        return 0.0f;
    if (x < 0.0f) {
        const float a = x + 1.0f;
        return g * 0.5f * a * a;
    }
    if (x < 1.0f)
        return g * (0.5f + x - 0.5f * x * x);
    return g;
}

void os_lif_forward_step(const float *in, const float *u_prev, const float *s_prev, size_t n,
                         float thr, float leak, float soft_gamma, float *u, float *s)
{
    assert(in != NULL && u != NULL && s != NULL && (u_prev == NULL) == (s_prev == NULL));
    assert(thr > 0.0f && soft_gamma >= 0.0f);
    const float reset_on = thr * 1.0f, reset_off = thr * 0.0f; /* thr * spike */
    for (size_t base = 0; base < n; base += LIF_BLOCK) {
        const size_t m = n - base < LIF_BLOCK ? n - base : LIF_BLOCK;
        float v[LIF_BLOCK]; /* the membrane after the previous step's reset */
        if (!u_prev) {
            for (size_t i = 0; i < m; i++)
                v[i] = 0.0f;
        } else if (soft_gamma > 0.0f) {
            for (size_t i = 0; i < m; i++)
                v[i] = u_prev[base + i] - thr * s_prev[base + i];
        } else {
            for (size_t i = 0; i < m; i++)
                v[i] = u_prev[base + i] - (s_prev[base + i] != 0.0f ? reset_on : reset_off);
        }
        const float *it = in + base;
        float *ut = u + base, *st = s + base;
        if (soft_gamma > 0.0f) {
            for (size_t i = 0; i < m; i++) {
                const float uu = leak * v[i] + it[i];
                ut[i] = uu;
                st[i] = lif_soft_spike(uu / thr - 1.0f, soft_gamma);
            }
        } else {
            /* The same values as os_lif_step, bit for bit: strict >, and the reset subtracts
             * thr * spike, whose two possible values are computed once above. Written as a
             * select of those, the loops have no branch; written as thr * sp, the compiler
             * splits the multiplication across a branch and will not vectorise. */
            for (size_t i = 0; i < m; i++) {
                const float uu = leak * v[i] + it[i];
                ut[i] = uu;
                st[i] = uu > thr ? 1.0f : 0.0f;
            }
        }
    }
}

void os_lif_forward_seq(const float *const *in, int T, size_t n, float thr, float leak,
                        float soft_gamma, float *const *u, float *const *s)
{
    assert(T >= 1 && in != NULL && u != NULL && s != NULL);
    for (int t = 0; t < T; t++)
        os_lif_forward_step(in[t], t ? u[t - 1] : NULL, t ? s[t - 1] : NULL, n, thr, leak,
                            soft_gamma, u[t], s[t]);
}

/* Backward through the recurrence of os_lif_forward_seq, last step first. gv is the gradient
 * reaching v[t] from step t+1 (zero after the last step). The previous membrane after reset,
 * v[t-1] = u[t-1] - thr * s[t-1], is recomputed from what the forward saved. The threshold and
 * leak gradients are summed per neuron along time in float (T terms), then over neurons in
 * double. */
void os_lif_backward_seq(const float *const *u, const float *const *s, const float *const *ds,
                         int T, size_t n, float thr, float leak, float height,
                         float *const *din, double *dthr, double *dleak)
{
    assert(T >= 1 && u != NULL && s != NULL && ds != NULL && din != NULL);
    assert(dthr != NULL && dleak != NULL && thr > 0.0f);
    const float slope = height / thr; /* dS/du at the threshold */
    const os_vec_kernels *vec = os_vec();
    static const float zeros[LIF_BLOCK];          /* v[-1] = u[-1] - thr * s[-1] = 0 */
    float gv[LIF_BLOCK], athr[LIF_BLOCK], aleak[LIF_BLOCK];
    double sum_thr = 0.0, sum_leak = 0.0;

    for (size_t base = 0; base < n; base += LIF_BLOCK) {
        const size_t m = n - base < LIF_BLOCK ? n - base : LIF_BLOCK;
        for (size_t i = 0; i < m; i++)
            gv[i] = athr[i] = aleak[i] = 0.0f;
        for (int t = T - 1; t >= 0; t--) {
            const float *ut = u[t] + base;
            const float *st = s[t] + base;
            const float *gt = ds[t] + base;
            const float *up = t > 0 ? u[t - 1] + base : zeros;
            const float *sp = t > 0 ? s[t - 1] + base : zeros;
            float *dt = din[t] + base; /* may be gt: gt[i] is read before dt[i] is written */
            vec->lif_bwd_step(ut, st, gt, up, sp, dt, gv, athr, aleak, m, thr, slope, leak);
        }
        sum_thr += sum_floats(athr, m);
        sum_leak += sum_floats(aleak, m);
    }
    *dthr += sum_thr;
    *dleak += sum_leak;
}
