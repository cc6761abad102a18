/* exec.h - the forward pass: one interpreter of a net's layer list, and the backend interface
 * that each execution strategy implements. Private to the engine and the training layer.
 *
 * os_exec_forward runs the time steps in order and, at each step, every layer in list order,
 * handing it to the backend's kernel for its op. A static layer (independent of the step,
 * net.h) runs at step 0 only; its output is kept for the later steps. A layer at step t reads
 * only its inputs at step t and its own state, so this order computes what any other valid
 * order would.
 *
 * A backend is a table of kernels, one per op, chosen once when a session (or a training
 * network) is created, as a ggml backend is: the interpreter has no `if` on the strategy and a
 * new strategy is a new table. Each backend has its own context (scratch, membranes, spike
 * indices), created and owned by whoever creates the session. Buffers belong to the caller
 * too: slot(ctx, i, t) is the output of layer i at step t (the same buffer at every step where
 * the caller keeps one), slot(ctx, OS_NET_INPUT, t) the input.
 *
 * The backends:
 *   dense   planar (CHW) float kernels: im2col + SGEMM convolutions; the reference path
 *           (core/engine/backend.c)
 *   event   channels-last, convolutions of spikes event-driven (spikeconv.h) with the
 *           instruction-set kernels chosen when it is set up (core/engine/backend.c)
 *   train   batched, BatchNorm on batch statistics, membranes kept for BPTT
 *           (core/train/tnet.c)
 */
#ifndef ONESPIKE_EXEC_H
#define ONESPIKE_EXEC_H

#include <stddef.h>

#include "onespike/net.h"

/* What a kernel reads and writes for one layer at one step. */
typedef struct {
    const float *x;  /* the layer's (first) input */
    const float *x2; /* an add's second input; NULL for every other op */
    float *y;        /* the layer's output */
    int step;        /* 0-based time step */
} os_exec_io;

typedef void (*os_exec_kernel)(void *ctx, int i, const os_layer *L, const os_exec_io *io);

typedef struct {
    const char *name;                /* "dense", "event", "train" */
    os_exec_kernel op[OS_OP_COUNT];  /* one per op; every entry set */
    os_exec_kernel after;            /* optional: runs after each layer's kernel */
} os_backend;

typedef float *(*os_exec_slot_fn)(void *ctx, int i, int step);

/* Run T >= 1 steps of net with be's kernels on ctx. When logits is not NULL, add the last
 * layer's output (n_logits floats: images x classes) to it after each step: the logits of a
 * spiking network are its non-spiking head's currents summed over the steps. */
void os_exec_forward(const os_net *net, int T, const os_backend *be, void *ctx,
                     os_exec_slot_fn slot, float *logits, size_t n_logits);

#endif
