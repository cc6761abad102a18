/* layers.h - forward kernels on single images, planar float CHW.
 *
 * Pure functions: no allocation, no global state. Callers own every buffer; shapes are checked
 * by the network builder, so a mismatch here is a programmer bug (assert), not an input error.
 */
#ifndef ONESPIKE_LAYERS_H
#define ONESPIKE_LAYERS_H

#include <stddef.h>

typedef struct {
    int in_c, in_h, in_w; /* input */
    int out_c;            /* output channels */
    int kh, kw;           /* kernel */
    int stride;           /* same on both axes, >= 1 */
    int pad;              /* zero padding, same on all sides, >= 0 */
} os_conv_shape;

int os_conv_out_h(const os_conv_shape *s);
int os_conv_out_w(const os_conv_shape *s);

/* Floats of scratch os_conv2d needs for im2col (0 when the input can be used directly:
 * 1x1 kernel, stride 1, no padding). */
size_t os_conv_col_floats(const os_conv_shape *s);

/* y[oc][oy][ox] = b[oc] + sum_{ic,ky,kx} w[oc][ic][ky][kx] * x[ic][oy*stride-pad+ky][ox*stride-pad+kx]
 * w is row-major [out_c][in_c][kh][kw]; b may be NULL; col has os_conv_col_floats(s) floats.
 * im2col + cblas_sgemm. */
void os_conv2d(const os_conv_shape *s, const float *x, const float *w, const float *b, float *y,
               float *col);

/* The same by direct summation; the reference the tests hold os_conv2d to. */
void os_conv2d_naive(const os_conv_shape *s, const float *x, const float *w, const float *b,
                     float *y);

/* x[c][i] = x[c][i] * scale[c] + shift[c] over c channels of hw values (inference BatchNorm). */
void os_channel_affine(float *x, int c, size_t hw, const float *scale, const float *shift);

void os_relu(float *x, size_t n);

/* y += a, n values (residual add). */
void os_add_inplace(float *y, const float *a, size_t n);

/* y = a + b, n values; y may not overlap a or b. One pass where a copy and an add would be two. */
void os_add(const float *a, const float *b, size_t n, float *restrict y);

/* Pooling with a k x k window, stride, zero padding pad. Output size (h + 2*pad - k)/stride + 1.
 * Max pooling ignores padded cells; average pooling divides by k*k (padding counts as zero,
 * as PyTorch's count_include_pad=True). */
int os_pool_out(int in, int k, int stride, int pad);
/* The input cells of output (oy, ox)'s k x k window clipped to the h x w input: rows [*y0, *y1),
 * columns [*x0, *x1). Every pooling kernel, forward and backward, planar and channels-last. */
static inline void os_pool_window(int oy, int ox, int h, int w, int k, int stride, int pad,
                                  int *y0, int *y1, int *x0, int *x1)
{
    const int ys = oy * stride - pad, xs = ox * stride - pad;
    *y0 = ys < 0 ? 0 : ys;
    *x0 = xs < 0 ? 0 : xs;
    *y1 = ys + k > h ? h : ys + k;
    *x1 = xs + k > w ? w : xs + k;
}
void os_maxpool2d(const float *x, int c, int h, int w, int k, int stride, int pad, float *y);
void os_avgpool2d(const float *x, int c, int h, int w, int k, int stride, int pad, float *y);

/* y[c] = mean of x[c][*] over hw values. */
void os_global_avgpool(const float *x, int c, size_t hw, float *y);

/* y[o] = b[o] + sum_i w[o][i] * x[i]; w row-major [out][in]; b may be NULL. */
void os_linear(const float *x, int in, int out, const float *w, const float *b, float *y);

/* One leaky integrate-and-fire step over n neurons (docs/DESIGN.md §2):
 *   u = leak * u + in;  spike = u > threshold ? 1 : 0;  u -= threshold * spike   (soft reset)
 * u is the membrane state (caller zeroes it before step 0); spike receives 0.0f / 1.0f. The three
 * arrays do not overlap. */
void os_lif_step(float *restrict u, const float *restrict in, size_t n, float threshold,
                 float leak, float *restrict spike);

/* os_lif_step's first step, from a zero membrane that is never read: the same spikes, bit for
 * bit; u (the membrane after the step, for the next one) is written only if not NULL, so a
 * one-step network neither clears nor stores membranes. */
void os_lif_first(float *restrict u, const float *restrict in, size_t n, float threshold,
                  float *restrict spike);

/* Numerically stable softmax of n values; p may alias x. */
void os_softmax(const float *x, int n, float *p);

#endif
