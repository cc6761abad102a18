/* fit_flags.c - the table of fit's flags and what is driven by it; see fit_flags.h. */
#include "onespike/fit_flags.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "grad.h" /* OS_SURROGATE_GAMMA_MAX */
#include "onespike/parse.h"
#include "onespike/raster.h"

#define SEED_MAX (1L << 62)

static const char *const optimizers[] = {"adamw", "sgd", NULL};

#define AT(field) offsetof(fit_config, field)

/* Defaults: the recorded config of models/ucm-msresnet18-t1.safetensors (run 17's recipe in
 * docs/results), except --val-fraction (see fit_flags.h). Help lines stay under 100 columns. */
static const fit_flag table[] = {
    {"data", "DIR", FIT_FLAG_STRING, AT(data), "data", .section = "data",
     .help = "image folder (required)", .def_help = ""},
    {"out", "MODEL", FIT_FLAG_STRING, AT(out), NULL, .help = "model file to write (required)",
     .def_help = ""},
    {"workdir", "DIR", FIT_FLAG_STRING, AT(workdir), NULL, .help = "checkpoints and metrics.jsonl",
     .def_help = "MODEL.work"},
    {"resume", NULL, FIT_FLAG_BOOL, AT(resume), NULL,
     .help = "continue from the work dir's checkpoint", .def_help = ""},
    {"val-fraction", "F", FIT_FLAG_DOUBLE, AT(val_fraction), "val_fraction", .def = 0.125, .min = 0,
     .max = 0.9, .help = "stratified validation share per class"},
    {"train-list", "FILE", FIT_FLAG_STRING, AT(train_list), "train_list",
     .help = "explicit training images (paths relative to DIR), instead of a split",
     .def_help = ""},
    {"val-list", "FILE", FIT_FLAG_STRING, AT(val_list), "val_list",
     .help = "explicit validation images (with --train-list)", .def_help = ""},
    {"folds", "K", FIT_FLAG_INT, AT(folds), "folds", .min = 0, .max = 100, .omit_default = true,
     .help = "cross-validation: split each class into K seeded folds and validate\n"
             "on fold --fold (replaces --val-fraction; 0: off)"},
    {"fold", "I", FIT_FLAG_INT, AT(fold), "fold", .min = 0, .max = 100, .omit_default = true,
     .help = "the validation fold, 1..K (with --folds); scripts/crossval.py\n"
             "runs every fold and reports mean +- sd",
     .def_help = ""},
    {"bands", "R,G,B", FIT_FLAG_STRING, AT(bands), "bands", .omit_default = true,
     .help = "raster bands read as R, G, B (e.g. 4,3,2 of a GeoTIFF), as eval's\n"
             "--bands; recorded in the model, so serving reads the same",
     .def_help = "1,2,3"},
    {"scale", "S", FIT_FLAG_STRING, AT(scale), "scale", .omit_default = true,
     .help = "how raster values become 0..255: none (8-bit only), range:LO,HI,\n"
             "range:LO1,HI1,LO2,HI2,LO3,HI3 or percentile:LO,HI; recorded in\n"
             "the model like --bands",
     .def_help = "none"},
    {"seed", "N", FIT_FLAG_SEED, AT(seed), "seed", .def = 1,
     .help = "split, initialisation, data order and augmentation"},
    {"ann-from", "FILE", FIT_FLAG_STRING, AT(ann_from), "ann_from",
     .help = "skip the ANN stage: convert this trained ANN (the work dir's\n"
             "ann.safetensors of an earlier run), to compare SNN schedules",
     .def_help = ""},
    {"snn-from", "FILE", FIT_FLAG_STRING, AT(snn_from), "snn_from",
     .help = "skip to the T = 1 fine-tune: continue training this one-step\n"
             "model (a fit output; --input must match). With --distill,\n"
             "--ann-from names the ANN teacher",
     .def_help = ""},
    {"new-head", NULL, FIT_FLAG_BOOL, AT(new_head), "new_head",
     .help = "with --snn-from: transfer to this folder's classes: keep every\n"
             "layer but the classifier, which starts anew (seeded) for them",
     .def_help = ""},
    {"transfer-from", "FILE", FIT_FLAG_STRING, AT(transfer_from), NULL,
     .help = "transfer a trained one-step model to this folder's classes:\n"
             "--snn-from FILE --new-head --distill 0 (only the T = 1 fine-tune)",
     .def_help = ""},
    {"freeze-stages", "S", FIT_FLAG_INT, AT(freeze_stages), "freeze_stages", .min = 0, .max = 16,
     .omit_default = true,
     .help = "with --snn-from/--transfer-from: the stem and stages 1..S keep\n"
             "their weights and LIF values in the fine-tune (0: all train)"},

    {"arch", "A", FIT_FLAG_STRING, AT(arch), "arch", .def_str = "msresnet18", .section = "network",
     .help = "vgg11, vgg16, resnet18, resnet20,\nmsresnet18, msresnet20"},
    {"width-mult", "W", FIT_FLAG_DOUBLE, AT(width_mult), "width_mult", .def = 0.5, .min = 0.01,
     .max = 16, .help = "channel multiplier"},
    {"input", "PX", FIT_FLAG_INT, AT(input), "input", .def = 128, .min = 8, .max = 1024,
     .help = "square training/serving input size"},
    {"units", "M", FIT_FLAG_INT, AT(units), "units", .def = 1, .min = 0, .max = 16,
     .help = "Units inserted for training, removed before export"},
    {"unit-at", "AS", FIT_FLAG_INT, AT(unit_at), "unit_at", .def = 2, .min = 1, .max = 16,
     .help = "stage that gets the Units"},
    {"name", "NAME", FIT_FLAG_STRING, AT(name), NULL, .def_str = "onespike-model",
     .help = "model name"},

    {"unit-fade", "0|1", FIT_FLAG_INT, AT(unit_fade), "unit_fade", .def = 1, .min = 0, .max = 1,
     .omit_zero = true,
     .help = "1: scale each residual Unit's branch down linearly over the SNN\n"
             "epochs, to 0 after the last, so removing it changes nothing (ours;\n"
             "the default since run 17); 0: remove the Units at once after T = 1.\n"
             "Without residual Units or SNN epochs nothing fades: 0"},
    {"unit-teacher", "0|1", FIT_FLAG_INT, AT(unit_teacher), "unit_teacher", .min = 0, .max = 1,
     .omit_default = true,
     .help = "1: the fine-tune's --distill teacher is the T = 1 network as it\n"
             "was just before Unit removal (Units in), not the ANN: what the\n"
             "Units learnt is handed on, not dropped at once (ours)"},

    {"t0", "T", FIT_FLAG_INT, AT(t0), "t0", .def = 5, .min = 1, .max = 16, .section = "schedule",
     .help = "time steps of the first SNN stage; 1 = train at T = 1 directly"},
    {"epochs-ann", "N", FIT_FLAG_INT, AT(epochs_ann), "epochs_ann", .def = 60, .min = 0,
     .max = 10000, .help = "ANN epochs"},
    {"epochs-snn", "N", FIT_FLAG_INT, AT(epochs_snn), "epochs_snn", .def = 2, .min = 0,
     .max = 10000, .help = "epochs of each later SNN time-step stage T0-1..1"},
    {"epochs-t0", "N", FIT_FLAG_INT, AT(epochs_t0), "epochs_t0", .def = 4, .min = 0, .max = 10000,
     .help = "epochs of the first SNN stage, at T0"},
    {"epochs-finetune", "N", FIT_FLAG_INT, AT(epochs_finetune), "epochs_finetune", .def = 100,
     .min = 0, .max = 10000, .help = "T = 1 epochs after Unit removal"},
    {"warmup-epochs", "N", FIT_FLAG_INT, AT(warmup_epochs), "warmup_epochs", .def = 1, .min = 0,
     .max = 1000, .help = "linear warm-up of each stage's learning rate"},
    {"batch", "N", FIT_FLAG_INT, AT(batch), "batch", .def = 32, .min = 1, .max = 4096,
     .help = "batch size"},
    {"optimizer", "O", FIT_FLAG_CHOICE, AT(optimizer), "optimizer", .def_str = "adamw",
     .choices = optimizers, .help = "adamw, or sgd with momentum 0.9"},
    {"lr-ann", "LR", FIT_FLAG_DOUBLE, AT(lr_ann), "lr_ann", .def = 2e-3, .min = 0, .max = 10,
     .help = "peak learning rate, ANN stage"},
    {"lr-snn", "LR", FIT_FLAG_DOUBLE, AT(lr_snn), "lr_snn", .def = 5e-4, .min = 0, .max = 10,
     .help = "peak learning rate, SNN stages"},
    {"lr-finetune", "LR", FIT_FLAG_DOUBLE, AT(lr_finetune), "lr_finetune", .def = 1e-3, .min = 0,
     .max = 10, .help = "peak learning rate, fine-tune"},
    {"lif-lr-scale", "S", FIT_FLAG_DOUBLE, AT(lif_lr_scale), "lif_lr_scale", .def = 1.0, .min = 0,
     .max = 1000, .help = "threshold/leak learning rate relative to the weights'"},
    {"weight-decay", "WD", FIT_FLAG_DOUBLE, AT(weight_decay), "weight_decay", .def = 0.05, .min = 0,
     .max = 10, .help = "decoupled weight decay on weights"},
    {"label-smoothing", "E", FIT_FLAG_DOUBLE, AT(label_smoothing), "label_smoothing", .def = 0.1,
     .min = 0, .max = 0.99, .help = "label smoothing of the cross-entropy"},
    {"percentile", "P", FIT_FLAG_DOUBLE, AT(percentile), "percentile", .def = 99.7, .min = 50,
     .max = 100, .help = "conversion threshold percentile of pre-activations"},
    {"calib-images", "N", FIT_FLAG_INT, AT(calib_images), "calib_images", .def = 256, .min = 1,
     .max = 1000000, .help = "training images used for that calibration"},
    {"convert-shift", "S", FIT_FLAG_DOUBLE, AT(convert_shift), "convert_shift", .def = 0.5,
     .min = 0, .max = 1, .help = "bias += S*threshold/T0 at conversion; 0.5 rounds rates"},
    {"recalibrate", "0|1", FIT_FLAG_INT, AT(recalibrate), "recalibrate", .def = 1, .min = 0,
     .max = 1, .help = "at each T -> T-1 step, reset thresholds to keep spike rates"},
    {"surrogate-gamma", "G", FIT_FLAG_DOUBLE, AT(surrogate_gamma), "surrogate_gamma", .def = 1.0,
     .min = 0.01, .max = OS_SURROGATE_GAMMA_MAX, .help = "height of the spike's surrogate derivative, SNN stages"},
    {"finetune-bn", "0|1", FIT_FLAG_INT, AT(finetune_bn), "finetune_bn", .def = 0, .min = 0,
     .max = 1,
     .help = "BatchNorm after every conv during the T = 1 fine-tune, initialised\n"
             "to leave the net unchanged and folded away after it"},
    {"distill", "A", FIT_FLAG_DOUBLE, AT(distill), "distill", .def = 0.5, .min = 0, .max = 1,
     .help = "SNN stages learn from the trained ANN's logits too: loss =\n"
             "(1-A) cross-entropy + A distillation; 0: off"},
    {"distill-temp", "TAU", FIT_FLAG_DOUBLE, AT(distill_temp), "distill_temp", .def = 4, .min = 0.1,
     .max = 100, .help = "distillation temperature"},
    {"teacher", "FILE", FIT_FLAG_STRING, AT(teacher), "teacher", .omit_default = true,
     .help = "the SNN stages and the fine-tune --distill from this model's\n"
             "logits instead of the run's own ANN: any onespike model of the\n"
             "same classes and --input (e.g. a wider ANN: another run's\n"
             "MODEL.work/ann.safetensors), run at T = 1 in its own normalisation",
     .def_help = ""},
    {"crop-min-area", "A", FIT_FLAG_DOUBLE, AT(crop_min_area), "crop_min_area", .def = 0.5,
     .min = 0.05, .max = 1, .help = "random resized crop area range [A, 1]"},
    {"jitter", "J", FIT_FLAG_DOUBLE, AT(jitter), "jitter", .def = 0.1, .min = 0, .max = 0.9,
     .help = "brightness/contrast/saturation jitter"},
    {"mixup", "A", FIT_FLAG_DOUBLE, AT(mixup), "mixup", .min = 0, .max = 10, .omit_default = true,
     .help = "Mixup of the ANN stage's batches, lam ~ Beta(A, A); 0: off (ours:\n"
             "the paper names no mixing)"},
    {"cutmix", "A", FIT_FLAG_DOUBLE, AT(cutmix), "cutmix", .min = 0, .max = 10,
     .omit_default = true,
     .help = "CutMix of the ANN stage's batches, Beta(A, A); with --mixup each\n"
             "mixed batch is one of the two, evenly; 0: off"},
    {"mix-prob", "P", FIT_FLAG_DOUBLE, AT(mix_prob), "mix_prob", .def = 1, .min = 0, .max = 1,
     .omit_default = true, .help = "share of batches mixed, with --mixup or --cutmix"},
    {"mix-finetune", "0|1", FIT_FLAG_INT, AT(mix_finetune), "mix_finetune", .min = 0, .max = 1,
     .omit_default = true, .help = "1: mix the T = 1 fine-tune's batches as well"},
    {"ema", "D", FIT_FLAG_DOUBLE, AT(ema), "ema", .min = 0, .max = 0.99999, .omit_default = true,
     .help = "average the weights of the ANN stage and of the fine-tune over\n"
             "their steps with decay D (EMA, warmed up); each of the two ends\n"
             "on its average; 0: off (ours)"},

    /* threads: fit_defaults sets it from the machine; not part of the recipe (the same run on
     * another machine is the same run). */
    {"threads", "N", FIT_FLAG_INT, AT(threads), NULL, .min = 1, .max = 256, .section = "machine",
     .help = "training replicas, each on its own slice of every batch (one\n"
             "thread each; BatchNorm over the whole batch), and decoding\n"
             "threads; the batch loader runs on a thread of its own",
     .def_help = "the cores, at most 8"},
    {"quiet", NULL, FIT_FLAG_BOOL, AT(quiet), NULL, .help = "no progress output", .def_help = ""},
};

#define N_FLAGS (sizeof table / sizeof table[0])

const fit_flag *fit_flags(size_t *n)
{
    *n = N_FLAGS;
    return table;
}

const fit_flag *fit_flag_find(const char *name)
{
    for (size_t i = 0; i < N_FLAGS; i++)
        if (!strcmp(table[i].name, name))
            return &table[i];
    return NULL;
}

#define FIELD(c, f, type)  ((type *)((char *)(c) + (f)->offset))
#define CFIELD(c, f, type) ((const type *)((const char *)(c) + (f)->offset))
typedef const char *cstring; /* CFIELD's type for a string field (no doubled const) */

/* One replica per core (dp.h), at most 8 (a batch of 32 split further leaves each replica too
 * few images to be efficient): on 2 cores 2 replicas train 1.53x (ANN) and 1.64x (SNN, T = 5)
 * faster than one, the loader thread beside them (bench/results/2026-12-01-train-dp.md). */
static int default_threads(void)
{
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    return nproc < 1 ? 1 : nproc > 8 ? 8 : (int)nproc;
}

void fit_defaults(fit_config *c)
{
    *c = (fit_config){0};
    for (size_t i = 0; i < N_FLAGS; i++) {
        const fit_flag *f = &table[i];
        switch (f->type) {
        case FIT_FLAG_STRING:
        case FIT_FLAG_CHOICE: *FIELD(c, f, const char *) = f->def_str; break;
        case FIT_FLAG_BOOL: *FIELD(c, f, bool) = false; break;
        case FIT_FLAG_INT: *FIELD(c, f, int) = (int)f->def; break;
        case FIT_FLAG_DOUBLE: *FIELD(c, f, double) = f->def; break;
        case FIT_FLAG_SEED: *FIELD(c, f, uint64_t) = (uint64_t)f->def; break;
        }
    }
    c->threads = default_threads();
}

os_status fit_flag_set(const fit_flag *f, fit_config *c, const char *arg)
{
    long v;
    switch (f->type) {
    case FIT_FLAG_STRING: *FIELD(c, f, const char *) = arg; return OS_OK;
    case FIT_FLAG_BOOL: *FIELD(c, f, bool) = true; return OS_OK;
    case FIT_FLAG_CHOICE: {
        char list[256] = "";
        size_t len = 0;
        for (const char *const *ch = f->choices; *ch; ch++) {
            if (!strcmp(arg, *ch)) {
                *FIELD(c, f, const char *) = *ch;
                return OS_OK;
            }
            const char *sep = ch == f->choices ? "" : ch[1] ? ", " : " or ";
            int w = snprintf(list + len, sizeof list - len, "%s%s", sep, *ch);
            if (w > 0 && (size_t)w < sizeof list - len)
                len += (size_t)w;
        }
        return os_fail(OS_EINVAL, "--%s \"%s\": %s", f->name, arg, list);
    }
    case FIT_FLAG_INT:
        if (!os_parse_long(arg, (long)f->min, (long)f->max, &v))
            return os_fail(OS_EINVAL, "--%s \"%s\": expected an integer in %ld..%ld", f->name, arg,
                           (long)f->min, (long)f->max);
        *FIELD(c, f, int) = (int)v;
        return OS_OK;
    case FIT_FLAG_DOUBLE:
        if (!os_parse_double(arg, f->min, f->max, FIELD(c, f, double)))
            return os_fail(OS_EINVAL, "--%s \"%s\": expected a number in %g..%g", f->name, arg,
                           f->min, f->max);
        return OS_OK;
    case FIT_FLAG_SEED:
        if (!os_parse_long(arg, 0, SEED_MAX, &v))
            return os_fail(OS_EINVAL, "--%s \"%s\": expected an integer >= 0", f->name, arg);
        *FIELD(c, f, uint64_t) = (uint64_t)v;
        return OS_OK;
    }
    return os_fail(OS_EINVAL, "--%s: unknown flag type", f->name);
}

void fit_flag_format(const fit_flag *f, const fit_config *c, char *buf, size_t n)
{
    const char *s;
    switch (f->type) {
    case FIT_FLAG_STRING:
    case FIT_FLAG_CHOICE:
        s = *CFIELD(c, f, cstring);
        snprintf(buf, n, "%s", s ? s : "-");
        break;
    case FIT_FLAG_BOOL: snprintf(buf, n, "%s", *CFIELD(c, f, bool) ? "yes" : "no"); break;
    case FIT_FLAG_INT: snprintf(buf, n, "%d", *CFIELD(c, f, int)); break;
    case FIT_FLAG_DOUBLE: snprintf(buf, n, "%g", *CFIELD(c, f, double)); break;
    case FIT_FLAG_SEED:
        snprintf(buf, n, "%llu", (unsigned long long)*CFIELD(c, f, uint64_t));
        break;
    }
}

bool fit_flag_is_default(const fit_flag *f, const fit_config *c)
{
    fit_config d; /* not f->def: fit_defaults also knows the machine's (threads) */
    fit_defaults(&d);
    const char *s, *ds;
    switch (f->type) {
    case FIT_FLAG_STRING:
    case FIT_FLAG_CHOICE:
        s = *CFIELD(c, f, cstring), ds = *CFIELD(&d, f, cstring);
        return s == ds || (s && ds && !strcmp(s, ds));
    case FIT_FLAG_BOOL: return *CFIELD(c, f, bool) == *CFIELD(&d, f, bool);
    case FIT_FLAG_INT: return *CFIELD(c, f, int) == *CFIELD(&d, f, int);
    case FIT_FLAG_DOUBLE: return *CFIELD(c, f, double) == *CFIELD(&d, f, double);
    case FIT_FLAG_SEED: return *CFIELD(c, f, uint64_t) == *CFIELD(&d, f, uint64_t);
    }
    return false;
}

/* f's value in c as JSON. The JSON types are part of the format: a resume compares configs with
 * json_equal, where 1 (integer) is not 1.0 (real), so INT and SEED are integers, DOUBLE always
 * real, and an unset STRING null. */
static json_t *flag_json(const fit_flag *f, const fit_config *c)
{
    const char *s;
    switch (f->type) {
    case FIT_FLAG_STRING:
    case FIT_FLAG_CHOICE: s = *CFIELD(c, f, cstring); return s ? json_string(s) : json_null();
    case FIT_FLAG_BOOL: return json_boolean(*CFIELD(c, f, bool));
    case FIT_FLAG_INT: return json_integer(*CFIELD(c, f, int));
    case FIT_FLAG_DOUBLE: return json_real(*CFIELD(c, f, double));
    case FIT_FLAG_SEED: return json_integer((json_int_t)*CFIELD(c, f, uint64_t));
    }
    return NULL;
}

/* Every row with a key, in table order (but those omit_default / omit_zero leave out). */
json_t *fit_config_json(const fit_config *c)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < N_FLAGS; i++) {
        const fit_flag *f = &table[i];
        if (!f->key || (f->omit_default && fit_flag_is_default(f, c)) ||
            (f->omit_zero && f->type == FIT_FLAG_INT && *CFIELD(c, f, int) == 0))
            continue;
        json_t *v = flag_json(f, c);
        if (!v || json_object_set_new(o, f->key, v)) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

json_t *fit_config_absent(const char *key)
{
    fit_config d;
    fit_defaults(&d);
    for (size_t i = 0; i < N_FLAGS; i++) {
        const fit_flag *f = &table[i];
        if (!f->key || strcmp(f->key, key))
            continue;
        return f->omit_zero ? json_integer(0) : flag_json(f, &d);
    }
    return NULL;
}

bool fit_unit_fade_applies(const fit_config *c)
{
    return c->units > 0 && c->arch && strncmp(c->arch, "msresnet", 8) == 0 && !c->snn_from &&
           c->epochs_t0 + c->epochs_snn * (c->t0 - 1) > 0;
}

os_status fit_config_expand(fit_config *c, bool fade_given)
{
    if (c->transfer_from) {
        if (c->snn_from)
            return os_fail(OS_EINVAL, "--transfer-from is --snn-from with a new classifier: give "
                                      "one of them");
        c->snn_from = c->transfer_from;
        c->new_head = true;
        c->distill = 0;
    }
    if (!fade_given && !fit_unit_fade_applies(c))
        c->unit_fade = 0;
    return OS_OK;
}

os_status fit_config_raster(const fit_config *c, os_raster_input *in)
{
    *in = os_raster_input_default();
    if (c->bands && os_raster_bands_parse(c->bands, in))
        return os_fail(OS_EINVAL, "--bands \"%s\": expected three band numbers R,G,B (e.g. 4,3,2)",
                       c->bands);
    if (c->scale && os_raster_scale_parse(c->scale, in))
        return os_fail(OS_EINVAL, "--scale \"%s\": expected none, range:LO,HI, "
                                  "range:LO1,HI1,LO2,HI2,LO3,HI3 or percentile:LO,HI", c->scale);
    return OS_OK;
}

os_status fit_config_check(const fit_config *c)
{
    if (c->unit_fade && !fit_unit_fade_applies(c))
        return os_fail(OS_EINVAL, "--unit-fade 1 fades residual Units into the identity over SNN "
                                  "epochs: it needs --units > 0, an msresnet architecture and SNN "
                                  "epochs (not --snn-from)");
    if ((c->folds > 0) != (c->fold > 0))
        return os_fail(OS_EINVAL, "--folds K and --fold I come together (I in 1..K)");
    if (c->folds == 1 || c->fold > c->folds)
        return os_fail(OS_EINVAL, "--folds %d --fold %d: expected K >= 2 and I in 1..K", c->folds,
                       c->fold);
    if (c->folds > 0 && c->train_list)
        return os_fail(OS_EINVAL, "--folds chooses the split: not with --train-list");
    if (c->freeze_stages > 0 && c->finetune_bn)
        return os_fail(OS_EINVAL, "--freeze-stages with --finetune-bn 1: the frozen stages' "
                                  "BatchNorm statistics would still move; use one of them");
    if (c->freeze_stages > 0 && !c->snn_from)
        return os_fail(OS_EINVAL, "--freeze-stages applies to the fine-tune of --snn-from or "
                                  "--transfer-from's model: give one");
    if ((c->mix_finetune || c->mix_prob != 1) && c->mixup == 0 && c->cutmix == 0)
        return os_fail(OS_EINVAL, "--mix-finetune and --mix-prob shape the mixing of --mixup or "
                                  "--cutmix: give one of them");
    if (c->ema > 0 && c->ema < 0.5)
        return os_fail(OS_EINVAL, "--ema %g: a decay below 0.5 averages almost nothing (typical: "
                                  "0.99-0.9999)", c->ema);
    if (c->val_list && !c->train_list)
        return os_fail(OS_EINVAL, "--val-list needs --train-list");
    os_raster_input in;
    if (fit_config_raster(c, &in)) {
        char why[OS_RASTER_TEXT_MAX * 2];
        snprintf(why, sizeof why, "%s", os_errdetail());
        return os_fail(OS_EINVAL, "%s", why);
    }
    if (c->unit_teacher && (c->units == 0 || c->distill == 0 || c->teacher || c->snn_from ||
                            c->epochs_finetune == 0))
        return os_fail(OS_EINVAL, "--unit-teacher 1 distils the fine-tune from the network before "
                                  "Unit removal: it needs --units > 0, --distill > 0, a "
                                  "fine-tune, and neither --teacher nor --snn-from");
    if (c->teacher && c->distill == 0)
        return os_fail(OS_EINVAL, "--teacher is the model --distill learns from: give --distill A "
                                  "> 0 (--transfer-from turns distillation off)");
    if (c->snn_from && c->distill > 0 && !c->ann_from && !c->teacher)
        return os_fail(OS_EINVAL, "--snn-from with --distill needs the teacher: pass --ann-from "
                                  "ANN or --teacher MODEL, or --distill 0");
    if (c->new_head && !c->snn_from)
        return os_fail(OS_EINVAL, "--new-head replaces the classifier of --snn-from's model: "
                                  "give --snn-from");
    if (c->new_head && c->distill > 0)
        return os_fail(OS_EINVAL, "--new-head: a teacher of the old classes cannot distil the new "
                                  "ones; add --distill 0");
    if (c->snn_from && c->epochs_finetune == 0)
        return os_fail(OS_EINVAL, "--snn-from trains only the fine-tune: --epochs-finetune must "
                                  "be > 0");
    return OS_OK;
}
