/* session.h - one inference context per worker thread.
 *
 * A session holds every buffer a forward pass needs, sized from the model when it is created:
 * layer outputs, membrane potentials, im2col scratch, the input tensor and the JPEG decoder.
 * Running it allocates nothing of ours (the decoder's pixel buffer grows once to the largest
 * image seen; libjpeg's own per-image working memory is outside our control). A session is not
 * thread-safe: one thread at a time. The model must outlive its sessions.
 */
#ifndef ONESPIKE_SESSION_H
#define ONESPIKE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onespike/model.h"
#include "onespike/raster.h"
#include "onespike/status.h"

#define OS_DEFAULT_MAX_PIXELS ((size_t)50 * 1000 * 1000)
#define OS_SESSION_MAX_BATCH 256

typedef struct {
    int timesteps;        /* 0: the model's own; else run the same weights at this many steps */
    size_t max_pixels;    /* image (JPEG or raster) pixel limit; 0: OS_DEFAULT_MAX_PIXELS */
    bool count_spikes;    /* keep per-layer spike counts (os_session_spikes) */
    bool dense;           /* run every layer with the dense float kernels (the reference path),
                             even where a layer's input is binary spikes */
    int max_batch;        /* images one os_session_run_batch can take, 1..OS_SESSION_MAX_BATCH;
                             0: 1. Every buffer is sized for them at creation. */
    const char *isa;      /* instruction set of the event-driven kernels: "scalar", "avx2",
                             "avx512" or "auto" (the widest this CPU runs); NULL: the
                             environment's ONESPIKE_ISA if set, else "auto". A set this CPU or
                             build lacks, or an unknown name, fails with OS_EINVAL. */
} os_session_opts;

/* The environment variable that overrides the instruction set when os_session_opts does not;
 * read when a session is created. */
#define OS_SESSION_ISA_ENV "ONESPIKE_ISA"

typedef struct os_session os_session;

/* opts may be NULL for defaults. */
os_status os_session_create(const os_model *m, const os_session_opts *opts, os_session **out);
void os_session_destroy(os_session *s); /* NULL is fine */

/* The model input buffer: channels*height*width floats, normalised CHW. Borrowed. */
float *os_session_input(os_session *s);
size_t os_session_input_floats(const os_session *s);

/* Decode JPEG bytes, resize and normalise them into the input buffer. Errors as image.h. */
os_status os_session_load_jpeg(os_session *s, const void *jpeg, size_t len);

/* Batches: image k's input buffer (k < os_session_max_batch; NULL otherwise), and the decoder
 * writing into it. A failed load leaves the other images' buffers as they were. */
int os_session_max_batch(const os_session *s);
float *os_session_input_at(os_session *s, int k);
os_status os_session_load_jpeg_at(os_session *s, int k, const void *jpeg, size_t len);

/* As os_session_load_jpeg_at for any image format of raster.h: JPEG through TurboJPEG, TIFF,
 * GeoTIFF, PNG and JPEG 2000 through GDAL (read whole at full size, then resized as a JPEG
 * is). `in` (borrowed) says which bands are R,G,B and how values are scaled; NULL: the model's
 * (os_model_raster_input). A raster that does not fit `in`: OS_EMISMATCH. */
os_status os_session_load_image_at(os_session *s, int k, const void *buf, size_t len,
                                   const os_raster_input *in);

/* The window (x, y, w, h) of an open raster (borrowed) through `in` (NULL: the model's), resized
 * and normalised into input k: the primitive of a scene map. w*h over the session's pixel
 * limit: OS_ETOOBIG. */
os_status os_session_load_window_at(os_session *s, int k, os_raster *r, int x, int y, int w,
                                    int h, const os_raster_input *in);

/* Run the network on the input buffer for the session's time steps; write the class
 * probabilities (softmax of the logits) to probs and, if logits is not NULL, the logits.
 * Both have os_model_classes() floats. */
void os_session_run(os_session *s, float *probs, float *logits);

/* Run images 0..n-1 of the input buffers (1 <= n <= os_session_max_batch) layer by layer, all n
 * through each layer before the next, so a layer's weights are read while they are in cache
 * for every image. Each image's answer is exactly the one os_session_run gives it alone (the
 * same kernels, the same order of sums). probs (and logits if not NULL): n * classes. */
void os_session_run_batch(os_session *s, int n, float *probs, float *logits);

/* Test-time augmentation over the square's symmetries (ours; an aerial scene has no "up" and
 * no handedness, and training already shows every image flipped and turned): the image in
 * input 0 is also seen mirrored and rotated, all the views run as one batch, and their class
 * probabilities are averaged. View v (0..7) turns the image by 90 degrees counterclockwise
 * v / 2 times, then mirrors it left-right if v is odd; `views` takes the first 1, 2, 4 or 8 of
 * them (8: all the symmetries of the square). Inputs 1..views-1 are overwritten. probs: room
 * for views * classes floats; the mean (summed in view order) is written to the first classes.
 * OS_EINVAL, nothing run, if views is not 1, 2, 4 or 8, exceeds os_session_max_batch, or is
 * over 1 on a non-square input. */
#define OS_SESSION_MAX_VIEWS 8
bool os_session_views_valid(int views); /* 1, 2, 4 or 8 */
/* Whether model m can be run in `views` views: OS_OK, or OS_EINVAL with a detail starting
 * "views N: " (not 1, 2, 4 or 8, or over 1 on a non-square input). */
os_status os_session_views_check(const os_model *m, int views);
os_status os_session_run_views(os_session *s, int views, float *probs);

/* The view v of src (c planes of n x n floats) into dst (not src), as os_session_run_views
 * makes it. */
void os_session_view(const float *src, float *dst, int c, int n, int v);

/* load_jpeg + run. */
os_status os_session_classify(os_session *s, const void *jpeg, size_t len, float *probs);

int os_session_timesteps(const os_session *s);

/* How the session runs the network, chosen when it was created: "dense" (planar float kernels)
 * or "event" (event-driven convolutions of spikes), the instruction set of its hand-written
 * kernels ("scalar", "avx2", "avx512"; "scalar" on the dense path, whose convolutions are
 * BLAS's) and the weight format of its event-driven convolutions (os_model_weights; "fp32" on
 * the dense path). Static strings. */
const char *os_session_backend(const os_session *s);
const char *os_session_isa(const os_session *s);
const char *os_session_weights(const os_session *s);

/* The path os_session_create(m, opts) would take, as one line for people and metadata:
 * "event, avx2, fp32" (backend, instruction set, weight format) or "dense". Fails as
 * os_session_create would on a bad instruction-set choice; creates nothing. */
os_status os_session_describe(const os_model *m, const os_session_opts *opts, char *buf, size_t n);

/* Spike statistics since creation or the last reset (count_spikes must be on): for the k-th LIF
 * layer, spikes emitted and neuron-steps run. Returns false if k is out of range. */
bool os_session_spikes(const os_session *s, int k, uint64_t *spikes, uint64_t *neuron_steps);
void os_session_reset_spikes(os_session *s);

/* Indices of the k largest of p[0..n) in descending order of value (ties: lower index first). */
void os_topk(const float *p, int n, int k, int *idx);

#endif
