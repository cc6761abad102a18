/* ema.h - an exponential moving average of a parameter set's values (Polyak averaging, as
 * timm's ModelEma): weights, biases, LIF scalars and BatchNorm's running statistics alike.
 *
 * After optimizer step t (1-based, counted within the stage) every value is averaged as
 *   shadow = d_t shadow + (1 - d_t) value,   d_t = min(decay, (1 + t) / (10 + t))
 * (the warm-up of TensorFlow's ExponentialMovingAverage with num_updates), so early steps are
 * not dominated by the initial weights. Frozen parameters are skipped (their shadow stays
 * their value). The shadow follows the parameters by name: the set may not gain or lose
 * parameters while the average exists (fit keeps one per training stage).
 */
#ifndef ONESPIKE_EMA_H
#define ONESPIKE_EMA_H

#include <stdbool.h>
#include <stddef.h>

#include "onespike/safetensors.h"
#include "onespike/status.h"
#include "params.h"

typedef struct os_ema os_ema;

/* A shadow holding a copy of p's values now. decay in (0, 1). */
os_status os_ema_create(os_params *p, double decay, os_ema **out);
void os_ema_destroy(os_ema *e);

/* The decay used after optimizer step t (>= 1). */
double os_ema_decay_at(const os_ema *e, long t);

/* Average p's values into the shadow after optimizer step t (>= 1). */
void os_ema_update(os_ema *e, os_params *p, long t);

/* Exchange the shadow and p's values (copies, so aliases of p see it): call twice to go back. */
void os_ema_swap(os_ema *e, os_params *p);

/* Views of the shadow named "<prefix><name>" (prefix kept by the caller, e.g. "ema."), for a
 * checkpoint; valid while e lives. Caller frees the array. */
os_status os_ema_views(const os_ema *e, const char *prefix, os_tensor_view **out, size_t *n);

/* Restore the shadow from "<prefix><name>" tensors found by find; a missing or misshapen one
 * fails (the checkpoint is not this run's). */
os_status os_ema_restore(os_ema *e, const char *prefix,
                         const os_tensor_view *(*find)(const void *, const char *),
                         const void *ctx);

#endif
