/* dp.c - data-parallel replicas of a training network; see dp.h. */
#include "dp.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    os_reduce base; /* first: the tnet's os_reduce * is this replica's */
    os_dp *d;
    int r;
    unsigned calls; /* sums so far: selects the slot buffer */
    pthread_t thread;
    bool started;
} replica;

struct os_dp {
    int R;
    os_tnet *t[OS_DP_MAX_REPLICAS];
    os_params *p[OS_DP_MAX_REPLICAS]; /* p[0] is the caller's */
    replica rep[OS_DP_MAX_REPLICAS];
    pthread_barrier_t start, done, sync;
    bool barriers;
    /* the workers wait here until every one of them exists (GATE_OPEN), or leave at once if
     * one could not be started (GATE_CLOSED): the barriers count all R */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    int gate;
    void (*fn)(void *ctx, int r);
    void *ctx;
    bool quit;
    bool solo; /* sums are the caller's own: outside a parallel os_dp_run (replica 0 used alone,
                * as evaluation does) or in one with active = 1 */
    size_t slot_len; /* doubles per replica in a slot buffer: the longest sum (tnet.h) */
    double *slots[2]; /* [R][slot_len] each; sums alternate between the two */
    int *part;        /* parameter indices, replica r's share at part + part_at[r] */
    int part_at[OS_DP_MAX_REPLICAS + 1];
    /* os_dp_step's arguments and each share's status */
    const os_opt_config *opt;
    long step;
    os_status step_st[OS_DP_MAX_REPLICAS];
};

/* Every replica writes its vector, meets the others at the barrier, then adds all of them in
 * replica order. Two buffers: the next sum writes the other one, and no replica can reach the
 * sum after that (same buffer again) before every replica has passed the next barrier, that
 * is, finished reading this one. */
static void replica_sum(os_reduce *base, double *v, size_t n)
{
    replica *w = (replica *)base;
    os_dp *d = w->d;
    if (d->solo)
        return;
    assert(n <= d->slot_len);
    double *buf = d->slots[w->calls++ & 1];
    memcpy(buf + (size_t)w->r * d->slot_len, v, n * sizeof *v);
    pthread_barrier_wait(&d->sync);
    for (size_t j = 0; j < n; j++) {
        double s = 0;
        for (int k = 0; k < d->R; k++)
            s += buf[(size_t)k * d->slot_len + j];
        v[j] = s;
    }
}

enum { GATE_WAIT, GATE_OPEN, GATE_CLOSED };

static void set_gate(os_dp *d, int g)
{
    pthread_mutex_lock(&d->gate_mu);
    d->gate = g;
    pthread_cond_broadcast(&d->gate_cv);
    pthread_mutex_unlock(&d->gate_mu);
}

static void *worker(void *arg)
{
    replica *w = arg;
    os_dp *d = w->d;
    pthread_mutex_lock(&d->gate_mu);
    while (d->gate == GATE_WAIT)
        pthread_cond_wait(&d->gate_cv, &d->gate_mu);
    int gate = d->gate;
    pthread_mutex_unlock(&d->gate_mu);
    if (gate == GATE_CLOSED)
        return NULL;
    for (;;) {
        pthread_barrier_wait(&d->start);
        if (d->quit)
            break;
        d->fn(d->ctx, w->r);
        pthread_barrier_wait(&d->done);
    }
    return NULL;
}

/* Every worker started: they are past the gate, so the start barrier lets them out. Some
 * missing: the gate was closed before they could reach it. */
static void stop_workers(os_dp *d)
{
    if (d->gate == GATE_OPEN) {
        d->quit = true;
        pthread_barrier_wait(&d->start);
    } else {
        set_gate(d, GATE_CLOSED);
    }
    for (int r = 1; r < d->R; r++)
        if (d->rep[r].started)
            pthread_join(d->rep[r].thread, NULL);
}

os_status os_dp_create(const os_graph *g, int in_c, int in_h, int in_w, int classes,
                       os_params *p, int max_batch, int timesteps, int replicas, os_dp **out)
{
    *out = NULL;
    if (replicas < 1 || replicas > OS_DP_MAX_REPLICAS || max_batch < replicas)
        return os_fail(OS_EINVAL, "training replicas: %d (1..%d, at most the batch %d)", replicas,
                       OS_DP_MAX_REPLICAS, max_batch);
    os_dp *d = calloc(1, sizeof *d);
    if (!d)
        return os_fail(OS_ENOMEM, "no memory for training replicas");
    d->R = replicas, d->solo = true;
    int per = (max_batch + replicas - 1) / replicas;
    /* replica 0 first: it adds the LIF scalars the graph needs to p, which the aliases share */
    os_status st = os_tnet_create(g, in_c, in_h, in_w, classes, p, per, timesteps, &d->t[0]);
    d->p[0] = p;
    for (int r = 1; !st && r < replicas; r++) {
        st = os_params_alias(p, &d->p[r]);
        if (!st)
            st = os_tnet_create(g, in_c, in_h, in_w, classes, d->p[r], per, timesteps, &d->t[r]);
    }
    if (st || replicas == 1) {
        if (st)
            os_dp_destroy(d);
        else
            *out = d;
        return st;
    }
    d->slot_len = os_tnet_reduce_len(d->t[0]);
    for (int k = 0; k < 2 && !st; k++)
        if (!(d->slots[k] = malloc((size_t)replicas * d->slot_len * sizeof(double))))
            st = os_fail(OS_ENOMEM, "no memory for training replicas");
    if (!st) {
        if (pthread_barrier_init(&d->start, NULL, (unsigned)replicas) ||
            pthread_barrier_init(&d->done, NULL, (unsigned)replicas) ||
            pthread_barrier_init(&d->sync, NULL, (unsigned)replicas) ||
            pthread_mutex_init(&d->gate_mu, NULL) || pthread_cond_init(&d->gate_cv, NULL))
            st = os_fail(OS_ENOMEM, "cannot create the replicas' barriers");
        else
            d->barriers = true;
    }
    /* the optimizer's shares: consecutive parameters, about equal numbers of values each */
    int np = os_params_count(p);
    size_t total = 0;
    for (int i = 0; i < np; i++)
        total += os_params_at(p, i)->view.count;
    if (!st && !(d->part = malloc((size_t)(np ? np : 1) * sizeof *d->part)))
        st = os_fail(OS_ENOMEM, "no memory for training replicas");
    if (!st) {
        int r = 0;
        size_t acc = 0;
        d->part_at[0] = 0;
        for (int i = 0; i < np; i++) {
            d->part[i] = i;
            acc += os_params_at(p, i)->view.count;
            while (r + 1 < replicas && (double)acc >= (double)total * (r + 1) / replicas)
                d->part_at[++r] = i + 1;
        }
        while (r < replicas)
            d->part_at[++r] = np;
    }
    for (int r = 0; !st && r < replicas; r++) {
        replica *w = &d->rep[r];
        w->base.sum = replica_sum, w->d = d, w->r = r;
        os_tnet_set_reduce(d->t[r], &w->base, r > 0);
        if (r > 0) {
            if (pthread_create(&w->thread, NULL, worker, w) != 0)
                st = os_fail(OS_ENOMEM, "cannot start a training replica's thread");
            else
                w->started = true;
        }
    }
    if (st) {
        os_dp_destroy(d);
        return st;
    }
    set_gate(d, GATE_OPEN);
    *out = d;
    return OS_OK;
}

void os_dp_destroy(os_dp *d)
{
    if (!d)
        return;
    if (d->barriers) {
        stop_workers(d);
        pthread_barrier_destroy(&d->start);
        pthread_barrier_destroy(&d->done);
        pthread_barrier_destroy(&d->sync);
        pthread_mutex_destroy(&d->gate_mu);
        pthread_cond_destroy(&d->gate_cv);
    }
    for (int r = 0; r < d->R; r++)
        os_tnet_destroy(d->t[r]);
    for (int r = 1; r < d->R; r++)
        os_params_destroy(d->p[r]);
    free(d->slots[0]), free(d->slots[1]);
    free(d->part);
    free(d);
}

os_dp *os_dp_wrap(os_tnet *t)
{
    os_dp *d = calloc(1, sizeof *d);
    if (d)
        d->R = 1, d->solo = true, d->t[0] = t;
    return d;
}

void os_dp_unwrap(os_dp *d)
{
    free(d);
}

int os_dp_replicas(const os_dp *d)
{
    return d->R;
}

os_tnet *os_dp_tnet(os_dp *d, int r)
{
    return d->t[r];
}

os_params *os_dp_params(os_dp *d, int r)
{
    return d->p[r];
}

void os_dp_slice(int n, int active, int r, int *lo, int *hi)
{
    *lo = (int)((long)n * r / active);
    *hi = (int)((long)n * (r + 1) / active);
}

void os_dp_run(os_dp *d, int active, void (*fn)(void *ctx, int r), void *ctx)
{
    if (d->R == 1 || active == 1) {
        fn(ctx, 0);
        return;
    }
    d->fn = fn, d->ctx = ctx, d->solo = false;
    pthread_barrier_wait(&d->start);
    fn(ctx, 0);
    pthread_barrier_wait(&d->done);
    d->solo = true;
}

/* Replica r's share of the parameters: every replica's gradients added into the first's (in
 * replica order), then the optimizer's update. */
static void step_share(void *ctx, int r)
{
    os_dp *d = ctx;
    const int *which = d->part + d->part_at[r];
    int count = d->part_at[r + 1] - d->part_at[r];
    for (int k = 1; k < d->R; k++)
        os_params_add_grads(d->p[0], d->p[k], which, count);
    d->step_st[r] = os_params_step_some(d->p[0], d->opt, d->step, which, count);
}

os_status os_dp_step(os_dp *d, const os_opt_config *c, long step)
{
    if (d->R == 1)
        return os_params_step(d->p[0], c, step);
    d->opt = c, d->step = step;
    os_dp_run(d, d->R, step_share, d);
    for (int r = 0; r < d->R; r++)
        if (d->step_st[r])
            return d->step_st[r];
    return OS_OK;
}
