/* session.c - one inference context: the buffers of a model's net, the backend chosen for it
 * (backend.h), the JPEG front end; runs the net through the interpreter (exec.h). */
#include "onespike/session.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "isa.h"
#include "layers.h"

struct os_session {
    const os_model *model;
    const os_net *net;
    int T, n_layers;
    os_decoder *dec;
    os_raster_buf *rbuf; /* pixels of rasters (TIFF, PNG, JPEG 2000) */
    size_t max_pixels;
    const os_backend *backend; /* chosen once, here: dense, or event where the plan allows */
    os_infer_ctx cx;           /* the backend's buffers and state */
    float *logits;
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

/* The layer whose buffer layer i writes: a folded bn writes none (its output is its conv's). */
static int buffer_owner(const os_net *net, const int *owner, int i)
{
    const os_layer *L = os_net_layer(net, i);
    return L->op == OS_OP_BN && L->folded ? owner[L->from[0]] : i;
}

/* Every layer's output buffer, for nb images. A buffer is handed to a later layer once every
 * layer that reads its holder has run (at a step a layer reads only that step's inputs:
 * exec.h), so one pass's activations live in a few buffers that stay in cache rather than in
 * one cold buffer per layer. The outputs of static layers (kept for the later steps) and of the
 * last layer (read into the logits) are never handed on, and a static layer takes no buffer
 * another layer gave up. A layer never gets a buffer one of its own inputs is still in. */
static os_status alloc_outputs(os_session *s, size_t nb)
{
    const os_net *net = s->net;
    const int n = s->n_layers;
    int *owner = malloc((size_t)n * sizeof *owner), *last = malloc((size_t)n * sizeof *last);
    int *slot = malloc((size_t)n * sizeof *slot);
    int *held_until = malloc((size_t)n * sizeof *held_until);
    size_t *cap = calloc((size_t)n, sizeof *cap);
    float **buf = calloc((size_t)n, sizeof *buf);
    os_status st = OS_OK;
    if (!owner || !last || !slot || !held_until || !cap || !buf) {
        st = os_fail(OS_ENOMEM, "no memory for a session of model %s", os_model_name(s->model));
        goto done;
    }
    for (int i = 0; i < n; i++) {
        owner[i] = buffer_owner(net, owner, i);
        last[i] = i;
    }
    for (int i = 0; i < n; i++) {
        const os_layer *L = os_net_layer(net, i);
        for (int k = 0; k < L->n_from; k++)
            if (L->from[k] != OS_NET_INPUT && last[owner[L->from[k]]] < i)
                last[owner[L->from[k]]] = i;
        if (L->is_static || i == n - 1)
            last[owner[i]] = n; /* past every layer: never handed on */
    }
    int slots = 0;
    for (int i = 0; i < n; i++) {
        if (owner[i] != i)
            continue;
        const os_layer *L = os_net_layer(net, i);
        const size_t need = nb * layer_size(L);
        int pick = -1; /* a free buffer: the smallest that fits, else the largest (it grows) */
        /* A static layer keeps its own: at later steps it does not run again, but the layers
         * whose buffer it would take do (a shortcut conv of the input listed after a LIF layer
         * would read its output overwritten at T > 1; test_session holds it). */
        for (int j = 0; j < slots && !L->is_static; j++) {
            if (held_until[j] >= i)
                continue;
            if (pick < 0 || (cap[j] >= need ? cap[pick] < need || cap[j] < cap[pick]
                                            : cap[pick] < need && cap[j] > cap[pick]))
                pick = j;
        }
        if (pick < 0)
            pick = slots++;
        slot[i] = pick;
        held_until[pick] = last[i];
        if (cap[pick] < need)
            cap[pick] = need;
    }
    for (int j = 0; j < slots; j++)
        if (!(buf[j] = sess_alloc(s, cap[j]))) {
            st = os_fail(OS_ENOMEM, "no memory for a session of model %s",
                         os_model_name(s->model));
            goto done;
        }
    for (int i = 0; i < n; i++)
        s->cx.out[i] = buf[slot[owner[i]]];
done:
    free(owner), free(last), free(slot), free(held_until), free(cap), free(buf);
    return st;
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
        if (!os_spike_plan_event(s->cx.plan, i))
            continue;
        /* every conv's row scratch; one index per input, whichever convs read it */
        const os_layer *in = os_net_layer(s->net, from);
        const os_conv_shape cs = {in->c, in->h, in->w, L->out, L->kh, L->kw, L->stride, L->pad};
        const size_t need = os_spike_rows_scratch(&cs), nb = (size_t)s->cx.max_batch;
        rows = need > rows ? need : rows;
        if (s->cx.sidx[from])
            continue;
        if (!(s->cx.sidx[from] = sess_alloc_bytes(s, nb * layer_size(in) + OS_SPIKE_INDEX_SLACK,
                                                  sizeof(uint16_t))) ||
            !(s->cx.scnt[from] = sess_alloc_bytes(s, nb * in->h * in->w, sizeof(uint16_t))))
            return os_fail(OS_ENOMEM, "no memory for a session of model %s",
                           os_model_name(s->model));
    }
    /* A LIF layer whose every reader is an event-driven conv need not write its spikes at T = 1
     * (its one step makes the lists in the same pass): the convs read the lists */
    for (int i = 0; i < s->n_layers; i++)
        s->cx.index_only[i] = s->T == 1 && s->cx.sidx[i] &&
                              os_net_layer(s->net, i)->op == OS_OP_LIF && i < s->n_layers - 1;
    for (int k = 0; k < s->n_layers; k++) {
        const os_layer *L = os_net_layer(s->net, k);
        for (int f = 0; f < L->n_from; f++)
            if (L->from[f] != OS_NET_INPUT && (f > 0 || !os_spike_plan_event(s->cx.plan, k)))
                s->cx.index_only[L->from[f]] = false;
    }
    if ((rows && !(s->cx.rows = sess_alloc_bytes(s, rows, sizeof(uint16_t)))) ||
        (flat && !(s->cx.flat = sess_alloc(s, flat))))
        return os_fail(OS_ENOMEM, "no memory for a session of model %s", os_model_name(s->model));
    return OS_OK;
}

/* The instruction set o or the environment asks for, or the widest this CPU runs. */
static os_status choose_isa(const os_session_opts *o, os_isa *isa)
{
    const bool given = o->isa && *o->isa;
    const char *name = given ? o->isa : getenv(OS_SESSION_ISA_ENV);
    const char *from = given ? "instruction set" : OS_SESSION_ISA_ENV;
    *isa = os_isa_best();
    if (!name || !*name || strcmp(name, "auto") == 0)
        return OS_OK;
    if (!os_isa_parse(name, isa))
        return os_fail(OS_EINVAL, "%s \"%s\" is not one of scalar, avx2, avx512, auto", from, name);
    if (!os_spike_kernels_for(*isa))
        return os_fail(OS_EINVAL,
                       "%s \"%s\": this CPU (or build) cannot run it; the widest it "
                       "runs is %s",
                       from, name, os_isa_name(os_isa_best()));
    return OS_OK;
}

/* The backend and kernel set for m with o: event where the plan allows and o does not ask for
 * dense. */
static os_status choose_path(const os_model *m, const os_session_opts *o, const os_backend **be,
                             const os_spike_kernels **kernels)
{
    os_isa isa;
    os_status st = choose_isa(o, &isa);
    if (st)
        return st;
    const os_spike_plan *plan = os_model_spike_plan(m);
    const bool event = !o->dense && plan && os_spike_plan_complete(plan);
    *be = event ? &os_backend_event : &os_backend_dense;
    *kernels = event ? os_spike_kernels_for(isa) : NULL;
    return OS_OK;
}

os_status os_session_describe(const os_model *m, const os_session_opts *opts, char *buf, size_t n)
{
    const os_session_opts o = opts ? *opts : (os_session_opts){0};
    const os_backend *be;
    const os_spike_kernels *k;
    os_status st = choose_path(m, &o, &be, &k);
    if (st)
        return st;
    if (k)
        snprintf(buf, n, "%s, %s, %s", be->name, os_isa_name(os_spike_kernels_isa(k)),
                 os_model_weights(m));
    else
        snprintf(buf, n, "%s", be->name);
    return OS_OK;
}

os_status os_session_create(const os_model *m, const os_session_opts *opts, os_session **out)
{
    os_session_opts o = opts ? *opts : (os_session_opts){0};
    *out = NULL;
    if (o.timesteps < 0 || o.timesteps > OS_MODEL_MAX_TIMESTEPS)
        return os_fail(OS_EINVAL, "timesteps %d out of range 0..%d", o.timesteps,
                       OS_MODEL_MAX_TIMESTEPS);
    if (o.max_batch < 0 || o.max_batch > OS_SESSION_MAX_BATCH)
        return os_fail(OS_EINVAL, "batch %d out of range 0..%d", o.max_batch,
                       OS_SESSION_MAX_BATCH);
    const os_net *net = os_model_net(m);
    int n = os_net_count(net);
    os_status st = OS_OK;
    os_session *s = calloc(1, sizeof *s);
    if (!s)
        return os_fail(OS_ENOMEM, "no memory for a session");
    s->model = m, s->net = net, s->n_layers = n;
    s->T = o.timesteps ? o.timesteps : os_model_timesteps(m);
    s->max_pixels = o.max_pixels ? o.max_pixels : OS_DEFAULT_MAX_PIXELS;
    s->cx.max_batch = o.max_batch ? o.max_batch : 1;
    const size_t nb = (size_t)s->cx.max_batch;
    os_infer_ctx *cx = &s->cx;
    cx->net = net;
    cx->T = s->T;
    cx->count_spikes = o.count_spikes;
    cx->out = calloc((size_t)n, sizeof *cx->out);
    cx->mem = calloc((size_t)n, sizeof *cx->mem);
    cx->spikes = calloc((size_t)n, sizeof *cx->spikes);
    /* per layer at most: output, membrane, spike index and counts; then input, logits, col,
     * rows, flat */
    s->owned = calloc((size_t)(4 * n + 5), sizeof *s->owned);
    cx->sidx = calloc((size_t)n, sizeof *cx->sidx);
    cx->scnt = calloc((size_t)n, sizeof *cx->scnt);
    cx->index_only = calloc((size_t)n, sizeof *cx->index_only);
    cx->active = calloc((size_t)n * nb, sizeof *cx->active);
    if (!cx->out || !cx->mem || !cx->spikes || !s->owned || !cx->sidx || !cx->scnt ||
        !cx->index_only || !cx->active)
        goto nomem;
    if ((st = choose_path(m, &o, &s->backend, &cx->kernels)))
        goto out;
    if (cx->kernels)
        cx->plan = os_model_spike_plan(m);
    cx->elt = os_eltwise_for(cx->kernels ? os_spike_kernels_isa(cx->kernels) : OS_ISA_SCALAR);
    os_model_input(m, &cx->in_c, &cx->in_h, &cx->in_w);
    if (!(cx->input = sess_alloc(s, nb * cx->in_c * cx->in_h * cx->in_w)) ||
        !(s->logits = sess_alloc(s, nb * os_model_classes(m))))
        goto nomem;
    if ((st = alloc_outputs(s, nb)))
        goto out;
    size_t col = 0;
    for (int i = 0; i < n; i++) {
        const os_layer *L = os_net_layer(net, i);
        if (L->op == OS_OP_LIF && !(cx->mem[i] = sess_alloc(s, nb * layer_size(L))))
            goto nomem;
        if (L->op == OS_OP_CONV) {
            const int from = L->from[0];
            const os_layer *in = from == OS_NET_INPUT ? NULL : os_net_layer(net, from);
            os_conv_shape cs = {in ? in->c : cx->in_c, in ? in->h : cx->in_h,
                                in ? in->w : cx->in_w, L->out, L->kh, L->kw, L->stride, L->pad};
            size_t need = os_conv_col_floats(&cs);
            if (need > col)
                col = need;
        }
    }
    if (col && !(cx->col = sess_alloc(s, col)))
        goto nomem;
    if (cx->plan && (st = alloc_spike_index(s)))
        goto out;
    if ((st = os_decoder_create(&s->dec)) || (st = os_raster_buf_create(&s->rbuf)))
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
    os_raster_buf_destroy(s->rbuf);
    for (int i = 0; i < s->n_owned; i++)
        free(s->owned[i]);
    free(s->owned);
    free(s->cx.sidx);
    free(s->cx.scnt);
    free(s->cx.index_only);
    free(s->cx.active);
    free(s->cx.spikes);
    free(s->cx.mem);
    free(s->cx.out);
    free(s);
}

float *os_session_input(os_session *s)
{
    return s->cx.input;
}

float *os_session_input_at(os_session *s, int k)
{
    return k >= 0 && k < s->cx.max_batch ? s->cx.input + (size_t)k * os_session_input_floats(s)
                                      : NULL;
}

int os_session_max_batch(const os_session *s)
{
    return s->cx.max_batch;
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

const char *os_session_backend(const os_session *s)
{
    return s->backend->name;
}

const char *os_session_isa(const os_session *s)
{
    return os_isa_name(s->cx.kernels ? os_spike_kernels_isa(s->cx.kernels) : OS_ISA_SCALAR);
}

const char *os_session_weights(const os_session *s)
{
    return s->cx.plan ? os_model_weights(s->model) : "fp32";
}

/* The smallest decoded size that serves the model's input: its size, or for a centre crop the
 * longer side squared (the crop is taken from the decoded image). */
static void decode_min(const os_session *s, int *min_w, int *min_h)
{
    int c, h, w;
    os_model_input(s->model, &c, &h, &w);
    *min_w = w, *min_h = h;
    if (os_model_resize(s->model) == OS_RESIZE_CENTER_CROP)
        *min_w = *min_h = w > h ? w : h;
}

static void to_input(os_session *s, int k, const os_rgb_image *img)
{
    int c, h, w;
    os_model_input(s->model, &c, &h, &w);
    os_image_to_tensor(img, w, h, os_model_resize(s->model), os_model_mean(s->model),
                       os_model_std(s->model), os_session_input_at(s, k));
}

static os_status check_slot(const os_session *s, int k)
{
    if (k < 0 || k >= s->cx.max_batch)
        return os_fail(OS_EINVAL, "image %d of a batch of at most %d", k, s->cx.max_batch);
    return OS_OK;
}

os_status os_session_load_jpeg_at(os_session *s, int k, const void *jpeg, size_t len)
{
    os_status st = check_slot(s, k);
    if (st)
        return st;
    int min_w, min_h;
    decode_min(s, &min_w, &min_h);
    os_rgb_image img;
    if ((st = os_decoder_decode(s->dec, jpeg, len, s->max_pixels, min_w, min_h, &img)))
        return st;
    to_input(s, k, &img);
    return OS_OK;
}

os_status os_session_load_image_at(os_session *s, int k, const void *buf, size_t len,
                                   const os_raster_input *in)
{
    os_status st = check_slot(s, k);
    if (st)
        return st;
    int min_w, min_h;
    decode_min(s, &min_w, &min_h);
    os_rgb_image img;
    if ((st = os_raster_decode_any(s->dec, s->rbuf, buf, len, s->max_pixels, min_w, min_h,
                                   in ? in : os_model_raster_input(s->model), &img)))
        return st;
    to_input(s, k, &img);
    return OS_OK;
}

os_status os_session_load_window_at(os_session *s, int k, os_raster *r, int x, int y, int w,
                                    int h, const os_raster_input *in)
{
    os_status st = check_slot(s, k);
    if (st)
        return st;
    if (s->max_pixels && (uint64_t)w * (uint64_t)h > s->max_pixels)
        return os_fail(OS_ETOOBIG, "window %dx%d exceeds the limit of %zu pixels", w, h,
                       s->max_pixels);
    os_rgb_image img;
    if ((st = os_raster_read(r, x, y, w, h, in ? in : os_model_raster_input(s->model), 0, 0,
                             s->rbuf, &img)))
        return st;
    to_input(s, k, &img);
    return OS_OK;
}

os_status os_session_load_jpeg(os_session *s, const void *jpeg, size_t len)
{
    return os_session_load_jpeg_at(s, 0, jpeg, len);
}

void os_session_run_batch(os_session *s, int n, float *probs, float *logits)
{
    assert(n >= 1 && n <= s->cx.max_batch);
    const int k = os_model_classes(s->model);
    const size_t nk = (size_t)n * k;
    memset(s->logits, 0, nk * sizeof *s->logits);
    s->cx.n = n; /* membranes need no clearing: every LIF layer's step 0 starts them */
    os_exec_forward(s->net, s->T, s->backend, &s->cx, os_infer_slot, s->logits, nk);
    s->runs += (uint64_t)n;
    if (logits)
        memcpy(logits, s->logits, nk * sizeof *logits);
    for (int j = 0; j < n; j++)
        os_softmax(s->logits + (size_t)j * k, k, probs + (size_t)j * k);
}

void os_session_run(os_session *s, float *probs, float *logits)
{
    os_session_run_batch(s, 1, probs, logits);
}

bool os_session_views_valid(int views)
{
    return views == 1 || views == 2 || views == 4 || views == 8;
}

/* Where view v reads the pixel it writes at (y, x) of an n x n plane. Mirroring the image
 * (x -> n-1-x) last means applying it to the position first; each counterclockwise turn reads
 * (y, x) from (x, n-1-y). */
static int view_source(int n, int v, int y, int x)
{
    int sy = y, sx = v & 1 ? n - 1 - x : x;
    for (int r = 0; r < v / 2; r++) {
        const int t = sy;
        sy = sx, sx = n - 1 - t;
    }
    return sy * n + sx;
}

void os_session_view(const float *src, float *dst, int c, int n, int v)
{
    /* the source index is affine in (y, x): o + a y + b x */
    const int o = view_source(n, v, 0, 0);
    const int a = n > 1 ? view_source(n, v, 1, 0) - o : 0;
    const int b = n > 1 ? view_source(n, v, 0, 1) - o : 0;
    const size_t plane = (size_t)n * n;
    for (int ch = 0; ch < c; ch++, src += plane, dst += plane)
        for (int y = 0; y < n; y++) {
            const float *row = src + o + (ptrdiff_t)a * y;
            float *out = dst + (size_t)y * n;
            for (int x = 0; x < n; x++)
                out[x] = row[(ptrdiff_t)b * x];
        }
}

os_status os_session_views_check(const os_model *m, int views)
{
    int c, h, w;
    os_model_input(m, &c, &h, &w);
    if (!os_session_views_valid(views))
        return os_fail(OS_EINVAL, "views %d: expected 1, 2, 4 or 8", views);
    if (views > 1 && h != w)
        return os_fail(OS_EINVAL, "views %d: the symmetries of the square need a square input "
                                  "(this model's is %dx%d)", views, h, w);
    return OS_OK;
}

os_status os_session_run_views(os_session *s, int views, float *probs)
{
    const os_infer_ctx *cx = &s->cx;
    os_status st = os_session_views_check(s->model, views);
    if (st)
        return st;
    if (views > cx->max_batch)
        return os_fail(OS_EINVAL, "views %d: the session runs at most %d images at once",
                       views, cx->max_batch);
    const size_t per = (size_t)cx->in_c * cx->in_h * cx->in_w;
    for (int v = 1; v < views; v++)
        os_session_view(cx->input, cx->input + v * per, cx->in_c, cx->in_w, v);
    os_session_run_batch(s, views, probs, NULL);
    const int k = os_model_classes(s->model);
    for (int j = 0; j < k; j++) {
        double sum = probs[j];
        for (int v = 1; v < views; v++)
            sum += probs[(size_t)v * k + j];
        probs[j] = (float)(sum / views);
    }
    return OS_OK;
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
            *spikes = s->cx.spikes[i];
            *neuron_steps = s->runs * (uint64_t)s->T * layer_size(L);
            return true;
        }
    }
    return false;
}

void os_session_reset_spikes(os_session *s)
{
    memset(s->cx.spikes, 0, (size_t)s->n_layers * sizeof *s->cx.spikes);
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
