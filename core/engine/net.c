/* net.c - build the layer graph of a model file against its tensors: infer and check shapes,
 * fold BatchNorm. The layer list itself is parsed by graph.c. */
#include "onespike/net.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "layers.h"
#include "onespike/shape.h"

enum {
    NET_MAX_ELEMS = 1 << 28, /* values in one layer's output */
};

struct os_net {
    os_layer *layers;
    int n;
    float **owned; /* folded weights and BN tables, freed with the net */
    int n_owned;
};

static const char *const op_names[OS_OP_COUNT] = {
    [OS_OP_CONV] = "conv",       [OS_OP_BN] = "bn",           [OS_OP_RELU] = "relu",
    [OS_OP_LIF] = "lif",         [OS_OP_MAXPOOL] = "maxpool", [OS_OP_AVGPOOL] = "avgpool",
    [OS_OP_GAP] = "gap",         [OS_OP_LINEAR] = "linear",   [OS_OP_ADD] = "add",
};

const char *os_op_name(os_op op)
{
    return (unsigned)op < OS_OP_COUNT ? op_names[op] : "?";
}

/* Everything a layer builder needs to report an error in context. */
typedef struct {
    const char *label;
    os_tensor_find_fn find;
    const void *find_ctx;
    os_net *net;
    int index;
    const os_layer_spec *spec;
} ctx;

#define LAYER_FAIL(cx, st, fmt, ...)                                                          \
    os_fail(st, "%s: layer %d \"%s\": " fmt, (cx)->label, (cx)->index,                         \
            (cx)->net->layers[(cx)->index].name, __VA_ARGS__)

static float *net_alloc(os_net *net, size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p)
        return NULL;
    float **grown = realloc(net->owned, (size_t)(net->n_owned + 1) * sizeof *grown);
    if (!grown) {
        free(p);
        return NULL;
    }
    net->owned = grown;
    net->owned[net->n_owned++] = p;
    return p;
}

/* Look up the tensor the layer binds in role r and check it has exactly the given shape. */
static os_status get_tensor(const ctx *cx, os_tensor_role r, bool required, int ndim,
                            const int64_t *shape, const float **out, size_t *params)
{
    const char *key = os_tensor_role_name(r), *name = cx->spec->tensor[r];
    *out = NULL;
    if (!name) {
        if (required)
            return LAYER_FAIL(cx, OS_EARCH, "missing field \"%s\"", key);
        return OS_OK;
    }
    const os_tensor_view *t = cx->find(cx->find_ctx, name);
    if (!t)
        return LAYER_FAIL(cx, OS_EARCH, "%s tensor \"%s\" is not in the file", key, name);
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == shape[i];
    if (!ok) {
        char have[128], want[128];
        os_shape_format(have, sizeof have, t->shape, t->ndim);
        os_shape_format(want, sizeof want, shape, ndim);
        return os_fail(OS_ESHAPE, "%s: tensor \"%s\" shape %s, architecture wants %s (layer \"%s\")",
                       cx->label, name, have, want, cx->net->layers[cx->index].name);
    }
    *out = t->data;
    *params += t->count;
    return OS_OK;
}

static void in_shape(const os_net *net, int from, const int input[3], int *c, int *h, int *w)
{
    if (from == OS_NET_INPUT) {
        *c = input[0], *h = input[1], *w = input[2];
        return;
    }
    *c = net->layers[from].c, *h = net->layers[from].h, *w = net->layers[from].w;
}

static os_status build_conv(const ctx *cx, os_layer *L, int c, int h, int w)
{
    os_status st;
    os_conv_shape s = {c, h, w, L->out, L->kh, L->kw, L->stride, L->pad};
    if (h + 2 * L->pad < L->kh || w + 2 * L->pad < L->kw)
        return LAYER_FAIL(cx, OS_EARCH, "kernel %dx%d larger than padded input %dx%d", L->kh, L->kw,
                          h + 2 * L->pad, w + 2 * L->pad);
    /* Each factor is bounded by the graph (65536), their product is not: a crafted model would
     * overflow int here, before the weight tensor's shape is checked. */
    int64_t fan_in = (int64_t)c * L->kh * L->kw;
    if (fan_in > INT_MAX)
        return LAYER_FAIL(cx, OS_EARCH, "kernel %dx%d over %d channels: fan-in %lld is too large",
                          L->kh, L->kw, c, (long long)fan_in);
    L->c = L->out, L->h = os_conv_out_h(&s), L->w = os_conv_out_w(&s);
    L->fan_in = (int)fan_in;
    int64_t wshape[4] = {L->out, c, L->kh, L->kw}, bshape[1] = {L->out};
    if ((st = get_tensor(cx, OS_TENSOR_WEIGHT, true, 4, wshape, &L->weight, &L->params)) ||
        (st = get_tensor(cx, OS_TENSOR_BIAS, false, 1, bshape, &L->bias, &L->params)))
        return st;
    return OS_OK;
}

/* BatchNorm at inference is y = x*scale + shift; when its input is a conv that feeds nothing
 * else, the affine goes into a copy of the conv's weights and the bn costs nothing. */
static os_status build_bn(const ctx *cx, os_layer *L, int c, int h, int w)
{
    os_net *net = cx->net;
    const float *g, *b, *mean, *var;
    int64_t shape[1] = {c};
    os_status st;
    if ((st = get_tensor(cx, OS_TENSOR_WEIGHT, true, 1, shape, &g, &L->params)) ||
        (st = get_tensor(cx, OS_TENSOR_BIAS, true, 1, shape, &b, &L->params)) ||
        (st = get_tensor(cx, OS_TENSOR_MEAN, true, 1, shape, &mean, &L->params)) ||
        (st = get_tensor(cx, OS_TENSOR_VAR, true, 1, shape, &var, &L->params)))
        return st;
    double eps = cx->spec->eps;
    float *scale = net_alloc(net, (size_t)c), *shift = net_alloc(net, (size_t)c);
    if (!scale || !shift)
        return os_fail(OS_ENOMEM, "%s: no memory for BatchNorm tables", cx->label);
    for (int i = 0; i < c; i++) {
        if (!(var[i] + eps > 0))
            return LAYER_FAIL(cx, OS_EARCH, "variance[%d] = %g is not positive", i, var[i]);
        scale[i] = (float)(g[i] / sqrt((double)var[i] + eps));
        shift[i] = b[i] - mean[i] * scale[i];
    }
    L->c = c, L->h = h, L->w = w;
    L->scale = scale, L->shift = shift;
    L->bn[0] = g, L->bn[1] = b, L->bn[2] = mean, L->bn[3] = var;
    L->eps = (float)eps;
    return OS_OK;
}

static os_status build_pool(const ctx *cx, os_layer *L, int c, int h, int w)
{
    if (h + 2 * L->pad < L->kh || w + 2 * L->pad < L->kw)
        return LAYER_FAIL(cx, OS_EARCH, "window %d larger than input %dx%d", L->kh, h, w);
    L->c = c;
    L->h = os_pool_out(h, L->kh, L->stride, L->pad);
    L->w = os_pool_out(w, L->kw, L->stride, L->pad);
    return OS_OK;
}

static os_status build_linear(const ctx *cx, os_layer *L, int c, int h, int w)
{
    os_status st;
    int64_t fan_in = (int64_t)c * h * w;
    if (fan_in > INT_MAX)
        return LAYER_FAIL(cx, OS_EARCH, "input %dx%dx%d: %lld features is too many", c, h, w,
                          (long long)fan_in);
    int64_t wshape[2] = {L->out, fan_in}, bshape[1] = {L->out};
    if ((st = get_tensor(cx, OS_TENSOR_WEIGHT, true, 2, wshape, &L->weight, &L->params)) ||
        (st = get_tensor(cx, OS_TENSOR_BIAS, false, 1, bshape, &L->bias, &L->params)))
        return st;
    L->c = L->out, L->h = 1, L->w = 1;
    L->fan_in = (int)fan_in;
    return OS_OK;
}

static os_status build_op(const ctx *cx, os_layer *L, const int input[3], int c, int h, int w)
{
    switch (L->op) {
    case OS_OP_CONV: return build_conv(cx, L, c, h, w);
    case OS_OP_BN: return build_bn(cx, L, c, h, w);
    case OS_OP_RELU: L->c = c, L->h = h, L->w = w; return OS_OK;
    case OS_OP_LIF:
        L->is_static = false;
        L->c = c, L->h = h, L->w = w;
        return OS_OK;
    case OS_OP_MAXPOOL:
    case OS_OP_AVGPOOL: return build_pool(cx, L, c, h, w);
    case OS_OP_GAP: L->c = c, L->h = 1, L->w = 1; return OS_OK;
    case OS_OP_LINEAR: return build_linear(cx, L, c, h, w);
    case OS_OP_ADD: {
        int c2, h2, w2;
        in_shape(cx->net, L->from[1], input, &c2, &h2, &w2);
        if (c != c2 || h != h2 || w != w2)
            return LAYER_FAIL(cx, OS_ESHAPE, "adds [%d,%d,%d] and [%d,%d,%d]", c, h, w, c2, h2, w2);
        L->c = c, L->h = h, L->w = w;
        return OS_OK;
    }
    default: break;
    }
    return LAYER_FAIL(cx, OS_EARCH, "%s", "unhandled op");
}

/* The described fields were checked by os_graph_from_json; what is left needs shapes. */
static os_status build_layer(const ctx *cx, const int input[3])
{
    os_net *net = cx->net;
    const os_layer_spec *S = cx->spec;
    os_layer *L = &net->layers[cx->index];
    snprintf(L->name, sizeof L->name, "%s", S->name);
    L->op = S->op;
    L->n_from = S->n_from;
    L->from[0] = S->from[0], L->from[1] = S->n_from > 1 ? S->from[1] : 0;
    L->unit = S->unit;
    L->out = S->out, L->kh = S->kh, L->kw = S->kw, L->stride = S->stride, L->pad = S->pad;
    L->threshold = (float)S->threshold, L->leak = (float)S->leak;
    int c, h, w;
    in_shape(net, L->from[0], input, &c, &h, &w);
    L->is_static = true;
    for (int i = 0; i < L->n_from; i++)
        if (L->from[i] != OS_NET_INPUT && !net->layers[L->from[i]].is_static)
            L->is_static = false;
    os_status st;
    if ((st = build_op(cx, L, input, c, h, w)))
        return st;
    if ((int64_t)L->c * L->h * L->w > NET_MAX_ELEMS)
        return LAYER_FAIL(cx, OS_EARCH, "output [%d,%d,%d] exceeds %d values", L->c, L->h, L->w,
                          NET_MAX_ELEMS);
    return OS_OK;
}

static int consumers(const os_net *net, int idx)
{
    int n = 0;
    for (int i = idx + 1; i < net->n; i++)
        for (int k = 0; k < net->layers[i].n_from; k++)
            n += net->layers[i].from[k] == idx;
    return n;
}

static os_status fold_batchnorms(os_net *net, const char *label)
{
    for (int i = 0; i < net->n; i++) {
        os_layer *bn = &net->layers[i];
        if (bn->op != OS_OP_BN || bn->from[0] == OS_NET_INPUT)
            continue;
        os_layer *cv = &net->layers[bn->from[0]];
        if (cv->op != OS_OP_CONV || consumers(net, bn->from[0]) != 1)
            continue;
        size_t k = (size_t)cv->out, fan = (size_t)cv->fan_in;
        float *w = net_alloc(net, k * fan), *b = net_alloc(net, k);
        if (!w || !b)
            return os_fail(OS_ENOMEM, "%s: no memory to fold BatchNorm", label);
        for (size_t o = 0; o < k; o++) {
            for (size_t j = 0; j < fan; j++)
                w[o * fan + j] = cv->weight[o * fan + j] * bn->scale[o];
            b[o] = (cv->bias ? cv->bias[o] : 0.0f) * bn->scale[o] + bn->shift[o];
        }
        cv->weight = w, cv->bias = b;
        bn->folded = true;
    }
    return OS_OK;
}

static const os_tensor_view *find_in_file(const void *file, const char *name)
{
    return os_st_find(file, name);
}

os_status os_net_build(const json_t *layers, int in_c, int in_h, int in_w, int n_classes,
                       const os_st_file *tensors, const char *label, os_net **out)
{
    os_graph *g = NULL;
    *out = NULL;
    os_status st = os_graph_from_json(layers, label, &g);
    if (!st)
        st = os_net_build_ex(g, in_c, in_h, in_w, n_classes, find_in_file, tensors, true, label,
                             out);
    os_graph_destroy(g);
    return st;
}

os_status os_net_build_ex(const os_graph *g, int in_c, int in_h, int in_w, int n_classes,
                          os_tensor_find_fn find, const void *find_ctx, bool fold_bn,
                          const char *label, os_net **out)
{
    *out = NULL;
    int n = os_graph_count(g);
    if (n == 0)
        return os_fail(OS_EARCH, "%s: \"layers\" must be a non-empty array", label);
    os_status st = OS_OK;
    os_net *net = calloc(1, sizeof *net);
    if (!net || !(net->layers = calloc((size_t)n, sizeof *net->layers))) {
        st = os_fail(OS_ENOMEM, "%s: no memory for %d layers", label, n);
        goto out;
    }
    net->n = n;
    const int input[3] = {in_c, in_h, in_w};
    for (int i = 0; i < n; i++) {
        ctx cx = {label, find, find_ctx, net, i, os_graph_layer(g, i)};
        if ((st = build_layer(&cx, input)))
            goto out;
    }
    const os_layer *last = &net->layers[n - 1];
    if (last->op != OS_OP_LINEAR || last->out != n_classes) {
        st = os_fail(OS_EARCH, "%s: last layer \"%s\" must be linear with %d outputs (one per label)",
                     label, last->name, n_classes);
        goto out;
    }
    if (fold_bn)
        st = fold_batchnorms(net, label);
out:
    if (st) {
        os_net_destroy(net);
        return st;
    }
    *out = net;
    return OS_OK;
}

void os_net_destroy(os_net *net)
{
    if (!net)
        return;
    for (int i = 0; i < net->n_owned; i++)
        free(net->owned[i]);
    free(net->owned);
    free(net->layers);
    free(net);
}

int os_net_count(const os_net *net)
{
    return net->n;
}

const os_layer *os_net_layer(const os_net *net, int i)
{
    return &net->layers[i];
}

size_t os_net_params(const os_net *net)
{
    size_t p = 0;
    for (int i = 0; i < net->n; i++)
        p += net->layers[i].params;
    return p;
}

int os_net_units(const os_net *net)
{
    int u = 0;
    for (int i = 0; i < net->n; i++)
        if (net->layers[i].unit > u)
            u = net->layers[i].unit;
    return u;
}

int os_net_lif_count(const os_net *net)
{
    int k = 0;
    for (int i = 0; i < net->n; i++)
        k += net->layers[i].op == OS_OP_LIF;
    return k;
}
