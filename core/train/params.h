/* params.h - trainable parameters: named tensors with gradients and optimizer state, and the
 * optimizers (SGD with momentum, AdamW) with a cosine learning-rate schedule and warm-up.
 *
 * A parameter set owns its tensors. Tensors named "*.threshold" / "*.leak" are the LIF scalars;
 * after every step thresholds are kept >= OS_MIN_THRESHOLD and leaks in [OS_MIN_LEAK, 1]
 * (docs/DESIGN.md §2: leak clamped to <= 1). Buffers ("running_mean", "running_var") are tensors
 * without gradients.
 */
#ifndef ONESPIKE_PARAMS_H
#define ONESPIKE_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onespike/safetensors.h"
#include "onespike/status.h"

#define OS_MIN_THRESHOLD 1e-3f
#define OS_MIN_LEAK 0.05f

typedef enum { OS_PARAM_WEIGHT, OS_PARAM_BIAS, OS_PARAM_THRESHOLD, OS_PARAM_LEAK,
               OS_PARAM_BUFFER } os_param_kind;

typedef struct {
    os_tensor_view view; /* name, shape, data (owned by the set) */
    float *data, *grad;  /* grad NULL for buffers */
    float *m, *v;        /* optimizer moments (allocated on first step) */
    os_param_kind kind;
    bool frozen; /* kept as it is: os_params_step skips it, and a tnet computes no gradient
                  * below the first layer that has an unfrozen parameter */
} os_param;

typedef struct os_params os_params;

os_status os_params_create(os_params **out);
void os_params_destroy(os_params *p);

/* Add a copy of t (kind from its name: *.running_mean/var buffers, *.threshold, *.leak, *.bias
 * or other 1-D -> bias, else weight). Fails on a duplicate name. */
os_status os_params_add(os_params *p, const os_tensor_view *t);
/* A set whose parameters share p's names and values (the same data pointers) and have
 * gradients of their own, in p's order: a replica's view for data-parallel training (dp.h).
 * Only forward/backward passes use it (never os_params_step, add or remove); destroy it before
 * p, and do not add or remove parameters of p while it exists. */
os_status os_params_alias(os_params *p, os_params **out);
/* p's gradients += from's for parameters which[0..count) (NULL: the first count), by index
 * (from: an alias of p; frozen ones skipped). */
void os_params_add_grads(os_params *p, const os_params *from, const int *which, int count);

/* A scalar parameter. */
os_status os_params_add_scalar(os_params *p, const char *name, float value);
/* Remove a parameter by name (no-op if absent). */
void os_params_remove(os_params *p, const char *name);

int os_params_count(const os_params *p);
os_param *os_params_at(os_params *p, int i); /* stable until removed */
os_param *os_params_find(os_params *p, const char *name);     /* NULL if absent */
const os_tensor_view *os_params_view(const void *p, const char *name); /* os_tensor_find_fn */
size_t os_params_trainable(const os_params *p); /* number of trainable, unfrozen values */

void os_params_zero_grad(os_params *p);

/* Forget optimizer moments (a new stage starts a new optimizer). */
void os_params_reset_state(os_params *p);

typedef enum { OS_OPT_SGD, OS_OPT_ADAMW } os_optimizer;

typedef struct {
    os_optimizer kind;
    float lr;           /* peak learning rate */
    float momentum;     /* SGD */
    float beta1, beta2, eps; /* AdamW */
    float weight_decay; /* decoupled (AdamW) / L2 (SGD); weights only, never biases or LIF */
    long warmup_steps, total_steps;
    float lif_lr_scale; /* LIF threshold/leak learning rate relative to lr */
} os_opt_config;

/* Learning rate at step (0-based): linear warm-up then cosine decay to 0 at total_steps. */
float os_lr_at(const os_opt_config *c, long step);

/* One update of every trainable parameter from its gradient; step is 0-based (AdamW bias
 * correction and the schedule use it). Then clamps LIF scalars. */
os_status os_params_step(os_params *p, const os_opt_config *c, long step);
/* The same update for parameters which[0..count) only (indices as os_params_at's; NULL: the
 * first count): disjoint subsets may step on different threads. */
os_status os_params_step_some(os_params *p, const os_opt_config *c, long step, const int *which,
                              int count);

/* Views of every tensor (for writing a model or checkpoint); with_state adds the optimizer
 * moments as "opt.m.<name>" / "opt.v.<name>" where allocated. Caller frees the array. */
os_status os_params_views(os_params *p, bool with_state, bool skip_scalars, os_tensor_view **out,
                          size_t *n);

/* Restore optimizer moments from "opt.m.<name>"/"opt.v.<name>" tensors found by find. */
os_status os_params_restore_state(os_params *p,
                                  const os_tensor_view *(*find)(const void *, const char *),
                                  const void *ctx);

#endif
