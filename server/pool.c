/* pool.c - worker threads around a bounded ring of jobs (see pool.h).
 *
 * An idle worker waits on a condition of its own, on a stack of idle workers: a new job goes to
 * a worker still watching for one (wait_idle's spin), else wakes the one that went idle last.
 * At low load the same worker, on the same core with its session and the weights it read still
 * in that core's caches, takes request after request; waking them in turn (one shared
 * condition wakes the longest waiting) measured 15 % slower at one connection (bench/results).
 * A worker gathering a batch waits on the shared one, and a job goes to it first. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "onespike/clock.h"

struct srv_worker {
    srv_pool *pool;
    pthread_t thread;
    bool started;
    int id;
    os_session **sessions; /* one per model */
    float *probs;
    int *index;
    srv_job **batch; /* the jobs being run: max_batch */
    pthread_cond_t wake;
    bool wake_init;
    atomic_bool idle; /* on the idle stack, waiting on wake (set under mu; read by a
                         spinning worker without it) */
    bool spinning;    /* under mu: idle and still watching, not yet asleep */
};

struct srv_pool {
    pthread_mutex_t mu;
    pthread_cond_t nonempty; /* workers gathering a batch; on the monotonic clock */
    srv_job **ring;
    int cap, head, count, busy;
    int *idle_stack, n_idle; /* worker ids, the last to go idle on top */
    int gathering;           /* workers waiting on nonempty for their batch to fill */
    int running;             /* worker threads not yet returned */
    pthread_cond_t exited;   /* a worker thread returned; on the monotonic clock */
    atomic_bool closed; /* set under mu; a spinning worker reads it without */
    bool joined;
    int n_workers, n_models;
    int spin_cpus;  /* cores the process may use (srv_pool_opts.cpus) */
    int n_spinning; /* under mu: workers watching for a job */
    int max_batch;
    long batch_delay_us;
    long idle_spin_us;
    srv_pool_counts counts; /* under mu */
    srv_worker *workers;
};

/* With the lock held: a job is queued; hand it to a gathering worker, else to an idle worker
 * still spinning, else to the worker that went idle last. No one idle: a busy worker takes it
 * when it is done. */
static void wake_one(srv_pool *p)
{
    if (p->gathering > 0) {
        pthread_cond_signal(&p->nonempty);
    } else if (p->n_idle > 0) {
        /* a worker still watching first (it starts at once), else the last to go idle */
        int at = p->n_idle - 1;
        for (int i = at; i >= 0 && p->n_spinning > 0; i--)
            if (p->workers[p->idle_stack[i]].spinning) {
                at = i;
                break;
            }
        const int id = p->idle_stack[at];
        memmove(p->idle_stack + at, p->idle_stack + at + 1,
                (size_t)(p->n_idle - 1 - at) * sizeof *p->idle_stack);
        p->n_idle--;
        srv_worker *w = &p->workers[id];
        w->idle = false;
        p->counts.handoffs[w->spinning ? SRV_HANDOFF_SPINNING : SRV_HANDOFF_SLEEPING]++;
        pthread_cond_signal(&w->wake);
    }
}

/* With the lock held: wait on the idle stack until a job is handed over or the pool closes.
 * For the first idle_spin_us the worker watches its flag without the lock instead of sleeping:
 * a sleeping thread takes tens of microseconds to be woken (50 on the virtual machines this is
 * measured on, whose idle cores halt), which at one connection was nearly all of the queue
 * wait; a job handed over within the spin starts at once. It spins only on a core nothing of
 * ours needs: while the busy workers, the spinning ones and the HTTP thread leave one of the
 * process's cores free (spin_cpus). Under load it sleeps at once, so the spin never takes a
 * core from the HTTP thread or another worker. The spin does not yield: a yield hands the core
 * to any other process's thread, and beside a CPU-bound process that cost a third of the
 * requests/s at one connection (bench/results). A pool that closes ends the spin. */
static void wait_idle(srv_pool *p, srv_worker *w)
{
    atomic_store_explicit(&w->idle, true, memory_order_relaxed);
    p->idle_stack[p->n_idle++] = w->id;
    if (p->idle_spin_us > 0 && !p->closed && p->busy + p->n_spinning + 1 < p->spin_cpus) {
        const uint64_t until = os_clock_ns() + (uint64_t)p->idle_spin_us * 1000u;
        w->spinning = true;
        p->n_spinning++;
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; atomic_load_explicit(&w->idle, memory_order_relaxed); i++) {
            if (atomic_load_explicit(&p->closed, memory_order_relaxed) ||
                ((i & 15) == 15 && os_clock_ns() >= until))
                break;
            srv_cpu_relax();
        }
        pthread_mutex_lock(&p->mu);
        p->n_spinning--;
        w->spinning = false;
    }
    while (w->idle && !p->closed)
        pthread_cond_wait(&w->wake, &p->mu);
    if (w->idle) { /* closed: leave the stack */
        for (int i = 0; i < p->n_idle; i++)
            if (p->idle_stack[i] == w->id) {
                p->idle_stack[i] = p->idle_stack[--p->n_idle];
                break;
            }
        w->idle = false;
    }
}

static srv_job *pop(srv_pool *p)
{
    srv_job *job = p->ring[p->head];
    p->head = (p->head + 1) % p->cap;
    p->count--;
    return job;
}

/* With the lock held: a gathering of n jobs ended so. */
static int gathered(srv_pool *p, int n, srv_batch_end end)
{
    p->counts.batches[end]++;
    p->counts.jobs += (uint64_t)n;
    return n;
}

/* With the lock held and batch[0] taken: take the jobs at the head with its key, waiting up to
 * the batch delay for the batch to fill. Returns the batch's size.
 * With no delay a worker takes at most an even share of what is queued (batch[0] and the jobs
 * behind it over the pool's workers, rounded up), so a backlog of fewer than max_batch jobs a
 * worker is split rather than run by one worker while the others wait for it: at 8 connections
 * and 2 workers one batch of 8 left a core idle for its whole run, its clients all waiting. The
 * share gave +9 to +20 % requests/s at 8 connections and +25 to +35 % at 3, level at 1 and 64
 * (2 workers, the Zen 4 EPYC, bench/serve_ab.sh). With a delay the batch fills up to max_batch,
 * as asked. */
static int gather(srv_pool *p, srv_job **batch)
{
    const int key = batch[0]->batch_key;
    int n = 1;
    if (key < 0 || p->max_batch < 2)
        return n;
    if (p->batch_delay_us <= 0) {
        const int share = (p->count + 1 + p->n_workers - 1) / p->n_workers;
        const int limit = share < p->max_batch ? share : p->max_batch;
        while (n < limit && p->count > 0 && p->ring[p->head]->batch_key == key)
            batch[n++] = pop(p);
        return gathered(p, n, n == p->max_batch ? SRV_BATCH_FULL : SRV_BATCH_OTHER);
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (p->batch_delay_us % 1000000) * 1000;
    until.tv_sec += p->batch_delay_us / 1000000 + until.tv_nsec / 1000000000;
    until.tv_nsec %= 1000000000;
    for (;;) {
        while (n < p->max_batch && p->count > 0 && p->ring[p->head]->batch_key == key)
            batch[n++] = pop(p);
        if (n == p->max_batch)
            return gathered(p, n, SRV_BATCH_FULL);
        if (p->batch_delay_us <= 0 || p->closed ||
            (p->count > 0 && p->ring[p->head]->batch_key != key))
            return gathered(p, n, SRV_BATCH_OTHER);
        p->gathering++;
        int rc = pthread_cond_timedwait(&p->nonempty, &p->mu, &until);
        p->gathering--;
        if (rc == ETIMEDOUT) {
            while (n < p->max_batch && p->count > 0 && p->ring[p->head]->batch_key == key)
                batch[n++] = pop(p);
            return gathered(p, n, n == p->max_batch ? SRV_BATCH_FULL : SRV_BATCH_DELAY);
        }
    }
}

/* A number from the first line of a file: for cgroup v2's cpu.max ("max 100000" or "QUOTA
 * PERIOD") the quota, or -1 for none or no file; *second gets the next number if there is one. */
static long long read_numbers(const char *dir, const char *file, long long *second)
{
    char path[4300];
    const int len = snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = len > 0 && len < (int)sizeof path ? fopen(path, "r") : NULL;
    long long a = -1, b = 0;
    if (f) {
        if (fscanf(f, "%lld %lld", &a, &b) < 1)
            a = -1;
        fclose(f);
    }
    if (second)
        *second = b;
    return a;
}

/* The smaller of n and the CPU quotas, in cores rounded up, of the cgroup at root + path and of
 * every one above it: cgroup v2's cpu.max, v1's cpu.cfs_quota_us / cpu.cfs_period_us. */
static int quota_cpus(const char *root, char *path, bool v2, int n)
{
    char dir[4200];
    for (;;) {
        snprintf(dir, sizeof dir, "%s%s", root, path);
        long long quota, period;
        if (v2)
            quota = read_numbers(dir, "cpu.max", &period);
        else
            quota = read_numbers(dir, "cpu.cfs_quota_us", NULL),
            period = read_numbers(dir, "cpu.cfs_period_us", NULL);
        if (quota > 0 && period > 0 && (quota + period - 1) / period < n)
            n = (int)((quota + period - 1) / period);
        char *slash = strrchr(path, '/');
        if (!slash)
            return n;
        *slash = 0; /* the parent; "" is the mount's root (a container's own cgroup) */
    }
}

int srv_cpu_quota(const char *cgroup_file, const char *root, int n)
{
    FILE *f = fopen(cgroup_file, "r");
    char line[4096], v1[4200];
    snprintf(v1, sizeof v1, "%s/cpu", root);
    while (f && fgets(line, sizeof line, f)) { /* "ID:CONTROLLERS:/PATH" */
        line[strcspn(line, "\n")] = 0;
        char *ctl = strchr(line, ':'), *path = ctl ? strchr(ctl + 1, ':') : NULL;
        if (!path || path[1] != '/')
            continue;
        *ctl++ = 0, *path++ = 0; /* line: the ID; ctl: the controllers; path: the cgroup */
        bool cpu = false;
        char *save = NULL;
        const bool v2 = !*ctl && !strcmp(line, "0");
        for (char *c = strtok_r(ctl, ",", &save); c; c = strtok_r(NULL, ",", &save))
            cpu |= strcmp(c, "cpu") == 0;
        if (v2)
            n = quota_cpus(root, path, true, n);
        else if (cpu)
            n = quota_cpus(v1, path, false, n);
    }
    if (f)
        fclose(f);
    return n;
}

/* The cores this process may use: its affinity mask, bounded by its cgroup's CPU quota (a
 * container's or a pod's CPU limit). */
static int usable_cpus(void)
{
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    n = srv_cpu_quota("/proc/self/cgroup", "/sys/fs/cgroup", n);
    return n > 0 ? n : 1;
}

static void *worker_main(void *arg)
{
    srv_worker *w = arg;
    srv_pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->count == 0 && !p->closed)
            wait_idle(p, w);
        if (p->count == 0)
            break; /* closed and nothing left */
        w->batch[0] = pop(p);
        int n = gather(p, w->batch);
        if (p->count > 0) /* what this batch left (another model's job) is another worker's */
            wake_one(p);
        p->busy++;
        pthread_mutex_unlock(&p->mu);
        if (n == 1)
            w->batch[0]->run(w, w->batch[0]);
        else
            w->batch[0]->run_batch(w, w->batch, n);
        pthread_mutex_lock(&p->mu);
        p->busy--;
    }
    p->running--;
    pthread_cond_broadcast(&p->exited);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

os_status srv_pool_create(os_model *const *models, int n_models, const srv_pool_opts *o,
                          srv_pool **out)
{
    os_status st = OS_OK;
    *out = NULL;
    srv_pool *p = calloc(1, sizeof *p);
    if (!p)
        return os_fail(OS_ENOMEM, "no memory for the worker pool");
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the batch delay must not jump */
    pthread_cond_init(&p->nonempty, &ca);
    pthread_cond_init(&p->exited, &ca);
    pthread_condattr_destroy(&ca);
    p->cap = o->queue, p->n_workers = o->workers, p->n_models = n_models;
    p->max_batch = o->max_batch > 1 ? o->max_batch : 1;
    p->batch_delay_us = o->batch_delay_us;
    p->idle_spin_us = o->idle_spin_us;
    p->spin_cpus = o->cpus > 0 ? o->cpus : usable_cpus();
    p->ring = calloc((size_t)p->cap, sizeof *p->ring);
    p->workers = calloc((size_t)p->n_workers, sizeof *p->workers);
    p->idle_stack = calloc((size_t)p->n_workers, sizeof *p->idle_stack);
    if (!p->ring || !p->workers || !p->idle_stack) {
        st = os_fail(OS_ENOMEM, "no memory for the worker pool");
        goto out;
    }
    int classes = 1;
    for (int m = 0; m < n_models; m++)
        if (os_model_classes(models[m]) > classes)
            classes = os_model_classes(models[m]);
    /* room for a batch, and for one image in the test-time views a job may ask */
    const int room = p->max_batch > o->views ? p->max_batch : o->views;
    os_session_opts so = {.max_pixels = o->max_pixels, .max_batch = room};
    for (int i = 0; i < p->n_workers; i++) {
        srv_worker *w = &p->workers[i];
        w->pool = p, w->id = i;
        w->wake_init = pthread_cond_init(&w->wake, NULL) == 0;
        w->sessions = calloc((size_t)(n_models ? n_models : 1), sizeof *w->sessions);
        w->probs = calloc((size_t)classes * room, sizeof *w->probs);
        w->index = calloc((size_t)classes, sizeof *w->index);
        w->batch = calloc((size_t)p->max_batch, sizeof *w->batch);
        if (!w->wake_init || !w->sessions || !w->probs || !w->index || !w->batch) {
            st = os_fail(OS_ENOMEM, "no memory for worker %d", i);
            goto out;
        }
        for (int m = 0; m < n_models; m++)
            if ((st = os_session_create(models[m], &so, &w->sessions[m])))
                goto out;
    }
    for (int i = 0; i < p->n_workers; i++) {
        pthread_mutex_lock(&p->mu);
        p->running++;
        pthread_mutex_unlock(&p->mu);
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i])) {
            pthread_mutex_lock(&p->mu);
            p->running--;
            pthread_mutex_unlock(&p->mu);
            st = os_fail(OS_ENOMEM, "cannot start worker thread %d", i);
            goto out;
        }
        p->workers[i].started = true;
    }
    /* ready when every worker waits on the idle stack: the order of jobs to workers is then
     * the pool's, not the threads' start-up race */
    pthread_mutex_lock(&p->mu);
    while (p->n_idle < p->n_workers) {
        pthread_mutex_unlock(&p->mu);
        nanosleep(&(struct timespec){0, 100000}, NULL);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
out:
    if (st) {
        srv_pool_destroy(p);
        return st;
    }
    *out = p;
    return OS_OK;
}

srv_submit_result srv_pool_submit(srv_pool *p, srv_job *job)
{
    srv_submit_result r = SRV_SUBMIT_OK;
    pthread_mutex_lock(&p->mu);
    if (p->closed) {
        r = SRV_SUBMIT_CLOSED;
    } else if (p->count == p->cap) {
        r = SRV_SUBMIT_FULL;
    } else {
        job->enqueued_ns = os_clock_ns();
        p->ring[(p->head + p->count) % p->cap] = job;
        p->count++;
        wake_one(p);
    }
    pthread_mutex_unlock(&p->mu);
    return r;
}

bool srv_pool_core_free(srv_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int taken = p->count + p->busy;
    /* an idle worker still watching holds a core too; a job handed to one counts as queued */
    for (int i = 0; i < p->n_idle; i++)
        taken += p->workers[p->idle_stack[i]].spinning && p->workers[p->idle_stack[i]].idle;
    pthread_mutex_unlock(&p->mu);
    return taken + 1 <= p->spin_cpus;
}

void srv_pool_stats(srv_pool *p, int *queued, int *busy, srv_pool_counts *counts)
{
    pthread_mutex_lock(&p->mu);
    *queued = p->count;
    *busy = p->busy;
    if (counts)
        *counts = p->counts;
    pthread_mutex_unlock(&p->mu);
}

int srv_pool_capacity(const srv_pool *p)
{
    return p->cap;
}

int srv_pool_cpus(const srv_pool *p)
{
    return p->spin_cpus;
}

int srv_pool_workers(const srv_pool *p)
{
    return p->n_workers;
}

void srv_pool_shutdown(srv_pool *p)
{
    (void)srv_pool_shutdown_within(p, -1);
}

bool srv_pool_shutdown_within(srv_pool *p, long timeout_ms)
{
    pthread_mutex_lock(&p->mu);
    if (p->joined) {
        pthread_mutex_unlock(&p->mu);
        return true;
    }
    p->closed = true;
    /* Take the queued jobs out under the lock, cancel them outside it: cancel answers a
     * request, which must not happen while holding the pool's lock. */
    while (p->count > 0) {
        srv_job *job = pop(p);
        pthread_mutex_unlock(&p->mu);
        job->cancel(job);
        pthread_mutex_lock(&p->mu);
    }
    pthread_cond_broadcast(&p->nonempty);
    for (int i = 0; i < p->n_workers; i++)
        if (p->workers[i].wake_init)
            pthread_cond_signal(&p->workers[i].wake);
    /* The running jobs finish; wait for their threads to return, up to the timeout. */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (timeout_ms >= 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (timeout_ms % 1000) * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
    }
    while (p->running > 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&p->exited, &p->mu);
        else if (pthread_cond_timedwait(&p->exited, &p->mu, &until) == ETIMEDOUT)
            break;
    }
    const bool all = p->running == 0;
    pthread_mutex_unlock(&p->mu);
    if (!all)
        return false; /* not joined: the pool must not be destroyed */
    for (int i = 0; i < p->n_workers; i++)
        if (p->workers[i].started)
            pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_lock(&p->mu);
    p->joined = true;
    pthread_mutex_unlock(&p->mu);
    return true;
}

void srv_pool_destroy(srv_pool *p)
{
    if (!p)
        return;
    if (p->workers)
        srv_pool_shutdown(p);
    for (int i = 0; p->workers && i < p->n_workers; i++) {
        srv_worker *w = &p->workers[i];
        for (int m = 0; w->sessions && m < p->n_models; m++)
            os_session_destroy(w->sessions[m]);
        free(w->sessions);
        free(w->probs);
        free(w->index);
        free(w->batch);
        if (w->wake_init)
            pthread_cond_destroy(&w->wake);
    }
    free(p->workers);
    free(p->idle_stack);
    free(p->ring);
    pthread_cond_destroy(&p->nonempty);
    pthread_cond_destroy(&p->exited);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

os_session *srv_worker_session(srv_worker *w, int model)
{
    return w->sessions[model];
}

float *srv_worker_probs(srv_worker *w)
{
    return w->probs;
}

int *srv_worker_index(srv_worker *w)
{
    return w->index;
}

int srv_worker_id(const srv_worker *w)
{
    return w->id;
}
