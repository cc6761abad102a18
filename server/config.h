/* config.h - onespike-serve's settings: command-line flags over ONESPIKE_* environment variables
 * over built-in defaults.
 *
 * Every flag has an environment twin (--max-body <-> ONESPIKE_MAX_BODY); a flag given on the
 * command line wins. Models come from --model NAME=PATH (repeatable) or, when no --model flag is
 * given, from ONESPIKE_MODEL="NAME=PATH[,NAME=PATH...]". Values are checked here, so the rest of
 * the server can trust them: a bad value is a usage error naming the flag, the value and what
 * was expected.
 */
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "log.h"

#define SRV_PROG           "onespike-serve"
#define SRV_MAX_MODELS     16
#define SRV_MODEL_NAME_MAX 64 /* bytes, with the NUL */
#define SRV_PATH_MAX       1024
#define SRV_ADDR_MAX       64

/* Defaults (shown by --help). */
#define SRV_DEFAULT_LISTEN         "127.0.0.1"
#define SRV_DEFAULT_PORT           8080
#define SRV_DEFAULT_QUEUE          64
#define SRV_DEFAULT_MAX_BODY       ((size_t)8 << 20)
#define SRV_DEFAULT_MAX_PIXELS     ((size_t)50 * 1000 * 1000)
#define SRV_DEFAULT_DEADLINE_MS    10000
#define SRV_DEFAULT_DRAIN_MS       10000
#define SRV_DEFAULT_DRAIN_RUNNING_MS 10000 /* drain + this: within Kubernetes' default 30 s */
#define SRV_DEFAULT_CONN_TIMEOUT_S 30
#define SRV_DEFAULT_MAX_CONNS      256
#define SRV_DEFAULT_MAX_BATCH      8
#define SRV_DEFAULT_BATCH_DELAY_US 0
/* A worker out of requests watches for the next this long before it sleeps, when a core of the
 * process is free for it (pool.h): longer than the gap between one answer and the next request
 * of a sequential client on loopback (~100-150 us on the 2-core VMs this is measured on). */
#define SRV_DEFAULT_IDLE_SPIN_US 200
/* With one connection open and a core free, the HTTP thread watches for the answer of the
 * request it queued this long before it goes back to sleep (http.h): longer than a classify of
 * the shipped models (~0.6-1.1 ms), shorter than a map. */
#define SRV_DEFAULT_ANSWER_SPIN_US 2000
#define SRV_DEFAULT_TTA            1 /* test-time views of a classify request (1: the image only) */
/* nginx's client_header_timeout is 60 s; heads are small */
#define SRV_DEFAULT_HEADER_TIMEOUT_S 10
#define SRV_DEFAULT_BODY_TIMEOUT_S 60   /* 8 MB in 60 s is 140 KB/s, slower than any pipeline */
#define SRV_DEFAULT_BODY_BUDGET    ((size_t)256 << 20)
/* A scene is many chips: a 64 MiB GeoTIFF holds a few thousand 256x256 windows. Still within
 * the default --body-budget, which bounds every body held at once, maps included. */
#define SRV_DEFAULT_MAP_MAX_BODY   ((size_t)64 << 20)
#define SRV_DEFAULT_MAP_TIMEOUT_S  120

/* Ranges accepted for the numeric settings. */
#define SRV_MAX_WORKERS     256
#define SRV_MAX_QUEUE       65536
#define SRV_MAX_BODY_LIMIT  ((size_t)1 << 30)
#define SRV_MAX_MS          (24L * 3600 * 1000)
#define SRV_MAX_CONNS_LIMIT 16384
#define SRV_MAX_BATCH       64
#define SRV_MAX_BATCH_DELAY_US 10000000L
#define SRV_MAX_IDLE_SPIN_US   100000L
#define SRV_MAX_PIXELS_LIMIT (1L << 40)
#define SRV_MAX_TIMEOUT_S    3600
#define SRV_MAX_BODY_BUDGET  ((size_t)16 << 30)
/* Connections beyond --max-conns admitted only for GET health, readiness and metrics: an
 * orchestrator's probes still answer while clients hold every ordinary slot. */
#define SRV_HEALTH_RESERVE 8

typedef struct {
    char name[SRV_MODEL_NAME_MAX];
    char path[SRV_PATH_MAX];
} srv_model_spec;

typedef struct {
    char listen[SRV_ADDR_MAX];
    int port; /* 0: any free port (the bound one is logged) */
    srv_model_spec models[SRV_MAX_MODELS];
    int n_models;
    int workers;        /* inference threads */
    int queue;          /* requests waiting for a worker, at most */
    size_t max_body;    /* request body bytes, at most */
    size_t max_pixels;  /* JPEG width*height, at most */
    long deadline_ms;   /* a request not answered by then gets 504 */
    long drain_ms;      /* SIGTERM: time given to queued and running requests */
    long drain_running_ms; /* then, time still given to running ones before the exit */
    int conn_timeout_s; /* idle connections are closed after this */
    int header_timeout_s; /* a request head not complete this long after it began: closed */
    int body_timeout_s;   /* a body not complete this long after its head: 408 */
    size_t body_budget;   /* bytes of request bodies held at once, all connections together */
    size_t map_max_body;  /* map request body bytes, at most (instead of max_body); the default
                             is lowered to body_budget when that is smaller */
    int map_timeout_s;    /* a map not done this long after its head: 504 (instead of deadline_ms) */
    int max_conns;      /* concurrent connections */
    int max_batch;      /* classify requests of one model a worker runs together */
    long batch_delay_us; /* how long a worker waits for a batch to fill (0: never) */
    long idle_spin_us;   /* how long an idle worker watches for work before it sleeps */
    long answer_spin_us; /* how long the HTTP thread watches for a queued request's answer */
    int tta;             /* test-time views of a classify request without ?tta= (1, 2, 4, 8) */
    srv_log_level log_level;
    char token_file[SRV_PATH_MAX]; /* "" when no bearer token is required */
    char probe_url[SRV_PATH_MAX];  /* --probe: check this URL and exit */
} srv_config;

typedef enum {
    SRV_CONFIG_RUN = 0, /* cfg is complete: serve (or probe) */
    SRV_CONFIG_EXIT,    /* --help / --version printed: exit 0 */
    SRV_CONFIG_USAGE,   /* bad flag or value, reported on stderr: exit 2 */
} srv_config_result;

/* The test-time views a classify or infer request may ask: what a worker's session holds, the
 * larger of --max-batch and --tta (8 with the defaults). */
static inline int srv_views_room(const srv_config *cfg)
{
    return cfg->max_batch > cfg->tta ? cfg->max_batch : cfg->tta;
}

/* Fill cfg from defaults, the environment and argv (in that order of precedence, last wins). */
srv_config_result srv_config_parse(int argc, char **argv, srv_config *cfg);

/* The --help text, with the defaults. */
void srv_config_print_help(FILE *f);

#endif
