/* train.h - the steps of the training pipeline (docs/DESIGN.md §2) on top of tnet.h:
 * an epoch of SGD/AdamW, evaluation, ANN -> SNN conversion, and Unit removal.
 */
#ifndef ONESPIKE_TRAIN_H
#define ONESPIKE_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onespike/dataset.h"
#include "graph.h"
#include "loader.h"
#include "dp.h"
#include "ema.h"
#include "params.h"
#include "tnet.h"

typedef struct {
    double loss, acc;     /* mean training loss and accuracy over the epoch */
    double images_per_s;
    double seconds;
    long steps;           /* optimizer steps taken in this epoch */
} os_epoch_stats;

/* Called after every batch: done/total batches, running loss and accuracy, images/s. */
typedef void (*os_progress_fn)(void *ctx, size_t done, size_t total, double loss, double acc,
                               double images_per_s);

typedef struct {
    int batch;
    float label_smoothing;
    os_opt_config opt;
    os_aug_config aug;
    uint64_t seed;          /* this epoch's data seed */
    long step0;             /* optimizer step count before this epoch (schedule position) */
    os_progress_fn progress;
    void *progress_ctx;
    os_dp *teacher;         /* optional: distil from this network's logits (its own params;
                             * as many replicas as the trained network) */
    float distill;          /* weight of the distillation loss, 0..1 (CE gets 1 - distill) */
    float distill_temp;     /* softmax temperature of the distillation */
    const float *teacher_scale, *teacher_shift; /* 3 each, or NULL: the teacher reads the batch
                             * renormalised, x * scale[ch] + shift[ch] (its own mean and std) */
    float surrogate_gamma;  /* LIF surrogate height (grad.h); 0: OS_SURROGATE_GAMMA */
    os_ema *ema;            /* optional: averaged after every step (step0 + steps taken) */
} os_epoch_config;

/* One pass over the training images in a seeded shuffled order, each batch split over dp's
 * replicas (dp.h); the optimizer steps replica 0's parameter set. */
os_status os_train_epoch(os_dp *dp, const os_imageset *train,
                         const os_epoch_config *c, os_epoch_stats *out);

typedef struct {
    double top1, top5;
    int classes;
    long *confusion;      /* classes x classes, [true][predicted]; malloc'd */
    double *per_class;    /* accuracy per true class; malloc'd */
    size_t n;
    int n_lif;            /* spike counts per LIF layer over the evaluated set */
    uint64_t *spikes, *neuron_steps; /* malloc'd, n_lif each */
} os_eval_result;

/* Evaluate (no augmentation, BN running statistics) in batches of t's max batch; top-1/top-5
 * and the confusion matrix by the one scoring rule (score.h: os_topk's ranking of the logits). */
os_status os_evaluate(os_tnet *t, const os_imageset *set, const os_aug_config *aug, int classes,
                      os_eval_result *out);
/* The same over dp's replicas, each running whole batches of its max batch (batch b on
 * replica b mod R): the same figures as os_evaluate on replica 0, which it is for one. */
os_status os_dp_evaluate(os_dp *dp, const os_imageset *set, const os_aug_config *aug,
                         int classes, os_eval_result *out);
void os_eval_result_free(os_eval_result *r);

/* The rewrites below read a graph (borrowed) and return a new one (caller destroys with
 * os_graph_destroy); on failure *out is NULL and the input graph is unchanged, though p may
 * have been changed. */

/* Fold every BatchNorm that follows a conv into that conv (the conv gains a bias), updating the
 * parameter set (BN tensors removed). */
os_status os_fold_batchnorm(const os_graph *g, os_params *p, os_graph **out);

/* The reverse of os_fold_batchnorm, for training a BN-free (converted) net with BatchNorm
 * (ours): a BatchNorm "<conv>.bn" after every conv, initialised from `calib` (normalised by aug,
 * at most `batch` images, one time step) so that in training mode it reproduces the conv's
 * output: gamma = std, beta = mean of that output, layer by layer (images spread evenly over
 * calib, as in os_recalibrate_thresholds). The function of the net is
 * unchanged up to batch noise; os_fold_batchnorm removes them again. Adds the BN tensors to
 * p. */
os_status os_insert_batchnorm(const os_graph *g, int in_c, int in_h, int in_w, int classes,
                              os_params *p, const os_imageset *calib, const os_aug_config *aug,
                              int batch, os_graph **out);

/* ANN -> SNN (docs/DESIGN.md §2, step 2). g must be BN-free (see os_fold_batchnorm).
 * Runs the ANN on `calib` (normalised by aug) to find, for each ReLU, the given percentile
 * of its pre-activation p_l; replaces it by a LIF with leak 1 and a threshold such that a spike
 * stands for p_l, rescaling weights so that SNN firing rates approximate ANN activations
 * (rate-based equivalence; ours: the paper gives no formula). `shift` adds shift*threshold/T
 * to the bias feeding each LIF, so that over T steps the spike count rounds the ANN activation
 * instead of flooring it (0.5: rounding; 0: the plain conversion). Returns the SNN graph; time
 * linear in the number of layers besides the calibration pass. */
os_status os_convert_to_snn(const os_graph *g, int in_c, int in_h, int in_w, int classes,
                            os_params *p, const os_imageset *calib, const os_aug_config *aug,
                            double percentile, double shift, int timesteps, int batch,
                            os_graph **out);

/* Temporal pruning hand-over (ours): before training at T_new < T_old, set each LIF layer's
 * threshold, in order, so that at T_new it fires at the same rate (spikes per neuron-step) as
 * at T_old on the calibration images, found by bisection on the simulated LIF. Without it,
 * currents that needed several steps to reach the threshold never do at T = 1, and the deeper
 * layers fall silent (no spikes, no surrogate gradient). Uses `batch` images spread evenly over
 * calib (image k * calib->n / batch), in one forward pass. */
os_status os_recalibrate_thresholds(const os_graph *g, int in_c, int in_h, int in_w,
                                    int classes, os_params *p, const os_imageset *calib,
                                    const os_aug_config *aug, int t_old, int t_new, int batch);

/* Remove every layer marked as part of a Unit, rewiring consumers to the Unit's input, and
 * drop their parameters. */
os_status os_remove_units(const os_graph *g, os_params *p, os_graph **out);

/* Copy trained LIF thresholds/leaks from p into the graph's lif layers (in place). */
void os_layers_sync_lif(os_graph *g, os_params *p);

/* Percentile (0..100) of n values; reorders v. */
float os_percentile(float *v, size_t n, double pct);

#endif
