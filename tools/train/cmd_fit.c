/* fit: flags -> fit_config -> fit_run. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "onespike/fit.h"

static void help(const fit_config *d)
{
    printf("usage: " CLI_PROG " fit --data DIR --out MODEL [options]\n"
           "\n"
           "Train a one-time-step spiking network on DIR (one subfolder of JPEGs per class; sorted\n"
           "names are the label order): ANN with Units -> BN folding and conversion to LIF ->\n"
           "SNN at T0 steps -> temporal pruning T0, T0-1, ..., 1 -> Unit removal -> fine-tune at\n"
           "T = 1 -> MODEL (written atomically) with MODEL.report.md/.json beside it. A checkpoint\n"
           "is written to the work dir after every epoch; --resume continues a killed run.\n"
           "\n"
           "data\n"
           "  --data DIR            image folder (required)\n"
           "  --out MODEL           model file to write (required)\n"
           "  --workdir DIR         checkpoints and metrics.jsonl (default MODEL.work)\n"
           "  --resume              continue from the work dir's checkpoint\n"
           "  --val-fraction F      stratified validation share per class (default %g)\n"
           "  --train-list FILE     explicit training images (paths relative to DIR), instead of a split\n"
           "  --val-list FILE       explicit validation images (with --train-list)\n"
           "  --seed N              split, initialisation, data order and augmentation (default %llu)\n"
           "  --ann-from FILE       skip the ANN stage: convert this trained ANN (the work dir's\n"
           "                        ann.safetensors of an earlier run), to compare SNN schedules\n"
           "  --snn-from FILE       skip to the T = 1 fine-tune: continue training this one-step\n"
           "                        model (a fit output; --input must match). With --distill,\n"
           "                        --ann-from names the ANN teacher\n"
           "network\n"
           "  --arch A              vgg11, vgg16, resnet18, resnet20,\n"
           "                        msresnet18, msresnet20 (default %s)\n"
           "  --width-mult W        channel multiplier (default %g)\n"
           "  --input PX            square training/serving input size (default %d)\n"
           "  --units M             Units inserted for training, removed before export (default %d)\n"
           "  --unit-at AS          stage that gets the Units (default %d)\n"
           "  --name NAME           model name (default onespike-model)\n"
           "schedule\n"
           "  --t0 T                time steps of the first SNN stage; 1 = train at T = 1 directly (default %d)\n"
           "  --epochs-ann N        ANN epochs (default %d)\n"
           "  --epochs-snn N        epochs of each SNN time-step stage T0..1 (default %d)\n"
           "  --epochs-t0 N         epochs of the first SNN stage, at T0 (default %d)\n"
           "  --epochs-finetune N   T = 1 epochs after Unit removal (default %d)\n"
           "  --warmup-epochs N     linear warm-up of each stage's learning rate (default %d)\n"
           "  --batch N             batch size (default %d)\n"
           "  --optimizer O         adamw or sgd (momentum 0.9) (default %s)\n"
           "  --lr-ann LR           peak learning rate, ANN stage (default %g)\n"
           "  --lr-snn LR           peak learning rate, SNN stages (default %g)\n"
           "  --lr-finetune LR      peak learning rate, fine-tune (default %g)\n"
           "  --lif-lr-scale S      threshold/leak learning rate relative to the weights' (default %g)\n"
           "  --weight-decay WD     decoupled weight decay on weights (default %g)\n"
           "  --label-smoothing E   (default %g)\n"
           "  --percentile P        conversion threshold percentile of pre-activations (default %g)\n"
           "  --calib-images N      training images used for that calibration (default %d)\n"
           "  --convert-shift S     bias += S*threshold/T0 at conversion (0.5 rounds rates; default %g)\n"
           "  --recalibrate 0|1     at each T -> T-1 step, reset thresholds to keep spike rates (default %d)\n"
           "  --surrogate-gamma G   height of the spike's surrogate derivative, SNN stages (default %g)\n"
           "  --finetune-bn 0|1     BatchNorm after every conv during the T = 1 fine-tune, initialised\n"
           "                        to leave the net unchanged and folded away after it (default %d)\n"
           "  --distill A           SNN stages learn from the trained ANN's logits too: loss =\n"
           "                        (1-A) cross-entropy + A distillation (default %g; 0: off)\n"
           "  --distill-temp TAU    distillation temperature (default %g)\n"
           "  --crop-min-area A     random resized crop area range [A, 1] (default %g)\n"
           "  --jitter J            brightness/contrast/saturation jitter (default %g)\n"
           "machine\n"
           "  --threads N           BLAS and decoding threads (default: cores - 1, at least 1;\n"
           "                        the batch loader runs on a thread of its own)\n"
           "  --quiet               no progress output\n"
           "  --help                this text\n",
           d->val_fraction, (unsigned long long)d->seed, d->arch, d->width_mult, d->input,
           d->units, d->unit_at, d->t0, d->epochs_ann, d->epochs_snn, d->epochs_t0, d->epochs_finetune,
           d->warmup_epochs, d->batch, d->optimizer, d->lr_ann, d->lr_snn, d->lr_finetune,
           d->lif_lr_scale, d->weight_decay, d->label_smoothing, d->percentile, d->calib_images,
           d->convert_shift, d->recalibrate, d->surrogate_gamma, d->finetune_bn, d->distill, d->distill_temp,
           d->crop_min_area, d->jitter);
}

static char *join_args(int argc, char **argv)
{
    size_t len = strlen(CLI_PROG) + 8;
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    strcpy(s, CLI_PROG);
    for (int i = 0; i < argc; i++)
        strcat(strcat(s, " "), argv[i]);
    return s;
}

enum {
    O_DATA = 1000, O_OUT, O_WORKDIR, O_RESUME, O_VALF, O_TRAINL, O_VALL, O_SEED, O_ARCH, O_WIDTH,
    O_INPUT, O_UNITS, O_UNITAT, O_NAME, O_T0, O_EANN, O_ESNN, O_EFT, O_WARM, O_BATCH, O_OPT,
    O_LRANN, O_LRSNN, O_LRFT, O_LIFLR, O_WD, O_LS, O_PCT, O_CALIB, O_CROP, O_JIT, O_THREADS,
    O_QUIET, O_HELP, O_SHIFT, O_RECAL, O_ANNFROM, O_ET0, O_KD, O_KDT, O_SNNFROM, O_FTBN, O_SGAMMA
};

static const char *opt_name(const struct option *opts, int val)
{
    for (; opts->name; opts++)
        if (opts->val == val)
            return opts->name;
    return "?";
}

int cmd_fit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", 1, 0, O_DATA}, {"out", 1, 0, O_OUT}, {"workdir", 1, 0, O_WORKDIR},
        {"resume", 0, 0, O_RESUME}, {"val-fraction", 1, 0, O_VALF},
        {"train-list", 1, 0, O_TRAINL}, {"val-list", 1, 0, O_VALL}, {"seed", 1, 0, O_SEED},
        {"arch", 1, 0, O_ARCH}, {"width-mult", 1, 0, O_WIDTH}, {"input", 1, 0, O_INPUT},
        {"units", 1, 0, O_UNITS}, {"unit-at", 1, 0, O_UNITAT}, {"name", 1, 0, O_NAME},
        {"t0", 1, 0, O_T0}, {"epochs-ann", 1, 0, O_EANN}, {"epochs-snn", 1, 0, O_ESNN},
        {"epochs-finetune", 1, 0, O_EFT}, {"warmup-epochs", 1, 0, O_WARM},
        {"batch", 1, 0, O_BATCH}, {"optimizer", 1, 0, O_OPT}, {"lr-ann", 1, 0, O_LRANN},
        {"lr-snn", 1, 0, O_LRSNN}, {"lr-finetune", 1, 0, O_LRFT}, {"lif-lr-scale", 1, 0, O_LIFLR},
        {"weight-decay", 1, 0, O_WD}, {"label-smoothing", 1, 0, O_LS},
        {"percentile", 1, 0, O_PCT}, {"calib-images", 1, 0, O_CALIB},
        {"crop-min-area", 1, 0, O_CROP}, {"jitter", 1, 0, O_JIT}, {"threads", 1, 0, O_THREADS},
        {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, O_HELP}, {"convert-shift", 1, 0, O_SHIFT},
        {"recalibrate", 1, 0, O_RECAL}, {"ann-from", 1, 0, O_ANNFROM},
        {"snn-from", 1, 0, O_SNNFROM}, {"finetune-bn", 1, 0, O_FTBN},
        {"surrogate-gamma", 1, 0, O_SGAMMA},
        {"epochs-t0", 1, 0, O_ET0}, {"distill", 1, 0, O_KD}, {"distill-temp", 1, 0, O_KDT}, {0}};
    fit_config c, d;
    fit_defaults(&c);
    d = c;
    /* One core stays with the loader thread: on 2 cores, 1 BLAS thread trains faster than 2
     * (measured: 130 vs 107 images/s, ResNet-18 x0.5 at 64 px). */
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    c.threads = nproc > 2 ? (int)nproc - 1 : 1;
    long v;
    int ch;
    optind = 1;
#define INT_OPT(field, lo, hi)                                                                     \
    do {                                                                                           \
        if (!os_parse_long(optarg, lo, hi, &v))                                                    \
            return cli_usage_error("fit", "--%s \"%s\": expected an integer in %ld..%ld",           \
                                   opt_name(opts, ch), optarg, (long)(lo), (long)(hi));        \
        c.field = (int)v;                                                                          \
    } while (0)
#define DBL_OPT(field, lo, hi)                                                                     \
    do {                                                                                           \
        if (!os_parse_double(optarg, lo, hi, &c.field))                                           \
            return cli_usage_error("fit", "--%s \"%s\": expected a number in %g..%g",               \
                                   opt_name(opts, ch), optarg, (double)(lo), (double)(hi));    \
    } while (0)
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case O_DATA: c.data = optarg; break;
        case O_OUT: c.out = optarg; break;
        case O_WORKDIR: c.workdir = optarg; break;
        case O_RESUME: c.resume = true; break;
        case O_VALF: DBL_OPT(val_fraction, 0, 0.9); break;
        case O_TRAINL: c.train_list = optarg; break;
        case O_VALL: c.val_list = optarg; break;
        case O_SEED:
            if (!os_parse_long(optarg, 0, 1L << 62, &v))
                return cli_usage_error("fit", "--seed \"%s\": expected an integer >= 0", optarg);
            c.seed = (uint64_t)v;
            break;
        case O_ARCH: c.arch = optarg; break;
        case O_WIDTH: DBL_OPT(width_mult, 0.01, 16); break;
        case O_INPUT: INT_OPT(input, 8, 1024); break;
        case O_UNITS: INT_OPT(units, 0, 16); break;
        case O_UNITAT: INT_OPT(unit_at, 1, 16); break;
        case O_NAME: c.name = optarg; break;
        case O_T0: INT_OPT(t0, 1, 16); break;
        case O_EANN: INT_OPT(epochs_ann, 0, 10000); break;
        case O_ESNN: INT_OPT(epochs_snn, 0, 10000); break;
        case O_EFT: INT_OPT(epochs_finetune, 0, 10000); break;
        case O_WARM: INT_OPT(warmup_epochs, 0, 1000); break;
        case O_BATCH: INT_OPT(batch, 1, 4096); break;
        case O_OPT:
            if (strcmp(optarg, "adamw") && strcmp(optarg, "sgd"))
                return cli_usage_error("fit", "--optimizer \"%s\": adamw or sgd", optarg);
            c.optimizer = optarg;
            break;
        case O_LRANN: DBL_OPT(lr_ann, 0, 10); break;
        case O_LRSNN: DBL_OPT(lr_snn, 0, 10); break;
        case O_LRFT: DBL_OPT(lr_finetune, 0, 10); break;
        case O_LIFLR: DBL_OPT(lif_lr_scale, 0, 1000); break;
        case O_WD: DBL_OPT(weight_decay, 0, 10); break;
        case O_LS: DBL_OPT(label_smoothing, 0, 0.99); break;
        case O_PCT: DBL_OPT(percentile, 50, 100); break;
        case O_CALIB: INT_OPT(calib_images, 1, 1000000); break;
        case O_CROP: DBL_OPT(crop_min_area, 0.05, 1); break;
        case O_JIT: DBL_OPT(jitter, 0, 0.9); break;
        case O_THREADS: INT_OPT(threads, 1, 256); break;
        case O_QUIET: c.quiet = true; break;
        case O_SHIFT: DBL_OPT(convert_shift, 0, 1); break;
        case O_RECAL: INT_OPT(recalibrate, 0, 1); break;
        case O_ANNFROM: c.ann_from = optarg; break;
        case O_SNNFROM: c.snn_from = optarg; break;
        case O_FTBN: INT_OPT(finetune_bn, 0, 1); break;
        case O_SGAMMA: DBL_OPT(surrogate_gamma, 0.01, 16); break;
        case O_ET0: INT_OPT(epochs_t0, 0, 10000); break;
        case O_KD: DBL_OPT(distill, 0, 1); break;
        case O_KDT: DBL_OPT(distill_temp, 0.1, 100); break;
        case O_HELP: help(&d); return CLI_OK;
        default: return cli_usage_error("fit", "unknown option");
        }
    }
#undef INT_OPT
#undef DBL_OPT
    if (optind != argc)
        return cli_usage_error("fit", "unexpected argument \"%s\"", argv[optind]);
    if (!c.data || !c.out)
        return cli_usage_error("fit", "--data and --out are required");
    if (c.val_list && !c.train_list)
        return cli_usage_error("fit", "--val-list needs --train-list");
    if (c.snn_from && c.distill > 0 && !c.ann_from)
        return cli_usage_error("fit", "--snn-from with --distill needs the teacher: pass --ann-from "
                                      "ANN, or --distill 0");
    if (c.snn_from && c.epochs_finetune == 0)
        return cli_usage_error("fit", "--snn-from trains only the fine-tune: --epochs-finetune must be > 0");
    if (!c.snn_from && c.units > 0 && c.epochs_finetune == 0)
        fprintf(stderr, "%s fit: note: Units are removed without fine-tuning (--epochs-finetune 0)\n",
                CLI_PROG);
    c.command = join_args(argc, argv); /* argv[0] is "fit" */
    os_status st = fit_run(&c);
    free(c.command);
    if (st) {
        cli_report("fit", st);
        return CLI_FAIL;
    }
    return CLI_OK;
}
