/* pool.h - the fixed pool of inference workers and its bounded queue.
 *
 * Each worker is a thread that owns one os_session per model plus probability/index scratch,
 * all allocated by srv_pool_create; running a job allocates nothing of the pool's. Jobs are
 * queued in a ring of fixed capacity: a full queue refuses at once (the caller answers 503)
 * instead of letting latency grow without bound.
 */
#ifndef SRV_POOL_H
#define SRV_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "onespike/model.h"
#include "onespike/session.h"
#include "onespike/status.h"

typedef struct srv_pool srv_pool;
typedef struct srv_worker srv_worker;
typedef struct srv_job srv_job;

/* A unit of work, owned by the submitter and embedded in its request: it must stay valid until
 * run or cancel has been called for it. Exactly one of them is called, once. */
struct srv_job {
    void (*run)(srv_worker *w, srv_job *job); /* on a worker thread */
    void (*cancel)(srv_job *job);             /* pool closed with the job still queued */
    /* Jobs with the same batch_key >= 0 may run together: run_batch(w, jobs, n), 2 <= n, in
     * queue order, instead of run for each. -1: always alone. */
    int batch_key;
    void (*run_batch)(srv_worker *w, srv_job **jobs, int n);
    uint64_t enqueued_ns;                     /* set by srv_pool_submit (monotonic) */
};

typedef struct {
    int workers;
    int queue;         /* capacity of the queue */
    size_t max_pixels; /* passed to every session */
    int max_batch;     /* jobs one batch may hold (1: no batching); sessions are sized for it */
    int views;         /* test-time views a job may run (sessions hold at least that many
                          images); 0: 1 */
    long batch_delay_us; /* how long a worker waits for a batch to fill; 0: never waits */
    long idle_spin_us;   /* how long a worker that ran out of jobs watches for the next one
                            before it sleeps, when a core is free for it (below); 0: sleeps at
                            once */
    int cpus;            /* the cores a worker may count on: one spins only while the busy and
                            spinning workers and the HTTP thread leave one of them free; 0: those
                            the process may use (affinity, cgroup v2 CPU quota) */
} srv_pool_opts;

/* Create the sessions (workers x models) and start the threads; returns when every worker
 * waits for work. models are borrowed and must outlive the pool. On failure nothing is left
 * running and the status detail names the model.
 *
 * A job goes to a worker gathering a batch of its key if there is one, else to the worker that
 * went idle last (its caches are warm), else waits for a busy one. */
os_status srv_pool_create(os_model *const *models, int n_models, const srv_pool_opts *o,
                          srv_pool **out);

typedef enum { SRV_SUBMIT_OK = 0, SRV_SUBMIT_FULL, SRV_SUBMIT_CLOSED } srv_submit_result;

/* Queue a job (thread-safe). Not OK: the job was not taken and will never be run. */
srv_submit_result srv_pool_submit(srv_pool *p, srv_job *job);

/* How a worker's gathering of a batch ended (jobs that may batch, --max-batch > 1):
 *   full   --max-batch jobs of the key were there
 *   delay  the batch delay ran out first
 *   other  the next queued job is of another key (model), the pool closed, or no delay is set
 *          (then a worker takes at most its even share of the queue: pool.c's gather) */
typedef enum { SRV_BATCH_FULL = 0, SRV_BATCH_DELAY, SRV_BATCH_OTHER, SRV_BATCH_END_COUNT } srv_batch_end;

/* How an idle worker was handed a job: while it still watched for one (--idle-spin-us), or
 * woken from sleep. */
typedef enum { SRV_HANDOFF_SPINNING = 0, SRV_HANDOFF_SLEEPING, SRV_HANDOFF_COUNT } srv_handoff;

/* The pool's counters (since creation). */
typedef struct {
    uint64_t batches[SRV_BATCH_END_COUNT]; /* gatherings, by how they ended */
    uint64_t jobs;                         /* the jobs those batches held */
    uint64_t handoffs[SRV_HANDOFF_COUNT];  /* jobs handed to an idle worker, by its state */
} srv_pool_counts;

/* Jobs waiting, workers running one and the pool's counts (a consistent snapshot); counts may
 * be NULL. */
void srv_pool_stats(srv_pool *p, int *queued, int *busy, srv_pool_counts *counts);
int srv_pool_capacity(const srv_pool *p);
/* n, or fewer: the CPU quota, in cores rounded up, of the cgroups a /proc/self/cgroup-style file
 * names ("0::/PATH" for cgroup v2, read from ROOT/PATH/cpu.max and each parent's; a v1 line with
 * the cpu controller, from ROOT/cpu/PATH/cpu.cfs_quota_us and cpu.cfs_period_us and each
 * parent's). Exposed for the tests; a pool reads "/proc/self/cgroup" under "/sys/fs/cgroup". */
int srv_cpu_quota(const char *cgroup_file, const char *root, int n);

/* True if the queued and running jobs and the idle workers watching for one leave a core the
 * pool counts on for the caller: the HTTP thread asks before it watches for an answer instead of
 * sleeping (http.c). */
bool srv_pool_core_free(srv_pool *p);

/* A spin's turn: tell the core this thread only waits (the other hyper-thread runs meanwhile). */
static inline void srv_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* The cores the pool counts on (srv_pool_opts.cpus, or what it found). */
int srv_pool_cpus(const srv_pool *p);
int srv_pool_workers(const srv_pool *p);

/* Refuse further jobs, call cancel for those still queued, let running ones finish and join
 * the threads. Idempotent. */
void srv_pool_shutdown(srv_pool *p);

/* The same, waiting at most timeout_ms (< 0: for ever) for the running jobs: false if some are
 * still running then (the threads are not joined, and the pool must not be destroyed: the
 * caller exits the process). A later call waits again. */
bool srv_pool_shutdown_within(srv_pool *p, long timeout_ms);

/* Shut down (if not yet) and free the sessions. NULL is fine. */
void srv_pool_destroy(srv_pool *p);

/* What a worker offers a running job; borrowed, valid during run. */
os_session *srv_worker_session(srv_worker *w, int model);
float *srv_worker_probs(srv_worker *w); /* room for the session's batch x the largest model's
                                          classes */
int *srv_worker_index(srv_worker *w);   /* same length, for os_topk */
int srv_worker_id(const srv_worker *w);

#endif
