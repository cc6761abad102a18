/* train.c - epochs, evaluation, BN folding, ANN -> SNN conversion, Unit removal; see train.h. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grad.h"
#include "score.h"
#include "onespike/model.h"

enum {
    CALIB_MAX_VALUES = 1 << 21, /* pre-activation samples kept per layer for the percentile */
};

#define MIN_CALIB_THRESHOLD 1e-3f

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int net_classes(const os_tnet *t)
{
    const os_net *net = os_tnet_net(t);
    return os_net_layer(net, os_net_count(net) - 1)->out;
}

os_status os_train_epoch(os_tnet *t, os_params *p, const os_imageset *train,
                         const os_epoch_config *c, os_epoch_stats *out)
{
    memset(out, 0, sizeof *out);
    int K = net_classes(t);
    size_t n = train->n;
    /* drop_last: a tiny final batch gives BatchNorm meaningless statistics */
    size_t used = n >= (size_t)c->batch ? n / (size_t)c->batch * (size_t)c->batch : n;
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    float *logits = malloc((size_t)c->batch * K * sizeof *logits);
    float *dlogits = malloc((size_t)c->batch * K * sizeof *dlogits);
    float *tlogits = c->teacher ? malloc((size_t)c->batch * K * sizeof *tlogits) : NULL;
    os_loader *l = NULL;
    os_status st = OS_OK;
    if (!order || !logits || !dlogits || (c->teacher && !tlogits)) {
        st = os_fail(OS_ENOMEM, "no memory for an epoch");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    os_shuffle(order, n, c->seed);
    if ((st = os_loader_start(train, order, used, c->batch, 0, &c->aug, c->seed, &l)))
        goto out;
    const float *x;
    const int *labels;
    int count;
    double t0 = now_s(), loss_sum = 0;
    long correct_sum = 0, seen = 0;
    size_t total = (used + (size_t)c->batch - 1) / (size_t)c->batch, done = 0;
    while (os_loader_next(l, &x, &labels, &count)) {
        os_params_zero_grad(p);
        os_tnet_forward(t, x, count, true, logits);
        int correct = 0;
        float loss = os_softmax_xent(logits, count, K, labels, c->label_smoothing, dlogits, &correct);
        if (c->teacher && c->distill > 0) {
            /* loss = (1 - a) CE + a KD: scale the CE gradient, then add the KD one. */
            float a = c->distill;
            for (size_t j = 0; j < (size_t)count * K; j++)
                dlogits[j] *= 1 - a;
            os_tnet_forward(c->teacher, x, count, false, tlogits);
            float kd = os_distill_kl(logits, tlogits, count, K, (float)os_tnet_timesteps(t),
                                     c->distill_temp, a, dlogits);
            loss = (1 - a) * loss + a * kd;
        }
        if (!isfinite(loss)) {
            st = os_fail(OS_EINVAL, "training diverged: loss is %g at step %ld (lower the learning rate)",
                         loss, c->step0 + out->steps);
            goto out;
        }
        os_tnet_backward(t, dlogits);
        if ((st = os_params_step(p, &c->opt, c->step0 + out->steps)))
            goto out;
        out->steps++;
        loss_sum += (double)loss * count;
        correct_sum += correct;
        seen += count;
        done++;
        if (c->progress)
            c->progress(c->progress_ctx, done, total, loss_sum / seen, (double)correct_sum / seen,
                        seen / (now_s() - t0));
    }
    out->seconds = now_s() - t0;
    out->loss = seen ? loss_sum / seen : 0;
    out->acc = seen ? (double)correct_sum / seen : 0;
    out->images_per_s = out->seconds > 0 ? seen / out->seconds : 0;
out:
    os_loader_stop(l);
    free(order);
    free(logits);
    free(dlogits);
    free(tlogits);
    return st;
}

/* Scored by os_score (score.h): the engine's ranking of the logits, so the figures are those
 * fit_eval_files gets from the exported model whenever the two nets agree. */
os_status os_evaluate(os_tnet *t, const os_imageset *set, const os_aug_config *aug, int classes,
                      os_eval_result *out)
{
    memset(out, 0, sizeof *out);
    int B = os_tnet_max_batch(t);
    size_t per = (size_t)3 * set->side * set->side;
    os_score sc;
    os_status st = os_score_init(&sc, classes);
    if (st)
        return st;
    out->classes = classes;
    out->per_class = calloc((size_t)classes, sizeof *out->per_class);
    out->n_lif = os_tnet_lif_count(t);
    out->spikes = calloc((size_t)out->n_lif + 1, sizeof *out->spikes);
    out->neuron_steps = calloc((size_t)out->n_lif + 1, sizeof *out->neuron_steps);
    float *x = malloc((size_t)B * per * sizeof *x);
    float *logits = malloc((size_t)B * classes * sizeof *logits);
    if (!out->per_class || !out->spikes || !out->neuron_steps || !x || !logits) {
        st = os_fail(OS_ENOMEM, "no memory for evaluation");
        goto out;
    }
    for (size_t i0 = 0; i0 < set->n; i0 += (size_t)B) {
        int count = (int)(set->n - i0 < (size_t)B ? set->n - i0 : (size_t)B);
        for (int k = 0; k < count; k++)
            os_augment(set, i0 + (size_t)k, aug, 0, x + (size_t)k * per);
        os_tnet_forward(t, x, count, false, logits);
        for (int k = 0; k < out->n_lif; k++) {
            const char *name;
            uint64_t sp, ns;
            os_tnet_spikes(t, k, &name, &sp, &ns);
            out->spikes[k] += sp, out->neuron_steps[k] += ns;
        }
        for (int k = 0; k < count; k++)
            os_score_add(&sc, logits + (size_t)k * classes, set->labels[i0 + (size_t)k]);
    }
    out->n = set->n;
    out->top1 = os_score_top1(&sc);
    out->top5 = os_score_top5(&sc);
    for (int c = 0; c < classes; c++)
        os_score_class_accuracy(&sc, c, &out->per_class[c]);
    out->confusion = sc.confusion; /* taken */
    sc.confusion = NULL;
out:
    free(x);
    free(logits);
    os_score_free(&sc);
    if (st)
        os_eval_result_free(out);
    return st;
}

void os_eval_result_free(os_eval_result *r)
{
    free(r->confusion);
    free(r->per_class);
    free(r->spikes);
    free(r->neuron_steps);
    memset(r, 0, sizeof *r);
}

/* ---- layer-list surgery ---- */

static const char *lname(const json_t *l)
{
    return json_string_value(json_object_get(l, "name"));
}

static const char *lop(const json_t *l)
{
    return json_string_value(json_object_get(l, "op"));
}

/* A deep copy with every "from" written out as an array of names. */
static json_t *explicit_froms(const json_t *layers)
{
    json_t *out = json_deep_copy(layers);
    const char *prev = "input";
    size_t i;
    json_t *l;
    json_array_foreach(out, i, l) {
        json_t *f = json_object_get(l, "from");
        json_t *arr = json_array();
        if (!f)
            json_array_append_new(arr, json_string(prev));
        else if (json_is_string(f))
            json_array_append(arr, f);
        else
            json_array_extend(arr, f);
        json_object_set_new(l, "from", arr);
        prev = lname(l);
    }
    return out;
}

/* Drop "from" where it is just the previous layer; single names as strings. */
static void compact_froms(json_t *layers)
{
    const char *prev = "input";
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l) {
        json_t *f = json_object_get(l, "from");
        if (json_is_array(f) && json_array_size(f) == 1) {
            const char *only = json_string_value(json_array_get(f, 0));
            if (only && strcmp(only, prev) == 0)
                json_object_del(l, "from");
            else
                json_object_set_new(l, "from", json_string(only));
        }
        prev = lname(l);
    }
}

static int find_index(const json_t *layers, const char *name)
{
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l) {
        if (strcmp(lname(l), name) == 0)
            return (int)i;
    }
    return -1;
}

static void rename_refs(json_t *layers, const char *from, const char *to)
{
    size_t i, k;
    json_t *l, *f;
    json_array_foreach(layers, i, l) {
        json_array_foreach(json_object_get(l, "from"), k, f) {
            if (strcmp(json_string_value(f), from) == 0)
                json_array_set_new(json_object_get(l, "from"), k, json_string(to));
        }
    }
}

static int count_consumers(const json_t *layers, const char *name)
{
    int n = 0;
    size_t i, k;
    json_t *l, *f;
    json_array_foreach(layers, i, l) {
        json_array_foreach(json_object_get(l, "from"), k, f) {
            n += strcmp(json_string_value(f), name) == 0;
        }
    }
    return n;
}

static os_param *field_param(os_params *p, const json_t *l, const char *field)
{
    const char *n = json_string_value(json_object_get(l, field));
    return n ? os_params_find(p, n) : NULL;
}

static void drop_layer_params(os_params *p, const json_t *l)
{
    static const char *const fields[] = {"weight", "bias", "mean", "var"};
    for (size_t k = 0; k < sizeof fields / sizeof *fields; k++) {
        const char *n = json_string_value(json_object_get(l, fields[k]));
        if (n)
            os_params_remove(p, n);
    }
    char name[OS_NET_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s.threshold", lname(l));
    os_params_remove(p, name);
    snprintf(name, sizeof name, "%s.leak", lname(l));
    os_params_remove(p, name);
}

/* A 1-D tensor of c copies of value, added to p under name. */
static os_status add_filled(os_params *p, const char *name, int c, float value)
{
    float *v = malloc((size_t)c * sizeof *v);
    if (!v)
        return os_fail(OS_ENOMEM, "no memory");
    for (int k = 0; k < c; k++)
        v[k] = value;
    os_tensor_view tv = {.name = name, .ndim = 1, .shape = {c}, .data = v, .count = (size_t)c};
    os_status st = os_params_add(p, &tv);
    free(v);
    return st;
}

os_status os_fold_batchnorm(const json_t *layers, os_params *p, json_t **out)
{
    json_t *L = explicit_froms(layers);
    *out = NULL;
    for (size_t i = 0; i < json_array_size(L);) {
        json_t *bn = json_array_get(L, i);
        if (strcmp(lop(bn), "bn") != 0) {
            i++;
            continue;
        }
        const char *src = json_string_value(json_array_get(json_object_get(bn, "from"), 0));
        int ci = find_index(L, src);
        json_t *conv = ci >= 0 ? json_array_get(L, (size_t)ci) : NULL;
        if (!conv || strcmp(lop(conv), "conv") != 0 || count_consumers(L, src) != 1) {
            json_decref(L);
            return os_fail(OS_EARCH, "cannot fold BatchNorm \"%s\": its input is not a conv used only by it",
                           lname(bn));
        }
        os_param *w = field_param(p, conv, "weight"), *b = field_param(p, conv, "bias");
        os_param *g = field_param(p, bn, "weight"), *be = field_param(p, bn, "bias");
        os_param *m = field_param(p, bn, "mean"), *v = field_param(p, bn, "var");
        if (!w || !g || !be || !m || !v) {
            json_decref(L);
            return os_fail(OS_EARCH, "BatchNorm \"%s\" or conv \"%s\" lacks tensors", lname(bn), src);
        }
        double eps = json_is_number(json_object_get(bn, "eps"))
                         ? json_number_value(json_object_get(bn, "eps")) : 1e-5;
        int outc = (int)w->view.shape[0];
        size_t fan = w->view.count / (size_t)outc;
        if (!b) {
            char bname[OS_NET_NAME_MAX + 16];
            snprintf(bname, sizeof bname, "%s.bias", src);
            os_status st = add_filled(p, bname, outc, 0.0f);
            if (st) {
                json_decref(L);
                return st;
            }
            json_object_set_new(conv, "bias", json_string(bname));
            b = os_params_find(p, bname);
        }
        for (int o = 0; o < outc; o++) {
            float scale = (float)(g->data[o] / sqrt((double)v->data[o] + eps));
            for (size_t j = 0; j < fan; j++)
                w->data[(size_t)o * fan + j] *= scale;
            b->data[o] = (b->data[o] - m->data[o]) * scale + be->data[o];
        }
        drop_layer_params(p, bn);
        rename_refs(L, lname(bn), src);
        json_array_remove(L, i);
    }
    compact_froms(L);
    *out = L;
    return OS_OK;
}

/* Insert an identity-initialised BN after conv layer i of L (explicit froms); its tensors go
 * into p. */
static os_status insert_bn_after(json_t *L, size_t i, os_params *p)
{
    json_t *conv = json_array_get(L, i);
    const char *cname = lname(conv);
    os_param *w = field_param(p, conv, "weight");
    if (!w)
        return os_fail(OS_EARCH, "conv \"%s\" has no weight tensor", cname);
    int c = (int)w->view.shape[0];
    char name[OS_NET_NAME_MAX + 8], tn[OS_NET_NAME_MAX + 32];
    size_t len = strlen(cname);
    if (len > 5 && strcmp(cname + len - 5, ".conv") == 0)
        snprintf(name, sizeof name, "%.*s.bn", (int)(len - 5), cname);
    else
        snprintf(name, sizeof name, "%s.bn", cname);
    if (strlen(name) >= OS_NET_NAME_MAX || find_index(L, name) >= 0)
        return os_fail(OS_EARCH, "cannot name a BatchNorm after conv \"%s\"", cname);
    json_t *bn = json_pack("{s:s, s:s, s:[s]}", "name", name, "op", "bn", "from", cname);
    static const char *const key[4] = {"weight", "bias", "mean", "var"};
    static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    static const float init[4] = {1, 0, 0, 1};
    for (int k = 0; k < 4; k++) {
        snprintf(tn, sizeof tn, "%s.%s", name, suffix[k]);
        os_status st = add_filled(p, tn, c, init[k]);
        if (st) {
            json_decref(bn);
            return st;
        }
        json_object_set_new(bn, key[k], json_string(tn));
    }
    rename_refs(L, cname, name);
    json_array_insert_new(L, i + 1, bn);
    return OS_OK;
}

/* n images spread evenly over calib (image k * calib->n / n), normalised by aug, into one
 * malloc'd batch; NULL without memory. The calibration passes that take one batch use it. */
static float *spread_batch(const os_imageset *calib, const os_aug_config *aug, int n)
{
    size_t per = (size_t)3 * calib->side * calib->side;
    float *x = malloc((size_t)(n > 0 ? n : 1) * per * sizeof *x);
    for (int k = 0; x && k < n; k++)
        os_augment(calib, (size_t)k * calib->n / (size_t)n, aug, 0, x + (size_t)k * per);
    return x;
}

static const os_layer *net_layer_named(const os_net *net, const char *name)
{
    for (int i = 0; i < os_net_count(net); i++)
        if (strcmp(os_net_layer(net, i)->name, name) == 0)
            return os_net_layer(net, i);
    return NULL;
}

os_status os_insert_batchnorm(const json_t *layers, int in_c, int in_h, int in_w, int classes,
                              os_params *p, const os_imageset *calib, const os_aug_config *aug,
                              int batch, json_t **out)
{
    *out = NULL;
    json_t *L = explicit_froms(layers);
    os_status st = OS_OK;
    for (size_t i = 0; i < json_array_size(L) && !st; i++)
        if (strcmp(lop(json_array_get(L, i)), "conv") == 0)
            st = insert_bn_after(L, i++, p); /* skip the BN just inserted */
    compact_froms(L);
    int n = (int)(calib->n < (size_t)batch ? calib->n : (size_t)batch);
    float *x = st ? NULL : spread_batch(calib, aug, n);
    float *logits = st ? NULL : malloc((size_t)(n ? n : 1) * classes * sizeof *logits);
    os_tnet *t = NULL;
    if (!st && (!x || !logits))
        st = os_fail(OS_ENOMEM, "no memory for BatchNorm initialisation");
    if (!st && n == 0)
        st = os_fail(OS_EINVAL, "BatchNorm initialisation needs calibration images");
    if (!st)
        st = os_tnet_create(L, in_c, in_h, in_w, classes, p, n, 1, &t);
    /* Layer by layer: with running statistics zeroed, one training-mode forward leaves
     * momentum * (batch mean, batch variance) in them; the BNs before this one are final. */
    size_t i;
    json_t *l;
    json_array_foreach(L, i, l) {
        if (st)
            break;
        if (strcmp(lop(l), "bn") != 0)
            continue;
        os_param *g = field_param(p, l, "weight"), *b = field_param(p, l, "bias");
        os_param *m = field_param(p, l, "mean"), *v = field_param(p, l, "var");
        const os_layer *bl = net_layer_named(os_tnet_net(t), lname(l));
        size_t c = g->view.count;
        memset(m->data, 0, c * sizeof *m->data);
        memset(v->data, 0, c * sizeof *v->data);
        os_tnet_forward(t, x, n, true, logits);
        /* The running variance is unbiased (m/(m-1)); training mode divides by the biased one,
         * which both keep here so that either mode reproduces the conv on these images. */
        double cnt = (double)n * bl->h * bl->w, biased = cnt > 1 ? (cnt - 1) / cnt : 1;
        for (size_t k = 0; k < c; k++) {
            m->data[k] /= OS_BN_MOMENTUM;
            v->data[k] = (float)(v->data[k] / OS_BN_MOMENTUM * biased);
            g->data[k] = (float)sqrt(v->data[k] + bl->eps);
            b->data[k] = m->data[k];
        }
    }
    /* Each pass also moved the running statistics of the BNs before it: restore them. */
    json_array_foreach(L, i, l) {
        if (st || strcmp(lop(l), "bn") != 0)
            continue;
        os_param *g = field_param(p, l, "weight"), *b = field_param(p, l, "bias");
        os_param *m = field_param(p, l, "mean"), *v = field_param(p, l, "var");
        const os_layer *bl = net_layer_named(os_tnet_net(t), lname(l));
        for (size_t k = 0; k < g->view.count; k++) {
            m->data[k] = b->data[k];
            v->data[k] = fmaxf(g->data[k] * g->data[k] - bl->eps, 0.0f);
        }
    }
    os_tnet_destroy(t);
    free(x);
    free(logits);
    if (st) {
        json_decref(L);
        return st;
    }
    *out = L;
    return OS_OK;
}

float os_percentile(float *v, size_t n, double pct)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)floor(pct / 100.0 * (double)(n - 1));
    size_t lo = 0, hi = n - 1;
    while (lo < hi) { /* quickselect, median-of-three pivot */
        size_t mid = lo + (hi - lo) / 2;
        float a = v[lo], b = v[mid], c = v[hi];
        float pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j], v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return v[k];
}

/* Percentile of each ReLU's input over the calibration images. */
static os_status calibrate(const json_t *layers, int in_c, int in_h, int in_w, int classes,
                           os_params *p, const os_imageset *calib, const os_aug_config *aug,
                           double pct, int batch, float **out, int *n_act)
{
    os_tnet *t = NULL;
    os_status st = os_tnet_create(layers, in_c, in_h, in_w, classes, p, batch, 1, &t);
    if (st)
        return st;
    int na = os_tnet_act_count(t);
    size_t per = (size_t)3 * calib->side * calib->side;
    float **vals = calloc((size_t)na + 1, sizeof *vals);
    size_t *nv = calloc((size_t)na + 1, sizeof *nv);
    float *x = malloc((size_t)batch * per * sizeof *x);
    float *logits = malloc((size_t)batch * classes * sizeof *logits);
    float *res = calloc((size_t)na + 1, sizeof *res);
    size_t batches = (calib->n + (size_t)batch - 1) / (size_t)batch;
    size_t cap = CALIB_MAX_VALUES;
    for (int k = 0; k < na && vals; k++)
        if (!(vals[k] = malloc(cap * sizeof(float))))
            st = os_fail(OS_ENOMEM, "no memory for calibration");
    if (!vals || !nv || !x || !logits || !res)
        st = os_fail(OS_ENOMEM, "no memory for calibration");
    for (size_t b = 0; !st && b < batches; b++) {
        size_t i0 = b * (size_t)batch;
        int count = (int)(calib->n - i0 < (size_t)batch ? calib->n - i0 : (size_t)batch);
        for (int k = 0; k < count; k++)
            os_augment(calib, i0 + (size_t)k, aug, 0, x + (size_t)k * per);
        os_tnet_forward(t, x, count, false, logits);
        for (int k = 0; k < na; k++) {
            size_t cnt;
            const char *name;
            const float *a = os_tnet_act_input(t, k, 0, &cnt, &name);
            size_t room = cap / batches; /* an even share of the sample budget per batch */
            size_t stride = cnt > room && room ? (cnt + room - 1) / room : 1;
            for (size_t j = 0; j < cnt && nv[k] < cap; j += stride)
                vals[k][nv[k]++] = a[j];
        }
    }
    for (int k = 0; !st && k < na; k++)
        res[k] = fmaxf(os_percentile(vals[k], nv[k], pct), MIN_CALIB_THRESHOLD);
    for (int k = 0; vals && k < na; k++)
        free(vals[k]);
    free(vals), free(nv), free(x), free(logits);
    os_tnet_destroy(t);
    if (st) {
        free(res);
        return st;
    }
    *out = res, *n_act = na;
    return OS_OK;
}

static bool is_free(const json_t *l)
{
    return !strcmp(lop(l), "conv") || !strcmp(lop(l), "linear");
}

os_status os_convert_to_snn(const json_t *layers, int in_c, int in_h, int in_w, int classes,
                            os_params *p, const os_imageset *calib, const os_aug_config *aug,
                            double percentile, double shift, int timesteps, int batch,
                            json_t **out)
{
    *out = NULL;
    float *pre = NULL;
    int na = 0;
    os_status st = calibrate(layers, in_c, in_h, in_w, classes, p, calib, aug, percentile, batch,
                             &pre, &na);
    if (st)
        return st;
    json_t *L = explicit_froms(layers);
    size_t n = json_array_size(L);
    double *sigma = calloc(n, sizeof *sigma);
    if (!sigma) {
        free(pre);
        json_decref(L);
        return os_fail(OS_ENOMEM, "no memory");
    }
    int act = 0;
    for (size_t i = 0; i < n && !st; i++) {
        json_t *l = json_array_get(L, i);
        const char *op = lop(l);
        json_t *from = json_object_get(l, "from");
        int fi = find_index(L, json_string_value(json_array_get(from, 0)));
        double s_in = fi < 0 ? 1.0 : sigma[fi];
        if (is_free(l)) {
            /* Output scale: 1, or the scale of the spike tensor this output is added to. */
            double target = 1.0;
            size_t j;
            json_t *c;
            json_array_foreach(L, j, c) {
                json_t *cf = json_object_get(c, "from");
                if (strcmp(lop(c), "add") || json_array_size(cf) != 2)
                    continue;
                for (int q = 0; q < 2; q++) {
                    if (strcmp(json_string_value(json_array_get(cf, (size_t)q)), lname(l)))
                        continue;
                    int other = find_index(L, json_string_value(json_array_get(cf, (size_t)(1 - q))));
                    if (other >= 0 && !is_free(json_array_get(L, (size_t)other))) {
                        if ((size_t)other > i)
                            st = os_fail(OS_EARCH, "conversion: add \"%s\" takes a spike input defined after \"%s\"",
                                         lname(c), lname(l));
                        target = sigma[other];
                    }
                }
            }
            os_param *w = field_param(p, l, "weight"), *b = field_param(p, l, "bias");
            float ws = (float)(s_in / target);
            for (size_t k = 0; w && k < w->view.count; k++)
                w->data[k] *= ws;
            for (size_t k = 0; b && k < b->view.count; k++)
                b->data[k] = (float)(b->data[k] / target);
            sigma[i] = target;
        } else if (!strcmp(op, "relu")) {
            double pk = pre[act++], thr = pk / s_in;
            json_object_set_new(l, "op", json_string("lif"));
            json_object_set_new(l, "threshold", json_real(thr));
            /* The current comes from a conv/linear, or an add with one such input. */
            json_t *src = fi >= 0 ? json_array_get(L, (size_t)fi) : NULL;
            if (src && !strcmp(lop(src), "add")) {
                json_t *sf = json_object_get(src, "from");
                for (int q = 0; q < 2; q++) {
                    int k = find_index(L, json_string_value(json_array_get(sf, (size_t)q)));
                    if (k >= 0 && is_free(json_array_get(L, (size_t)k))) {
                        src = json_array_get(L, (size_t)k);
                        break;
                    }
                }
            }
            os_param *b = src && is_free(src) ? field_param(p, src, "bias") : NULL;
            for (size_t k = 0; b && k < b->view.count; k++)
                b->data[k] += (float)(shift * thr / timesteps);
            json_object_set_new(l, "leak", json_real(1.0));
            sigma[i] = pk;
        } else if (!strcmp(op, "add")) {
            int f2 = find_index(L, json_string_value(json_array_get(from, 1)));
            double s2 = f2 < 0 ? 1.0 : sigma[f2];
            if (fabs(s_in - s2) > 1e-6 * fmax(s_in, s2))
                st = os_fail(OS_EARCH, "conversion: add \"%s\" joins scales %g and %g", lname(l),
                             s_in, s2);
            sigma[i] = s_in;
        } else if (!strcmp(op, "bn") || !strcmp(op, "lif")) {
            st = os_fail(OS_EARCH, "conversion wants a BN-free ReLU network, found %s \"%s\"", op,
                         lname(l));
        } else {
            sigma[i] = s_in; /* pooling commutes with a positive scale */
        }
    }
    free(sigma);
    free(pre);
    if (st) {
        json_decref(L);
        return st;
    }
    compact_froms(L);
    *out = L;
    return OS_OK;
}

/* Spikes per neuron-step of a LIF with threshold thr over T steps of the given inputs. */
static double lif_rate(const float *const *in, int T, size_t n, float thr, float leak)
{
    size_t spikes = 0;
    for (size_t j = 0; j < n; j++) {
        float u = 0;
        for (int t = 0; t < T; t++) {
            u = leak * u + in[t][j];
            if (u > thr) {
                spikes++;
                u -= thr;
            }
        }
    }
    return (double)spikes / ((double)n * T);
}

enum { RECAL_ITERS = 40 };

os_status os_recalibrate_thresholds(const json_t *layers, int in_c, int in_h, int in_w,
                                    int classes, os_params *p, const os_imageset *calib,
                                    const os_aug_config *aug, int t_old, int t_new, int batch)
{
    int n = (int)(calib->n < (size_t)batch ? calib->n : (size_t)batch);
    float *x = spread_batch(calib, aug, n);
    float *logits = malloc((size_t)(n > 0 ? n : 1) * classes * sizeof *logits);
    os_tnet *told = NULL, *tnew = NULL;
    double *rate = NULL;
    os_status st = OS_OK;
    if (!x || !logits) {
        st = os_fail(OS_ENOMEM, "no memory for recalibration");
        goto out;
    }
    if ((st = os_tnet_create(layers, in_c, in_h, in_w, classes, p, n, t_old, &told)))
        goto out;
    os_tnet_forward(told, x, n, false, logits);
    int nl = os_tnet_lif_count(told);
    if (!(rate = calloc((size_t)nl + 1, sizeof *rate))) {
        st = os_fail(OS_ENOMEM, "no memory for recalibration");
        goto out;
    }
    for (int k = 0; k < nl; k++) {
        const char *name;
        uint64_t sp, ns;
        os_tnet_spikes(told, k, &name, &sp, &ns);
        rate[k] = ns ? (double)sp / (double)ns : 0;
    }
    os_tnet_destroy(told);
    told = NULL;
    if ((st = os_tnet_create(layers, in_c, in_h, in_w, classes, p, n, t_new, &tnew)))
        goto out;
    for (int k = 0, a = 0; k < nl; a++) {
        /* act index a counts ReLU and LIF layers; this net has only LIF. */
        os_tnet_forward(tnew, x, n, false, logits);
        const char *name;
        size_t cnt;
        const float *in[OS_MODEL_MAX_TIMESTEPS];
        for (int t = 0; t < t_new; t++)
            in[t] = os_tnet_act_input(tnew, a, t, &cnt, &name);
        char pn[OS_NET_NAME_MAX + 16];
        snprintf(pn, sizeof pn, "%s.threshold", name);
        os_param *thr = os_params_find(p, pn);
        snprintf(pn, sizeof pn, "%s.leak", name);
        os_param *leak = os_params_find(p, pn);
        if (!thr || !leak) {
            st = os_fail(OS_EARCH, "LIF layer %s has no threshold/leak parameters", name);
            goto out;
        }
        float lo = OS_MIN_THRESHOLD, hi = OS_MIN_THRESHOLD;
        for (int t = 0; t < t_new; t++)
            for (size_t j = 0; j < cnt; j++)
                hi = fmaxf(hi, in[t][j] * t_new);
        if (rate[k] > 0) {
            for (int it = 0; it < RECAL_ITERS; it++) {
                float mid = 0.5f * (lo + hi);
                if (lif_rate(in, t_new, cnt, mid, leak->data[0]) > rate[k])
                    lo = mid;
                else
                    hi = mid;
            }
            thr->data[0] = fmaxf(hi, OS_MIN_THRESHOLD);
        }
        k++;
    }
out:
    os_tnet_destroy(told);
    os_tnet_destroy(tnew);
    free(rate);
    free(x);
    free(logits);
    return st;
}

os_status os_remove_units(const json_t *layers, os_params *p, json_t **out)
{
    json_t *L = explicit_froms(layers);
    json_t *replaced = json_object(); /* unit layer name -> the Unit chain's input */
    size_t i;
    json_t *l;
    json_array_foreach(L, i, l) {
        if (json_integer_value(json_object_get(l, "unit")) <= 0)
            continue;
        const char *src = json_string_value(json_array_get(json_object_get(l, "from"), 0));
        json_t *r = json_object_get(replaced, src);
        json_object_set_new(replaced, lname(l), json_string(r ? json_string_value(r) : src));
    }
    json_t *kept = json_array();
    json_array_foreach(L, i, l) {
        if (json_integer_value(json_object_get(l, "unit")) > 0) {
            drop_layer_params(p, l);
            continue;
        }
        size_t k;
        json_t *f;
        json_array_foreach(json_object_get(l, "from"), k, f) {
            json_t *r = json_object_get(replaced, json_string_value(f));
            if (r)
                json_array_set(json_object_get(l, "from"), k, r);
        }
        json_array_append(kept, l);
    }
    json_decref(replaced);
    json_decref(L);
    compact_froms(kept);
    *out = kept;
    return OS_OK;
}

void os_layers_sync_lif(json_t *layers, os_params *p)
{
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l) {
        if (strcmp(lop(l), "lif") != 0)
            continue;
        char name[OS_NET_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s.threshold", lname(l));
        os_param *t = os_params_find(p, name);
        if (t)
            json_object_set_new(l, "threshold", json_real(t->data[0]));
        snprintf(name, sizeof name, "%s.leak", lname(l));
        os_param *k = os_params_find(p, name);
        if (k)
            json_object_set_new(l, "leak", json_real(k->data[0]));
    }
}
