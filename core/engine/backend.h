/* backend.h - the engine's inference backends (exec.h) and the context they run on.
 *
 *   os_backend_dense  planar CHW float kernels (layers.h): every net runs on it; the reference.
 *   os_backend_event  channels-last (HWC): convolutions of binary inputs event-driven
 *                     (os_spike_conv with the context's kernel set), a conv whose input fired
 *                     at more than OS_SPIKE_DENSE_RATE as one SGEMM (fp32 plans; an int8
 *                     plan sums its rows at any rate), the image conv planar in and
 *                     channels-last out. Only for nets whose spike plan is complete.
 *
 * A session (session.c) allocates the context from the model, once, and owns every buffer in
 * it; the kernels allocate nothing. One image per pass.
 */
#ifndef ONESPIKE_BACKEND_H
#define ONESPIKE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec.h"
#include "spikeconv.h"

typedef struct {
    const os_net *net;
    int in_c, in_h, in_w;  /* the input's shape */
    float *input;          /* the input image, planar */
    float **out;           /* per layer: its output (a folded bn aliases its conv's) */
    float **mem;           /* per layer: a LIF layer's membrane, else NULL */
    float *col;            /* im2col scratch, the largest any conv needs */
    bool count_spikes;
    uint64_t *spikes;      /* per layer: spikes a LIF layer emitted, when counting */
    /* event backend only */
    const os_spike_plan *plan;
    const os_spike_kernels *kernels;
    uint16_t **sidx, **scnt; /* per layer an event-driven conv reads: its active inputs */
    size_t *active;          /* per such layer: how many, this step */
    uint32_t *rows;          /* os_spike_conv scratch */
    float *flat;             /* a flattening layer's input back in planar order */
} os_infer_ctx;

extern const os_backend os_backend_dense;
extern const os_backend os_backend_event;

/* os_exec_slot_fn over an os_infer_ctx: one buffer per layer, the same at every step. */
float *os_infer_slot(void *ctx, int i, int step);

#endif
