/* dconv.h - a training convolution run by oneDNN's direct convolutions, in the layouts oneDNN
 * picks for this CPU (blocked, e.g. nChw16c), with reorders from and to our NCHW activations and
 * OIHW weights at both ends. Private to the training layer.
 *
 * Our own convolutions (grad.h) are im2col + SGEMM on planar buffers: on the high-resolution
 * layers most of their time is the patch matrix, not the product. On the AVX-512 Xeon
 * oneDNN's direct convolutions, reorders included, took 0.82x our time over the 22
 * convolutions of train_bench's ResNet-18 (bench/train_conv_bench's "trainer" row) and made
 * ANN epochs 1.17x faster; held to AVX2 (DNNL_MAX_CPU_ISA=AVX2) on the same CPU an ANN epoch
 * ran at 0.86-0.89x ours (bench/results/2026-12-02-xeon-train-conv.md). So, as for the
 * products (gemm.h): oneDNN's where the build has it and the CPU runs AVX-512, ours
 * elsewhere; ONESPIKE_TRAIN_CONV=ours|onednn (read once) picks one for comparisons. The two
 * sum in different orders: results agree to float rounding; a run is reproducible on one
 * machine with one choice. (tnet.c takes the weights' gradient of small output maps from ours:
 * there oneDNN's weights pass is the slower.)
 *
 * One os_dconv serves one shape at one batch size; it runs in the calling thread (oneDNN's
 * OpenMP set to one thread there, training's parallelism being its replicas) and is used by
 * one thread at a time.
 */
#ifndef ONESPIKE_TRAIN_DCONV_H
#define ONESPIKE_TRAIN_DCONV_H

#include <stdbool.h>

#include "grad.h"
#include "onespike/status.h"

/* Whether training's convolutions run on oneDNN in this process (chosen on first use, as
 * above), and whether this build has it. */
bool os_dconv_enabled(void);
bool os_dconv_built(void);

/* For the tests and benchmarks: on (if built) or off from now on. False if not built. */
bool os_dconv_force(bool on);

typedef struct os_dconv os_dconv;

/* A convolution of shape s over n images, with a bias or without. Fails (OS_EINVAL, with the
 * detail) when this build has no oneDNN or oneDNN has no implementation for the shape. */
os_status os_dconv_create(const os_conv_shape *s, int n, bool bias, os_dconv **out);
void os_dconv_destroy(os_dconv *d);
int os_dconv_batch(const os_dconv *d);

/* y = conv(x, w) + b: x [n][in_c][in_h][in_w], w [out_c][in_c][kh][kw], b [out_c] (the bias
 * only if created with one), y [n][out_c][oh][ow]. w_again: w is the buffer of d's last forward
 * with its values unchanged since (the later time steps of one forward pass), so its reorder
 * is not redone. */
void os_dconv_forward(os_dconv *d, const float *x, const float *w, const float *b, float *y,
                      bool w_again);

/* The backward pass: dw += the weights' gradient, db += the bias's (when created with a bias;
 * db may be NULL otherwise), and, if dx is not NULL, dx = the input's gradient (overwritten).
 * dw NULL: the data's pass only (db is then untouched).
 * x and w must be buffers a forward call on d read, with their values unchanged since (a
 * training step: its forward, then its backward, before the weights change): the reorders of
 * that forward then serve again where the layouts agree. Over T > 1 steps x may be any step's
 * input, each unchanged since the forward that read it. */
void os_dconv_backward(os_dconv *d, const float *x, const float *w, const float *dy, float *dw,
                       float *db, float *dx);

#endif
