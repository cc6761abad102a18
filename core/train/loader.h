/* loader.h - augmentation and a background thread that prepares the next training batch.
 *
 * Augmentation suited to aerial scenes (no canonical "up"): random resized crop, horizontal and
 * vertical flips, rotations by multiples of 90 degrees, mild brightness/contrast/saturation
 * jitter, then the model's mean/std normalisation. Every random choice for batch b comes from a
 * generator seeded with (seed, b), so a batch is the same whichever thread makes it and
 * whenever: a resumed run sees the same data as an uninterrupted one.
 *
 * Optionally a batch is mixed after augmentation (ours, after timm's batch mode): Mixup
 * (Zhang et al. 2018: x = lam x_i + (1 - lam) x_j) or CutMix (Yun et al. 2019: a box of x_j
 * pasted into x_i, lam the share of x_i left), with one lam ~ Beta(alpha, alpha) and one box
 * per batch, image k paired with image k + 1 of the batch (the last with the first: the order
 * is already shuffled). The loss then weighs the two labels by lam and 1 - lam.
 */
#ifndef ONESPIKE_LOADER_H
#define ONESPIKE_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onespike/dataset.h"
#include "onespike/status.h"

typedef struct {
    bool augment;        /* false: the stored image, normalised (evaluation) */
    float crop_min_area; /* random resized crop: area fraction in [crop_min_area, 1] */
    float jitter;        /* brightness/contrast/saturation factors in [1-jitter, 1+jitter] */
    float mean[3], std[3];
    float mixup, cutmix; /* Beta(alpha, alpha) of each; 0: off (both on: one of the two per
                          * batch, with probability 1/2 each) */
    float mix_prob;      /* share of batches mixed, when one of them is on */
} os_aug_config;

/* A batch as the loader hands it out; valid until the next os_loader_next. */
typedef struct {
    const float *x;      /* count x 3 x side x side */
    const int *labels;
    const int *labels_b; /* mixed batch: each image's second label (weight 1 - lam); else NULL */
    float lam;           /* weight of labels: 1 when not mixed */
    int count;
} os_batch;

/* One sample: image i of s (side x side) into out (3 x side x side, normalised). */
void os_augment(const os_imageset *s, size_t i, const os_aug_config *c, uint64_t seed,
                float *out);

/* A sample of Beta(a, a), a > 0 (Marsaglia-Tsang gamma deviates); draws a varying number of
 * steps from *s. */
double os_rng_beta(uint64_t *s, double a);

/* Mix a batch in place as the loader does (c->mixup / c->cutmix / c->mix_prob, one decision
 * from seed): x holds count images of 3 x side x side, tmp room for one. Writes each image's
 * second label into labels_b and returns lam (1: not mixed, labels_b untouched). */
float os_mix_batch(float *x, const int *labels, int *labels_b, int count, int side,
                   const os_aug_config *c, uint64_t seed, float *tmp);

/* Shuffled order of n items for an epoch: a permutation seeded by seed. */
void os_shuffle(size_t *order, size_t n, uint64_t seed);

typedef struct os_loader os_loader;

/* Produce batches of `batch` samples over order[0..n) (indices into s), starting at batch
 * `first` (resume), on a background thread, two batches ahead at most. order is borrowed. */
os_status os_loader_start(const os_imageset *s, const size_t *order, size_t n, int batch,
                          size_t first, const os_aug_config *c, uint64_t seed, os_loader **out);

/* Wait for the next batch (valid until the next call). Returns false when the epoch is done. */
bool os_loader_next(os_loader *l, os_batch *b);
void os_loader_stop(os_loader *l); /* joins the thread; NULL is fine */

#endif
