/* backend.c - the dense and event-driven inference backends (see backend.h). */
#include "backend.h"

#include <stdbool.h>
#include <string.h>

#include "layers.h"

static size_t layer_size(const os_layer *L)
{
    return (size_t)L->c * (size_t)L->h * (size_t)L->w;
}

/* The shape of layer i's first input. */
static void in_shape(const os_infer_ctx *c, const os_layer *L, int *ic, int *ih, int *iw)
{
    if (L->from[0] == OS_NET_INPUT) {
        *ic = c->in_c, *ih = c->in_h, *iw = c->in_w;
        return;
    }
    const os_layer *in = os_net_layer(c->net, L->from[0]);
    *ic = in->c, *ih = in->h, *iw = in->w;
}

static os_conv_shape conv_shape(const os_infer_ctx *c, const os_layer *L)
{
    int ic, ih, iw;
    in_shape(c, L, &ic, &ih, &iw);
    return (os_conv_shape){ic, ih, iw, L->out, L->kh, L->kw, L->stride, L->pad};
}

float *os_infer_slot(void *ctx, int i, int step)
{
    (void)step;
    const os_infer_ctx *c = ctx;
    return i == OS_NET_INPUT ? c->input : c->out[i];
}

/* Input and output of image j of the pass: layers hold their n tensors back to back. */
static const float *in_at(const os_infer_ctx *c, const os_layer *L, const float *x, int j)
{
    int ic, ih, iw;
    in_shape(c, L, &ic, &ih, &iw);
    return x + (size_t)j * ic * ih * iw;
}

static float *out_at(const os_layer *L, float *y, int j)
{
    return y + (size_t)j * layer_size(L);
}

/* ---- dense: planar CHW ---------------------------------------------------------------------- */

static void dense_conv(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    os_infer_ctx *c = ctx;
    const os_conv_shape cs = conv_shape(c, L);
    for (int j = 0; j < c->n; j++)
        os_conv2d(&cs, in_at(c, L, io->x, j), L->weight, L->bias, out_at(L, io->y, j), c->col);
}

static void dense_bn(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    const os_infer_ctx *c = ctx;
    if (L->folded) /* its output is its conv's, which already holds the affine */
        return;
    memcpy(io->y, io->x, (size_t)c->n * layer_size(L) * sizeof *io->y);
    for (int j = 0; j < c->n; j++)
        os_channel_affine(out_at(L, io->y, j), L->c, (size_t)L->h * L->w, L->scale, L->shift);
}

static void dense_relu(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    const size_t n = (size_t)((const os_infer_ctx *)ctx)->n * layer_size(L);
    memcpy(io->y, io->x, n * sizeof *io->y);
    os_relu(io->y, n);
}

/* A LIF layer with the session's element-wise kernels: the reference ones on the dense path,
 * the instruction set's on the event path; the same floats either way (eltwise.h). */
static void dense_lif(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_infer_ctx *c = ctx;
    const os_eltwise *e = c->elt;
    const size_t n = (size_t)c->n * layer_size(L); /* elementwise: the batch is one array */
    if (io->step == 0) /* the membrane starts at 0: nothing to read, nothing to clear */
        e->lif_first(c->T > 1 ? c->mem[i] : NULL, io->x, n, L->threshold, io->y);
    else
        e->lif_step(c->mem[i], io->x, n, L->threshold, L->leak, io->y);
    if (c->count_spikes) {
        uint64_t k = 0;
        for (size_t j = 0; j < n; j++)
            k += io->y[j] > 0.0f;
        c->spikes[i] += k;
    }
}

static void dense_maxpool(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    const os_infer_ctx *c = ctx;
    int ic, ih, iw;
    in_shape(c, L, &ic, &ih, &iw);
    for (int j = 0; j < c->n; j++)
        os_maxpool2d(in_at(c, L, io->x, j), ic, ih, iw, L->kh, L->stride, L->pad,
                     out_at(L, io->y, j));
}

static void dense_avgpool(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    const os_infer_ctx *c = ctx;
    int ic, ih, iw;
    in_shape(c, L, &ic, &ih, &iw);
    for (int j = 0; j < c->n; j++)
        os_avgpool2d(in_at(c, L, io->x, j), ic, ih, iw, L->kh, L->stride, L->pad,
                     out_at(L, io->y, j));
}

static void dense_gap(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    const os_infer_ctx *c = ctx;
    int ic, ih, iw;
    in_shape(c, L, &ic, &ih, &iw);
    for (int j = 0; j < c->n; j++)
        os_global_avgpool(in_at(c, L, io->x, j), ic, (size_t)ih * iw, out_at(L, io->y, j));
}

/* One GEMV per image rather than one GEMM for the batch: the head is a small share of the work,
 * and the same kernel keeps each image's logits bit-identical to a run of that image alone. */
static void dense_linear(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    const os_infer_ctx *c = ctx;
    for (int j = 0; j < c->n; j++)
        os_linear(in_at(c, L, io->x, j), L->fan_in, L->out, L->weight, L->bias,
                  out_at(L, io->y, j));
}

static void dense_add(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    os_add(io->x, io->x2, (size_t)((const os_infer_ctx *)ctx)->n * layer_size(L), io->y);
}

const os_backend os_backend_dense = {
    .name = "dense",
    .op = {
        [OS_OP_CONV] = dense_conv,
        [OS_OP_BN] = dense_bn,
        [OS_OP_RELU] = dense_relu,
        [OS_OP_LIF] = dense_lif,
        [OS_OP_MAXPOOL] = dense_maxpool,
        [OS_OP_AVGPOOL] = dense_avgpool,
        [OS_OP_GAP] = dense_gap,
        [OS_OP_LINEAR] = dense_linear,
        [OS_OP_ADD] = dense_add,
    },
};

/* ---- event: channels-last, convolutions of spikes event-driven -------------------------------
 * Elementwise layers (bn folded, relu, lif, add) do not care about the layout; bn and relu use
 * the dense kernels, lif and add those of the session's instruction set (eltwise.h), as do the
 * ops that care about the layout below. */

static void event_conv(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_infer_ctx *c = ctx;
    const os_conv_shape cs = conv_shape(c, L);
    const int from = L->from[0];
    const float *wt = os_spike_plan_weights(c->plan, i), *scale;
    const int8_t *wq = os_spike_plan_weights_q8(c->plan, i, &scale);
    const uint16_t *wh = os_spike_plan_weights_f16(c->plan, i);
    const bool event = os_spike_plan_event(c->plan, i);
    const size_t inputs = (size_t)cs.in_c * cs.in_h * cs.in_w, hw = (size_t)cs.in_h * cs.in_w;
    for (int j = 0; j < c->n; j++) {
        const float *x = in_at(c, L, io->x, j);
        float *y = out_at(L, io->y, j);
        if (!event) { /* the image: planar in, channels-last out */
            os_spike_image_conv(c->kernels, &cs, x, os_spike_plan_image_weights(c->plan, i),
                                L->weight, L->bias, y, c->col);
            continue;
        }
        const uint16_t *idx = c->sidx[from] + j * inputs, *cnt = c->scnt[from] + j * hw;
        if (wq)
            os_spike_conv_q8(c->kernels, &cs, idx, cnt, wq, scale, L->bias, y, c->rows);
        else if (wh)
            os_spike_conv_f16(c->kernels, &cs, idx, cnt, wh, L->bias, y, c->rows);
        else if (!os_spike_plan_dense_at(c->plan, c->active[(size_t)from * c->max_batch + j],
                                         inputs))
            os_spike_conv(c->kernels, &cs, idx, cnt, wt, L->bias, y, c->rows);
        else { /* most inputs fired: the dense product is less work */
            if (c->index_only[from]) /* its LIF layer left the spikes unwritten */
                os_spike_unindex(idx, cnt, cs.in_c, (int)hw, c->out[from] + j * inputs);
            os_conv2d_hwc_wt(&cs, x, wt, L->bias, y, c->col);
        }
    }
}

static void event_maxpool(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    const os_infer_ctx *c = ctx;
    int ic, ih, iw;
    in_shape(c, L, &ic, &ih, &iw);
    for (int j = 0; j < c->n; j++)
        c->elt->maxpool_hwc(in_at(c, L, io->x, j), ic, ih, iw, L->kh, L->stride, L->pad,
                            out_at(L, io->y, j));
}

/* A LIF layer whose spikes an event-driven conv reads, at the only step of a T = 1 pass (no
 * membrane kept): its spikes and their index come from one pass (os_spike_kernels_lif_index),
 * so event_index leaves it alone. */
static bool lif_indexes(const os_infer_ctx *c, int i, const os_layer *L, int step)
{
    return L->op == OS_OP_LIF && step == 0 && c->T == 1 && c->sidx[i];
}

static void event_lif(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_infer_ctx *c = ctx;
    if (!lif_indexes(c, i, L, io->step)) {
        dense_lif(ctx, i, L, io);
        return;
    }
    const size_t size = layer_size(L), hw = (size_t)L->h * L->w;
    for (int j = 0; j < c->n; j++) {
        const size_t fired = os_spike_kernels_lif_index(
            c->kernels, io->x + (size_t)j * size, L->c, L->h * L->w, L->threshold,
            c->index_only[i] ? NULL : out_at(L, io->y, j), c->sidx[i] + j * size,
            c->scnt[i] + j * hw);
        c->active[(size_t)i * c->max_batch + j] = fired;
        if (c->count_spikes) /* the spikes are the inputs listed */
            c->spikes[i] += fired;
    }
}

static void event_add(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    const os_infer_ctx *c = ctx;
    c->elt->add(io->x, io->x2, (size_t)c->n * layer_size(L), io->y);
}

static void event_gap(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    const os_infer_ctx *c = ctx;
    int ic, ih, iw;
    in_shape(c, L, &ic, &ih, &iw);
    for (int j = 0; j < c->n; j++)
        os_global_avgpool_hwc(in_at(c, L, io->x, j), ic, (size_t)ih * iw, out_at(L, io->y, j));
}

static void event_linear(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    os_infer_ctx *c = ctx;
    int ic, ih, iw;
    in_shape(c, L, &ic, &ih, &iw);
    const bool flatten = L->from[0] != OS_NET_INPUT && ih * iw > 1;
    for (int j = 0; j < c->n; j++) {
        const float *x = in_at(c, L, io->x, j);
        if (flatten) { /* back to planar order */
            os_hwc_to_chw(x, ic, (size_t)ih * iw, c->flat);
            x = c->flat;
        }
        os_linear(x, L->fan_in, L->out, L->weight, L->bias, out_at(L, io->y, j));
    }
}

/* A layer that an event-driven conv reads: list each image's active inputs for that conv. */
static void event_index(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_infer_ctx *c = ctx;
    if (!c->sidx[i] || lif_indexes(c, i, L, io->step))
        return;
    const size_t size = layer_size(L), hw = (size_t)L->h * L->w;
    for (int j = 0; j < c->n; j++)
        c->active[(size_t)i * c->max_batch + j] =
            os_spike_kernels_index(c->kernels, out_at(L, io->y, j), L->c, L->h * L->w,
                                   c->sidx[i] + j * size, c->scnt[i] + j * hw);
}

const os_backend os_backend_event = {
    .name = "event",
    .op = {
        [OS_OP_CONV] = event_conv,
        [OS_OP_BN] = dense_bn,
        [OS_OP_RELU] = dense_relu,
        [OS_OP_LIF] = event_lif,
        [OS_OP_MAXPOOL] = event_maxpool,
        [OS_OP_AVGPOOL] = dense_avgpool, /* never: a plan with average pooling is incomplete */
        [OS_OP_GAP] = event_gap,
        [OS_OP_LINEAR] = event_linear,
        [OS_OP_ADD] = event_add,
    },
    .after = event_index,
};
