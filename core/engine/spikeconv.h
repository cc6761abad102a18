/* spikeconv.h - convolutions whose input is binary spikes, computed event-driven, and the
 * channels-last kernels of the session's path built on them.
 *
 * In a spiking network every convolution after the first reads LIF outputs (or max pools of
 * them): exact 0/1 values, and a trained one-step network fires at 10-25 %, so most are 0.
 * Such a convolution needs no multiplication and no im2col: each output is its bias plus the sum
 * of the weights that active inputs in its window select. os_spike_index lists, per input
 * position, the channels that fired; os_spike_conv walks those lists for each output position
 * and adds whole weight rows of out_c floats (weights laid out once as [kh][kw][in_c][out_c])
 * into accumulators held in registers. It reads only the weight rows that active inputs touch,
 * which is what bounds a dense convolution of these small maps: streaming the weights.
 *
 * That path keeps tensors channels-last (HWC: the out_c values of one position together), the
 * layout the index reads and the accumulators write without transposing; elementwise layers
 * (LIF, add, ReLU) do not care, and the kernels below cover the rest of a spiking VGG or ResNet.
 *
 * The result has the same terms as os_conv2d's sum (weights times exact 1s), added in another
 * order, so the two agree to float rounding (a few ulp of the largest partial sum); a neuron
 * whose membrane lands within that distance of its threshold can spike on one path and not the
 * other. docs/DESIGN-NOTES.md gives the measured effect on whole networks.
 */
#ifndef ONESPIKE_SPIKECONV_H
#define ONESPIKE_SPIKECONV_H

#include <stdbool.h>
#include <stdint.h>

#include "isa.h"
#include "layers.h"
#include "onespike/net.h"
#include "onespike/status.h"

/* Largest input channel count the index can hold (channel numbers are uint16_t). */
#define OS_SPIKE_MAX_CHANNELS 65535

/* The precision of the weight rows an event-driven convolution sums.
 *   fp32  the model's weights, exactly (the default)
 *   int8  per output channel oc, q = round(w / scale[oc]) in [-127, 127] with scale[oc] =
 *         max |w| of the channel / 127; the selected rows are summed exactly in integers (the
 *         inputs are 0/1, so the event-driven sum needs no multiplication) and y = b + scale *
 *         sum. A quarter of the bytes to stream; each output is off from fp32's by at most
 *         (active rows) * scale[oc] / 2, and every kernel set gives identical floats.
 *   fp16  each weight rounded to the nearest IEEE binary16 value (ties to even; relative error
 *         at most 2^-11, absolute at most 2^-25 below 2^-14), widened back to fp32 exactly as a
 *         row is loaded and summed in fp32 as the fp32 rows are: half the bytes to stream, no
 *         scale, and each kernel set gives exactly the floats its fp32 kernels give on the
 *         widened weights. A weight beyond binary16's range (|w| >= 65520) is refused. */
typedef enum { OS_SPIKE_FP32, OS_SPIKE_INT8, OS_SPIKE_FP16, OS_SPIKE_FORMAT_COUNT } os_spike_format;

const char *os_spike_format_name(os_spike_format f); /* "fp32", "int8", "fp16" */
bool os_spike_format_parse(const char *name, os_spike_format *out);

/* For one net: which layers emit binary outputs, and for each convolution that reads one, its
 * weights laid out for os_spike_conv in format. Owns those copies; borrows the net, which must
 * outlive it. Immutable after creation, so sessions on several threads may share one plan. */
typedef struct os_spike_plan os_spike_plan;

os_status os_spike_plan_create(const os_net *net, os_spike_format format, os_spike_plan **out);
void os_spike_plan_destroy(os_spike_plan *p); /* NULL is fine */

/* os_spike_plan_create with the fp16 rows of every layer whose fp32 rows take at most widen
 * bytes held widened back to fp32: exactly binary16's values, summed by the same set's fp32
 * kernels in the same order (os_spike_conv_f16's floats), and like binary16 rows run
 * event-driven at any rate. Widening as rows are loaded costs a conversion per 8 or 16 values
 * besides the add; it pays only where a layer waits for its rows' bytes, i.e. rows from beyond
 * the core's L2. os_spike_plan_create takes os_spike_f16_widen_default(): OS_SPIKE_F16_WIDEN_ENV
 * (bytes, decimal) if set, else half the L2 cache sysconf reports, else
 * OS_SPIKE_F16_WIDEN_FALLBACK. Other formats ignore widen. */
os_status os_spike_plan_create_widen(const os_net *net, os_spike_format format, size_t widen,
                                     os_spike_plan **out);
#define OS_SPIKE_F16_WIDEN_ENV      "ONESPIKE_F16_WIDEN_BYTES"
#define OS_SPIKE_F16_WIDEN_FALLBACK ((size_t)256 << 10)
os_status os_spike_f16_widen_default(size_t *widen); /* OS_EINVAL: the variable is no number */

/* True if the whole net can run channels-last with every convolution but those reading the
 * image event-driven: each conv reads the image or a binary layer, BatchNorm is folded, no
 * average pooling, only convs and linear layers read the image. Otherwise sessions use the
 * dense kernels throughout. */
bool os_spike_plan_complete(const os_spike_plan *p);

/* True if layer i's output holds only 0 and 1 (a LIF layer, or max pooling of one). */
bool os_spike_plan_binary(const os_spike_plan *p, int i);

/* True if layer i is a convolution of a binary input that the event-driven kernels run (never
 * in a plan that is not complete: no session would use it). */
bool os_spike_plan_event(const os_spike_plan *p, int i);

os_spike_format os_spike_plan_format(const os_spike_plan *p);

/* The layout of an event-driven convolution's weights: w [oc][ic][kh][kw] (os_conv2d's) as
 * wt [kh][kw][in_c][out_c], one row of out_c values per (tap, input channel), then one row of
 * zeros, which the kernels add to pad a position's row list to a multiple of 4 rows.
 * os_spike_layout_rows is that count of rows (kh*kw*in_c + 1). */
size_t os_spike_layout_rows(const os_conv_shape *s);
void os_spike_layout(const os_conv_shape *s, const float *w, float *wt);

/* Layer i's weights laid out as os_spike_layout if it is an event-driven convolution and the
 * plan's format is fp32, or fp16 with the layer widened (os_spike_plan_create_widen); NULL
 * otherwise. Borrowed from the plan. */
const float *os_spike_plan_weights(const os_spike_plan *p, int i);

/* Layer i's weights for os_spike_image_conv if it is a conv on the image with at most
 * OS_IMAGE_MAX_K values per patch (fp32 in either format); NULL otherwise. Borrowed. */
const float *os_spike_plan_image_weights(const os_spike_plan *p, int i);

/* The same for an int8 plan: the quantized rows, and in *scale layer i's out_c scales; NULL
 * (and *scale untouched) otherwise. Borrowed from the plan. */
const int8_t *os_spike_plan_weights_q8(const os_spike_plan *p, int i, const float **scale);

/* The same for an fp16 plan: the rows as binary16 bit patterns; NULL otherwise (a widened
 * layer's are os_spike_plan_weights'). Borrowed. */
const uint16_t *os_spike_plan_weights_f16(const os_spike_plan *p, int i);

/* Bytes of weight copies (and int8 scales) the plan holds. */
size_t os_spike_plan_bytes(const os_spike_plan *p);

/* List the active inputs of x (channels-last: hw positions of c values, each 0 or nonzero):
 * for each position p, cnt[p] channels, in ascending order, at idx[p*c .. p*c + cnt[p]).
 * idx holds c*hw values, cnt hw. Returns the number of active inputs. The convolutions read an
 * index (never using them) up to OS_SPIKE_INDEX_SLACK entries past its c*hw: allocate them. */
#define OS_SPIKE_INDEX_SLACK 32 /* the widest kernels' lanes (AVX-512: 32 16-bit row numbers) */
size_t os_spike_index(const float *x, int c, int hw, uint16_t *idx, uint16_t *cnt);

/* The inverse: x (hw positions of c channels) = 1 at the listed channels, 0 elsewhere. */
void os_spike_unindex(const uint16_t *idx, const uint16_t *cnt, int c, int hw, float *x);

/* Above this share of active inputs the dense product (os_conv2d_hwc_wt) does less work than the
 * event-driven sum: an untrained or badly thresholded network can fire at most positions. */
#define OS_SPIKE_DENSE_RATE 0.5

/* Whether an event-driven conv of p, on an input where active of inputs fired, runs as that
 * dense product: only in an fp32 plan (exact rows, any order) above OS_SPIKE_DENSE_RATE; an
 * fp16 or int8 plan sums its rows (binary16, widened or not, or integers) at any rate. */
bool os_spike_plan_dense_at(const os_spike_plan *p, size_t active, size_t inputs);

/* The event-driven kernels of one instruction set; chosen once per session, read-only, shared
 * by every thread. */
typedef struct os_spike_kernels os_spike_kernels;

/* The kernels for isa, or NULL if this build or CPU lacks it (os_isa_supported). */
const os_spike_kernels *os_spike_kernels_for(os_isa isa);
os_isa os_spike_kernels_isa(const os_spike_kernels *k);

/* os_spike_index with kernels k: the same lists (channels that fired, ascending), the same
 * counts. */
size_t os_spike_kernels_index(const os_spike_kernels *k, const float *x, int c, int hw,
                              uint16_t *idx, uint16_t *cnt);

/* A LIF layer's first step with no membrane kept (os_lif_first with u NULL: a T = 1 pass) on
 * hw positions of c channels, and os_spike_kernels_index of the spikes, in one pass over the
 * input where k has a kernel for it: the same spikes, lists and count as the two apart. spike
 * NULL: the lists and count alone (for a layer only event-driven convs read; os_spike_unindex
 * makes its spikes when one is needed). */
size_t os_spike_kernels_lif_index(const os_spike_kernels *k, const float *in, int c, int hw,
                                  float threshold, float *spike, uint16_t *idx, uint16_t *cnt);

/* y[oy][ox][oc] = b[oc] + sum of wt[ky][kx][ic][oc] over the active inputs (ic, iy, ix) in the
 * window of (oy, ox): os_conv2d, channels-last, for an input of 0s and 1s given its index
 * (os_spike_index) and weights laid out as os_spike_layout, with kernels k. b may be NULL. rows
 * is scratch for os_spike_rows_scratch(s) values. For each output position the kernels list the
 * numbers of the rows its active inputs select, 16 bits each (vectorized: no branch per tap on
 * narrow inputs), then sum the rows four at a time into several accumulator sets. Every kernel
 * set gives the same terms; they may add them in another order (float rounding). Needs
 * os_spike_layout_rows(s) <= OS_SPIKE_MAX_ROWS (os_spike_plan_create runs a net with a larger
 * conv dense). */
#define OS_SPIKE_MAX_ROWS 65536 /* row numbers are 16 bits */
size_t os_spike_rows_scratch(const os_conv_shape *s);
void os_spike_conv(const os_spike_kernels *k, const os_conv_shape *s, const uint16_t *idx,
                   const uint16_t *cnt, const float *wt, const float *b, float *y, uint16_t *rows);

/* The int8 format of rows x oc weights wt (laid out [rows][oc]): q as wt, scale oc floats. */
void os_spike_quantize(const float *wt, size_t rows, size_t oc, int8_t *q, float *scale);

/* os_spike_conv with int8 rows (os_spike_plan_weights_q8: the os_spike_layout rows, zero row
 * included, quantized): y = b + scale[oc] * the exact integer sum of the selected rows. Every
 * kernel set gives identical results. */
void os_spike_conv_q8(const os_spike_kernels *k, const os_conv_shape *s, const uint16_t *idx,
                      const uint16_t *cnt, const int8_t *wq, const float *scale, const float *b,
                      float *y, uint16_t *rows);

/* IEEE binary16 <-> fp32, portable C: f16_from_f32 rounds to nearest, ties to even (what F16C's
 * vcvtps2ph does with that rounding mode; infinities and NaNs kept), f32_from_f16 is exact (as
 * vcvtph2ps, NaNs aside). os_spike_to_f16 converts n values; false if one rounds to an infinity
 * (or is one, or a NaN): beyond the format. */
uint16_t os_f16_from_f32(float f);
float os_f32_from_f16(uint16_t h);
bool os_spike_to_f16(const float *w, size_t n, uint16_t *h);

/* os_spike_conv with fp16 rows (os_spike_plan_weights_f16: the os_spike_layout rows, zero row
 * included, as binary16): exactly os_spike_conv's floats, with the same kernels k, on the
 * rows widened to fp32. */
void os_spike_conv_f16(const os_spike_kernels *k, const os_conv_shape *s, const uint16_t *idx,
                       const uint16_t *cnt, const uint16_t *wh, const float *b, float *y,
                       uint16_t *rows);

/* The same convolution as os_spike_conv, dense: x is the channels-last input itself (any values),
 * patches gathered per output position and multiplied by the same [kh][kw][in_c][out_c] weights
 * with one SGEMM. col as os_conv2d's. */
void os_conv2d_hwc_wt(const os_conv_shape *s, const float *x, const float *wt, const float *b,
                      float *y, float *col);

/* os_conv2d of a planar (CHW) input x, writing y channels-last: the first layer, on the image.
 * col as os_conv2d's. */
void os_conv2d_hwc(const os_conv_shape *s, const float *x, const float *w, const float *b,
                   float *y, float *col);

/* os_conv2d_hwc with kernels k: where k has a first-layer kernel for out_c channels, wt is
 * given and the patch (in_c*kh*kw) is at most OS_IMAGE_MAX_K values, each output position's
 * out_c sums are made in registers straight from the planar input (no patch matrix, no
 * SGEMM); otherwise os_conv2d_hwc with w. Same terms, another order (float rounding). wt is w
 * as os_spike_image_weights lays it out (the plan keeps it: os_spike_plan_image_weights); col
 * as os_conv2d_hwc's. */
#define OS_IMAGE_MAX_K 32
void os_spike_image_conv(const os_spike_kernels *k, const os_conv_shape *s, const float *x,
                         const float *wt, const float *w, const float *b, float *y, float *col);

/* w [oc][k] (k = in_c*kh*kw, as os_conv2d's) into wt [k][oc]. */
void os_spike_image_weights(size_t k, int oc, const float *w, float *wt);

/* os_maxpool2d and os_global_avgpool on channels-last tensors (same windows, same sums in the
 * same order). */
void os_maxpool2d_hwc(const float *x, int c, int h, int w, int k, int stride, int pad, float *y);
void os_global_avgpool_hwc(const float *x, int c, size_t hw, float *y);

/* y (CHW) = x (HWC), c channels of hw values: before a layer that flattens its input. */
void os_hwc_to_chw(const float *x, int c, size_t hw, float *y);

#endif
