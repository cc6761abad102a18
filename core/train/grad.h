/* grad.h - training kernels: batch forward where training needs batch statistics, and the
 * backward pass of every layer in layers.h, including LIF through time (BPTT).
 *
 * Layout: a batch is N images of C x H x W floats, image after image (NCHW). "Accumulate"
 * means +=, so callers zero gradient buffers once per step and several paths can add into them;
 * "write" means =. Pure functions, no allocation; scratch is passed in. Gradients of the loss
 * are written d<name>.
 */
#ifndef ONESPIKE_GRAD_H
#define ONESPIKE_GRAD_H

#include <stdbool.h>
#include <stddef.h>

#include "layers.h"

/* docs/DESIGN.md §2: piecewise-linear surrogate dS/dx = gamma * max(0, 1 - |x|), x = u/theta - 1.
 * gamma is a training hyperparameter (fit --surrogate-gamma) passed to the backward pass; this
 * is the default, DIET-SNN's dampening factor, and the accepted range. */
#define OS_SURROGATE_GAMMA 0.3f
#define OS_SURROGATE_GAMMA_MAX 16.0f

/* ---- convolution (one image; loop over the batch) ---- */

/* Given x (input), w, and dy (gradient of the output): accumulate dw [out][in*kh*kw] and db
 * [out] (db may be NULL), and write dx (may be NULL: not needed for the first layer).
 * col: os_conv_col_floats(s) floats of scratch (may be NULL when that is 0) — used for both
 * the im2col of x and the column gradient. */
void os_conv2d_backward(const os_conv_shape *s, const float *x, const float *w, const float *dy,
                        float *dw, float *db, float *dx, float *col);

/* The same for n images at once, a chunk of images per sgemm each way (faster on small
 * feature maps; the chunk's im2col sized to stay in cache). The data gradient of a stride-1
 * conv with a square kernel is computed as a convolution of dy (see grad.c).
 * col: os_conv_batch_floats(s, n) floats; tmp: n * max(in_c * in_h * in_w, out_c * oh * ow)
 * floats. */
size_t os_conv_batch_floats(const os_conv_shape *s, int n);
void os_conv2d_batch(const os_conv_shape *s, int n, const float *x, const float *w, const float *b,
                     float *y, float *col, float *tmp);
/* Accumulate dw, db (may be NULL); write dx (may be NULL). */
void os_conv2d_backward_batch(const os_conv_shape *s, int n, const float *x, const float *w,
                              const float *dy, float *dw, float *db, float *dx, float *col,
                              float *tmp);

/* ---- linear, on a batch of N rows ---- */

/* y[n][o] = b[o] + sum_i w[o][i] x[n][i]  (one sgemm; b may be NULL). */
void os_linear_batch(const float *x, int n, int in, int out, const float *w, const float *b,
                     float *y);
/* Accumulate dw [out][in] and db [out] (may be NULL); write dx [n][in] (may be NULL). */
void os_linear_backward(const float *x, const float *w, const float *dy, int n, int in, int out,
                        float *dw, float *db, float *dx);

/* ---- BatchNorm in training mode: statistics over N x H x W per channel ---- */

/* Sums across the replicas of a data-parallel step (dp.h), for statistics of the whole batch:
 * sum(r, v, n) replaces v[0..n) by the element-wise sum of every replica's v, added in replica
 * order so that every replica gets the same doubles. Every replica makes the same calls in the
 * same order. A NULL os_reduce * means one replica: the local values are the batch's. */
typedef struct os_reduce os_reduce;
struct os_reduce {
    void (*sum)(os_reduce *r, double *v, size_t n);
};

/* Write y = gamma * (x - mean) * invstd + beta, and the batch mean and invstd = 1/sqrt(var+eps)
 * (biased variance) per channel, which the backward pass needs and the caller folds into its
 * running averages. With r, the statistics are those of every replica's images together (two
 * sums: the mean, then the squared deviations from it, as with one replica). acc: scratch of
 * 2c + 1 doubles (both functions). Returns the number of values per channel the statistics
 * cover (N * H * W of every replica). */
double os_bn_train_forward(const float *x, int n, int c, size_t hw, const float *gamma,
                           const float *beta, float eps, os_reduce *r, double *acc, float *y,
                           float *mean, float *invstd);
/* Write dx; accumulate dgamma, dbeta (this replica's images only). With r, the mean and variance
 * paths use the whole batch's sums (one sum). */
void os_bn_backward(const float *x, const float *dy, int n, int c, size_t hw, const float *gamma,
                    const float *mean, const float *invstd, os_reduce *r, double *acc,
                    float *dx, float *dgamma, float *dbeta);

/* ---- elementwise and pooling (one image, or n*c channels at once where shapes allow) ---- */

/* dx (write) = dy where y > 0, else 0. y is the ReLU output. */
void os_relu_backward(const float *y, const float *dy, size_t n, float *dx);

/* Accumulate into dx [c][h][w] from dy [c][oh][ow]; max pooling routes each output's gradient
 * to the first maximum of its window in x (padded cells never win). */
void os_maxpool2d_backward(const float *x, const float *dy, int c, int h, int w, int k,
                           int stride, int pad, float *dx);
void os_avgpool2d_backward(const float *dy, int c, int h, int w, int k, int stride, int pad,
                           float *dx);
/* Accumulate dx[c][i] += dy[c] / hw. */
void os_global_avgpool_backward(const float *dy, int c, size_t hw, float *dx);

/* ---- loss ---- */

/* Mean cross-entropy over n rows of k logits against integer labels, with label smoothing
 * (target = (1-smoothing) one-hot + smoothing/k). Writes dlogits = (softmax - target) / n when
 * not NULL, and the number of rows whose argmax equals the label into *correct when not NULL.
 * Returns the mean loss. */
float os_softmax_xent(const float *logits, int n, int k, const int *labels, float smoothing,
                      float *dlogits, int *correct);

/* Knowledge distillation (Hinton et al.): tau^2 * KL(softmax(t/tau) || softmax(s/(scale*tau)))
 * averaged over n rows, where s are the student's logits (summed over `scale` time steps, hence
 * divided by it) and t the teacher's. Adds weight * d(loss)/d(s) to dlogits and returns the mean
 * loss. */
float os_distill_kl(const float *student, const float *teacher, int n, int k, float scale,
                    float tau, float weight, float *dlogits);

/* ---- LIF through time ---- */

/* One step of os_lif_step semantics over n neurons, from the previous step's saved membrane:
 *   v = u_prev - thr * s_prev (0 at the first step: u_prev = s_prev = NULL);
 *   u = leak * v + in;  s = S(u/thr - 1)
 * S is the Heaviside step (strict: s = 1 iff u > thr) when soft_gamma is 0 or, when it is > 0,
 * the integral of the surrogate of that height (a smooth ramp from 0 to gamma, used only to
 * check gradients numerically). Writes u (the membrane before reset, which the backward pass
 * needs) and s; neither may overlap an input. */
void os_lif_forward_step(const float *in, const float *u_prev, const float *s_prev, size_t n,
                         float thr, float leak, float soft_gamma, float *u, float *s);

/* T steps of os_lif_forward_step from zero state; in/u/s are T pointers to n floats. */
void os_lif_forward_seq(const float *const *in, int T, size_t n, float thr, float leak,
                        float soft_gamma, float *const *u, float *const *s);

/* BPTT through the same recurrence, using the surrogate derivative for dS:
 *   gs[t] = ds[t] - thr * gv[t];  gu[t] = gv[t] + gs[t] * dS/du;  din[t] = gu[t];
 *   gv[t-1] = leak * gu[t];  dleak += gu[t] * v[t-1];  dthr += gs[t] * dS/dthr - gv[t] * s[t]
 * with dS/du = height/thr * max(0, 1 - |u/thr - 1|), dS/dthr = -(u/thr) * dS/du; height > 0 is
 * the surrogate's gamma.
 * ds and din are T pointers to n floats (din written; may alias ds); dthr/dleak accumulated. */
void os_lif_backward_seq(const float *const *u, const float *const *s, const float *const *ds,
                         int T, size_t n, float thr, float leak, float height,
                         float *const *din, double *dthr, double *dleak);

#endif
