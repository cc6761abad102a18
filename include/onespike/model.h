/* model.h - the onespike model file (docs/DESIGN.md §3): load with full validation, write
 * atomically.
 *
 * A model file is a safetensors container whose __metadata__ holds
 *   onespike.format  "1"
 *   onespike.model   a JSON document (below)
 *   onespike.sha256  SHA-256 of the tensor bytes, lowercase hex
 * The document: {"name", "version", "timesteps", "input": {"channels": 3, "height", "width",
 * "mean": [3], "std": [3], "resize": "stretch"|"center_crop", optional "bands": [R, G, B] raster
 * band numbers (default [1,2,3]) and "scale": "none"|"range:LO,HI"|"percentile:LO,HI" (raster.h;
 * default "none")}, "labels": [...], "layers": [...]
 * (see net.h), and free-form "arch", "training", "metrics", "description"}.
 *
 * Loading checks, in order: the container (safetensors.h), the format tag, the checksum, the
 * document's fields, then the architecture against the tensors. The first failure is returned
 * with a message naming the file and what is wrong; a loaded model is always usable.
 */
#ifndef ONESPIKE_MODEL_H
#define ONESPIKE_MODEL_H

#include <stddef.h>

#include <jansson.h>

#include "onespike/image.h"
#include "onespike/net.h"
#include "onespike/raster.h"
#include "onespike/safetensors.h"
#include "onespike/status.h"

#define OS_MODEL_FORMAT "1"
#define OS_MODEL_MAX_BYTES ((size_t)1 << 31) /* refuse larger files outright */
#define OS_MODEL_MAX_TIMESTEPS 64
#define OS_MODEL_MAX_INPUT 4096            /* pixels per side */

typedef struct os_model os_model;
typedef struct os_spike_plan os_spike_plan; /* core/engine/spikeconv.h */

/* Choices made when a model is loaded, which its sessions share. */
typedef struct {
    /* Weight rows of the event-driven convolutions: "fp32" (exact), "fp16" (each weight
     * rounded to binary16, summed in fp32: half the bytes of the layers beyond half the L2,
     * those within kept widened: spikeconv.h) or "int8" (per output channel
     * scale, a quarter of the bytes); docs/results/README.md gives their accuracy. NULL:
     * the environment's ONESPIKE_WEIGHTS if set, else "fp32". Unknown names: OS_EINVAL. */
    const char *weights;
} os_model_opts;

/* The environment variable that picks the weight format when os_model_opts does not. */
#define OS_MODEL_WEIGHTS_ENV "ONESPIKE_WEIGHTS"

os_status os_model_load(const char *path, os_model **out); /* default options */
os_status os_model_load_ex(const char *path, const os_model_opts *opts, os_model **out);

/* As os_model_load, from a malloc'd 4-byte aligned buffer that the model takes over (freed with
 * free() by os_model_destroy, or here on failure). label names it in messages. */
os_status os_model_load_buffer(void *buf, size_t len, const char *label, os_model **out);
os_status os_model_load_buffer_ex(void *buf, size_t len, const char *label,
                                  const os_model_opts *opts, os_model **out);

void os_model_destroy(os_model *m); /* NULL is fine */

/* Write a model file atomically: `doc` (borrowed) is the onespike.model document, tensors in
 * file order. The result is checked by loading it back from memory before the rename, so a
 * document that contradicts its tensors is refused and nothing is written. */
os_status os_model_write(const char *path, const json_t *doc, const os_tensor_view *tensors,
                         size_t n_tensors);

/* Accessors; strings and arrays are borrowed from the model. */
const char *os_model_path(const os_model *m);
const char *os_model_name(const os_model *m);
const char *os_model_version(const os_model *m);
int os_model_timesteps(const os_model *m);
void os_model_input(const os_model *m, int *channels, int *height, int *width);
const float *os_model_mean(const os_model *m); /* 3 values, on the [0,1] pixel scale */
const float *os_model_std(const os_model *m);
os_resize_policy os_model_resize(const os_model *m);
/* The raster bands read as R, G, B and how their values become 0..255 (input.bands/scale). */
const os_raster_input *os_model_raster_input(const os_model *m);
int os_model_classes(const os_model *m);
const char *os_model_label(const os_model *m, int i);
const char *os_model_sha256(const os_model *m);
const json_t *os_model_doc(const os_model *m);   /* the whole onespike.model document */
const os_net *os_model_net(const os_model *m);
/* The net's event-driven convolution plan (spikeconv.h); shared by the model's sessions. */
const os_spike_plan *os_model_spike_plan(const os_model *m);
/* The weight format of that plan's event-driven convolutions: "fp32", "fp16" or "int8". Static. */
const char *os_model_weights(const os_model *m);
/* Bytes of the weight copies that plan holds (0 when sessions run the net dense). */
size_t os_model_plan_bytes(const os_model *m);
const os_st_file *os_model_tensors(const os_model *m);

#endif
