/* fit_report.c - evaluation from files and the training report; see fit_report.h. */
#include "onespike/fit_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onespike/fit_flags.h"
#include "onespike/model.h"
#include "onespike/safetensors.h"
#include "onespike/session.h"
#include "dconv.h"
#include "gemm.h"
#include "score.h"

/* EVAL_BATCH: images per pass through the network (os_session_run_batch). */
enum { MAX_IMAGE_BYTES = 64 * 1024 * 1024, EVAL_BATCH = 8 };

/* Scored by os_score (score.h), on the probabilities the server ranks. The tally is in the
 * model's label order; the JSON's rows follow the data's classes (map: class -> label). */
os_status fit_eval_files(const char *model_path, const os_dataset *ds, const size_t *idx,
                         size_t n, bool dense, const os_raster_input *in, int views,
                         json_t **out)
{
    *out = NULL;
    if (!os_session_views_valid(views))
        return os_fail(OS_EINVAL, "views %d: expected 1, 2, 4 or 8", views);
    os_model *m = NULL;
    os_session *s = NULL;
    os_score sc = {0};
    os_status st = os_model_load(model_path, &m);
    if (st)
        return st;
    int K = os_model_classes(m), C = os_dataset_classes(ds);
    int *map = malloc((size_t)C * sizeof *map);
    /* a pass: EVAL_BATCH images, or one image in its views */
    const int per_pass = views > 1 ? 1 : EVAL_BATCH, room = views > 1 ? views : EVAL_BATCH;
    float *p = malloc((size_t)room * K * sizeof *p);
    int *label = malloc((size_t)EVAL_BATCH * sizeof *label);
    const os_sample *batch[EVAL_BATCH];
    json_t *answers = json_array();
    if (!map || !p || !label || !answers) {
        st = os_fail(OS_ENOMEM, "no memory for evaluation");
        goto out;
    }
    if ((st = os_score_init(&sc, K)))
        goto out;
    for (int c = 0; c < C; c++) {
        map[c] = -1;
        for (int k = 0; k < K; k++)
            if (!strcmp(os_dataset_class(ds, c), os_model_label(m, k)))
                map[c] = k;
        if (map[c] < 0) {
            st = os_fail(OS_EINVAL, "class \"%s\" of the data is not a label of %s",
                         os_dataset_class(ds, c), model_path);
            goto out;
        }
    }
    os_session_opts so = {.dense = dense, .max_batch = room};
    if ((st = os_session_create(m, &so, &s)))
        goto out;
    long failed = 0;
    for (size_t i = 0; i < n;) {
        int loaded = 0;
        for (; i < n && loaded < per_pass; i++) {
            const os_sample *smp = os_dataset_sample(ds, idx ? idx[i] : i);
            void *buf = NULL;
            size_t len = 0;
            os_status e = os_read_file(smp->path, MAX_IMAGE_BYTES, &buf, &len);
            if (!e)
                e = os_session_load_image_at(s, loaded, buf, len, in);
            free(buf);
            if (e) {
                fprintf(stderr, "onespike-train: %s: %s (not counted)\n", smp->path,
                        os_errdetail());
                json_array_append_new(answers, json_pack("{s:s, s:s}", "image", smp->path,
                                                         "error", os_errdetail()));
                failed++;
                continue;
            }
            batch[loaded] = smp;
            label[loaded++] = map[smp->label];
        }
        if (!loaded)
            continue;
        if (views > 1 && (st = os_session_run_views(s, views, p)))
            goto out;
        if (views == 1)
            os_session_run_batch(s, loaded, p, NULL);
        for (int j = 0; j < loaded; j++) {
            const float *pj = p + (size_t)j * K;
            int top;
            os_topk(pj, K, 1, &top);
            os_score_add(&sc, pj, label[j]);
            json_array_append_new(answers,
                                  json_pack("{s:s, s:s, s:s, s:f}", "image", batch[j]->path,
                                            "class", os_dataset_class(ds, batch[j]->label),
                                            "top1", os_model_label(m, top), "probability",
                                            (double)pj[top]));
        }
    }
    json_t *pc = json_object(), *cm = json_array();
    for (int c = 0; c < C; c++) {
        double acc;
        json_object_set_new(pc, os_dataset_class(ds, c),
                            os_score_class_accuracy(&sc, map[c], &acc) ? json_real(acc)
                                                                       : json_null());
        json_t *row = json_array();
        for (int k = 0; k < K; k++)
            json_array_append_new(row, json_integer(sc.confusion[(size_t)map[c] * K + k]));
        json_array_append_new(cm, row);
    }
    json_t *labels = json_array();
    for (int k = 0; k < K; k++)
        json_array_append_new(labels, json_string(os_model_label(m, k)));
    *out = json_pack("{s:s, s:i, s:f, s:f, s:I, s:I, s:o, s:o, s:o, s:o}", "model", model_path,
                     "views", views, "top1", os_score_top1(&sc), "top5", os_score_top5(&sc),
                     "images", (json_int_t)sc.n, "failed", (json_int_t)failed, "per_class", pc,
                     "confusion_labels", labels, "confusion", cm, "answers", answers);
    answers = NULL; /* taken by *out */
out:
    free(map), free(p), free(label);
    json_decref(answers);
    os_score_free(&sc);
    os_session_destroy(s);
    os_model_destroy(m);
    return st;
}

/* Without validation images (--val-fraction 0) the validation columns read "-", not 0 %. */
static void md_pct(char *buf, size_t n, bool has_val, const json_t *x)
{
    if (has_val)
        snprintf(buf, n, "%.2f %%", 100 * json_number_value(x));
    else
        snprintf(buf, n, "-");
}

static void md_stage_table(FILE *f, const json_t *history, bool has_val)
{
    fprintf(f, "| stage | T | val top-1 | val top-5 | epochs | train acc | train img/s | seconds |\n"
               "|---|---|---|---|---|---|---|---|\n");
    size_t i;
    json_t *e;
    json_array_foreach(history, i, e) {
        json_t *ep = json_object_get(e, "epochs"), *ta = json_object_get(e, "train_acc");
        json_t *ips = json_object_get(e, "images_per_s");
        char epochs[16] = "-", tacc[16] = "-", speed[16] = "-";
        if (ep)
            snprintf(epochs, sizeof epochs, "%lld", json_integer_value(ep));
        if (ta)
            snprintf(tacc, sizeof tacc, "%.1f %%", 100 * json_number_value(ta));
        if (ips)
            snprintf(speed, sizeof speed, "%.1f", json_number_value(ips));
        char v1[16], v5[16];
        md_pct(v1, sizeof v1, has_val, json_object_get(e, "val_top1"));
        md_pct(v5, sizeof v5, has_val, json_object_get(e, "val_top5"));
        fprintf(f, "| %s | %lld | %s | %s | %s | %s | %s | %.0f |\n",
                json_string_value(json_object_get(e, "stage")),
                json_integer_value(json_object_get(e, "timesteps")), v1, v5, epochs, tacc, speed,
                json_number_value(json_object_get(e, "seconds")));
    }
}

/* The report's sections on the exported model: engine accuracy, per class, confusion matrix,
 * spike rates of the last stage. */
static void md_engine_sections(FILE *f, const json_t *engine, const os_dataset *ds,
                               const json_t *last)
{
    fprintf(f, "\n## Exported model, through the inference engine from the JPEG files\n\n");
    fprintf(f, "top-1 %.2f %%, top-5 %.2f %% on %lld validation images (%lld failed to decode)\n\n",
            100 * json_number_value(json_object_get(engine, "top1")),
            100 * json_number_value(json_object_get(engine, "top5")),
            json_integer_value(json_object_get(engine, "images")),
            json_integer_value(json_object_get(engine, "failed")));
    const json_t *v8 = json_object_get(engine, "views8");
    if (v8)
        fprintf(f, "With 8 test-time views averaged (`--tta 8`: the image turned and mirrored, 8x "
                   "the compute): top-1 %.2f %%, top-5 %.2f %%\n\n",
                100 * json_number_value(json_object_get(v8, "top1")),
                100 * json_number_value(json_object_get(v8, "top5")));
    fprintf(f, "## Per-class validation accuracy\n\n| class | accuracy |\n|---|---|\n");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(engine, "per_class"), k, v) {
        fprintf(f, "| %s | %.1f %% |\n", k, 100 * json_number_value(v));
    }
    fprintf(f, "\n## Confusion matrix (rows: true class, columns: predicted, label order)\n\n```\n");
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(engine, "confusion"), i, row) {
        size_t j;
        json_t *x;
        fprintf(f, "%-20s", os_dataset_class(ds, (int)i));
        json_array_foreach(row, j, x) {
            fprintf(f, " %3lld", json_integer_value(x));
        }
        fputc('\n', f);
    }
    fprintf(f, "```\n\n## Spike rate per LIF layer (final stage, validation)\n\n| layer | rate |\n|---|---|\n");
    json_array_foreach(json_object_get(last, "spike_rates"), i, row) {
        fprintf(f, "| %s | %.4f |\n", json_string_value(json_object_get(row, "layer")),
                json_number_value(json_object_get(row, "rate")));
    }
}

/* The recorded config (fit_config_json's keys), one row per flag of the table: what a reader
 * passes to repeat the run, and where it left the shipped recipe. */
static void md_config(FILE *f, const fit_config *c)
{
    fit_config d;
    fit_defaults(&d);
    fprintf(f, "\n## Configuration (the defaults are the shipped model's recipe)\n\n"
               "| flag | value | default |\n|---|---|---|\n");
    size_t n;
    const fit_flag *t = fit_flags(&n), *fade = fit_flag_find("unit-fade");
    if (!fit_unit_fade_applies(c)) /* nothing to fade: the default comes to 0 (fit_flags.h) */
        d.unit_fade = 0;
    for (size_t i = 0; i < n; i++) {
        if (!t[i].key)
            continue;
        char v[256], dv[256];
        fit_flag_format(&t[i], c, v, sizeof v);
        fit_flag_format(&t[i], &d, dv, sizeof dv);
        const bool dflt = &t[i] == fade ? c->unit_fade == d.unit_fade : fit_flag_is_default(&t[i], c);
        const char *mark = dflt ? "" : "**";
        fprintf(f, "| --%s | %s%s%s | %s |\n", t[i].name, mark, v, mark, dv);
    }
}

os_status fit_write_report(const fit_config *c, const json_t *history, const os_dataset *ds,
                           const os_imageset *val, double seconds)
{
    json_t *engine = NULL;
    os_status st = fit_eval_files(c->out, ds, val->source, val->n, false, NULL, 1, &engine);
    if (st)
        return st;
    json_object_del(engine, "answers"); /* the report keeps the totals, not every image */
    /* and with the 8 test-time views a user can ask for (eval/classify/server --tta 8) */
    json_t *views8 = NULL; /* best effort: a report without it is still the run's report */
    if (val->n > 0 && !fit_eval_files(c->out, ds, val->source, val->n, false, NULL, 8, &views8))
        json_object_set_new(engine, "views8", json_pack("{s:O, s:O}", "top1",
                                                       json_object_get(views8, "top1"), "top5",
                                                       json_object_get(views8, "top5")));
    json_decref(views8);
    os_model *m = NULL;
    if ((st = os_model_load(c->out, &m))) {
        json_decref(engine);
        return st;
    }
    const json_t *last = json_array_get(history, json_array_size(history) - 1);
    json_t *rep = json_pack("{s:s, s:s, s:I, s:o, s:O, s:{s:s, s:s, s:i, s:I, s:o}, s:f, s:s}",
                            "model", c->out, "command", c->command, "seed", (json_int_t)c->seed,
                            "config", fit_config_json(c), "stages", history, "final", "path",
                            c->out, "sha256", os_model_sha256(m), "timesteps", os_model_timesteps(m),
                            "parameters", (json_int_t)os_net_params(os_model_net(m)),
                            "validation_engine", engine, "seconds", seconds, "gemm",
                            os_gemm_name(os_gemm_library()));
    json_object_set_new(rep, "conv", json_string(os_dconv_enabled() ? "onednn" : "ours"));
    char path[4200];
    char *text = json_dumps(rep, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    snprintf(path, sizeof path, "%s.report.json", c->out);
    st = text ? os_write_file_atomic(path, text, strlen(text))
              : os_fail(OS_ENOMEM, "no memory for the report");
    free(text);

    char *md = NULL;
    size_t mdlen = 0;
    FILE *f = open_memstream(&md, &mdlen);
    if (!st && f) {
        fprintf(f, "# Training report: %s\n\n", c->out);
        fprintf(f, "- command: `%s`\n- seed: %llu\n- data: `%s` (%d classes; validation: %zu images)\n",
                c->command, (unsigned long long)c->seed, c->data, os_dataset_classes(ds), val->n);
        if (c->snn_from)
            fprintf(f, "- continued from `%s` (its architecture), input %dx%d: T = 1 fine-tune only\n",
                    c->snn_from, c->input, c->input);
        else
            fprintf(f, "- architecture: %s, width x%.3g, input %dx%d, Units: %d at stage %d, T0 = %d\n",
                    c->arch, c->width_mult, c->input, c->input, c->units, c->unit_at, c->t0);
        fprintf(f, "- deployed: %d time step(s), %zu parameters, sha256 %s\n",
                os_model_timesteps(m), os_net_params(os_model_net(m)), os_model_sha256(m));
        fprintf(f, "- total training time: %.0f s (%.1f min)\n\n", seconds, seconds / 60);
        fprintf(f, "## Accuracy after every stage (validation split)\n\n");
        if (val->n == 0)
            fprintf(f, "No validation split (--val-fraction 0): every image trained the model, so "
                       "there are no validation figures; estimate them from the same command run "
                       "with a split.\n\n");
        md_stage_table(f, history, val->n > 0);
        if (val->n == 0)
            fprintf(f, "\nThe exported model was written; it has no validation images to be "
                       "re-evaluated on.\n");
        else
            md_engine_sections(f, engine, ds, last);
        md_config(f, c);
        fclose(f);
        snprintf(path, sizeof path, "%s.report.md", c->out);
        st = os_write_file_atomic(path, md, mdlen);
    } else if (!st) {
        st = os_fail(OS_ENOMEM, "no memory for the report");
    }
    free(md);
    json_decref(rep);
    os_model_destroy(m);
    return st;
}
