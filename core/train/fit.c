/* fit.c - the training pipeline with checkpoints; see fit.h. */
#include "onespike/fit.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "onespike/arch.h"
#include "onespike/clock.h"
#include "onespike/dataset.h"
#include "onespike/fit_flags.h"
#include "onespike/fit_report.h"
#include "dconv.h"
#include "gemm.h"
#include "grad.h"
#include "onespike/model.h"
#include "onespike/rng.h"
#include "train.h"

/* CALIB_BATCH: images of the calibration set used for threshold recalibration and BatchNorm
 * initialisation (one forward pass each). */
enum { FIT_MAX_STAGES = 80, PATH_LEN = 4096, CKPT_VERSION = 1, CALIB_BATCH = 128 };

#define CKPT_FILE "checkpoint.safetensors"
#define METRICS_FILE "metrics.jsonl"
#define ANN_FILE "ann.safetensors"
#define UNITS_FILE "units.safetensors" /* --unit-teacher: the T = 1 network before removal */
#define EMA_PREFIX "ema." /* the weight average's tensors in a checkpoint */

/* fit_defaults and fit_config_json are driven by the flag table: fit_flags.c. */

typedef enum { STAGE_TRAIN, STAGE_CONVERT, STAGE_PRUNE, STAGE_START } stage_kind;

typedef struct {
    char name[32];
    stage_kind kind;
    int T, epochs;
    double lr;
    int prev_T; /* temporal pruning: the T this stage starts from (0: none) */
} stage;

typedef struct {
    const fit_config *c;
    stage stages[FIT_MAX_STAGES];
    int n_stages, stage, epoch; /* epochs done in the current stage */
    double stage_seconds;       /* time spent in the current stage so far */
    os_dataset *ds;
    os_imageset train, val;
    os_imageset calib; /* calib_images training images spread over all classes */
    os_aug_config aug_train, aug_eval;
    os_raster_input raster; /* --bands, --scale: how the images are read; in the model too */
    int classes;
    os_graph *layers; /* the network; JSON only in the files written and read */
    json_t *history;
    os_params *params;
    os_ema *ema; /* --ema: the running stage's weight average, checkpointed with it */
    char workdir[PATH_LEN], ckpt[PATH_LEN];
    FILE *metrics;
    time_t started;
} fit_state;

static void build_stages(fit_state *s)
{
    const fit_config *c = s->c;
    int n = 0;
    if (c->snn_from) { /* stage 0 records the given model; then only the fine-tune */
        s->stages[n++] = (stage){"from-model", STAGE_START, 1, 0, 0, 0};
        s->stages[n++] = (stage){"finetune", STAGE_TRAIN, 1, c->epochs_finetune, c->lr_finetune, 0};
        s->n_stages = n;
        return;
    }
    s->stages[n++] = (stage){"ann", STAGE_TRAIN, 1, c->epochs_ann, c->lr_ann, 0};
    s->stages[n] = (stage){"", STAGE_CONVERT, c->t0, 0, 0, 0};
    snprintf(s->stages[n++].name, sizeof s->stages[0].name, "convert");
    for (int T = c->t0; T >= 1; T--) {
        int epochs = T == c->t0 && c->epochs_t0 >= 0 ? c->epochs_t0 : c->epochs_snn;
        s->stages[n] = (stage){"", STAGE_TRAIN, T, epochs, c->lr_snn, T < c->t0 ? T + 1 : 0};
        snprintf(s->stages[n++].name, sizeof s->stages[0].name, "snn-T%d", T);
    }
    if (c->units > 0)
        s->stages[n++] = (stage){"remove-units", STAGE_PRUNE, 1, 0, 0, 0};
    if (c->epochs_finetune > 0)
        s->stages[n++] = (stage){"finetune", STAGE_TRAIN, 1, c->epochs_finetune, c->lr_finetune, 0};
    s->n_stages = n;
}

static void warn_image(const char *msg)
{
    fprintf(stderr, "onespike-train fit: warning: %s\n", msg);
}

/* ---- progress ---- */

typedef struct {
    const fit_state *s;
    int epoch, epochs;
    double t0;
    bool tty;
} progress_ctx;

static void progress(void *ctx, size_t done, size_t total, double loss, double acc, double ips)
{
    progress_ctx *p = ctx;
    if (!p->tty)
        return;
    enum { BAR = 24 };
    char bar[BAR + 1];
    int fill = total ? (int)(BAR * done / total) : BAR;
    for (int i = 0; i < BAR; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR] = '\0';
    double elapsed = os_clock_s() - p->t0, eta = done ? elapsed * (double)(total - done) / done : 0;
    fprintf(stderr, "\r[%s %d/%d] %s %zu/%zu  %.0f img/s  loss %.3f  acc %.1f%%  ETA %dm%02ds ",
            p->s->stages[p->s->stage].name, p->epoch + 1, p->epochs, bar, done, total, ips, loss,
            100 * acc, (int)eta / 60, (int)eta % 60);
    if (done == total)
        fputc('\n', stderr);
}

/* ---- checkpoints ---- */

/* The model document (new reference), NULL without memory. */
static json_t *model_doc(const fit_state *s, const os_graph *layers, int T, const char *name)
{
    json_t *labels = json_array();
    for (int i = 0; i < s->classes; i++)
        json_array_append_new(labels, json_string(os_dataset_class(s->ds, i)));
    const float *m = s->aug_train.mean, *d = s->aug_train.std;
    json_t *doc = json_pack("{s:s, s:s, s:i, s:{s:i, s:i, s:i, s:[f,f,f], s:[f,f,f], s:s}, s:o, s:o}",
                            "name", name, "version", "1", "timesteps", T, "input", "channels", 3,
                            "height", s->c->input, "width", s->c->input, "mean", m[0], m[1], m[2],
                            "std", d[0], d[1], d[2], "resize", "stretch", "labels", labels,
                            "layers", os_graph_to_json(layers));
    const os_raster_input *r = &s->raster;
    if (doc && !os_raster_input_is_default(r)) { /* what serving must read as this run did */
        char scale[OS_RASTER_TEXT_MAX];
        os_raster_scale_format(r, scale, sizeof scale);
        json_t *in = json_object_get(doc, "input");
        json_object_set_new(in, "bands", json_pack("[i,i,i]", r->bands[0], r->bands[1], r->bands[2]));
        json_object_set_new(in, "scale", json_string(scale));
    }
    return doc;
}

static os_status write_checkpoint(fit_state *s)
{
    os_layers_sync_lif(s->layers, s->params);
    int T = s->stage < s->n_stages ? s->stages[s->stage].T : 1;
    json_t *doc = model_doc(s, s->layers, T, "checkpoint");
    if (!doc)
        return os_fail(OS_ENOMEM, "no memory for the checkpoint document");
    json_object_set_new(doc, "checkpoint",
                        json_pack("{s:i, s:i, s:i, s:f, s:O, s:o, s:I}", "version", CKPT_VERSION,
                                  "stage", s->stage, "epoch", s->epoch, "stage_seconds",
                                  s->stage_seconds, "history", s->history, "config",
                                  fit_config_json(s->c), "started", (json_int_t)s->started));
    os_tensor_view *v = NULL, *ev = NULL;
    size_t n = 0, en = 0;
    os_status st = os_params_views(s->params, true, true, &v, &n);
    if (!st && s->ema)
        st = os_ema_views(s->ema, EMA_PREFIX, &ev, &en);
    if (!st && en) {
        os_tensor_view *all = realloc(v, (n + en) * sizeof *v);
        if (!all) {
            st = os_fail(OS_ENOMEM, "no memory for the checkpoint's tensors");
        } else {
            memcpy(all + n, ev, en * sizeof *ev);
            v = all, n += en;
        }
    }
    if (!st)
        st = os_model_write(s->ckpt, doc, v, n);
    free(v);
    free(ev);
    json_decref(doc);
    return st;
}

/* Config fields that must match for a resume (threads, resume and the command may differ): the
 * checkpoint's config ck and this run's cfg. A key this run records and the checkpoint lacks
 * (an older build's) is compared as what its absence reads as (fit_config_absent). */
static bool same_config(const json_t *ck, const json_t *cfg, const char **field)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ck, k, v) {
        if (!json_equal(v, json_object_get(cfg, k))) {
            *field = k;
            return false;
        }
    }
    json_object_foreach((json_t *)cfg, k, v) {
        if (json_object_get(ck, k))
            continue;
        json_t *absent = fit_config_absent(k);
        const bool same = absent && json_equal(v, absent);
        json_decref(absent);
        if (!same) {
            *field = k;
            return false;
        }
    }
    return true;
}

static os_status ensure_lif_params(const os_graph *g, os_params *p)
{
    for (int i = 0; i < os_graph_count(g); i++) {
        const os_layer_spec *l = os_graph_layer(g, i);
        if (l->op != OS_OP_LIF)
            continue;
        char pn[OS_NET_NAME_MAX + 16];
        static const char *const f[2] = {"threshold", "leak"};
        const double value[2] = {l->threshold, l->leak};
        for (int k = 0; k < 2; k++) {
            snprintf(pn, sizeof pn, "%s.%s", l->name, f[k]);
            os_status st;
            if (!os_params_find(p, pn) && (st = os_params_add_scalar(p, pn, (float)value[k])))
                return st;
        }
    }
    return OS_OK;
}

/* A parameter set holding a copy of the model's tensors, less the optimizer state ("opt.*")
 * and a checkpoint's weight average ("ema.*"). */
static os_status params_from_model(const os_model *m, os_params **out)
{
    os_status st = os_params_create(out);
    const os_st_file *tf = os_model_tensors(m);
    for (size_t i = 0; !st && i < os_st_count(tf); i++) {
        const os_tensor_view *t = os_st_tensor(tf, i);
        if (strncmp(t->name, "opt.", 4) != 0 && strncmp(t->name, EMA_PREFIX, strlen(EMA_PREFIX)))
            st = os_params_add(*out, t);
    }
    return st;
}

static const os_tensor_view *find_in_model(const void *m, const char *name)
{
    return os_st_find(os_model_tensors(m), name);
}

static os_status load_checkpoint(fit_state *s)
{
    os_model *m = NULL;
    os_status st = os_model_load(s->ckpt, &m);
    if (st)
        return st;
    const json_t *doc = os_model_doc(m), *ck = json_object_get(doc, "checkpoint");
    json_t *cfg = fit_config_json(s->c);
    const char *field = "";
    if (!json_is_object(ck) || json_integer_value(json_object_get(ck, "version")) != CKPT_VERSION) {
        st = os_fail(OS_EFORMAT, "%s: not a onespike training checkpoint", s->ckpt);
    } else if (!same_config(json_object_get(ck, "config"), cfg, &field)) {
        const json_t *wv = json_object_get(json_object_get(ck, "config"), field);
        json_t *absent = wv ? NULL : fit_config_absent(field);
        char *was = json_dumps(wv ? wv : absent, JSON_ENCODE_ANY);
        char *now = json_dumps(json_object_get(cfg, field), JSON_ENCODE_ANY);
        st = os_fail(OS_EINVAL, "%s was made with %s = %s%s, this run has %s (use the same flags, or another --workdir)",
                     s->ckpt, field, was ? was : "?", wv ? "" : " (not recorded)", now ? now : "?");
        free(was), free(now);
        json_decref(absent);
    }
    json_decref(cfg);
    if (st)
        goto out;
    /* The stage indexes s->stages: a checkpoint edited by hand, or written by a build with
     * other stages, must not take the run outside the table (n_stages means "export"). */
    json_int_t ck_stage = json_integer_value(json_object_get(ck, "stage"));
    json_int_t epoch = json_integer_value(json_object_get(ck, "epoch"));
    if (!json_is_integer(json_object_get(ck, "stage")) || ck_stage < 0 || ck_stage > s->n_stages) {
        st = os_fail(OS_EFORMAT, "%s: checkpoint stage %lld is not one of this run's stages 0..%d",
                     s->ckpt, (long long)ck_stage, s->n_stages);
        goto out;
    }
    if (epoch < 0 || epoch > INT_MAX) {
        st = os_fail(OS_EFORMAT, "%s: checkpoint epoch %lld out of range", s->ckpt,
                     (long long)epoch);
        goto out;
    }
    s->stage = (int)ck_stage;
    s->epoch = (int)epoch;
    s->stage_seconds = json_number_value(json_object_get(ck, "stage_seconds"));
    s->started = (time_t)json_integer_value(json_object_get(ck, "started"));
    json_decref(s->history);
    s->history = json_deep_copy(json_object_get(ck, "history"));
    os_graph_destroy(s->layers);
    s->layers = NULL;
    if ((st = os_graph_from_json(json_object_get(doc, "layers"), s->ckpt, &s->layers)))
        goto out;
    const float *mean = os_model_mean(m), *sd = os_model_std(m);
    for (int c = 0; c < 3; c++) {
        s->aug_train.mean[c] = s->aug_eval.mean[c] = mean[c];
        s->aug_train.std[c] = s->aug_eval.std[c] = sd[c];
    }
    os_params_destroy(s->params);
    s->params = NULL;
    st = params_from_model(m, &s->params);
    if (!st)
        st = ensure_lif_params(s->layers, s->params);
    if (!st)
        st = os_params_restore_state(s->params, find_in_model, m);
out:
    os_model_destroy(m);
    return st;
}

/* ---- stages ---- */

static void log_metrics(fit_state *s, json_t *row)
{
    if (s->metrics) {
        json_dumpf(row, s->metrics, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fputc('\n', s->metrics);
        fflush(s->metrics);
    }
}

static json_t *spike_rates(const os_tnet *t, const os_eval_result *r)
{
    json_t *a = json_array();
    for (int k = 0; k < r->n_lif; k++) {
        const char *name;
        uint64_t sp, ns;
        os_tnet_spikes(t, k, &name, &sp, &ns);
        double rate = r->neuron_steps[k] ? (double)r->spikes[k] / (double)r->neuron_steps[k] : 0;
        json_array_append_new(a, json_pack("{s:s, s:f}", "layer", name, "rate", rate));
    }
    return a;
}

/* Evaluate the current network at T and append a history entry for the stage. */
static os_status record_stage(fit_state *s, int T, const os_epoch_stats *last, bool final)
{
    os_tnet *t = NULL;
    os_eval_result r = {0};
    os_status st = os_tnet_create(s->layers, 3, s->c->input, s->c->input, s->classes, s->params,
                                  s->c->batch, T, &t);
    if (!st)
        st = os_evaluate(t, &s->val, &s->aug_eval, s->classes, &r);
    if (st) {
        os_tnet_destroy(t);
        return st;
    }
    const stage *S = &s->stages[s->stage];
    json_t *e = json_pack("{s:s, s:i, s:f, s:f, s:f, s:I}", "stage", S->name, "timesteps", T,
                          "val_top1", r.top1, "val_top5", r.top5, "seconds", s->stage_seconds,
                          "params", (json_int_t)os_params_trainable(s->params));
    if (last) {
        json_object_set_new(e, "epochs", json_integer(S->epochs));
        json_object_set_new(e, "train_loss", json_real(last->loss));
        json_object_set_new(e, "train_acc", json_real(last->acc));
        json_object_set_new(e, "images_per_s", json_real(last->images_per_s));
    }
    json_object_set_new(e, "spike_rates", spike_rates(t, &r));
    if (final) {
        json_t *pc = json_object(), *cm = json_array();
        for (int c = 0; c < s->classes; c++) {
            json_object_set_new(pc, os_dataset_class(s->ds, c), json_real(r.per_class[c]));
            json_t *row = json_array();
            for (int j = 0; j < s->classes; j++)
                json_array_append_new(row, json_integer(r.confusion[(size_t)c * s->classes + j]));
            json_array_append_new(cm, row);
        }
        json_object_set_new(e, "per_class", pc);
        json_object_set_new(e, "confusion", cm);
    }
    json_array_append_new(s->history, e);
    if (!s->c->quiet)
        fprintf(stderr, "onespike-train fit: %-12s T=%d  val top-1 %.2f%%  top-5 %.2f%%  (%.0f s)\n",
                S->name, T, 100 * r.top1, 100 * r.top5, s->stage_seconds);
    log_metrics(s, e);
    os_eval_result_free(&r);
    os_tnet_destroy(t);
    return OS_OK;
}

/* Test hook: ONESPIKE_FIT_STOP_AFTER=N makes the run stop after N epochs in this process,
 * as a kill would, so the tests can check that --resume reaches the same model. */
static int epochs_run;

static bool stop_requested(void)
{
    const char *e = getenv("ONESPIKE_FIT_STOP_AFTER");
    epochs_run++;
    return e && *e && epochs_run >= atoi(e);
}

/* The distillation teacher: the trained ANN (--ann-from, or this run's ann.safetensors). */
typedef struct {
    os_params *params;
    os_graph *layers;
    os_dp *net;
    bool renormalise;       /* its mean/std differ from the run's: scale and shift the batch */
    float scale[3], shift[3];
} teacher;

static void teacher_free(teacher *tc)
{
    os_dp_destroy(tc->net);
    os_graph_destroy(tc->layers);
    os_params_destroy(tc->params);
    memset(tc, 0, sizeof *tc);
}

/* Whether model m (read from path, named `what` in the message) fits this run: 3 x --input
 * input and, with labels, this folder's classes in order (hint ends that message). */
static os_status model_fits(const fit_state *s, const os_model *m, const char *what,
                            const char *path, bool labels, const char *hint)
{
    const fit_config *c = s->c;
    int ch, h, w;
    os_model_input(m, &ch, &h, &w);
    if (ch != 3 || h != c->input || w != c->input)
        return os_fail(OS_EINVAL, "%s %s: input %dx%dx%d, this run has 3x%dx%d", what, path, ch,
                       h, w, c->input, c->input);
    for (int k = 0; labels && k < s->classes; k++)
        if (os_model_classes(m) != s->classes ||
            strcmp(os_model_label(m, k), os_dataset_class(s->ds, k)))
            return os_fail(OS_EINVAL, "%s %s: its labels are not the classes of %s%s", what, path,
                           c->data, hint);
    return OS_OK;
}

/* --threads N trains N replicas, each on its own slice of every batch (dp.h). */
static int replicas_of(const fit_config *c)
{
    return c->threads < c->batch ? c->threads : c->batch;
}

static os_status teacher_load(const fit_state *s, teacher *tc)
{
    char path[PATH_LEN + 32];
    const fit_config *c = s->c;
    if (c->teacher || c->ann_from)
        snprintf(path, sizeof path, "%s", c->teacher ? c->teacher : c->ann_from);
    else if (c->unit_teacher && !strcmp(s->stages[s->stage].name, "finetune"))
        snprintf(path, sizeof path, "%s/%s", s->workdir, UNITS_FILE);
    else
        snprintf(path, sizeof path, "%s/%s", s->workdir, ANN_FILE);
    os_model *m = NULL;
    os_status st = os_model_load(path, &m);
    if (!st)
        st = model_fits(s, m, "teacher", path, true, "");
    /* the images are decoded once, the run's way: the teacher must read them so */
    if (!st && !os_raster_input_equal(os_model_raster_input(m), &s->raster))
        st = os_fail(OS_EINVAL, "teacher %s reads rasters through other bands or another scale "
                                "(its input.bands/input.scale) than this run's --bands/--scale",
                     path);
    /* the batch is normalised with the run's mean/std; the teacher learnt with its own:
     * x_t = (x std + mean - mean_t) / std_t */
    for (int k = 0; !st && k < 3; k++) {
        const float mt = os_model_mean(m)[k], st_ = os_model_std(m)[k];
        tc->scale[k] = s->aug_train.std[k] / st_;
        tc->shift[k] = (s->aug_train.mean[k] - mt) / st_;
        tc->renormalise |= mt != s->aug_train.mean[k] || st_ != s->aug_train.std[k];
    }
    if (!st)
        st = params_from_model(m, &tc->params);
    if (!st)
        st = os_graph_from_json(json_object_get(os_model_doc(m), "layers"), path, &tc->layers);
    if (!st)
        st = os_dp_create(tc->layers, 3, s->c->input, s->c->input, s->classes, tc->params,
                          s->c->batch, 1, replicas_of(s->c), &tc->net);
    os_model_destroy(m);
    if (st)
        teacher_free(tc);
    return st;
}

/* --finetune-bn: BatchNorm after every conv for the T = 1 fine-tune, folded away after it. */
static bool bn_finetune(const fit_state *s)
{
    return s->c->finetune_bn && strcmp(s->stages[s->stage].name, "finetune") == 0;
}

static os_status swap_layers(fit_state *s, bool insert)
{
    os_graph *next = NULL;
    os_status st;
    if (insert) {
        st = os_insert_batchnorm(s->layers, 3, s->c->input, s->c->input, s->classes, s->params,
                                 &s->calib, &s->aug_eval, CALIB_BATCH, &next);
    } else {
        st = os_fold_batchnorm(s->layers, s->params, &next);
    }
    if (st)
        return st;
    os_graph_destroy(s->layers);
    s->layers = next;
    return OS_OK;
}

/* --unit-fade: after SNN epoch e of E (counted over every SNN stage), each residual Unit's
 * branch is scaled to alpha_e = 1 - e/E of what it was built as: its last conv (the body end
 * its add reads; BN is folded by then) times alpha_e / alpha_(e-1), so training between two
 * epochs adapts to the smaller branch and after the last one it is exactly 0. Applied before
 * the epoch's checkpoint, so a resume continues the same schedule. */
static os_status fade_units(fit_state *s)
{
    const fit_config *c = s->c;
    int total = c->epochs_t0 + c->epochs_snn * (c->t0 - 1), done = 0;
    for (int k = 0; k < s->stage; k++)
        if (s->stages[k].kind == STAGE_TRAIN && strncmp(s->stages[k].name, "snn-", 4) == 0)
            done += s->stages[k].epochs;
    done += s->epoch; /* epochs of this stage, this one included */
    if (total <= 0 || done <= 0 || done > total)
        return OS_OK;
    double before = 1.0 - (double)(done - 1) / total, after = 1.0 - (double)done / total;
    float f = (float)(after / before);
    int faded = 0;
    for (int i = 0; i < os_graph_count(s->layers); i++) {
        const os_layer_spec *a = os_graph_layer(s->layers, i);
        if (a->op != OS_OP_ADD || a->unit == 0 || a->from[0] < 0)
            continue;
        const os_layer_spec *body = os_graph_layer(s->layers, a->from[0]);
        if (body->op != OS_OP_CONV)
            return os_fail(OS_EINVAL, "--unit-fade: Unit %d's branch %s ends in no conv", a->unit,
                           body->name);
        for (int r = OS_TENSOR_WEIGHT; r <= OS_TENSOR_BIAS; r++) {
            os_param *p = body->tensor[r] ? os_params_find(s->params, body->tensor[r]) : NULL;
            if (!p)
                continue;
            for (size_t j = 0; j < p->view.count; j++)
                p->data[j] = done == total ? 0.0f : p->data[j] * f;
        }
        faded++;
    }
    if (faded == 0)
        return os_fail(OS_EINVAL, "--unit-fade: the network has no residual Unit to fade");
    return OS_OK;
}

/* --ema: the stage's weight average, starting from the weights now or, resuming inside the
 * stage, from the checkpoint's "ema.*" tensors. */
static os_status ema_begin(fit_state *s)
{
    os_status st = os_ema_create(s->params, s->c->ema, &s->ema);
    if (st || s->epoch == 0)
        return st;
    os_model *m = NULL;
    if (!(st = os_model_load(s->ckpt, &m)))
        st = os_ema_restore(s->ema, EMA_PREFIX, find_in_model, m);
    os_model_destroy(m);
    return st;
}

static os_status run_train_stage(fit_state *s)
{
    const fit_config *c = s->c;
    const stage *S = &s->stages[s->stage];
    os_dp *dp = NULL;
    os_status st = OS_OK;
    if (s->epoch == 0 && bn_finetune(s) && (st = swap_layers(s, true)))
        return st;
    st = os_dp_create(s->layers, 3, c->input, c->input, s->classes, s->params, c->batch, S->T,
                      replicas_of(c), &dp);
    if (st)
        return st;
    if (s->epoch == 0) {
        os_params_reset_state(s->params);
        if (S->prev_T && c->recalibrate) {
            st = os_recalibrate_thresholds(s->layers, 3, c->input, c->input, s->classes,
                                           s->params, &s->calib, &s->aug_eval, S->prev_T, S->T,
                                           CALIB_BATCH);
            if (st) {
                os_dp_destroy(dp);
                return st;
            }
        }
    }
    size_t used = s->train.n >= (size_t)c->batch ? s->train.n / (size_t)c->batch : 1;
    long steps_per_epoch = (long)used;
    os_epoch_config ec = {
        .batch = c->batch, .label_smoothing = (float)c->label_smoothing, .aug = s->aug_train,
        .surrogate_gamma = (float)c->surrogate_gamma,
        .opt = {.kind = strcmp(c->optimizer, "sgd") ? OS_OPT_ADAMW : OS_OPT_SGD,
                .lr = (float)S->lr, .momentum = 0.9f, .beta1 = 0.9f, .beta2 = 0.999f,
                .eps = 1e-8f, .weight_decay = (float)c->weight_decay,
                .warmup_steps = (long)c->warmup_epochs * steps_per_epoch,
                .total_steps = (long)S->epochs * steps_per_epoch,
                .lif_lr_scale = (float)c->lif_lr_scale},
    };
    if (ec.opt.warmup_steps >= ec.opt.total_steps)
        ec.opt.warmup_steps = ec.opt.total_steps / 10;
    /* the long stages, where mixing and averaging have steps to work over (ours) */
    const bool ann = strcmp(S->name, "ann") == 0, finetune = strcmp(S->name, "finetune") == 0;
    if (ann || (finetune && c->mix_finetune)) {
        ec.aug.mixup = (float)c->mixup, ec.aug.cutmix = (float)c->cutmix;
        ec.aug.mix_prob = (float)c->mix_prob;
    }
    teacher tc = {0};
    if (c->distill > 0 && !ann && (st = teacher_load(s, &tc))) {
        os_dp_destroy(dp);
        return st;
    }
    if (tc.net) {
        ec.teacher = tc.net, ec.distill = (float)c->distill, ec.distill_temp = (float)c->distill_temp;
        if (tc.renormalise)
            ec.teacher_scale = tc.scale, ec.teacher_shift = tc.shift;
    }
    if (c->ema > 0 && (ann || finetune) && (st = ema_begin(s))) {
        os_dp_destroy(dp);
        teacher_free(&tc);
        return st;
    }
    ec.ema = s->ema;
    os_epoch_stats es = {0};
    while (s->epoch < S->epochs) {
        progress_ctx pc = {s, s->epoch, S->epochs, os_clock_s(), !c->quiet && isatty(2)};
        ec.seed = c->seed * 1000003u + (uint64_t)s->stage * 10007u + (uint64_t)s->epoch;
        ec.step0 = (long)s->epoch * steps_per_epoch;
        ec.progress = progress, ec.progress_ctx = &pc;
        /* each replica's BLAS calls on its own thread */
        if (replicas_of(c) > 1)
            openblas_set_num_threads(1);
        st = os_train_epoch(dp, &s->train, &ec, &es);
        s->stage_seconds += es.seconds;
        /* Validation after every epoch, on the replicas too: what a user watches. */
        os_eval_result vr = {0};
        if (!st)
            st = os_dp_evaluate(dp, &s->val, &s->aug_eval, s->classes, &vr);
        double ema_top1 = 0;
        if (!st && s->ema) { /* and of the average, swapped in for the evaluation */
            os_eval_result er = {0};
            os_ema_swap(s->ema, s->params);
            st = os_dp_evaluate(dp, &s->val, &s->aug_eval, s->classes, &er);
            os_ema_swap(s->ema, s->params);
            ema_top1 = er.top1;
            os_eval_result_free(&er);
        }
        openblas_set_num_threads(c->threads);
        if (st) {
            os_eval_result_free(&vr);
            break;
        }
        json_t *row = json_pack("{s:s, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f}", "stage",
                                S->name, "timesteps", S->T, "epoch", s->epoch + 1, "epochs",
                                S->epochs, "train_loss", es.loss, "train_acc", es.acc, "val_top1",
                                vr.top1, "lr", (double)os_lr_at(&ec.opt, ec.step0 + es.steps - 1),
                                "images_per_s", es.images_per_s, "seconds", es.seconds);
        if (s->ema)
            json_object_set_new(row, "val_top1_ema", json_real(ema_top1));
        json_object_set_new(row, "gemm", json_string(os_gemm_name(os_gemm_library())));
        json_object_set_new(row, "conv", json_string(os_dconv_enabled() ? "onednn" : "ours"));
        log_metrics(s, row);
        json_decref(row);
        char ema_note[32] = "";
        if (s->ema)
            snprintf(ema_note, sizeof ema_note, " (average %.1f%%)", 100 * ema_top1);
        if (!c->quiet)
            fprintf(stderr, "[%s %d/%d] loss %.3f acc %.1f%%  val %.1f%%%s  %.0f img/s\n",
                    S->name, s->epoch + 1, S->epochs, es.loss, 100 * es.acc, 100 * vr.top1,
                    ema_note, es.images_per_s);
        os_eval_result_free(&vr);
        s->epoch++;
        if (c->unit_fade && strncmp(S->name, "snn-", 4) == 0 && (st = fade_units(s)))
            break;
        if (s->epoch < S->epochs && (st = write_checkpoint(s)))
            break;
        if (stop_requested()) {
            st = os_fail(OS_EINVAL, "stopped after %d epoch(s) by ONESPIKE_FIT_STOP_AFTER (test hook); "
                                    "--resume continues", epochs_run);
            break;
        }
    }
    if (!st && s->ema) /* the stage ends on its average */
        os_ema_swap(s->ema, s->params);
    os_ema_destroy(s->ema);
    s->ema = NULL;
    os_dp_destroy(dp);
    teacher_free(&tc);
    if (!st && bn_finetune(s))
        st = swap_layers(s, false);
    if (st)
        return st;
    return record_stage(s, S->T, S->epochs ? &es : NULL, s->stage == s->n_stages - 1);
}

/* A snapshot of the network now as a model file of the work dir, at T time steps (LIF values
 * synced into the layers). */
static os_status write_snapshot(fit_state *s, const char *file, int T, const char *name,
                                const char *description)
{
    char path[PATH_LEN + 32];
    snprintf(path, sizeof path, "%s/%s", s->workdir, file);
    os_layers_sync_lif(s->layers, s->params);
    json_t *doc = model_doc(s, s->layers, T, name);
    if (!doc)
        return os_fail(OS_ENOMEM, "no memory for the %s document", name);
    json_object_set_new(doc, "description", json_string(description));
    json_object_set_new(doc, "arch", json_pack("{s:s, s:f, s:i, s:i}", "name", s->c->arch,
                                               "width_mult", s->c->width_mult, "units",
                                               s->c->units, "unit_at", s->c->unit_at));
    os_tensor_view *v = NULL;
    size_t n = 0;
    os_status st = os_params_views(s->params, false, true, &v, &n);
    if (!st)
        st = os_model_write(path, doc, v, n);
    free(v);
    json_decref(doc);
    return st;
}

/* The trained ANN as a model file of its own (ReLU + BatchNorm, T = 1): a baseline to serve or
 * evaluate, and the starting point of other SNN schedules (--ann-from). */
static os_status write_ann_snapshot(fit_state *s)
{
    return write_snapshot(s, ANN_FILE, 1, "ann", "the ANN stage of onespike-train fit");
}

/* --new-head: the last linear layer (the classifier) gets s->classes outputs and new weights,
 * uniform in +-1/sqrt(fan_in) as the recipes initialise it (seeded by --seed); every other
 * layer keeps what it learned. */
static os_status new_head(fit_state *s)
{
    int head = -1;
    for (int i = 0; i < os_graph_count(s->layers); i++)
        if (os_graph_layer(s->layers, i)->op == OS_OP_LINEAR)
            head = i;
    if (head < 0)
        return os_fail(OS_EINVAL, "--new-head: the model has no linear classifier to replace");
    os_layer_spec *L = os_graph_edit(s->layers, head);
    const char *wname = L->tensor[OS_TENSOR_WEIGHT], *bname = L->tensor[OS_TENSOR_BIAS];
    const os_param *w = wname ? os_params_find(s->params, wname) : NULL;
    if (!w || w->view.ndim != 2)
        return os_fail(OS_EINVAL, "--new-head: classifier %s has no 2-d weight", L->name);
    const int64_t fan_in = w->view.shape[1];
    const size_t nw = (size_t)s->classes * (size_t)fan_in;
    float *wd = malloc(nw * sizeof *wd), *bd = malloc((size_t)s->classes * sizeof *bd);
    if (!wd || !bd) {
        free(wd), free(bd);
        return os_fail(OS_ENOMEM, "no memory for a new classifier");
    }
    uint64_t rng = s->c->seed * 0x9e3779b97f4a7c15ull + 0x6e6577686561ull; /* "newhea" */
    const double bound = 1.0 / sqrt((double)fan_in);
    for (size_t i = 0; i < nw; i++)
        wd[i] = (float)((2 * os_rng_uniform(&rng) - 1) * bound);
    for (int i = 0; i < s->classes; i++)
        bd[i] = (float)((2 * os_rng_uniform(&rng) - 1) * bound);
    /* the names belong to the graph, the tensors to the parameter set */
    os_params_remove(s->params, wname);
    if (bname)
        os_params_remove(s->params, bname);
    const os_tensor_view wv = {wname, 2, {s->classes, fan_in}, wd, nw};
    const os_tensor_view bv = {bname, 1, {s->classes}, bd, (size_t)s->classes};
    os_status st = os_params_add(s->params, &wv);
    if (!st && bname)
        st = os_params_add(s->params, &bv);
    free(wd), free(bd);
    L->out = s->classes;
    return st;
}

/* The stage a parameter belongs to, from the names the recipes give (arch.c): "stem.*" is 0,
 * "s<N>.*" is N; -1 for the rest (the classifier, pooling). */
static int stage_of(const char *name)
{
    if (!strncmp(name, "stem.", 5))
        return 0;
    char *end;
    if (name[0] != 's' || name[1] < '1' || name[1] > '9')
        return -1;
    long n = strtol(name + 1, &end, 10);
    return *end == '.' && n <= INT_MAX ? (int)n : -1;
}

/* --freeze-stages S: the stem's and stages 1..S's parameters keep their values. */
static os_status freeze_stages(fit_state *s)
{
    int frozen = 0, n = os_params_count(s->params);
    for (int i = 0; i < n; i++) {
        os_param *p = os_params_at(s->params, i);
        int at = stage_of(p->view.name);
        if (at >= 0 && at <= s->c->freeze_stages && p->kind != OS_PARAM_BUFFER)
            p->frozen = true, frozen++;
    }
    if (frozen == 0)
        return os_fail(OS_EINVAL, "--freeze-stages %d: the model has no stem.* or s<N>.* "
                                  "parameters to freeze", s->c->freeze_stages);
    if (!s->c->quiet)
        fprintf(stderr, "onespike-train fit: %d tensors of the stem and stages 1..%d frozen, "
                        "%zu values train\n", frozen, s->c->freeze_stages,
                os_params_trainable(s->params));
    return OS_OK;
}

/* --ann-from: start at the conversion with a trained ANN, model m (borrowed) read from path;
 * --snn-from (spiking true): start at the fine-tune with a one-step spiking model, with
 * --new-head a new classifier for this folder's classes (only --snn-from's model:
 * fit_config_check). */
static os_status load_start_model(fit_state *s, const os_model *m, const char *path,
                                  bool spiking)
{
    const fit_config *c = s->c;
    os_status st = model_fits(s, m, spiking ? "--snn-from" : "--ann-from", path, !c->new_head,
                              " (--new-head trains a new classifier for them)");
    if (!st && !spiking && os_net_lif_count(os_model_net(m)) > 0)
        st = os_fail(OS_EINVAL, "%s is already a spiking network, --ann-from wants an ANN", path);
    if (!st && spiking && (os_net_lif_count(os_model_net(m)) == 0 || os_model_timesteps(m) != 1))
        st = os_fail(OS_EINVAL, "%s is not a one-time-step spiking network, --snn-from wants one "
                                "(a model written by onespike-train fit)", path);
    if (!st)
        st = params_from_model(m, &s->params);
    if (!st)
        st = os_graph_from_json(json_object_get(os_model_doc(m), "layers"), path, &s->layers);
    if (!st && c->new_head)
        st = new_head(s);
    if (!st) {
        if (spiking)
            st = ensure_lif_params(s->layers, s->params);
        for (int k = 0; k < 3; k++) {
            s->aug_train.mean[k] = s->aug_eval.mean[k] = os_model_mean(m)[k];
            s->aug_train.std[k] = s->aug_eval.std[k] = os_model_std(m)[k];
        }
    }
    return st;
}

static os_status run_convert_stage(fit_state *s)
{
    const fit_config *c = s->c;
    double t0 = os_clock_s();
    os_graph *folded = NULL, *snn = NULL;
    os_status st = os_fold_batchnorm(s->layers, s->params, &folded);
    if (st)
        return st;
    st = os_convert_to_snn(folded, 3, c->input, c->input, s->classes, s->params, &s->calib,
                           &s->aug_eval, c->percentile, c->convert_shift, c->t0, c->batch, &snn);
    os_graph_destroy(folded);
    if (st)
        return st;
    os_graph_destroy(s->layers);
    s->layers = snn;
    if ((st = ensure_lif_params(s->layers, s->params)))
        return st;
    s->stage_seconds = os_clock_s() - t0;
    return record_stage(s, s->stages[s->stage].T, NULL, false);
}

static os_status run_prune_stage(fit_state *s)
{
    double t0 = os_clock_s();
    os_graph *pruned = NULL;
    os_status st = OS_OK;
    if (s->c->unit_teacher && (st = write_snapshot(s, UNITS_FILE, 1, "units",
                                                   "the T = 1 network of onespike-train fit "
                                                   "before Unit removal (--unit-teacher)")))
        return st;
    st = os_remove_units(s->layers, s->params, &pruned);
    if (st)
        return st;
    os_graph_destroy(s->layers);
    s->layers = pruned;
    s->stage_seconds = os_clock_s() - t0;
    return record_stage(s, 1, NULL, s->stage == s->n_stages - 1);
}

/* ---- set-up and export ---- */

/* The split as lists of paths relative to the data folder (what --train-list, --val-list and
 * `eval --list` read), written atomically into the work dir: train.txt and val.txt. */
static os_status write_split_list(const fit_state *s, const char *name, const size_t *idx,
                                  size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(os_dataset_relpath(s->ds, idx[i])) + 1;
    char *text = malloc(len + 1);
    if (!text)
        return os_fail(OS_ENOMEM, "no memory for the split lists");
    for (size_t i = 0, at = 0; i < n; i++)
        at += (size_t)sprintf(text + at, "%s\n", os_dataset_relpath(s->ds, idx[i]));
    char path[PATH_LEN + 16];
    snprintf(path, sizeof path, "%s/%s", s->workdir, name);
    os_status st = os_write_file_atomic(path, text, len);
    free(text);
    return st;
}

static os_status load_data(fit_state *s)
{
    const fit_config *c = s->c;
    os_status st = os_dataset_scan(c->data, &s->ds);
    if (st)
        return st;
    s->classes = os_dataset_classes(s->ds);
    size_t *tr = NULL, *va = NULL, ntr = 0, nva = 0;
    if (c->train_list) {
        if ((st = os_dataset_select(s->ds, c->train_list, &tr, &ntr)))
            return st;
        if (c->val_list && (st = os_dataset_select(s->ds, c->val_list, &va, &nva))) {
            free(tr);
            return st;
        }
    } else if (c->folds > 0) {
        if ((st = os_dataset_fold(s->ds, c->folds, c->fold, c->seed, &tr, &ntr, &va, &nva)))
            return st;
    } else if ((st = os_dataset_split(s->ds, c->val_fraction, c->seed, &tr, &ntr, &va, &nva))) {
        return st;
    }
    if ((st = write_split_list(s, "train.txt", tr, ntr)) ||
        (st = write_split_list(s, "val.txt", va ? va : tr, va ? nva : 0))) {
        free(tr), free(va);
        return st;
    }
    size_t failed_tr = 0, failed_va = 0;
    if (!c->quiet && c->folds > 0)
        fprintf(stderr, "onespike-train fit: fold %d of %d (seed %llu) validates\n", c->fold,
                c->folds, (unsigned long long)c->seed);
    if (!c->quiet)
        fprintf(stderr, "onespike-train fit: decoding %zu training + %zu validation images of %d classes at %dx%d\n"
                        "onespike-train fit: matrix products by %s (ONESPIKE_TRAIN_GEMM), "
                        "convolutions by %s (ONESPIKE_TRAIN_CONV)\n",
                ntr, nva, s->classes, c->input, c->input, os_gemm_name(os_gemm_library()),
                os_dconv_enabled() ? "onednn" : "ours");
    st = os_imageset_load(s->ds, tr, ntr, c->input, &s->raster, c->threads, warn_image, &s->train,
                          &failed_tr);
    if (!st)
        st = os_imageset_load(s->ds, va ? va : tr, va ? nva : 0, c->input, &s->raster, c->threads, warn_image,
                              &s->val, &failed_va);
    free(tr), free(va);
    if (st)
        return st;
    /* The training set is ordered by class: calibrate on images of every class, not the first
     * few classes (the first calib_images images). */
    if ((st = os_imageset_spread(&s->train, (size_t)c->calib_images, &s->calib)))
        return st;
    if (failed_tr + failed_va)
        fprintf(stderr, "onespike-train fit: %zu image(s) could not be decoded and were skipped\n",
                failed_tr + failed_va);
    int *count = calloc((size_t)s->classes, sizeof *count);
    if (!count)
        return os_fail(OS_ENOMEM, "no memory");
    for (size_t i = 0; i < s->train.n; i++)
        count[s->train.labels[i]]++;
    for (int k = 0; k < s->classes && !st; k++)
        if (count[k] == 0)
            st = os_fail(OS_EINVAL, "%s: class \"%s\" has no usable training image", c->data,
                         os_dataset_class(s->ds, k));
    free(count);
    if (!st && s->val.n == 0)
        fprintf(stderr, "onespike-train fit: warning: no validation images (--val-fraction 0): "
                        "stage accuracies will read 0\n");
    return st;
}

static os_status init_fresh(fit_state *s)
{
    const fit_config *c = s->c;
    os_arch_opts ao = {.name = c->arch, .width_mult = c->width_mult, .input = c->input,
                       .classes = s->classes, .units = c->units, .unit_at = c->unit_at,
                       .batchnorm = true, .seed = c->seed};
    os_arch *a = NULL;
    os_status st = os_arch_build(&ao, &a);
    if (st)
        return st;
    size_t nt;
    const os_tensor_view *t = os_arch_tensors(a, &nt);
    if (!(st = os_params_create(&s->params)))
        for (size_t i = 0; i < nt && !st; i++)
            st = os_params_add(s->params, &t[i]);
    if (!st) /* the recipe's document, read as a model file's would be */
        st = os_graph_from_json(os_arch_layers(a), c->arch, &s->layers);
    os_arch_destroy(a);
    float mean[3], sd[3];
    os_imageset_stats(&s->train, mean, sd);
    for (int k = 0; k < 3; k++) {
        s->aug_train.mean[k] = s->aug_eval.mean[k] = mean[k];
        s->aug_train.std[k] = s->aug_eval.std[k] = sd[k];
    }
    return st;
}

static os_status export_model(fit_state *s, double total_seconds)
{
    const fit_config *c = s->c;
    os_layers_sync_lif(s->layers, s->params);
    char name[128];
    snprintf(name, sizeof name, "%s", c->name ? c->name : "onespike-model");
    json_t *doc = model_doc(s, s->layers, 1, name);
    if (!doc)
        return os_fail(OS_ENOMEM, "no memory for the model document");
    json_object_set_new(doc, "description",
                        json_string("one-time-step spiking network trained by onespike-train fit"));
    json_t *arch = json_pack("{s:s, s:f, s:i, s:i, s:i}", "name", c->arch, "width_mult",
                             c->width_mult, "units_trained", c->units, "unit_at", c->unit_at,
                             "t0", c->t0);
    os_model *from = NULL;
    if (c->snn_from && os_model_load(c->snn_from, &from) == OS_OK) { /* its arch, not our flags */
        const json_t *a = json_object_get(os_model_doc(from), "arch");
        if (json_is_object(a)) {
            json_decref(arch);
            arch = json_deep_copy(a);
            json_object_set_new(arch, "continued_from", json_string(c->snn_from));
        }
    }
    os_model_destroy(from);
    json_object_set_new(doc, "arch", arch);
    json_object_set_new(doc, "training",
                        json_pack("{s:s, s:I, s:f, s:O, s:o}", "command", c->command, "seed",
                                  (json_int_t)c->seed, "seconds", total_seconds, "stages",
                                  s->history, "config", fit_config_json(c)));
    os_tensor_view *v = NULL;
    size_t n = 0;
    os_status st = os_params_views(s->params, false, true, &v, &n);
    if (!st)
        st = os_model_write(c->out, doc, v, n);
    free(v);
    json_decref(doc);
    return st;
}

os_status fit_run(const fit_config *c)
{
    fit_state s = {.c = c, .history = json_array(), .started = time(NULL)};
    s.aug_train = (os_aug_config){.augment = true, .crop_min_area = (float)c->crop_min_area,
                                  .jitter = (float)c->jitter};
    s.aug_eval = (os_aug_config){.augment = false};
    /* The model a run starts from (--snn-from, --ann-from), loaded once: without --bands and
     * --scale the folder is read as that model reads images. */
    const char *start_path = c->snn_from ? c->snn_from : c->ann_from;
    os_model *start = NULL;
    os_status st = fit_config_raster(c, &s.raster);
    if (!st && start_path && !(st = os_model_load(start_path, &start)) && !c->bands && !c->scale)
        s.raster = *os_model_raster_input(start);
    if (st) {
        os_model_destroy(start);
        json_decref(s.history);
        return st;
    }
    build_stages(&s);
    openblas_set_num_threads(c->threads);
    if (c->workdir)
        snprintf(s.workdir, sizeof s.workdir, "%s", c->workdir);
    else
        snprintf(s.workdir, sizeof s.workdir, "%s.work", c->out);
    if (snprintf(s.ckpt, sizeof s.ckpt, "%s/%s", s.workdir, CKPT_FILE) >= (int)sizeof s.ckpt) {
        st = os_fail(OS_EINVAL, "--workdir path too long");
        goto out;
    }
    if (mkdir(s.workdir, 0755) != 0 && errno != EEXIST) {
        st = os_fail(OS_EIO, "%s: cannot create work dir: %s", s.workdir, strerror(errno));
        goto out;
    }
    if (!c->resume && access(s.ckpt, F_OK) == 0) {
        st = os_fail(OS_EINVAL, "%s exists: pass --resume to continue that run, or choose another --workdir",
                     s.ckpt);
        goto out;
    }
    if ((st = load_data(&s)))
        goto out;
    if (c->resume && access(s.ckpt, F_OK) == 0) {
        if ((st = load_checkpoint(&s)))
            goto out;
        if (!c->quiet)
            fprintf(stderr, "onespike-train fit: resuming at stage %s, epoch %d\n",
                    s.stage < s.n_stages ? s.stages[s.stage].name : "export", s.epoch + 1);
    } else if (c->snn_from) {
        if ((st = load_start_model(&s, start, c->snn_from, true)))
            goto out;
    } else if (c->ann_from) {
        if ((st = load_start_model(&s, start, c->ann_from, false)))
            goto out;
        if ((st = record_stage(&s, 1, NULL, false))) /* stage 0: the given ANN, evaluated */
            goto out;
        s.stage = 1;
    } else if ((st = init_fresh(&s))) {
        goto out;
    }
    os_model_destroy(start); /* its tensors are the run's own now */
    start = NULL;
    if (c->freeze_stages > 0 && (st = freeze_stages(&s)))
        goto out;
    char mpath[PATH_LEN + 32];
    snprintf(mpath, sizeof mpath, "%s/%s", s.workdir, METRICS_FILE);
    s.metrics = fopen(mpath, "a");
    while (s.stage < s.n_stages) {
        switch (s.stages[s.stage].kind) {
        case STAGE_TRAIN: st = run_train_stage(&s); break;
        case STAGE_CONVERT: st = run_convert_stage(&s); break;
        case STAGE_PRUNE: st = run_prune_stage(&s); break;
        case STAGE_START: st = record_stage(&s, 1, NULL, false); break;
        }
        if (!st && !strcmp(s.stages[s.stage].name, "ann"))
            st = write_ann_snapshot(&s);
        if (st)
            goto out;
        s.stage++, s.epoch = 0, s.stage_seconds = 0;
        if ((st = write_checkpoint(&s))) /* a resume starts at the next stage */
            goto out;
    }
    double total = 0;
    size_t i;
    json_t *e;
    json_array_foreach(s.history, i, e) {
        total += json_number_value(json_object_get(e, "seconds"));
    }
    if ((st = export_model(&s, total)))
        goto out;
    st = fit_write_report(c, s.history, s.ds, &s.val, total);
    if (!st && !c->quiet)
        fprintf(stderr, "onespike-train fit: wrote %s and its report (%s.report.md)\n", c->out,
                c->out);
out:
    os_model_destroy(start);
    if (s.metrics)
        fclose(s.metrics);
    os_graph_destroy(s.layers);
    json_decref(s.history);
    os_params_destroy(s.params);
    os_imageset_free(&s.train);
    os_imageset_free(&s.val);
    os_imageset_free(&s.calib);
    os_dataset_destroy(s.ds);
    return st;
}
