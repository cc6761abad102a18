/* fit.h - the training pipeline behind `onespike-train fit` (docs/DESIGN.md §2):
 * ANN with Units -> BN folding + conversion -> SNN at T0 -> temporal pruning T0..1 -> Unit
 * removal -> fine-tune at T = 1 -> export, with a checkpoint after every epoch and stage.
 */
#ifndef ONESPIKE_FIT_H
#define ONESPIKE_FIT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "onespike/status.h"

/* One field per flag (the table in fit_flags.h names them); strings are borrowed. */
typedef struct {
    const char *data, *out, *workdir, *train_list, *val_list, *name, *optimizer, *ann_from;
    const char *snn_from; /* start at the T = 1 fine-tune from this one-step model */
    const char *transfer_from; /* shorthand: snn_from + new_head, distillation off */
    const char *teacher;       /* distil from this model instead of the run's own ANN */
    const char *bands, *scale; /* rasters' R,G,B bands and value scaling (raster.h text forms) */
    bool resume, quiet;
    bool new_head; /* with snn_from: a new classifier for this folder's classes (transfer) */
    const char *arch;
    double width_mult;
    int input, units, unit_at, t0;
    int epochs_ann, epochs_snn, epochs_t0, epochs_finetune, warmup_epochs;
    int batch, threads, calib_images, recalibrate, finetune_bn;
    int folds, fold;   /* folds > 0: validation is fold `fold` (1-based) of a stratified K-fold */
    int freeze_stages; /* fine-tune: the stem and stages 1..freeze_stages keep their values */
    int unit_fade;     /* 1: residual Units' branches scaled linearly to 0 over the SNN epochs */
    int unit_teacher;  /* 1: the fine-tune distils from the T = 1 network before Unit removal */
    double lr_ann, lr_snn, lr_finetune, weight_decay, label_smoothing, val_fraction;
    double percentile, convert_shift, crop_min_area, jitter, lif_lr_scale, distill, distill_temp;
    double surrogate_gamma;
    double mixup, cutmix, mix_prob; /* batch mixing (loader.h), ANN stage (and fine-tune) */
    int mix_finetune;               /* 1: the fine-tune's batches are mixed too */
    double ema;                     /* > 0: weight average of the ANN stage and fine-tune */
    uint64_t seed;
    char *command; /* the exact command line, for the report */
} fit_config;

/* Every field from the flag table's defaults (fit_flags.h): the recipe of the shipped model,
 * threads from the machine (one per core, at most 8), command NULL. */
void fit_defaults(fit_config *c);

/* Run (or resume) the pipeline; prints progress to stderr and writes the model, its report
 * (<out>.report.md/.json) and the work dir's metrics.jsonl and checkpoint. */
os_status fit_run(const fit_config *c);

/* The JSON form of a config: one key per recipe flag of the table (fit_flags.h), in its order;
 * what checkpoints, model files ("training"."config") and reports record, and what a resume
 * compares. Paths of this run's outputs, threads, quiet and the command are not in it. New
 * object (caller decrefs), NULL without memory. */
json_t *fit_config_json(const fit_config *c);

#endif
