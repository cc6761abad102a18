/* train.c - epochs, evaluation, and the rewrites of the layer graph (BN folding and insertion,
 * ANN -> SNN conversion, Unit removal); see train.h. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grad.h"
#include "onespike/clock.h"
#include "score.h"
#include "onespike/model.h"
#include "onespike/select.h"

enum {
    CALIB_MAX_VALUES = 1 << 21, /* pre-activation samples kept per layer for the percentile */
};

#define MIN_CALIB_THRESHOLD 1e-3f

static int net_classes(const os_tnet *t)
{
    const os_net *net = os_tnet_net(t);
    return os_net_layer(net, os_net_count(net) - 1)->out;
}

/* One batch on every replica: each runs its slice forward, its share of the loss (scaled by
 * slice / batch, so that the replicas' gradients add up to the batch mean's) and backward. */
typedef struct {
    os_dp *dp;
    const os_epoch_config *c;
    os_batch in;
    int active, K;
    size_t per; /* floats per image */
    float *logits, *dlogits, *dlogits_b, *tlogits;
    float *tx; /* the batch in the teacher's normalisation (teacher_scale) */
    double loss[OS_DP_MAX_REPLICAS];
    int correct[OS_DP_MAX_REPLICAS];
} batch_job;

static void run_slice(void *ctx, int r)
{
    batch_job *b = ctx;
    const os_epoch_config *c = b->c;
    os_tnet *t = os_dp_tnet(b->dp, r);
    int lo, hi, K = b->K;
    const os_batch *in = &b->in;
    os_dp_slice(in->count, b->active, r, &lo, &hi);
    int m = hi - lo;
    float *logits = b->logits + (size_t)lo * K, *dlogits = b->dlogits + (size_t)lo * K;
    const float *x = in->x + (size_t)lo * b->per;
    os_params_zero_grad(os_dp_params(b->dp, r));
    os_tnet_forward(t, x, m, true, logits);
    float loss = os_softmax_xent(logits, m, K, in->labels + lo, c->label_smoothing, dlogits,
                                 &b->correct[r]);
    if (in->labels_b) {
        /* a mixed batch: lam CE(labels) + (1 - lam) CE(labels_b); the gradient is linear in the
         * target, so the two gradients mix the same way */
        float *db = b->dlogits_b + (size_t)lo * K, lam = in->lam;
        float loss_b = os_softmax_xent(logits, m, K, in->labels_b + lo, c->label_smoothing, db,
                                       NULL);
        for (size_t j = 0; j < (size_t)m * K; j++)
            dlogits[j] = lam * dlogits[j] + (1 - lam) * db[j];
        loss = lam * loss + (1 - lam) * loss_b;
    }
    const float share = (float)m / (float)in->count; /* exactly 1 for one replica */
    if (c->teacher && c->distill > 0) {
        /* loss = (1 - a) CE + a KD: scale the CE gradient, then add the KD one. */
        float a = c->distill;
        for (size_t j = 0; j < (size_t)m * K; j++)
            dlogits[j] *= 1 - a;
        float *tl = b->tlogits + (size_t)lo * K;
        const float *tx = x;
        if (c->teacher_scale) {
            float *xt = b->tx + (size_t)lo * b->per;
            const size_t hw = b->per / 3;
            for (size_t p = 0; p < (size_t)m * 3; p++) { /* plane p: image p / 3, channel p % 3 */
                const float sc = c->teacher_scale[p % 3], sh = c->teacher_shift[p % 3];
                for (size_t j = p * hw; j < (p + 1) * hw; j++)
                    xt[j] = x[j] * sc + sh;
            }
            tx = xt;
        }
        os_tnet_forward(os_dp_tnet(c->teacher, r), tx, m, false, tl);
        float kd = os_distill_kl(logits, tl, m, K, (float)os_tnet_timesteps(t), c->distill_temp,
                                 a, dlogits);
        loss = (1 - a) * loss + a * kd;
    }
    if (share != 1.0f)
        for (size_t j = 0; j < (size_t)m * K; j++)
            dlogits[j] *= share;
    b->loss[r] = (double)loss * m;
    os_tnet_backward(t, dlogits,
                     c->surrogate_gamma > 0.0f ? c->surrogate_gamma : OS_SURROGATE_GAMMA);
}

os_status os_train_epoch(os_dp *dp, const os_imageset *train,
                         const os_epoch_config *c, os_epoch_stats *out)
{
    memset(out, 0, sizeof *out);
    int K = net_classes(os_dp_tnet(dp, 0)), R = os_dp_replicas(dp);
    size_t n = train->n;
    /* drop_last: a tiny final batch gives BatchNorm meaningless statistics */
    size_t used = n >= (size_t)c->batch ? n / (size_t)c->batch * (size_t)c->batch : n;
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    batch_job b = {.dp = dp, .c = c, .K = K, .per = (size_t)3 * train->side * train->side};
    b.logits = malloc((size_t)c->batch * K * sizeof *b.logits);
    b.dlogits = malloc((size_t)c->batch * K * sizeof *b.dlogits);
    b.dlogits_b = malloc((size_t)c->batch * K * sizeof *b.dlogits_b);
    b.tlogits = c->teacher ? malloc((size_t)c->batch * K * sizeof *b.tlogits) : NULL;
    b.tx = c->teacher && c->teacher_scale ? malloc((size_t)c->batch * b.per * sizeof *b.tx) : NULL;
    os_loader *l = NULL;
    os_status st = OS_OK;
    if (!order || !b.logits || !b.dlogits || !b.dlogits_b || (c->teacher && !b.tlogits) ||
        (c->teacher && c->teacher_scale && !b.tx)) {
        st = os_fail(OS_ENOMEM, "no memory for an epoch");
        goto out;
    }
    if (c->teacher && os_dp_replicas(c->teacher) != R) {
        st = os_fail(OS_EINVAL, "teacher has %d replicas, the network %d",
                     os_dp_replicas(c->teacher), R);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    os_shuffle(order, n, c->seed);
    if ((st = os_loader_start(train, order, used, c->batch, 0, &c->aug, c->seed, &l)))
        goto out;
    double t0 = os_clock_s(), loss_sum = 0;
    long correct_sum = 0, seen = 0;
    size_t total = (used + (size_t)c->batch - 1) / (size_t)c->batch, done = 0;
    while (os_loader_next(l, &b.in)) {
        b.active = b.in.count >= R ? R : 1;
        os_dp_run(dp, b.active, run_slice, &b);
        double loss = 0;
        int correct = 0;
        for (int r = 0; r < b.active; r++)
            loss += b.loss[r], correct += b.correct[r];
        loss /= b.in.count;
        if (!isfinite(loss)) {
            st = os_fail(OS_EINVAL, "training diverged: loss is %g at step %ld (lower the learning rate)",
                         loss, c->step0 + out->steps);
            goto out;
        }
        if ((st = os_dp_step(dp, &c->opt, c->step0 + out->steps)))
            goto out;
        out->steps++;
        if (c->ema)
            os_ema_update(c->ema, os_dp_params(dp, 0), c->step0 + out->steps);
        loss_sum += loss * b.in.count;
        correct_sum += correct;
        seen += b.in.count;
        done++;
        if (c->progress)
            c->progress(c->progress_ctx, done, total, loss_sum / seen, (double)correct_sum / seen,
                        seen / (os_clock_s() - t0));
    }
    out->seconds = os_clock_s() - t0;
    out->loss = seen ? loss_sum / seen : 0;
    out->acc = seen ? (double)correct_sum / seen : 0;
    out->images_per_s = out->seconds > 0 ? seen / out->seconds : 0;
out:
    os_loader_stop(l);
    free(order);
    free(b.logits);
    free(b.dlogits);
    free(b.dlogits_b);
    free(b.tlogits);
    free(b.tx);
    return st;
}

/* Evaluation batches on every replica: batch b (images [b*B, (b+1)*B)) runs on replica
 * b mod R, its logits into the batch's rows and its spikes into the replica's counters. */
typedef struct {
    os_dp *dp;
    const os_imageset *set;
    const os_aug_config *aug;
    int classes, B, n_lif;
    float *logits;           /* set->n x classes */
    float *x[OS_DP_MAX_REPLICAS];
    uint64_t *spikes[OS_DP_MAX_REPLICAS], *steps[OS_DP_MAX_REPLICAS];
} eval_job;

static void eval_slice(void *ctx, int r)
{
    eval_job *e = ctx;
    os_tnet *t = os_dp_tnet(e->dp, r);
    const size_t per = (size_t)3 * e->set->side * e->set->side;
    const int R = os_dp_replicas(e->dp);
    for (size_t i0 = (size_t)r * e->B; i0 < e->set->n; i0 += (size_t)R * e->B) {
        int count = (int)(e->set->n - i0 < (size_t)e->B ? e->set->n - i0 : (size_t)e->B);
        for (int k = 0; k < count; k++)
            os_augment(e->set, i0 + (size_t)k, e->aug, 0, e->x[r] + (size_t)k * per);
        os_tnet_forward(t, e->x[r], count, false, e->logits + i0 * (size_t)e->classes);
        for (int k = 0; k < e->n_lif; k++) {
            const char *name;
            uint64_t sp, ns;
            os_tnet_spikes(t, k, &name, &sp, &ns);
            e->spikes[r][k] += sp, e->steps[r][k] += ns;
        }
    }
}

/* Scored by os_score (score.h): the engine's ranking of the logits, so the figures are those
 * fit_eval_files gets from the exported model whenever the two nets agree. */
os_status os_dp_evaluate(os_dp *dp, const os_imageset *set, const os_aug_config *aug,
                         int classes, os_eval_result *out)
{
    memset(out, 0, sizeof *out);
    const int R = os_dp_replicas(dp);
    eval_job e = {.dp = dp, .set = set, .aug = aug, .classes = classes,
                  .B = os_tnet_max_batch(os_dp_tnet(dp, 0)),
                  .n_lif = os_tnet_lif_count(os_dp_tnet(dp, 0))};
    const size_t per = (size_t)3 * set->side * set->side;
    os_score sc;
    os_status st = os_score_init(&sc, classes);
    if (st)
        return st;
    out->classes = classes;
    out->per_class = calloc((size_t)classes, sizeof *out->per_class);
    out->n_lif = e.n_lif;
    out->spikes = calloc((size_t)e.n_lif + 1, sizeof *out->spikes);
    out->neuron_steps = calloc((size_t)e.n_lif + 1, sizeof *out->neuron_steps);
    e.logits = malloc((set->n ? set->n : 1) * (size_t)classes * sizeof *e.logits);
    bool ok = out->per_class && out->spikes && out->neuron_steps && e.logits;
    for (int r = 0; ok && r < R; r++) {
        e.x[r] = malloc((size_t)e.B * per * sizeof *e.x[r]);
        e.spikes[r] = calloc((size_t)e.n_lif + 1, sizeof *e.spikes[r]);
        e.steps[r] = calloc((size_t)e.n_lif + 1, sizeof *e.steps[r]);
        ok = e.x[r] && e.spikes[r] && e.steps[r];
    }
    if (!ok) {
        st = os_fail(OS_ENOMEM, "no memory for evaluation");
        goto out;
    }
    os_dp_run(dp, R, eval_slice, &e);
    for (size_t i = 0; i < set->n; i++)
        os_score_add(&sc, e.logits + i * (size_t)classes, set->labels[i]);
    for (int r = 0; r < R; r++)
        for (int k = 0; k < e.n_lif; k++)
            out->spikes[k] += e.spikes[r][k], out->neuron_steps[k] += e.steps[r][k];
    out->n = set->n;
    out->top1 = os_score_top1(&sc);
    out->top5 = os_score_top5(&sc);
    for (int c = 0; c < classes; c++)
        os_score_class_accuracy(&sc, c, &out->per_class[c]);
    out->confusion = sc.confusion; /* taken */
    sc.confusion = NULL;
out:
    for (int r = 0; r < R; r++)
        free(e.x[r]), free(e.spikes[r]), free(e.steps[r]);
    free(e.logits);
    os_score_free(&sc);
    if (st)
        os_eval_result_free(out);
    return st;
}

os_status os_evaluate(os_tnet *t, const os_imageset *set, const os_aug_config *aug, int classes,
                      os_eval_result *out)
{
    os_dp *dp = os_dp_wrap(t);
    if (!dp)
        return os_fail(OS_ENOMEM, "no memory for evaluation");
    os_status st = os_dp_evaluate(dp, set, aug, classes, out);
    os_dp_unwrap(dp);
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

/* ---- rewrites of the layer graph ----
 *
 * Each rewrite edits a copy of its input graph, so that on failure the caller keeps the graph
 * it had (the parameter set may have been changed, as the error says the run cannot go on).
 */

static os_param *tensor_param(os_params *p, const os_layer_spec *l, os_tensor_role r)
{
    return l->tensor[r] ? os_params_find(p, l->tensor[r]) : NULL;
}

/* Remove from p the tensors layer l binds and its LIF scalars. */
static void drop_layer_params(os_params *p, const os_layer_spec *l)
{
    for (int r = 0; r < OS_TENSOR_ROLES; r++)
        if (l->tensor[r])
            os_params_remove(p, l->tensor[r]);
    char name[OS_NET_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s.threshold", l->name);
    os_params_remove(p, name);
    snprintf(name, sizeof name, "%s.leak", l->name);
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

/* Fold BatchNorm i of g into the conv ci it reads (that conv feeding nothing else). */
static os_status fold_one(os_graph *g, int i, int ci, os_params *p)
{
    const os_layer_spec *bn = os_graph_layer(g, i), *conv = os_graph_layer(g, ci);
    os_param *w = tensor_param(p, conv, OS_TENSOR_WEIGHT);
    os_param *b = tensor_param(p, conv, OS_TENSOR_BIAS);
    os_param *ga = tensor_param(p, bn, OS_TENSOR_WEIGHT), *be = tensor_param(p, bn, OS_TENSOR_BIAS);
    os_param *m = tensor_param(p, bn, OS_TENSOR_MEAN), *v = tensor_param(p, bn, OS_TENSOR_VAR);
    if (!w || !ga || !be || !m || !v)
        return os_fail(OS_EARCH, "BatchNorm \"%s\" or conv \"%s\" lacks tensors", bn->name,
                       conv->name);
    int outc = (int)w->view.shape[0];
    size_t fan = w->view.count / (size_t)outc;
    if (!b) {
        char bname[OS_NET_NAME_MAX + 16];
        snprintf(bname, sizeof bname, "%s.bias", conv->name);
        os_status st;
        if ((st = add_filled(p, bname, outc, 0.0f)) ||
            (st = os_graph_set_tensor(g, ci, OS_TENSOR_BIAS, bname)))
            return st;
        b = os_params_find(p, bname);
    }
    for (int o = 0; o < outc; o++) {
        float scale = (float)(ga->data[o] / sqrt((double)v->data[o] + bn->eps));
        for (size_t j = 0; j < fan; j++)
            w->data[(size_t)o * fan + j] *= scale;
        b->data[o] = (b->data[o] - m->data[o]) * scale + be->data[o];
    }
    drop_layer_params(p, bn);
    return OS_OK;
}

os_status os_fold_batchnorm(const os_graph *layers, os_params *p, os_graph **out)
{
    *out = NULL;
    int n = os_graph_count(layers);
    os_graph *g = NULL;
    int *consumers = malloc((size_t)n * sizeof *consumers);
    int *alias = malloc((size_t)n * sizeof *alias); /* a folded BN reads as its conv */
    bool *drop = calloc((size_t)n, sizeof *drop);
    os_status st = OS_OK;
    if (!consumers || !alias || !drop)
        st = os_fail(OS_ENOMEM, "no memory to fold BatchNorm");
    if (!st)
        st = os_graph_clone(layers, &g);
    if (!st)
        os_graph_consumers(g, consumers);
    for (int i = 0; i < n && !st; i++) {
        const os_layer_spec *bn = os_graph_layer(g, i);
        alias[i] = i;
        if (bn->op != OS_OP_BN)
            continue;
        int ci = bn->from[0] == OS_NET_INPUT ? OS_NET_INPUT : alias[bn->from[0]];
        if (ci == OS_NET_INPUT || os_graph_layer(g, ci)->op != OS_OP_CONV || consumers[ci] != 1) {
            st = os_fail(OS_EARCH, "cannot fold BatchNorm \"%s\": its input is not a conv used only by it",
                         bn->name);
            break;
        }
        if ((st = fold_one(g, i, ci, p)))
            break;
        consumers[ci] = consumers[i]; /* what read the BN reads the conv */
        alias[i] = ci;
        drop[i] = true;
    }
    if (!st) {
        os_graph_remove_where(g, drop);
        *out = g;
        g = NULL;
    }
    os_graph_destroy(g);
    free(consumers);
    free(alias);
    free(drop);
    return st;
}

/* Insert an identity-initialised BN after conv layer i of g; its tensors go into p. */
static os_status insert_bn_after(os_graph *g, int i, os_params *p)
{
    const os_layer_spec *conv = os_graph_layer(g, i);
    const char *cname = conv->name;
    os_param *w = tensor_param(p, conv, OS_TENSOR_WEIGHT);
    if (!w)
        return os_fail(OS_EARCH, "conv \"%s\" has no weight tensor", cname);
    int c = (int)w->view.shape[0];
    char name[OS_NET_NAME_MAX + 8], tn[OS_TENSOR_ROLES][OS_NET_NAME_MAX + 32];
    size_t len = strlen(cname);
    if (len > 5 && strcmp(cname + len - 5, ".conv") == 0)
        snprintf(name, sizeof name, "%.*s.bn", (int)(len - 5), cname);
    else
        snprintf(name, sizeof name, "%s.bn", cname);
    if (strlen(name) >= OS_NET_NAME_MAX || os_graph_find(g, name) != -2)
        return os_fail(OS_EARCH, "cannot name a BatchNorm after conv \"%s\"", cname);
    os_layer_spec bn = {.op = OS_OP_BN, .eps = OS_GRAPH_DEFAULT_BN_EPS};
    snprintf(bn.name, sizeof bn.name, "%s", name);
    static const char *const suffix[OS_TENSOR_ROLES] = {"weight", "bias", "running_mean",
                                                        "running_var"};
    static const float init[OS_TENSOR_ROLES] = {1, 0, 0, 1};
    for (int k = 0; k < OS_TENSOR_ROLES; k++) {
        snprintf(tn[k], sizeof tn[k], "%s.%s", name, suffix[k]);
        os_status st = add_filled(p, tn[k], c, init[k]);
        if (st)
            return st;
        bn.tensor[k] = tn[k];
    }
    return os_graph_insert_after(g, i, &bn); /* copies the names */
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

os_status os_insert_batchnorm(const os_graph *layers, int in_c, int in_h, int in_w, int classes,
                              os_params *p, const os_imageset *calib, const os_aug_config *aug,
                              int batch, os_graph **out)
{
    *out = NULL;
    os_graph *g = NULL;
    os_status st = os_graph_clone(layers, &g);
    for (int i = 0; !st && i < os_graph_count(g); i++)
        if (os_graph_layer(g, i)->op == OS_OP_CONV)
            st = insert_bn_after(g, i++, p); /* skip the BN just inserted */
    int n = (int)(calib->n < (size_t)batch ? calib->n : (size_t)batch);
    float *x = st ? NULL : spread_batch(calib, aug, n);
    float *logits = st ? NULL : malloc((size_t)(n ? n : 1) * classes * sizeof *logits);
    os_tnet *t = NULL;
    if (!st && (!x || !logits))
        st = os_fail(OS_ENOMEM, "no memory for BatchNorm initialisation");
    if (!st && n == 0)
        st = os_fail(OS_EINVAL, "BatchNorm initialisation needs calibration images");
    if (!st)
        st = os_tnet_create(g, in_c, in_h, in_w, classes, p, n, 1, &t);
    /* Layer by layer: with running statistics zeroed, one training-mode forward leaves
     * momentum * (batch mean, batch variance) in them; the BNs before this one are final.
     * The tnet's layers are the graph's, index for index. */
    for (int i = 0; !st && i < os_graph_count(g); i++) {
        const os_layer_spec *l = os_graph_layer(g, i);
        if (l->op != OS_OP_BN)
            continue;
        os_param *ga = tensor_param(p, l, OS_TENSOR_WEIGHT);
        os_param *b = tensor_param(p, l, OS_TENSOR_BIAS);
        os_param *m = tensor_param(p, l, OS_TENSOR_MEAN), *v = tensor_param(p, l, OS_TENSOR_VAR);
        const os_layer *bl = os_net_layer(os_tnet_net(t), i);
        size_t c = ga->view.count;
        memset(m->data, 0, c * sizeof *m->data);
        memset(v->data, 0, c * sizeof *v->data);
        os_tnet_forward(t, x, n, true, logits);
        /* The running variance is unbiased (m/(m-1)); training mode divides by the biased one,
         * which both keep here so that either mode reproduces the conv on these images. */
        double cnt = (double)n * bl->h * bl->w, biased = cnt > 1 ? (cnt - 1) / cnt : 1;
        for (size_t k = 0; k < c; k++) {
            m->data[k] /= OS_BN_MOMENTUM;
            v->data[k] = (float)(v->data[k] / OS_BN_MOMENTUM * biased);
            ga->data[k] = (float)sqrt(v->data[k] + bl->eps);
            b->data[k] = m->data[k];
        }
    }
    /* Each pass also moved the running statistics of the BNs before it: restore them. */
    for (int i = 0; !st && i < os_graph_count(g); i++) {
        const os_layer_spec *l = os_graph_layer(g, i);
        if (l->op != OS_OP_BN)
            continue;
        os_param *ga = tensor_param(p, l, OS_TENSOR_WEIGHT);
        os_param *b = tensor_param(p, l, OS_TENSOR_BIAS);
        os_param *m = tensor_param(p, l, OS_TENSOR_MEAN), *v = tensor_param(p, l, OS_TENSOR_VAR);
        const os_layer *bl = os_net_layer(os_tnet_net(t), i);
        for (size_t k = 0; k < ga->view.count; k++) {
            m->data[k] = b->data[k];
            v->data[k] = fmaxf(ga->data[k] * ga->data[k] - bl->eps, 0.0f);
        }
    }
    os_tnet_destroy(t);
    free(x);
    free(logits);
    if (st) {
        os_graph_destroy(g);
        return st;
    }
    *out = g;
    return OS_OK;
}

float os_percentile(float *v, size_t n, double pct)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)floor(pct / 100.0 * (double)(n - 1));
    os_select_kth(v, n, k);
    return v[k];
}

/* Percentile of each ReLU's input over the calibration images. */
static os_status calibrate(const os_graph *layers, int in_c, int in_h, int in_w, int classes,
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

static bool is_free(const os_layer_spec *l)
{
    return l->op == OS_OP_CONV || l->op == OS_OP_LINEAR;
}

/* Where each layer is one input of an add: the add and its other input, listed per layer
 * (entries first[i] .. first[i + 1] - 1) in graph order. Built in one pass, so that conversion
 * does not scan the graph once per conv. */
typedef struct {
    int *first;
    struct add_use {
        int add, other;
    } *use;
} add_uses;

static os_status add_uses_build(const os_graph *g, add_uses *u)
{
    int n = os_graph_count(g);
    u->first = calloc((size_t)n + 2, sizeof *u->first);
    u->use = malloc((size_t)(2 * n + 1) * sizeof *u->use);
    if (!u->first || !u->use)
        return os_fail(OS_ENOMEM, "no memory for conversion");
    for (int j = 0; j < n; j++) {
        const os_layer_spec *a = os_graph_layer(g, j);
        for (int q = 0; a->op == OS_OP_ADD && q < 2; q++)
            if (a->from[q] != OS_NET_INPUT)
                u->first[a->from[q] + 2]++;
    }
    for (int i = 0; i < n; i++) /* first[i + 2] counts; shifted prefix sums leave slots */
        u->first[i + 2] += u->first[i + 1];
    for (int j = 0; j < n; j++) {
        const os_layer_spec *a = os_graph_layer(g, j);
        for (int q = 0; a->op == OS_OP_ADD && q < 2; q++)
            if (a->from[q] != OS_NET_INPUT)
                u->use[u->first[a->from[q] + 1]++] = (struct add_use){j, a->from[1 - q]};
    }
    return OS_OK;
}

os_status os_convert_to_snn(const os_graph *layers, int in_c, int in_h, int in_w, int classes,
                            os_params *p, const os_imageset *calib, const os_aug_config *aug,
                            double percentile, double shift, int timesteps, int batch,
                            os_graph **out)
{
    *out = NULL;
    float *pre = NULL;
    int na = 0;
    os_graph *g = NULL;
    double *sigma = NULL;
    add_uses uses = {0};
    os_status st = calibrate(layers, in_c, in_h, in_w, classes, p, calib, aug, percentile, batch,
                             &pre, &na);
    if (st)
        return st;
    int n = os_graph_count(layers);
    if ((st = os_graph_clone(layers, &g)) || (st = add_uses_build(g, &uses)))
        goto out;
    if (!(sigma = calloc((size_t)n, sizeof *sigma))) {
        st = os_fail(OS_ENOMEM, "no memory");
        goto out;
    }
    int act = 0;
    for (int i = 0; i < n && !st; i++) {
        os_layer_spec *l = os_graph_edit(g, i);
        int fi = l->from[0];
        double s_in = fi < 0 ? 1.0 : sigma[fi];
        if (is_free(l)) {
            /* Output scale: 1, or the scale of the spike tensor this output is added to. */
            double target = 1.0;
            for (int e = uses.first[i]; e < uses.first[i + 1]; e++) {
                int other = uses.use[e].other;
                if (other >= 0 && !is_free(os_graph_layer(g, other))) {
                    if (other > i)
                        st = os_fail(OS_EARCH, "conversion: add \"%s\" takes a spike input defined after \"%s\"",
                                     os_graph_layer(g, uses.use[e].add)->name, l->name);
                    target = sigma[other];
                }
            }
            os_param *w = tensor_param(p, l, OS_TENSOR_WEIGHT);
            os_param *b = tensor_param(p, l, OS_TENSOR_BIAS);
            float ws = (float)(s_in / target);
            for (size_t k = 0; w && k < w->view.count; k++)
                w->data[k] *= ws;
            for (size_t k = 0; b && k < b->view.count; k++)
                b->data[k] = (float)(b->data[k] / target);
            sigma[i] = target;
        } else if (l->op == OS_OP_RELU) {
            double pk = pre[act++], thr = pk / s_in;
            /* The current comes from a conv/linear, or an add with one such input. */
            const os_layer_spec *src = fi >= 0 ? os_graph_layer(g, fi) : NULL;
            if (src && src->op == OS_OP_ADD) {
                for (int q = 0; q < 2; q++) {
                    int k = src->from[q];
                    if (k >= 0 && is_free(os_graph_layer(g, k))) {
                        src = os_graph_layer(g, k);
                        break;
                    }
                }
            }
            os_param *b = src && is_free(src) ? tensor_param(p, src, OS_TENSOR_BIAS) : NULL;
            for (size_t k = 0; b && k < b->view.count; k++)
                b->data[k] += (float)(shift * thr / timesteps);
            if ((st = os_graph_replace_op(g, i, OS_OP_LIF)))
                break;
            l->threshold = thr, l->leak = 1.0;
            sigma[i] = pk;
        } else if (l->op == OS_OP_ADD) {
            int f2 = l->from[1];
            double s2 = f2 < 0 ? 1.0 : sigma[f2];
            if (fabs(s_in - s2) > 1e-6 * fmax(s_in, s2))
                st = os_fail(OS_EARCH, "conversion: add \"%s\" joins scales %g and %g", l->name,
                             s_in, s2);
            sigma[i] = s_in;
        } else if (l->op == OS_OP_BN || l->op == OS_OP_LIF) {
            st = os_fail(OS_EARCH, "conversion wants a BN-free ReLU network, found %s \"%s\"",
                         os_op_name(l->op), l->name);
        } else {
            sigma[i] = s_in; /* pooling commutes with a positive scale */
        }
    }
out:
    free(sigma);
    free(pre);
    free(uses.first);
    free(uses.use);
    if (st) {
        os_graph_destroy(g);
        return st;
    }
    *out = g;
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

os_status os_recalibrate_thresholds(const os_graph *layers, int in_c, int in_h, int in_w,
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

os_status os_remove_units(const os_graph *layers, os_params *p, os_graph **out)
{
    *out = NULL;
    int n = os_graph_count(layers);
    bool *drop = calloc((size_t)n + 1, sizeof *drop);
    if (!drop)
        return os_fail(OS_ENOMEM, "no memory to remove Units");
    os_graph *g = NULL;
    os_status st = os_graph_clone(layers, &g);
    for (int i = 0; !st && i < n; i++) {
        const os_layer_spec *l = os_graph_layer(g, i);
        if (l->unit > 0) {
            drop[i] = true;
            drop_layer_params(p, l);
        }
    }
    /* A Unit's consumers read the Unit chain's input: each removed layer passes on its first
     * input (a block's add its body, which leads back to the chain's input). */
    if (!st)
        os_graph_remove_where(g, drop);
    free(drop);
    if (!st)
        *out = g;
    return st;
}

void os_layers_sync_lif(os_graph *g, os_params *p)
{
    for (int i = 0; i < os_graph_count(g); i++) {
        os_layer_spec *l = os_graph_edit(g, i);
        if (l->op != OS_OP_LIF)
            continue;
        char name[OS_NET_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s.threshold", l->name);
        os_param *t = os_params_find(p, name);
        if (t)
            l->threshold = t->data[0];
        snprintf(name, sizeof name, "%s.leak", l->name);
        os_param *k = os_params_find(p, name);
        if (k)
            l->leak = k->data[0];
    }
}
