/* loader.h - augmentation and a background thread that prepares the next training batch.
 *
 * Augmentation suited to aerial scenes (no canonical "up"): random resized crop, horizontal and
 * vertical flips, rotations by multiples of 90 degrees, mild brightness/contrast/saturation
 * jitter, then the model's mean/std normalisation. Every random choice for batch b comes from a
 * generator seeded with (seed, b), so a batch is the same whichever thread makes it and
 * whenever: a resumed run sees the same data as an uninterrupted one.
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
} os_aug_config;

/* One sample: image i of s (side x side) into out (3 x side x side, normalised). */
void os_augment(const os_imageset *s, size_t i, const os_aug_config *c, uint64_t seed,
                float *out);

/* Shuffled order of n items for an epoch: a permutation seeded by seed. */
void os_shuffle(size_t *order, size_t n, uint64_t seed);

typedef struct os_loader os_loader;

/* Produce batches of `batch` samples over order[0..n) (indices into s), starting at batch
 * `first` (resume), on a background thread, two batches ahead at most. order is borrowed. */
os_status os_loader_start(const os_imageset *s, const size_t *order, size_t n, int batch,
                          size_t first, const os_aug_config *c, uint64_t seed, os_loader **out);

/* Wait for the next batch; x (count x 3 x side x side) and labels stay valid until the next
 * call. Returns false when the epoch is done. */
bool os_loader_next(os_loader *l, const float **x, const int **labels, int *count);
void os_loader_stop(os_loader *l); /* joins the thread; NULL is fine */

#endif
