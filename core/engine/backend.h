/* backend.h - the engine's inference backends (exec.h) and the context they run on.
 *
 *   os_backend_dense  planar CHW float kernels (layers.h): every net runs on it; the reference.
 *   os_backend_event  channels-last (HWC): convolutions of binary inputs event-driven
 *                     (os_spike_conv with the context's kernel set), a conv whose input fired
 *                     at more than OS_SPIKE_DENSE_RATE as one SGEMM (fp32 plans; an fp16
 *                     or int8 plan sums its rows at any rate: os_spike_plan_dense_at), the
 *                     image conv planar in and channels-last out. Only for nets whose spike
 *                     plan is complete.
 *
 * A session (session.c) allocates the context from the model, once, and owns every buffer in
 * it; the kernels allocate nothing. A pass runs n images (a batch): every buffer holds n of its
 * layer's tensors back to back, and each kernel runs its layer for all n before the next layer,
 * computing each image exactly as it would alone.
 */
#ifndef ONESPIKE_BACKEND_H
#define ONESPIKE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eltwise.h"
#include "exec.h"
#include "spikeconv.h"

typedef struct {
    const os_net *net;
    int n;                 /* images in this pass */
    int T;                 /* time steps of a pass */
    int in_c, in_h, in_w;  /* the input's shape */
    float *input;          /* the input images, planar */
    float **out;           /* per layer: its output (a folded bn aliases its conv's) */
    float **mem;           /* per layer: a LIF layer's membrane, else NULL (set by its step 0) */
    float *col;            /* im2col scratch, the largest any conv needs */
    const os_eltwise *elt; /* LIF (and on the event path add, max pooling): the reference
                              kernels on the dense path, the event kernels' set's otherwise */
    bool count_spikes;
    uint64_t *spikes;      /* per layer: spikes a LIF layer emitted, when counting */
    /* event backend only */
    const os_spike_plan *plan;
    const os_spike_kernels *kernels;
    uint16_t **sidx, **scnt; /* per layer an event-driven conv reads: its active inputs */
    bool *index_only;        /* per layer, at T = 1: a LIF layer that only event-driven convs
                                read, which lists its spikes without writing them (a conv
                                that needs them as floats makes them from the lists) */
    size_t *active;          /* per such layer and image: how many, this step
                                ([layer * max_batch + image]) */
    int max_batch;
    uint16_t *rows;          /* os_spike_conv scratch */
    float *flat;             /* a flattening layer's input back in planar order */
} os_infer_ctx;

extern const os_backend os_backend_dense;
extern const os_backend os_backend_event;

/* os_exec_slot_fn over an os_infer_ctx: one buffer per layer, the same at every step. */
float *os_infer_slot(void *ctx, int i, int step);

#endif
