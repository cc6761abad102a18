/* tnet.c - batch forward over T steps with saved activations, and BPTT; see tnet.h.
 *
 * Layers run in list order, each for all its time steps, which is valid because a layer at step
 * t depends only on its inputs at step t and on its own state. A static layer (all inputs time
 * invariant, not LIF) has one slot instead of T. Gradient buffers: a layer whose output feeds
 * exactly one consumer with the same number of slots is written by that consumer ("exclusive");
 * any other is zeroed and accumulated into.
 */
#include "tnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dconv.h"
#include "exec.h"
#include "grad.h"
#include "layers.h"
#include "onespike/model.h"

typedef struct {
    int slots;         /* 1 (static) or T */
    size_t size;       /* c*h*w of one image */
    float *out, *d;    /* [slots][max_batch*size] */
    float *u;          /* lif: membrane before reset, [T][max_batch*size] */
    float *mean, *invstd; /* bn: [slots][c] */
    bool exclusive;
    os_param *w, *b, *bn[4], *thr, *leak;
    os_dconv *dc; /* conv on oneDNN (dconv.h) for dc's batch; NULL: ours, or not made yet */
    bool dc_failed; /* oneDNN has no implementation for it: ours */
} tlayer;

struct os_tnet {
    os_net *net;
    os_params *params;
    int T, max_batch, n, in_c, in_h, in_w, classes;
    size_t in_size;
    const float *x;
    tlayer *L;
    float *col, *tmp; /* batched im2col scratch; T * max_batch * max size */
    float *ctmp;      /* conv product in [out][batch*hw] layout: max_batch * max size */
    size_t tmp_floats;
    bool trained; /* last forward was in training mode */
    float surrogate; /* surrogate height of the backward pass running */
    int first_learner; /* backward running: the first layer with an unfrozen parameter */
    os_reduce *reduce; /* data-parallel replicas (dp.h): BatchNorm's batch sums; NULL: alone */
    bool secondary;    /* a replica other than the first: leaves BN running averages alone */
    double *bn_acc;    /* BatchNorm scratch: bn_acc_len doubles */
    size_t bn_acc_len; /* 2 * (widest BN) + 1: the longest os_reduce sum */
};

static size_t stride_of(const os_tnet *t, const tlayer *l)
{
    return (size_t)t->max_batch * l->size;
}

/* Output of layer `from` (or the input) at step `step`. */
static float *slot(const os_tnet *t, int from, int step)
{
    if (from == OS_NET_INPUT)
        return (float *)t->x;
    const tlayer *l = &t->L[from];
    return l->out + (size_t)(l->slots == 1 ? 0 : step) * stride_of(t, l);
}

static float *dslot(const os_tnet *t, int from, int step)
{
    const tlayer *l = &t->L[from];
    return l->d + (size_t)(l->slots == 1 ? 0 : step) * stride_of(t, l);
}

static void in_dims(const os_tnet *t, int from, int *c, int *h, int *w)
{
    if (from == OS_NET_INPUT) {
        *c = t->in_c, *h = t->in_h, *w = t->in_w;
        return;
    }
    const os_layer *L = os_net_layer(t->net, from);
    *c = L->c, *h = L->h, *w = L->w;
}

static os_status bind_param(os_tnet *t, const os_layer_spec *spec, os_tensor_role r,
                            os_param **out)
{
    const char *name = spec->tensor[r];
    *out = NULL;
    if (!name)
        return OS_OK;
    *out = os_params_find(t->params, name);
    if (!*out)
        return os_fail(OS_EARCH, "layer \"%s\": %s tensor \"%s\" is not a parameter", spec->name,
                       os_tensor_role_name(r), name);
    return OS_OK;
}

static os_status bind_lif(os_tnet *t, const os_layer *L, tlayer *l)
{
    char name[OS_NET_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s.threshold", L->name);
    os_status st;
    if (!os_params_find(t->params, name) &&
        (st = os_params_add_scalar(t->params, name, L->threshold)))
        return st;
    l->thr = os_params_find(t->params, name);
    snprintf(name, sizeof name, "%s.leak", L->name);
    if (!os_params_find(t->params, name) && (st = os_params_add_scalar(t->params, name, L->leak)))
        return st;
    l->leak = os_params_find(t->params, name);
    return OS_OK;
}

static os_status alloc_layers(os_tnet *t, const os_graph *g)
{
    int n = os_net_count(t->net);
    size_t col = 0, maxsize = t->in_size;
    for (int i = 0; i < n; i++) {
        const os_layer *L = os_net_layer(t->net, i);
        tlayer *l = &t->L[i];
        const os_layer_spec *spec = os_graph_layer(g, i);
        l->slots = L->is_static ? 1 : t->T;
        l->size = (size_t)L->c * L->h * L->w;
        if (l->size > maxsize)
            maxsize = l->size;
        size_t all = (size_t)l->slots * stride_of(t, l);
        l->out = malloc(all * sizeof(float));
        l->d = malloc(all * sizeof(float));
        if (!l->out || !l->d)
            return os_fail(OS_ENOMEM, "no memory for activations of layer %s", L->name);
        os_status st = OS_OK;
        switch (L->op) {
        case OS_OP_CONV:
        case OS_OP_LINEAR:
            if ((st = bind_param(t, spec, OS_TENSOR_WEIGHT, &l->w)) ||
                (st = bind_param(t, spec, OS_TENSOR_BIAS, &l->b)))
                return st;
            if (L->op == OS_OP_CONV) {
                int c, h, w;
                in_dims(t, L->from[0], &c, &h, &w);
                os_conv_shape cs = {c, h, w, L->out, L->kh, L->kw, L->stride, L->pad};
                if (os_conv_batch_floats(&cs, t->max_batch) > col)
                    col = os_conv_batch_floats(&cs, t->max_batch);
            }
            break;
        case OS_OP_BN: {
            for (int k = 0; k < OS_TENSOR_ROLES; k++)
                if ((st = bind_param(t, spec, (os_tensor_role)k, &l->bn[k])))
                    return st;
            l->mean = malloc((size_t)l->slots * L->c * sizeof(float));
            l->invstd = malloc((size_t)l->slots * L->c * sizeof(float));
            if (!l->mean || !l->invstd)
                return os_fail(OS_ENOMEM, "no memory for BatchNorm statistics");
            break;
        }
        case OS_OP_LIF:
            if ((st = bind_lif(t, L, l)))
                return st;
            if (!(l->u = malloc((size_t)t->T * stride_of(t, l) * sizeof(float))))
                return os_fail(OS_ENOMEM, "no memory for membranes of layer %s", L->name);
            break;
        default: break;
        }
    }
    /* Exclusive gradient targets: one consumer with the same number of slots. */
    for (int i = 0; i < n; i++) {
        int consumers = 0, slots = 0;
        for (int j = i + 1; j < n; j++) {
            const os_layer *C = os_net_layer(t->net, j);
            for (int k = 0; k < C->n_from; k++)
                if (C->from[k] == i)
                    consumers++, slots = t->L[j].slots;
        }
        t->L[i].exclusive = consumers == 1 && slots == t->L[i].slots;
    }
    t->tmp_floats = (size_t)t->T * t->max_batch * maxsize;
    t->col = malloc((col ? col : 1) * sizeof(float));
    t->tmp = malloc(t->tmp_floats * sizeof(float));
    t->ctmp = malloc((size_t)t->max_batch * maxsize * sizeof(float));
    if (!t->col || !t->tmp || !t->ctmp)
        return os_fail(OS_ENOMEM, "no memory for training scratch");
    return OS_OK;
}

os_status os_tnet_create(const os_graph *g, int in_c, int in_h, int in_w, int classes,
                         os_params *params, int max_batch, int timesteps, os_tnet **out)
{
    *out = NULL;
    os_tnet *t = calloc(1, sizeof *t);
    if (!t)
        return os_fail(OS_ENOMEM, "no memory for the training network");
    if (timesteps < 1 || timesteps > OS_MODEL_MAX_TIMESTEPS || max_batch < 1) {
        free(t);
        return os_fail(OS_EINVAL, "training network: timesteps %d (1..%d), batch %d", timesteps,
                       OS_MODEL_MAX_TIMESTEPS, max_batch);
    }
    t->params = params, t->T = timesteps, t->max_batch = max_batch;
    t->in_c = in_c, t->in_h = in_h, t->in_w = in_w, t->classes = classes;
    t->in_size = (size_t)in_c * in_h * in_w;
    os_status st = os_net_build_ex(g, in_c, in_h, in_w, classes, os_params_view, params, false,
                                   "training network", &t->net);
    if (!st && !(t->L = calloc((size_t)os_net_count(t->net), sizeof *t->L)))
        st = os_fail(OS_ENOMEM, "no memory for the training network");
    if (!st)
        st = alloc_layers(t, g);
    int widest = 0;
    for (int i = 0; !st && i < os_net_count(t->net); i++) {
        const os_layer *L = os_net_layer(t->net, i);
        if (L->op == OS_OP_BN && L->c > widest)
            widest = L->c;
    }
    t->bn_acc_len = 2 * (size_t)widest + 1;
    if (!st && !(t->bn_acc = malloc(t->bn_acc_len * sizeof *t->bn_acc)))
        st = os_fail(OS_ENOMEM, "no memory for the training network");
    if (st) {
        os_tnet_destroy(t);
        return st;
    }
    *out = t;
    return OS_OK;
}

void os_tnet_set_reduce(os_tnet *t, os_reduce *r, bool secondary)
{
    t->reduce = r, t->secondary = secondary;
}

size_t os_tnet_reduce_len(const os_tnet *t)
{
    return t->bn_acc_len;
}

void os_tnet_destroy(os_tnet *t)
{
    if (!t)
        return;
    if (t->L)
        for (int i = 0; i < os_net_count(t->net); i++) {
            tlayer *l = &t->L[i];
            free(l->out), free(l->d), free(l->u), free(l->mean), free(l->invstd);
            os_dconv_destroy(l->dc);
        }
    free(t->L);
    free(t->col);
    free(t->tmp);
    free(t->ctmp);
    free(t->bn_acc);
    os_net_destroy(t->net);
    free(t);
}

static void bn_forward(os_tnet *t, const os_layer *L, tlayer *l, int s, const float *x, float *y,
                       bool train)
{
    int n = t->n, c = L->c;
    size_t hw = (size_t)L->h * L->w;
    float *mean = l->mean + (size_t)s * c, *invstd = l->invstd + (size_t)s * c;
    const float *g = l->bn[0]->data, *b = l->bn[1]->data;
    float *rm = l->bn[2]->data, *rv = l->bn[3]->data;
    if (train) {
        double m = os_bn_train_forward(x, n, c, hw, g, b, L->eps, t->reduce, t->bn_acc, y, mean,
                                       invstd);
        if (t->secondary) /* the first replica updates them, from the same statistics */
            return;
        double unbias = m > 1 ? m / (m - 1) : 1.0;
        for (int k = 0; k < c; k++) {
            double var = 1.0 / ((double)invstd[k] * invstd[k]) - L->eps;
            rm[k] = (1 - OS_BN_MOMENTUM) * rm[k] + OS_BN_MOMENTUM * mean[k];
            rv[k] = (float)((1 - OS_BN_MOMENTUM) * rv[k] + OS_BN_MOMENTUM * var * unbias);
        }
        return;
    }
    for (int k = 0; k < c; k++) {
        mean[k] = rm[k];
        invstd[k] = (float)(1.0 / sqrt((double)rv[k] + L->eps));
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++) {
            const float *xi = x + ((size_t)i * c + k) * hw;
            float *yi = y + ((size_t)i * c + k) * hw;
            float sc = g[k] * invstd[k], sh = b[k] - mean[k] * sc;
            for (size_t j = 0; j < hw; j++)
                yi[j] = xi[j] * sc + sh;
        }
}

/* ---- the train backend (exec.h): batched kernels on the tnet's slots --------------------
 * Every kernel runs t->n images; `slot` gives layer i's buffer at a step (a static layer has
 * one). BatchNorm uses batch statistics in training mode; LIF keeps each step's membrane. */

static float *train_slot(void *ctx, int i, int step)
{
    return slot(ctx, i, step);
}

/* Output maps of at most this many positions take the weights' gradient from ours, the rest of
 * the conv from oneDNN: there its weights pass took 2x ours at 2x2 (stage 4 at 64 px) and 1.25x
 * at 3x3 (96 px) on the AVX-512 Xeon, its forward and data pass less (train_conv_bench). */
#define DCONV_OURS_WEIGHTS 9

/* Conv layer i's oneDNN convolution for the tnet's current batch (dconv.h), NULL to run ours:
 * oneDNN off in this process or without an implementation for the shape. Made on first use and
 * again when the batch changes. */
static os_dconv *conv_on_dnnl(os_tnet *t, int i, const os_conv_shape *cs)
{
    tlayer *l = &t->L[i];
    if (l->dc_failed || !os_dconv_enabled())
        return NULL;
    if (l->dc && os_dconv_batch(l->dc) == t->n)
        return l->dc;
    os_dconv_destroy(l->dc);
    l->dc = NULL;
    if (os_dconv_create(cs, t->n, l->b != NULL, &l->dc) != OS_OK) {
        fprintf(stderr, "onespike-train: layer %s runs on our convolution: %s\n",
                os_net_layer(t->net, i)->name, os_errdetail());
        l->dc_failed = true;
    }
    return l->dc;
}

static void train_conv(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_tnet *t = ctx;
    const tlayer *l = &t->L[i];
    int c, h, w;
    in_dims(t, L->from[0], &c, &h, &w);
    os_conv_shape cs = {c, h, w, L->out, L->kh, L->kw, L->stride, L->pad};
    os_dconv *dc = conv_on_dnnl(t, i, &cs);
    if (dc)
        os_dconv_forward(dc, io->x, l->w->data, l->b ? l->b->data : NULL, io->y,
                         io->step > 0);
    else
        os_conv2d_batch(&cs, t->n, io->x, l->w->data, l->b ? l->b->data : NULL, io->y, t->col,
                        t->ctmp);
}

static void train_bn(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_tnet *t = ctx;
    tlayer *l = &t->L[i];
    bn_forward(t, L, l, l->slots == 1 ? 0 : io->step, io->x, io->y, t->trained);
}

static void train_relu(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)L;
    os_tnet *t = ctx;
    const size_t n = (size_t)t->n * t->L[i].size;
    memcpy(io->y, io->x, n * sizeof *io->y);
    os_relu(io->y, n);
}

static void train_lif(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)L;
    os_tnet *t = ctx;
    tlayer *l = &t->L[i];
    const int k = io->step;
    const size_t stride = stride_of(t, l);
    os_lif_forward_step(io->x, k ? l->u + (size_t)(k - 1) * stride : NULL,
                        k ? slot(t, i, k - 1) : NULL, (size_t)t->n * l->size, l->thr->data[0],
                        l->leak->data[0], 0.0f, l->u + (size_t)k * stride, io->y);
}

static void train_maxpool(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_tnet *t = ctx;
    int c, h, w;
    in_dims(t, L->from[0], &c, &h, &w);
    const size_t in_size = (size_t)c * h * w, out_size = t->L[i].size;
    for (int j = 0; j < t->n; j++)
        os_maxpool2d(io->x + j * in_size, c, h, w, L->kh, L->stride, L->pad, io->y + j * out_size);
}

static void train_avgpool(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_tnet *t = ctx;
    int c, h, w;
    in_dims(t, L->from[0], &c, &h, &w);
    const size_t in_size = (size_t)c * h * w, out_size = t->L[i].size;
    for (int j = 0; j < t->n; j++)
        os_avgpool2d(io->x + j * in_size, c, h, w, L->kh, L->stride, L->pad, io->y + j * out_size);
}

static void train_gap(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_tnet *t = ctx;
    int c, h, w;
    in_dims(t, L->from[0], &c, &h, &w);
    const size_t in_size = (size_t)c * h * w, out_size = t->L[i].size;
    for (int j = 0; j < t->n; j++)
        os_global_avgpool(io->x + j * in_size, c, (size_t)h * w, io->y + j * out_size);
}

static void train_linear(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    os_tnet *t = ctx;
    const tlayer *l = &t->L[i];
    os_linear_batch(io->x, t->n, L->fan_in, L->out, l->w->data, l->b ? l->b->data : NULL, io->y);
}

static void train_add(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)L;
    os_tnet *t = ctx;
    os_add(io->x, io->x2, (size_t)t->n * t->L[i].size, io->y);
}

const os_backend os_backend_train = {
    .name = "train",
    .op = {
        [OS_OP_CONV] = train_conv,
        [OS_OP_BN] = train_bn,
        [OS_OP_RELU] = train_relu,
        [OS_OP_LIF] = train_lif,
        [OS_OP_MAXPOOL] = train_maxpool,
        [OS_OP_AVGPOOL] = train_avgpool,
        [OS_OP_GAP] = train_gap,
        [OS_OP_LINEAR] = train_linear,
        [OS_OP_ADD] = train_add,
    },
};

void os_tnet_forward(os_tnet *t, const float *x, int n, bool train, float *logits)
{
    t->x = x, t->n = n, t->trained = train;
    size_t k = (size_t)n * t->classes;
    memset(logits, 0, k * sizeof *logits);
    os_exec_forward(t->net, t->T, &os_backend_train, t, train_slot, logits, k);
}

/* Whether the gradient of layer `from`'s output is needed: layers are in topological order, so
 * nothing before the first layer that learns can use it (nor can the image). */
static bool wants_grad(const os_tnet *t, int from)
{
    return from != OS_NET_INPUT && from >= t->first_learner;
}

/* Where layer i's backward writes the gradient for input `from` at step s: straight into the
 * input's gradient when exclusive, else into scratch that the caller then adds; NULL when no
 * one reads it. */
static float *dx_target(os_tnet *t, int from, int s, size_t scratch_slot)
{
    if (!wants_grad(t, from))
        return NULL;
    if (t->L[from].exclusive)
        return dslot(t, from, s);
    return t->tmp + scratch_slot * (size_t)t->max_batch * t->L[from].size;
}

static void dx_commit(os_tnet *t, int from, int s, const float *dx)
{
    if (!wants_grad(t, from) || t->L[from].exclusive)
        return;
    os_add_inplace(dslot(t, from, s), dx, (size_t)t->n * t->L[from].size);
}

static void backward_lif(os_tnet *t, int i, const os_layer *L, tlayer *l)
{
    const float *u[OS_MODEL_MAX_TIMESTEPS], *s[OS_MODEL_MAX_TIMESTEPS], *ds[OS_MODEL_MAX_TIMESTEPS];
    float *din[OS_MODEL_MAX_TIMESTEPS];
    int from = L->from[0];
    for (int k = 0; k < t->T; k++) {
        u[k] = l->u + (size_t)k * stride_of(t, l);
        s[k] = slot(t, i, k);
        ds[k] = dslot(t, i, k);
        din[k] = !wants_grad(t, from) ? t->tmp + (size_t)k * t->max_batch * l->size
                                      : dx_target(t, from, k, (size_t)k);
    }
    double dthr = 0, dleak = 0;
    os_lif_backward_seq(u, s, ds, t->T, (size_t)t->n * l->size, l->thr->data[0],
                        l->leak->data[0], t->surrogate, din, &dthr, &dleak);
    l->thr->grad[0] += (float)dthr;
    l->leak->grad[0] += (float)dleak;
    for (int k = 0; k < t->T; k++)
        dx_commit(t, from, k, din[k]);
}

static void backward_layer(os_tnet *t, int i)
{
    const os_layer *L = os_net_layer(t->net, i);
    tlayer *l = &t->L[i];
    int n = t->n, c, h, w;
    int from = L->from[0];
    in_dims(t, from, &c, &h, &w);
    size_t in_size = (size_t)c * h * w, nin = (size_t)n * in_size;
    if (L->op == OS_OP_LIF) {
        backward_lif(t, i, L, l);
        return;
    }
    for (int k = 0; k < l->slots; k++) {
        const float *x = slot(t, from, k), *y = slot(t, i, k), *dy = dslot(t, i, k);
        float *dx = dx_target(t, from, k, 0);
        if (!dx && L->op != OS_OP_CONV && L->op != OS_OP_LINEAR && L->op != OS_OP_ADD) {
            if (L->op != OS_OP_BN)
                continue; /* nothing to learn, and nobody reads the image's gradient */
            dx = t->tmp;
        }
        switch (L->op) {
        case OS_OP_CONV: {
            os_conv_shape cs = {c, h, w, L->out, L->kh, L->kw, L->stride, L->pad};
            os_dconv *dc = conv_on_dnnl(t, i, &cs);
            const int positions = os_conv_out_h(&cs) * os_conv_out_w(&cs);
            if (dc && positions <= DCONV_OURS_WEIGHTS) {
                /* small maps: oneDNN's weights pass is the slower one (dconv.h) */
                os_conv2d_backward_batch(&cs, n, x, l->w->data, dy, l->w->grad,
                                         l->b ? l->b->grad : NULL, NULL, t->col, t->ctmp);
                if (dx)
                    os_dconv_backward(dc, x, l->w->data, dy, NULL, NULL, dx);
            } else if (dc) {
                os_dconv_backward(dc, x, l->w->data, dy, l->w->grad, l->b ? l->b->grad : NULL,
                                  dx);
            } else {
                os_conv2d_backward_batch(&cs, n, x, l->w->data, dy, l->w->grad,
                                         l->b ? l->b->grad : NULL, dx, t->col, t->ctmp);
            }
            break;
        }
        case OS_OP_BN:
            os_bn_backward(x, dy, n, L->c, (size_t)L->h * L->w, l->bn[0]->data,
                           l->mean + (size_t)k * L->c, l->invstd + (size_t)k * L->c, t->reduce,
                           t->bn_acc, dx,
                           l->bn[0]->grad, l->bn[1]->grad);
            break;
        case OS_OP_RELU: os_relu_backward(y, dy, (size_t)n * l->size, dx); break;
        case OS_OP_MAXPOOL:
            memset(dx, 0, nin * sizeof *dx);
            for (int j = 0; j < n; j++)
                os_maxpool2d_backward(x + j * in_size, dy + j * l->size, c, h, w, L->kh, L->stride,
                                      L->pad, dx + j * in_size);
            break;
        case OS_OP_AVGPOOL:
            memset(dx, 0, nin * sizeof *dx);
            for (int j = 0; j < n; j++)
                os_avgpool2d_backward(dy + j * l->size, c, h, w, L->kh, L->stride, L->pad,
                                      dx + j * in_size);
            break;
        case OS_OP_GAP:
            memset(dx, 0, nin * sizeof *dx);
            for (int j = 0; j < n; j++)
                os_global_avgpool_backward(dy + j * l->size, c, (size_t)h * w, dx + j * in_size);
            break;
        case OS_OP_LINEAR:
            os_linear_backward(x, l->w->data, dy, n, L->fan_in, L->out, l->w->grad,
                               l->b ? l->b->grad : NULL, dx);
            break;
        case OS_OP_ADD:
            for (int q = 0; q < 2; q++) {
                int f = L->from[q];
                if (!wants_grad(t, f))
                    continue;
                float *dst = dx_target(t, f, k, 0);
                memcpy(dst, dy, (size_t)n * l->size * sizeof *dst);
                dx_commit(t, f, k, dst);
            }
            continue;
        default: break;
        }
        if (dx)
            dx_commit(t, from, k, dx);
    }
}

static bool learns(const os_param *p)
{
    return p && p->grad && !p->frozen;
}

static bool layer_learns(const tlayer *l)
{
    return learns(l->w) || learns(l->b) || learns(l->bn[0]) || learns(l->bn[1]) ||
           learns(l->thr) || learns(l->leak);
}

void os_tnet_backward(os_tnet *t, const float *dlogits, float surrogate)
{
    t->surrogate = surrogate;
    int nl = os_net_count(t->net);
    t->first_learner = nl;
    for (int i = 0; i < nl && t->first_learner == nl; i++)
        if (layer_learns(&t->L[i]))
            t->first_learner = i;
    size_t k = (size_t)t->n * t->classes;
    for (int i = 0; i < nl - 1; i++)
        if (!t->L[i].exclusive)
            memset(t->L[i].d, 0, (size_t)t->L[i].slots * stride_of(t, &t->L[i]) * sizeof(float));
    tlayer *last = &t->L[nl - 1];
    memset(last->d, 0, (size_t)last->slots * stride_of(t, last) * sizeof(float));
    for (int s = 0; s < t->T; s++)
        os_add_inplace(dslot(t, nl - 1, s), dlogits, k);
    for (int i = nl - 1; i >= t->first_learner; i--)
        backward_layer(t, i);
}

const os_net *os_tnet_net(const os_tnet *t)
{
    return t->net;
}

int os_tnet_timesteps(const os_tnet *t)
{
    return t->T;
}

int os_tnet_max_batch(const os_tnet *t)
{
    return t->max_batch;
}

int os_tnet_lif_count(const os_tnet *t)
{
    return os_net_lif_count(t->net);
}

static int nth_layer(const os_tnet *t, int k, bool relu_too)
{
    for (int i = 0, seen = 0; i < os_net_count(t->net); i++) {
        os_op op = os_net_layer(t->net, i)->op;
        if ((op == OS_OP_LIF || (relu_too && op == OS_OP_RELU)) && seen++ == k)
            return i;
    }
    return -1;
}

void os_tnet_spikes(const os_tnet *t, int k, const char **name, uint64_t *spikes,
                    uint64_t *neuron_steps)
{
    int i = nth_layer(t, k, false);
    *spikes = 0, *neuron_steps = 0, *name = "";
    if (i < 0)
        return;
    const tlayer *l = &t->L[i];
    *name = os_net_layer(t->net, i)->name;
    size_t n = (size_t)t->n * l->size;
    for (int s = 0; s < t->T; s++) {
        const float *x = slot(t, i, s);
        for (size_t j = 0; j < n; j++)
            *spikes += x[j] > 0.0f;
    }
    *neuron_steps = (uint64_t)n * t->T;
}

int os_tnet_act_count(const os_tnet *t)
{
    int k = 0;
    for (int i = 0; i < os_net_count(t->net); i++) {
        os_op op = os_net_layer(t->net, i)->op;
        k += op == OS_OP_LIF || op == OS_OP_RELU;
    }
    return k;
}

const float *os_tnet_act_input(const os_tnet *t, int k, int step, size_t *count,
                               const char **name)
{
    int i = nth_layer(t, k, true);
    if (i < 0)
        return NULL;
    const os_layer *L = os_net_layer(t->net, i);
    *name = L->name;
    *count = (size_t)t->n * t->L[i].size;
    return slot(t, L->from[0], step);
}
