/* dataset.h - a folder of class subfolders of images, split and decoded once for training.
 *
 * Layout: DIR/<class>/<image>.jpg (or .jpeg, .tif, .tiff, .png, .jp2, any case: raster.h);
 * classes are the sorted subfolder names and their order is the label order. Images inside a
 * class are sorted by name, so a scan is deterministic. Decoding uses exactly the serving path
 * (session.h): TurboJPEG scaled decode for JPEGs, GDAL for the others (bands 1,2,3 as R,G,B,
 * 8-bit), then area/bilinear resize to the model input, so training sees what the server will
 * see.
 */
#ifndef ONESPIKE_DATASET_H
#define ONESPIKE_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "onespike/raster.h"
#include "onespike/status.h"

typedef struct {
    char *path; /* DIR/<class>/<file> */
    int label;
} os_sample;

typedef struct os_dataset os_dataset;

/* Scan DIR. Fails (naming DIR) if it has no class subfolder or a class has no JPEG file. A JPEG
 * name that is not a regular file (broken link, link loop, FIFO) is listed all the same, so that
 * os_imageset_load reports and skips it like an undecodable image. */
os_status os_dataset_scan(const char *dir, os_dataset **out);
void os_dataset_destroy(os_dataset *d);

int os_dataset_classes(const os_dataset *d);
const char *os_dataset_class(const os_dataset *d, int i);
size_t os_dataset_size(const os_dataset *d);
const os_sample *os_dataset_sample(const os_dataset *d, size_t i);
/* Sample i's path relative to DIR ("class/file.jpg"), as os_dataset_select reads it. */
const char *os_dataset_relpath(const os_dataset *d, size_t i);

/* Deterministic stratified split: within each class, a seeded shuffle, then the first
 * round(val_fraction * count) images (at least one when val_fraction > 0 and the class has two
 * or more) go to validation. Index arrays are malloc'd (caller frees). */
os_status os_dataset_split(const os_dataset *d, double val_fraction, uint64_t seed,
                           size_t **train, size_t *n_train, size_t **val, size_t *n_val);

/* Stratified K-fold partition: within each class, the same seeded shuffle as os_dataset_split,
 * then the fold-th of `folds` contiguous parts (1-based; part sizes differ by at most one)
 * goes to validation. The folds of one seed are disjoint and together hold every image once.
 * A class with fewer images than folds has no validation image in some folds. OS_EINVAL unless
 * folds >= 2 and 1 <= fold <= folds. */
os_status os_dataset_fold(const os_dataset *d, int folds, int fold, uint64_t seed,
                          size_t **train, size_t *n_train, size_t **val, size_t *n_val);

/* Indices of the images named in a list file: one path per line, relative to DIR
 * ("class/file.jpg") or as scanned; blank lines and '#' comments ignored. An entry that is
 * not in the dataset fails naming the file and line. */
os_status os_dataset_select(const os_dataset *d, const char *list_path, size_t **idx, size_t *n);

/* Images decoded once: n images of 3 x side x side floats in [0, 1] (planar), with labels. */
typedef struct {
    float *pix;
    int *labels;
    size_t n;
    int side;
    size_t *source; /* dataset index of each image */
} os_imageset;

/* Decode the images idx[0..n) with `threads` threads, rasters read through `in` (bands and
 * scaling, raster.h; NULL: bands 1,2,3 of 8-bit values, as JPEGs are). An image that fails to
 * decode is reported through warn (message names the file and the reason), counted in *failed
 * and skipped. */
os_status os_imageset_load(const os_dataset *d, const size_t *idx, size_t n, int side,
                           const os_raster_input *in, int threads,
                           void (*warn)(const char *msg), os_imageset *out, size_t *failed);
void os_imageset_free(os_imageset *s);

/* A copy of at most n images of s spread evenly over it (image floor(k * s->n / n) for k < n),
 * so that a class-ordered set gives every class its share: calibration sets. */
os_status os_imageset_spread(const os_imageset *s, size_t n, os_imageset *out);

/* Per-channel mean and std of a set (on the [0,1] scale), for the model's normalisation. */
void os_imageset_stats(const os_imageset *s, float mean[3], float std[3]);

#endif
