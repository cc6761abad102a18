/* dp.h - data-parallel training: one network as R replicas, each a tnet (tnet.h) on a thread
 * of its own that runs a slice of every batch.
 *
 * Replica 0 is a tnet over the caller's parameter set; replicas 1..R-1 run over aliases of it
 * (params.h: the same weights, gradients of their own). A step runs a function on every
 * replica at once (replica 0 on the calling thread), then adds the replicas' gradients into
 * replica 0's set, where the optimizer steps (both split over the replicas by parameter). BatchNorm in training mode takes its statistics
 * over the whole batch (the replicas' sums meet at a barrier, added in replica order), so a
 * step computes what one tnet would on the whole batch up to the order of float sums; only
 * replica 0 updates the running averages. With R = 1 nothing is threaded and the arithmetic
 * is exactly that of one tnet.
 *
 * Every replica's BLAS calls run on its own thread: the caller sets OpenBLAS to 1 thread.
 */
#ifndef ONESPIKE_DP_H
#define ONESPIKE_DP_H

#include "graph.h"
#include "onespike/status.h"
#include "params.h"
#include "tnet.h"

enum { OS_DP_MAX_REPLICAS = 64 };

typedef struct os_dp os_dp;

/* R replicas of graph g (borrowed) over p (borrowed; LIF scalars missing from it are added
 * first, as os_tnet_create does), each for up to ceil(max_batch / R) images at `timesteps`. */
os_status os_dp_create(const os_graph *g, int in_c, int in_h, int in_w, int classes,
                       os_params *p, int max_batch, int timesteps, int replicas, os_dp **out);
void os_dp_destroy(os_dp *d);

/* A one-replica view of a tnet the caller owns, for the functions that take an os_dp (no
 * parameter set: only forward passes); os_dp_unwrap frees the view, not the tnet. NULL
 * without memory. */
os_dp *os_dp_wrap(os_tnet *t);
void os_dp_unwrap(os_dp *d);

int os_dp_replicas(const os_dp *d);
/* Replica r's tnet and parameters (r = 0: the caller's set; evaluation uses replica 0). */
os_tnet *os_dp_tnet(os_dp *d, int r);
os_params *os_dp_params(os_dp *d, int r);

/* Images [*lo, *hi) of a batch of n that replica r of `active` runs (contiguous, in order,
 * sizes differing by at most one). */
void os_dp_slice(int n, int active, int r, int *lo, int *hi);

/* Run fn(ctx, r) for r = 0..active-1 at once and return when every one has. active is R, or 1
 * (replica 0 alone, e.g. a batch smaller than R: BatchNorm then uses its images only).
 * Outside a run, replica 0's tnet can be used as a tnet of its own (evaluation). */
void os_dp_run(os_dp *d, int active, void (*fn)(void *ctx, int r), void *ctx);

/* After a run of backward passes: add every replica's gradients into replica 0's set and take
 * one optimizer step there (params.h), each replica doing both for its share of the
 * parameters. The same floats as adding in replica order and then os_params_step. */
os_status os_dp_step(os_dp *d, const os_opt_config *c, long step);

#endif
