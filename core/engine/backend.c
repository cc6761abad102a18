/* backend.c - the dense and event-driven inference backends (see backend.h). */
#include "backend.h"

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

/* ---- dense: planar CHW ---------------------------------------------------------------------- */

static void dense_conv(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    os_infer_ctx *c = ctx;
    const os_conv_shape cs = conv_shape(c, L);
    os_conv2d(&cs, io->x, L->weight, L->bias, io->y, c->col);
}

static void dense_bn(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)ctx, (void)i;
    if (L->folded) /* its output is its conv's, which already holds the affine */
        return;
    memcpy(io->y, io->x, layer_size(L) * sizeof *io->y);
    os_channel_affine(io->y, L->c, (size_t)L->h * L->w, L->scale, L->shift);
}

static void dense_relu(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)ctx, (void)i;
    memcpy(io->y, io->x, layer_size(L) * sizeof *io->y);
    os_relu(io->y, layer_size(L));
}

static void dense_lif(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_infer_ctx *c = ctx;
    const size_t n = layer_size(L);
    os_lif_step(c->mem[i], io->x, n, L->threshold, L->leak, io->y);
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
    int ic, ih, iw;
    in_shape(ctx, L, &ic, &ih, &iw);
    os_maxpool2d(io->x, ic, ih, iw, L->kh, L->stride, L->pad, io->y);
}

static void dense_avgpool(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    int ic, ih, iw;
    in_shape(ctx, L, &ic, &ih, &iw);
    os_avgpool2d(io->x, ic, ih, iw, L->kh, L->stride, L->pad, io->y);
}

static void dense_gap(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    int ic, ih, iw;
    in_shape(ctx, L, &ic, &ih, &iw);
    os_global_avgpool(io->x, ic, (size_t)ih * iw, io->y);
}

static void dense_linear(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)ctx, (void)i;
    os_linear(io->x, L->fan_in, L->out, L->weight, L->bias, io->y);
}

static void dense_add(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)ctx, (void)i;
    os_add(io->x, io->x2, layer_size(L), io->y);
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
 * Elementwise layers (bn folded, relu, lif, add) do not care about the layout and use the dense
 * kernels; the ops below are the ones that do. */

static void event_conv(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_infer_ctx *c = ctx;
    const os_conv_shape cs = conv_shape(c, L);
    const int from = L->from[0];
    const float *wt = os_spike_plan_weights(c->plan, i), *scale;
    const int8_t *wq = os_spike_plan_weights_q8(c->plan, i, &scale);
    const double inputs = (double)cs.in_c * cs.in_h * cs.in_w;
    if (!os_spike_plan_event(c->plan, i)) /* the image: planar in, channels-last out */
        os_conv2d_hwc(&cs, io->x, L->weight, L->bias, io->y, c->col);
    else if (wq) /* at any rate: an int8 plan keeps no float rows to fall back on */
        os_spike_conv_q8(c->kernels, &cs, c->sidx[from], c->scnt[from], wq, scale, L->bias, io->y,
                         c->rows);
    else if ((double)c->active[from] <= OS_SPIKE_DENSE_RATE * inputs)
        os_spike_conv(c->kernels, &cs, c->sidx[from], c->scnt[from], wt, L->bias, io->y, c->rows);
    else /* most inputs fired: the dense product is less work */
        os_conv2d_hwc_wt(&cs, io->x, wt, L->bias, io->y, c->col);
}

static void event_maxpool(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    int ic, ih, iw;
    in_shape(ctx, L, &ic, &ih, &iw);
    os_maxpool2d_hwc(io->x, ic, ih, iw, L->kh, L->stride, L->pad, io->y);
}

static void event_gap(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    int ic, ih, iw;
    in_shape(ctx, L, &ic, &ih, &iw);
    os_global_avgpool_hwc(io->x, ic, (size_t)ih * iw, io->y);
}

static void event_linear(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)i;
    os_infer_ctx *c = ctx;
    const float *x = io->x;
    int ic, ih, iw;
    in_shape(c, L, &ic, &ih, &iw);
    if (L->from[0] != OS_NET_INPUT && ih * iw > 1) { /* flattening: back to planar order */
        os_hwc_to_chw(x, ic, (size_t)ih * iw, c->flat);
        x = c->flat;
    }
    os_linear(x, L->fan_in, L->out, L->weight, L->bias, io->y);
}

/* A layer that an event-driven conv reads: list its active inputs for that conv. */
static void event_index(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_infer_ctx *c = ctx;
    if (c->sidx[i])
        c->active[i] = os_spike_index(io->y, L->c, L->h * L->w, c->sidx[i], c->scnt[i]);
}

const os_backend os_backend_event = {
    .name = "event",
    .op = {
        [OS_OP_CONV] = event_conv,
        [OS_OP_BN] = dense_bn,
        [OS_OP_RELU] = dense_relu,
        [OS_OP_LIF] = dense_lif,
        [OS_OP_MAXPOOL] = event_maxpool,
        [OS_OP_AVGPOOL] = dense_avgpool, /* never: a plan with average pooling is incomplete */
        [OS_OP_GAP] = event_gap,
        [OS_OP_LINEAR] = event_linear,
        [OS_OP_ADD] = dense_add,
    },
    .after = event_index,
};
