/* tnet.h - the training executor: a layer graph (graph.h, built as net.h) run on a batch over T
 * time steps with every activation kept, and its backward pass (BPTT) into a parameter set
 * (params.h).
 *
 * Weights, biases and BatchNorm tensors are the parameter set's own tensors (same names as in
 * the layer list); each LIF layer's threshold and leak are the scalars "<layer>.threshold" and
 * "<layer>.leak", created from the layer list's values when missing. BatchNorm uses batch
 * statistics when training (and updates the running averages) and running statistics otherwise.
 * One tnet serves one (batch, T) shape; build another for another T.
 */
#ifndef ONESPIKE_TNET_H
#define ONESPIKE_TNET_H

#include <stdbool.h>
#include <stdint.h>

#include "exec.h"
#include "grad.h"
#include "graph.h"
#include "onespike/net.h"
#include "params.h"
#include "onespike/status.h"

#define OS_BN_MOMENTUM 0.1f

typedef struct os_tnet os_tnet;

/* The kernels os_tnet_forward runs (exec.h); its context is the os_tnet. */
extern const os_backend os_backend_train;

/* Build for graph g (borrowed; the tnet keeps what it needs) over params (borrowed, must
 * outlive the tnet; LIF scalars missing from it are added). */
os_status os_tnet_create(const os_graph *g, int in_c, int in_h, int in_w, int classes,
                         os_params *params, int max_batch, int timesteps, os_tnet **out);
void os_tnet_destroy(os_tnet *t);

/* x: n (<= max_batch) images of in_c*in_h*in_w floats. logits: n*classes (summed over T). */
void os_tnet_forward(os_tnet *t, const float *x, int n, bool train, float *logits);

/* After a forward with train = true: accumulate parameter gradients from dlogits (n*classes),
 * with the LIF surrogate derivative of that height (grad.h's gamma, e.g. OS_SURROGATE_GAMMA). */
void os_tnet_backward(os_tnet *t, const float *dlogits, float surrogate);

/* Data-parallel replicas (dp.h): BatchNorm in training mode takes its batch statistics over
 * every replica's images through r, and a secondary replica leaves the running averages to the
 * first. NULL, false: a tnet of its own (the default). */
void os_tnet_set_reduce(os_tnet *t, os_reduce *r, bool secondary);
/* The longest sum (doubles) the tnet hands its os_reduce: 2 * (widest BatchNorm) + 1. */
size_t os_tnet_reduce_len(const os_tnet *t);

const os_net *os_tnet_net(const os_tnet *t);
int os_tnet_timesteps(const os_tnet *t);
int os_tnet_max_batch(const os_tnet *t);

/* Spikes of each LIF layer in the last forward: spikes and neuron-steps (n * size * T). */
int os_tnet_lif_count(const os_tnet *t);
void os_tnet_spikes(const os_tnet *t, int k, const char **name, uint64_t *spikes,
                    uint64_t *neuron_steps);

/* Pre-activation (the current into LIF/ReLU layer k, counting LIF and ReLU layers in order)
 * of the last forward: pointer to T slots of n*size floats each, for threshold calibration. */
int os_tnet_act_count(const os_tnet *t);
const float *os_tnet_act_input(const os_tnet *t, int k, int step, size_t *count,
                               const char **name);

#endif
