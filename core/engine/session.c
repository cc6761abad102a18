/* session.c - run a model's layer graph on one image over T time steps. */
#include "onespike/session.h"

#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "spikeconv.h"

struct os_session {
    const os_model *model;
    const os_net *net;
    int T, n_layers;
    os_decoder *dec;
    size_t max_pixels;
    float *input;
    float **out;      /* per layer output (aliases the input's for a folded bn) */
    float **mem;      /* per layer membrane, LIF layers only */
    float *col;       /* im2col scratch */
    const os_spike_plan *plan; /* channels-last path with event-driven convs of spikes;
                                  NULL: the dense planar kernels throughout */
    float *flat;               /* a flattening layer's input, back in planar order */
    uint16_t **sidx, **scnt;   /* per layer feeding such a conv: its active inputs */
    size_t *active;            /* per such layer: how many, this step */
    uint32_t *rows;            /* os_spike_conv scratch */
    float *logits;
    bool count_spikes;
    uint64_t *spikes; /* per layer */
    uint64_t runs;
    void **owned;
    int n_owned;
};

static void *sess_alloc_bytes(os_session *s, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        return NULL;
    s->owned[s->n_owned++] = p;
    return p;
}

static float *sess_alloc(os_session *s, size_t n)
{
    return sess_alloc_bytes(s, n, sizeof(float));
}

static size_t layer_size(const os_layer *L)
{
    return (size_t)L->c * (size_t)L->h * (size_t)L->w;
}

static void shape_of(const os_session *s, int from, int *c, int *h, int *w)
{
    if (from == OS_NET_INPUT) {
        os_model_input(s->model, c, h, w);
        return;
    }
    const os_layer *L = os_net_layer(s->net, from);
    *c = L->c, *h = L->h, *w = L->w;
}

/* Index buffers for every binary layer an event-driven conv reads, the convs' row scratch, and
 * the planar copy a flattening linear layer reads. */
static os_status alloc_spike_index(os_session *s)
{
    size_t rows = 0, flat = 0;
    for (int i = 0; i < s->n_layers; i++) {
        const os_layer *L = os_net_layer(s->net, i);
        const int from = L->from[0];
        if (L->op == OS_OP_LINEAR && from != OS_NET_INPUT) {
            const os_layer *in = os_net_layer(s->net, from);
            if (in->h * in->w > 1 && layer_size(in) > flat)
                flat = layer_size(in);
        }
        if (!os_spike_plan_weights(s->plan, i) || s->sidx[from])
            continue;
        const os_layer *in = os_net_layer(s->net, from);
        size_t need = (size_t)L->kh * (size_t)L->kw * (size_t)in->c;
        rows = need > rows ? need : rows;
        if (!(s->sidx[from] = sess_alloc_bytes(s, layer_size(in), sizeof(uint16_t))) ||
            !(s->scnt[from] = sess_alloc_bytes(s, (size_t)in->h * in->w, sizeof(uint16_t))))
            return os_fail(OS_ENOMEM, "no memory for a session of model %s",
                           os_model_name(s->model));
    }
    if ((rows && !(s->rows = sess_alloc_bytes(s, rows, sizeof(uint32_t)))) ||
        (flat && !(s->flat = sess_alloc(s, flat))))
        return os_fail(OS_ENOMEM, "no memory for a session of model %s", os_model_name(s->model));
    return OS_OK;
}

os_status os_session_create(const os_model *m, const os_session_opts *opts, os_session **out)
{
    os_session_opts o = opts ? *opts : (os_session_opts){0};
    *out = NULL;
    if (o.timesteps < 0 || o.timesteps > OS_MODEL_MAX_TIMESTEPS)
        return os_fail(OS_EINVAL, "timesteps %d out of range 0..%d", o.timesteps,
                       OS_MODEL_MAX_TIMESTEPS);
    const os_net *net = os_model_net(m);
    int n = os_net_count(net);
    os_status st = OS_OK;
    os_session *s = calloc(1, sizeof *s);
    if (!s)
        return os_fail(OS_ENOMEM, "no memory for a session");
    s->model = m, s->net = net, s->n_layers = n;
    s->T = o.timesteps ? o.timesteps : os_model_timesteps(m);
    s->max_pixels = o.max_pixels ? o.max_pixels : OS_DEFAULT_MAX_PIXELS;
    s->count_spikes = o.count_spikes;
    s->out = calloc((size_t)n, sizeof *s->out);
    s->mem = calloc((size_t)n, sizeof *s->mem);
    s->spikes = calloc((size_t)n, sizeof *s->spikes);
    /* per layer at most: output, membrane, spike index and counts; then input, logits, col,
     * rows, flat */
    s->owned = calloc((size_t)(4 * n + 5), sizeof *s->owned);
    s->sidx = calloc((size_t)n, sizeof *s->sidx);
    s->scnt = calloc((size_t)n, sizeof *s->scnt);
    s->active = calloc((size_t)n, sizeof *s->active);
    if (!s->out || !s->mem || !s->spikes || !s->owned || !s->sidx || !s->scnt || !s->active)
        goto nomem;
    const os_spike_plan *plan = os_model_spike_plan(m);
    s->plan = !o.dense && plan && os_spike_plan_complete(plan) ? plan : NULL;
    int c, h, w;
    os_model_input(m, &c, &h, &w);
    if (!(s->input = sess_alloc(s, (size_t)c * h * w)) ||
        !(s->logits = sess_alloc(s, (size_t)os_model_classes(m))))
        goto nomem;
    size_t col = 0;
    for (int i = 0; i < n; i++) {
        const os_layer *L = os_net_layer(net, i);
        if (L->op == OS_OP_BN && L->folded) {
            s->out[i] = s->out[L->from[0]];
            continue;
        }
        if (!(s->out[i] = sess_alloc(s, layer_size(L))))
            goto nomem;
        if (L->op == OS_OP_LIF && !(s->mem[i] = sess_alloc(s, layer_size(L))))
            goto nomem;
        if (L->op == OS_OP_CONV) {
            int ic, ih, iw;
            shape_of(s, L->from[0], &ic, &ih, &iw);
            os_conv_shape cs = {ic, ih, iw, L->out, L->kh, L->kw, L->stride, L->pad};
            size_t need = os_conv_col_floats(&cs);
            if (need > col)
                col = need;
        }
    }
    if (col && !(s->col = sess_alloc(s, col)))
        goto nomem;
    if (s->plan && (st = alloc_spike_index(s)))
        goto out;
    if ((st = os_decoder_create(&s->dec)))
        goto out;
    goto out;
nomem:
    st = os_fail(OS_ENOMEM, "no memory for a session of model %s", os_model_name(m));
out:
    if (st) {
        os_session_destroy(s);
        return st;
    }
    *out = s;
    return OS_OK;
}

void os_session_destroy(os_session *s)
{
    if (!s)
        return;
    os_decoder_destroy(s->dec);
    for (int i = 0; i < s->n_owned; i++)
        free(s->owned[i]);
    free(s->owned);
    free(s->sidx);
    free(s->scnt);
    free(s->active);
    free(s->spikes);
    free(s->mem);
    free(s->out);
    free(s);
}

float *os_session_input(os_session *s)
{
    return s->input;
}

size_t os_session_input_floats(const os_session *s)
{
    int c, h, w;
    os_model_input(s->model, &c, &h, &w);
    return (size_t)c * h * w;
}

int os_session_timesteps(const os_session *s)
{
    return s->T;
}

os_status os_session_load_jpeg(os_session *s, const void *jpeg, size_t len)
{
    int c, h, w;
    os_model_input(s->model, &c, &h, &w);
    os_resize_policy policy = os_model_resize(s->model);
    int min_w = w, min_h = h;
    if (policy == OS_RESIZE_CENTER_CROP)
        min_w = min_h = w > h ? w : h;
    os_rgb_image img;
    os_status st = os_decoder_decode(s->dec, jpeg, len, s->max_pixels, min_w, min_h, &img);
    if (st)
        return st;
    os_image_to_tensor(&img, w, h, policy, os_model_mean(s->model), os_model_std(s->model),
                       s->input);
    return OS_OK;
}

static const float *src(const os_session *s, int from)
{
    return from == OS_NET_INPUT ? s->input : s->out[from];
}

static void run_layer(os_session *s, int i)
{
    const os_layer *L = os_net_layer(s->net, i);
    const float *x = src(s, L->from[0]);
    float *y = s->out[i];
    size_t n = layer_size(L);
    int c, h, w;
    shape_of(s, L->from[0], &c, &h, &w);
    switch (L->op) {
    case OS_OP_CONV: {
        os_conv_shape cs = {c, h, w, L->out, L->kh, L->kw, L->stride, L->pad};
        os_conv2d(&cs, x, L->weight, L->bias, y, s->col);
        break;
    }
    case OS_OP_BN:
        if (L->folded)
            break;
        memcpy(y, x, n * sizeof *y);
        os_channel_affine(y, L->c, (size_t)L->h * L->w, L->scale, L->shift);
        break;
    case OS_OP_RELU:
        memcpy(y, x, n * sizeof *y);
        os_relu(y, n);
        break;
    case OS_OP_LIF:
        os_lif_step(s->mem[i], x, n, L->threshold, L->leak, y);
        if (s->count_spikes) {
            uint64_t k = 0;
            for (size_t j = 0; j < n; j++)
                k += y[j] > 0.0f;
            s->spikes[i] += k;
        }
        break;
    case OS_OP_MAXPOOL: os_maxpool2d(x, c, h, w, L->kh, L->stride, L->pad, y); break;
    case OS_OP_AVGPOOL: os_avgpool2d(x, c, h, w, L->kh, L->stride, L->pad, y); break;
    case OS_OP_GAP: os_global_avgpool(x, c, (size_t)h * w, y); break;
    case OS_OP_LINEAR: os_linear(x, L->fan_in, L->out, L->weight, L->bias, y); break;
    case OS_OP_ADD:
        os_add(x, src(s, L->from[1]), n, y);
        break;
    default: break;
    }
}

/* The channels-last path (s->plan set): layers whose kernels depend on the layout get their
 * _hwc forms, convolutions of spikes run event-driven, the rest is run_layer's. */
static void run_layer_hwc(os_session *s, int i)
{
    const os_layer *L = os_net_layer(s->net, i);
    const int from = L->from[0];
    const float *x = src(s, from);
    float *y = s->out[i];
    int c, h, w;
    shape_of(s, from, &c, &h, &w);
    switch (L->op) {
    case OS_OP_CONV: {
        os_conv_shape cs = {c, h, w, L->out, L->kh, L->kw, L->stride, L->pad};
        const float *wt = os_spike_plan_weights(s->plan, i);
        if (wt && (double)s->active[from] <= OS_SPIKE_DENSE_RATE * (double)(c * h * w))
            os_spike_conv(&cs, s->sidx[from], s->scnt[from], wt, L->bias, y, s->rows);
        else if (wt) /* most inputs fired: the dense product is less work */
            os_conv2d_hwc_wt(&cs, x, wt, L->bias, y, s->col);
        else /* the image: planar in, channels-last out */
            os_conv2d_hwc(&cs, x, L->weight, L->bias, y, s->col);
        break;
    }
    case OS_OP_MAXPOOL: os_maxpool2d_hwc(x, c, h, w, L->kh, L->stride, L->pad, y); break;
    case OS_OP_GAP: os_global_avgpool_hwc(x, c, (size_t)h * w, y); break;
    case OS_OP_LINEAR:
        if (from != OS_NET_INPUT && h * w > 1) {
            os_hwc_to_chw(x, c, (size_t)h * w, s->flat);
            x = s->flat;
        }
        os_linear(x, L->fan_in, L->out, L->weight, L->bias, y);
        break;
    default: run_layer(s, i); break; /* elementwise, or a folded bn */
    }
    if (s->sidx[i])
        s->active[i] = os_spike_index(y, L->c, L->h * L->w, s->sidx[i], s->scnt[i]);
}

void os_session_run(os_session *s, float *probs, float *logits)
{
    int k = os_model_classes(s->model);
    memset(s->logits, 0, (size_t)k * sizeof *s->logits);
    for (int i = 0; i < s->n_layers; i++)
        if (s->mem[i])
            memset(s->mem[i], 0, layer_size(os_net_layer(s->net, i)) * sizeof(float));
    for (int t = 0; t < s->T; t++) {
        for (int i = 0; i < s->n_layers; i++)
            if (t == 0 || !os_net_layer(s->net, i)->is_static) {
                if (s->plan)
                    run_layer_hwc(s, i);
                else
                    run_layer(s, i);
            }
        /* The last layer is non-spiking: its currents summed over the steps are the logits. */
        os_add_inplace(s->logits, s->out[s->n_layers - 1], (size_t)k);
    }
    s->runs++;
    if (logits)
        memcpy(logits, s->logits, (size_t)k * sizeof *logits);
    os_softmax(s->logits, k, probs);
}

os_status os_session_classify(os_session *s, const void *jpeg, size_t len, float *probs)
{
    os_status st = os_session_load_jpeg(s, jpeg, len);
    if (st)
        return st;
    os_session_run(s, probs, NULL);
    return OS_OK;
}

bool os_session_spikes(const os_session *s, int k, uint64_t *spikes, uint64_t *neuron_steps)
{
    for (int i = 0, seen = 0; i < s->n_layers; i++) {
        const os_layer *L = os_net_layer(s->net, i);
        if (L->op != OS_OP_LIF)
            continue;
        if (seen++ == k) {
            *spikes = s->spikes[i];
            *neuron_steps = s->runs * (uint64_t)s->T * layer_size(L);
            return true;
        }
    }
    return false;
}

void os_session_reset_spikes(os_session *s)
{
    memset(s->spikes, 0, (size_t)s->n_layers * sizeof *s->spikes);
    s->runs = 0;
}

void os_topk(const float *p, int n, int k, int *idx)
{
    if (k > n)
        k = n;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            bool taken = false;
            for (int q = 0; q < j && !taken; q++)
                taken = idx[q] == i;
            if (!taken && (best < 0 || p[i] > p[best]))
                best = i;
        }
        idx[j] = best;
    }
}
