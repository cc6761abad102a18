/* server.h - what the server's modules share: the loaded models, the worker pool, the metrics,
 * the drain flag and the bearer token. Built once by main.c at start-up; read-only afterwards
 * except for the atomics.
 */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "metrics.h"
#include "onespike/model.h"
#include "pool.h"

#define SRV_TOKEN_MAX 512 /* bytes of a bearer token, at most */

typedef struct srv_server {
    const srv_config *cfg;            /* borrowed */
    os_model *models[SRV_MAX_MODELS]; /* owned by main.c */
    const char *names[SRV_MAX_MODELS];
    int n_models;
    srv_pool *pool;
    srv_metrics *metrics;
    atomic_bool draining; /* SIGTERM seen: not ready, no new inference; cancels running maps */
    atomic_int maps_active; /* map requests admitted (head seen) and not yet released */
    int maps_max;           /* max(1, workers - 1): classify keeps a worker when there are 2+ */
    char token[SRV_TOKEN_MAX];
    size_t token_len; /* 0: no token required */
} srv_server;

/* Index of the model called name[0..len), or -1. */
int srv_server_find_model(const srv_server *s, const char *name, size_t len);

#endif
