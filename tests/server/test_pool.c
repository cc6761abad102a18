/* test_pool.c - server/pool.c: every job submitted runs exactly once on some worker, a full
 * queue refuses, shutdown cancels what is still queued; at low load the worker that went idle
 * last takes the next job (one hot worker, not each in turn), and spins only on a core left free;
 * and a worker gathering a batch
 * gets the next job of its key before any idle worker does. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "pool.h"

typedef struct {
    srv_job job;
    int ran, cancelled, worker, batch_n;
    pthread_mutex_t *gate; /* held by the test: the job blocks until it is released */
} tjob;

static void run(srv_worker *w, srv_job *j)
{
    tjob *t = (tjob *)j;
    if (t->gate) {
        pthread_mutex_lock(t->gate);
        pthread_mutex_unlock(t->gate);
    }
    t->worker = srv_worker_id(w);
    t->batch_n = 1;
    __atomic_add_fetch(&t->ran, 1, __ATOMIC_SEQ_CST);
}

static void run_batch(srv_worker *w, srv_job **jobs, int n)
{
    for (int i = 0; i < n; i++) {
        tjob *t = (tjob *)jobs[i];
        t->worker = srv_worker_id(w);
        t->batch_n = n;
        __atomic_add_fetch(&t->ran, 1, __ATOMIC_SEQ_CST);
    }
}

static void cancel(srv_job *j)
{
    ((tjob *)j)->cancelled++;
}

static void init(tjob *t, int key)
{
    memset(t, 0, sizeof *t);
    t->job.run = run, t->job.cancel = cancel, t->job.run_batch = run_batch;
    t->job.batch_key = key;
}

static int ran(tjob *t)
{
    return __atomic_load_n(&t->ran, __ATOMIC_SEQ_CST);
}

static void nap(void)
{
    nanosleep(&(struct timespec){0, 200000}, NULL);
}

/* Until no job is queued or running: every worker that ran one is back on the idle stack. */
static void settle(srv_pool *p)
{
    for (;;) {
        int q, b;
        srv_pool_stats(p, &q, &b, NULL);
        if (q == 0 && b == 0)
            return;
        nap();
    }
}

/* A pool whose idle workers watch for spin_us before they sleep, on as many cores as they
 * ever need (so a spin is never held back for want of one; see test_a_worker_spins_only_on_a_
 * free_core). */
static srv_pool *make_spin(int workers, int queue, int max_batch, long delay_us, long spin_us)
{
    srv_pool_opts o = {.workers = workers, .queue = queue, .max_pixels = 1 << 20,
                       .max_batch = max_batch, .batch_delay_us = delay_us,
                       .idle_spin_us = spin_us, .cpus = workers + 2};
    srv_pool *p = NULL;
    assert_int_equal(srv_pool_create(NULL, 0, &o, &p), OS_OK);
    return p;
}

/* Workers that sleep as soon as they run out of jobs. */
static srv_pool *make(int workers, int queue, int max_batch, long delay_us)
{
    return make_spin(workers, queue, max_batch, delay_us, 0);
}

/* A spin longer than any test runs (however slow the machine): every job after a worker's
 * first is handed to it while it still watches; destroying the pool ends the spin. */
#define LONG_SPIN_US (60L * 1000 * 1000)

enum { MANY = 2000 };

static void every_job_runs_once(long spin_us)
{
    srv_pool *p = make_spin(3, MANY, 1, 0, spin_us);
    tjob *j = calloc(MANY, sizeof *j);
    assert_non_null(j);
    for (int i = 0; i < MANY; i++) {
        init(&j[i], -1);
        assert_int_equal(srv_pool_submit(p, &j[i].job), SRV_SUBMIT_OK);
    }
    settle(p);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(ran(&j[i]), 1);
    srv_pool_destroy(p);
    free(j);
}

static void test_every_job_runs_once(void **state)
{
    (void)state;
    every_job_runs_once(0);
}

static void test_every_job_runs_once_with_spinning_workers(void **state)
{
    (void)state;
    every_job_runs_once(LONG_SPIN_US);
}

static void *shutdown_main(void *p)
{
    srv_pool_shutdown(p);
    return NULL;
}

/* Hand-offs to spinning workers while the other worker of two is busy, of 4 jobs run one after
 * another on a pool of cpus cores. */
static uint64_t spins_beside_a_busy_worker(int cpus)
{
    srv_pool_opts o = {.workers = 2, .queue = 8, .max_pixels = 1 << 20, .max_batch = 1,
                       .idle_spin_us = LONG_SPIN_US, .cpus = cpus};
    srv_pool *p = NULL;
    assert_int_equal(srv_pool_create(NULL, 0, &o, &p), OS_OK);
    assert_int_equal(srv_pool_cpus(p), cpus);
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&gate);
    tjob a, b[5];
    init(&a, -1);
    a.gate = &gate;
    assert_int_equal(srv_pool_submit(p, &a.job), SRV_SUBMIT_OK);
    for (int q = 1, busy = 0; q || !busy;) /* a holds one worker */
        srv_pool_stats(p, &q, &busy, NULL), nap();
    srv_pool_counts before = {0}, after;
    for (int i = 0; i < 5; i++) {
        init(&b[i], -1);
        assert_int_equal(srv_pool_submit(p, &b[i].job), SRV_SUBMIT_OK);
        /* busy back to 1: the other worker ran b[i] and, under the same hold of the lock, went
         * idle and chose to spin or sleep */
        for (int q = 1, busy = 2; q || busy != 1 || !ran(&b[i]);)
            srv_pool_stats(p, &q, &busy, i == 0 ? &before : NULL), nap();
    }
    int q, busy;
    srv_pool_stats(p, &q, &busy, &after);
    const uint64_t spinning =
        after.handoffs[SRV_HANDOFF_SPINNING] - before.handoffs[SRV_HANDOFF_SPINNING];
    assert_int_equal(spinning + after.handoffs[SRV_HANDOFF_SLEEPING] -
                         before.handoffs[SRV_HANDOFF_SLEEPING],
                     4);
    pthread_mutex_unlock(&gate);
    settle(p);
    assert_int_equal(ran(&a), 1);
    srv_pool_destroy(p);
    return spinning;
}

/* A worker spins only while the busy and spinning workers and the HTTP thread leave one of the
 * pool's cores free: on 2 cores, with the other worker busy, it sleeps at once; on 3 it spins. */
static void test_a_worker_spins_only_on_a_free_core(void **state)
{
    (void)state;
    assert_int_equal(spins_beside_a_busy_worker(2), 0);
    assert_int_equal(spins_beside_a_busy_worker(3), 4);
}

/* The HTTP thread may watch for an answer while the queued and running jobs leave it a core: on
 * 2 cores with one job held running, yes; with two (one running, one queued behind it on the
 * single worker), no; with the idle spin off and nothing running, yes on 1 core. */
static void test_a_free_core_for_the_http_thread(void **state)
{
    (void)state;
    srv_pool_opts o = {.workers = 1, .queue = 4, .max_pixels = 1 << 20, .max_batch = 1,
                       .cpus = 2};
    srv_pool *p = NULL;
    assert_int_equal(srv_pool_create(NULL, 0, &o, &p), OS_OK);
    assert_true(srv_pool_core_free(p));
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&gate);
    tjob a, b;
    init(&a, -1);
    init(&b, -1);
    a.gate = &gate;
    assert_int_equal(srv_pool_submit(p, &a.job), SRV_SUBMIT_OK);
    for (int q = 1, busy = 0; q || !busy;) /* a holds the worker */
        srv_pool_stats(p, &q, &busy, NULL), nap();
    assert_true(srv_pool_core_free(p));
    assert_int_equal(srv_pool_submit(p, &b.job), SRV_SUBMIT_OK);
    assert_false(srv_pool_core_free(p));
    pthread_mutex_unlock(&gate);
    settle(p);
    assert_int_equal(ran(&a) + ran(&b), 2);
    assert_true(srv_pool_core_free(p));
    srv_pool_destroy(p);
    o.cpus = 1;
    assert_int_equal(srv_pool_create(NULL, 0, &o, &p), OS_OK);
    assert_true(srv_pool_core_free(p));
    srv_pool_destroy(p);
}

/* A job goes to a worker still spinning before one asleep above it on the idle stack: of 3
 * workers on 3 cores the first two to go idle spin (busy 0 + spinning + 1 < 3) and the last,
 * on top, sleeps. */
static void test_a_spinning_worker_goes_before_a_sleeping_one(void **state)
{
    (void)state;
    srv_pool_opts o = {.workers = 3, .queue = 4, .max_pixels = 1 << 20, .max_batch = 1,
                       .idle_spin_us = LONG_SPIN_US, .cpus = 3};
    srv_pool *p = NULL;
    assert_int_equal(srv_pool_create(NULL, 0, &o, &p), OS_OK);
    tjob j;
    init(&j, -1);
    assert_int_equal(srv_pool_submit(p, &j.job), SRV_SUBMIT_OK);
    settle(p);
    assert_int_equal(ran(&j), 1);
    int q, b;
    srv_pool_counts st;
    srv_pool_stats(p, &q, &b, &st);
    assert_int_equal(st.handoffs[SRV_HANDOFF_SPINNING], 1);
    assert_int_equal(st.handoffs[SRV_HANDOFF_SLEEPING], 0);
    srv_pool_destroy(p);
}

/* Left to find its cores, a pool counts at least one and no more than its affinity allows. */
static void test_a_pool_finds_its_cores(void **state)
{
    (void)state;
    srv_pool_opts o = {.workers = 1, .queue = 1, .max_pixels = 1 << 20, .idle_spin_us = 1};
    srv_pool *p = NULL;
    assert_int_equal(srv_pool_create(NULL, 0, &o, &p), OS_OK);
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    assert_in_range(srv_pool_cpus(p), 1, CPU_COUNT(&set));
    srv_pool_destroy(p);
}

static void put(const char *dir, const char *rel, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    for (char *q = path + strlen(dir) + 1; (q = strchr(q, '/')); q++) { /* parents */
        *q = 0;
        mkdir(path, 0755);
        *q = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The CPU quota from cgroup files laid out as the kernel does: v2's cpu.max on the cgroup or a
 * parent (the smallest wins, rounded up to cores), "max" for none; v1's cfs quota and period
 * under cpu/ (-1 for none); a file naming neither, or none at all, leaves n. */
static void test_cpu_quota_from_cgroup_files(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/test_pool_cg.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    char proc[300], root[300];
    snprintf(proc, sizeof proc, "%s/cgroup", d);
    snprintf(root, sizeof root, "%s/fs", d);
    put(d, "fs/kubepods/pod1/ctr/cpu.max", "max 100000\n");
    put(d, "fs/kubepods/pod1/cpu.max", "150000 100000\n");
    put(d, "fs/kubepods/cpu.max", "max 100000\n");
    put(d, "cgroup", "0::/kubepods/pod1/ctr\n");
    assert_int_equal(srv_cpu_quota(proc, root, 8), 2); /* 1.5 cores: 2 */
    assert_int_equal(srv_cpu_quota(proc, root, 1), 1); /* never more than n */
    put(d, "fs/kubepods/pod1/cpu.max", "max 100000\n");
    assert_int_equal(srv_cpu_quota(proc, root, 8), 8); /* no limit anywhere */
    put(d, "fs/cpu.max", "300000 100000\n"); /* a container's own cgroup at the mount's root */
    assert_int_equal(srv_cpu_quota(proc, root, 8), 3);
    /* cgroup v1, the cpu controller with cpuacct, the container's cgroup at the root */
    put(d, "cgroup", "12:pids:/docker/x\n4:cpu,cpuacct:/docker/x\n1:name=systemd:/docker/x\n");
    put(d, "fs/cpu/cpu.cfs_quota_us", "-1\n");
    put(d, "fs/cpu/cpu.cfs_period_us", "100000\n");
    assert_int_equal(srv_cpu_quota(proc, root, 8), 8);
    put(d, "fs/cpu/docker/x/cpu.cfs_quota_us", "50000\n");
    put(d, "fs/cpu/docker/x/cpu.cfs_period_us", "100000\n");
    assert_int_equal(srv_cpu_quota(proc, root, 8), 1);
    put(d, "cgroup", "3:memory:/docker/x\n");
    assert_int_equal(srv_cpu_quota(proc, root, 8), 8); /* no cpu controller named */
    snprintf(proc, sizeof proc, "%s/absent", d);
    assert_int_equal(srv_cpu_quota(proc, root, 8), 8);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}

static void test_full_queue_refuses_and_shutdown_cancels(void **state)
{
    (void)state;
    srv_pool *p = make(1, 2, 1, 0);
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&gate);
    tjob a, b, c, d;
    init(&a, -1), init(&b, -1), init(&c, -1), init(&d, -1);
    a.gate = &gate;
    assert_int_equal(srv_pool_submit(p, &a.job), SRV_SUBMIT_OK);
    for (int q = 1, busy = 0; q || !busy;) /* a is running (blocked), the queue empty */
        srv_pool_stats(p, &q, &busy, NULL), nap();
    assert_int_equal(srv_pool_submit(p, &b.job), SRV_SUBMIT_OK);
    assert_int_equal(srv_pool_submit(p, &c.job), SRV_SUBMIT_OK);
    assert_int_equal(srv_pool_submit(p, &d.job), SRV_SUBMIT_FULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, shutdown_main, p), 0);
    for (int q = 1, busy; q;) /* shutdown takes the queued jobs out first */
        srv_pool_stats(p, &q, &busy, NULL), nap();
    pthread_mutex_unlock(&gate);
    pthread_join(t, NULL);
    assert_int_equal(ran(&a), 1);
    assert_int_equal(b.cancelled + c.cancelled, 2);
    assert_int_equal(ran(&b) + ran(&c), 0);
    assert_int_equal(srv_pool_submit(p, &d.job), SRV_SUBMIT_CLOSED);
    srv_pool_destroy(p);
}

static void last_idle_worker_takes_the_next_job(long spin_us)
{
    srv_pool *p = make_spin(4, 8, 1, 0, spin_us);
    tjob j[20];
    for (int i = 0; i < 20; i++) {
        init(&j[i], -1);
        assert_int_equal(srv_pool_submit(p, &j[i].job), SRV_SUBMIT_OK);
        settle(p);
        assert_int_equal(ran(&j[i]), 1);
        assert_int_equal(j[i].worker, j[0].worker);
    }
    /* Every job went to an idle worker: asleep without a spin; with one longer than the test,
     * every job after the first to the worker still watching (the first may find them asleep
     * or still in their first spin after start-up). */
    int q, b;
    srv_pool_counts st;
    srv_pool_stats(p, &q, &b, &st);
    assert_int_equal(st.handoffs[SRV_HANDOFF_SPINNING] + st.handoffs[SRV_HANDOFF_SLEEPING], 20);
    if (spin_us == 0)
        assert_int_equal(st.handoffs[SRV_HANDOFF_SPINNING], 0);
    else
        assert_true(st.handoffs[SRV_HANDOFF_SPINNING] >= 19);
    srv_pool_destroy(p);
}

static void test_the_last_idle_worker_takes_the_next_job(void **state)
{
    (void)state;
    last_idle_worker_takes_the_next_job(0);
}

/* The worker still spinning (the last to go idle) is the one handed the job. */
static void test_a_spinning_worker_takes_the_next_job(void **state)
{
    (void)state;
    last_idle_worker_takes_the_next_job(LONG_SPIN_US);
}

static void test_a_gathering_worker_gets_its_batch(void **state)
{
    (void)state;
    /* a delay no test waits out: the second job must join the first's batch, not go to one of
     * the idle workers (then the first would sit out the delay alone) */
    srv_pool *p = make(3, 8, 2, 60L * 1000 * 1000);
    tjob a, b;
    init(&a, 7), init(&b, 7);
    assert_int_equal(srv_pool_submit(p, &a.job), SRV_SUBMIT_OK);
    for (int q = 1, busy; q;) /* a taken: its worker waits for a second job */
        srv_pool_stats(p, &q, &busy, NULL), nap();
    assert_int_equal(srv_pool_submit(p, &b.job), SRV_SUBMIT_OK);
    settle(p);
    assert_int_equal(ran(&a), 1);
    assert_int_equal(ran(&b), 1);
    assert_int_equal(a.batch_n, 2);
    assert_int_equal(b.batch_n, 2);
    assert_int_equal(a.worker, b.worker);
    /* counted as a batch that filled, never as one whose delay ran out */
    srv_pool_counts st;
    int q, busy;
    srv_pool_stats(p, &q, &busy, &st);
    assert_int_equal(st.batches[SRV_BATCH_FULL], 1);
    assert_int_equal(st.batches[SRV_BATCH_DELAY], 0);
    assert_int_equal(st.batches[SRV_BATCH_OTHER], 0);
    assert_int_equal(st.jobs, 2);
    srv_pool_destroy(p);
}

/* A lone job of a batching key waits out the delay and is counted so; a job of another key
 * behind it ends the gathering at once ("other"), and a job that never batches is no batch. */
static void test_how_a_gathering_ended_is_counted(void **state)
{
    (void)state;
    srv_pool *p = make(1, 8, 4, 1000); /* 1 ms: waited out */
    tjob a, b, c, d;
    init(&a, 7), init(&b, 7), init(&c, 8), init(&d, -1);
    assert_int_equal(srv_pool_submit(p, &a.job), SRV_SUBMIT_OK);
    while (!ran(&a)) /* not settle(): a gathering worker counts as neither queued nor busy */
        nap();
    srv_pool_counts st;
    int q, busy;
    srv_pool_stats(p, &q, &busy, &st);
    assert_int_equal(st.batches[SRV_BATCH_DELAY], 1);
    assert_int_equal(st.jobs, 1);
    /* b then c (another key) queued before the worker looks: b's gathering ends at c */
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&gate);
    d.gate = &gate;
    assert_int_equal(srv_pool_submit(p, &d.job), SRV_SUBMIT_OK); /* holds the one worker */
    for (int busy1 = 0; !busy1;)
        srv_pool_stats(p, &q, &busy1, NULL), nap();
    assert_int_equal(srv_pool_submit(p, &b.job), SRV_SUBMIT_OK);
    assert_int_equal(srv_pool_submit(p, &c.job), SRV_SUBMIT_OK);
    pthread_mutex_unlock(&gate);
    while (ran(&b) + ran(&c) + ran(&d) < 3)
        nap();
    srv_pool_stats(p, &q, &busy, &st);
    assert_int_equal(st.batches[SRV_BATCH_OTHER], 1); /* b, ended by c */
    assert_int_equal(st.batches[SRV_BATCH_DELAY], 2); /* a, then c alone */
    assert_int_equal(st.batches[SRV_BATCH_FULL], 0);
    assert_int_equal(st.jobs, 3); /* a, b, c; d never batches */
    srv_pool_destroy(p);
}

/* With no batch delay a worker takes an even share of the queue over the pool's workers, not
 * all of it: 6 jobs of a key queued behind 2 busy workers, one worker freed: it runs them as
 * batches of 3 (half of 6), 2 (half of 3, rounded up) and 1, while the other is still held. */
static void test_a_backlog_is_shared_between_workers(void **state)
{
    (void)state;
    srv_pool *p = make(2, 16, 8, 0);
    pthread_mutex_t g1 = PTHREAD_MUTEX_INITIALIZER, g2 = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&g1), pthread_mutex_lock(&g2);
    tjob h1, h2, j[6];
    init(&h1, -1), init(&h2, -1);
    h1.gate = &g1, h2.gate = &g2;
    assert_int_equal(srv_pool_submit(p, &h1.job), SRV_SUBMIT_OK);
    assert_int_equal(srv_pool_submit(p, &h2.job), SRV_SUBMIT_OK);
    int q, busy = 0;
    while (busy < 2) /* both workers held */
        srv_pool_stats(p, &q, &busy, NULL), nap();
    for (int i = 0; i < 6; i++) {
        init(&j[i], 7);
        assert_int_equal(srv_pool_submit(p, &j[i].job), SRV_SUBMIT_OK);
    }
    pthread_mutex_unlock(&g1);
    int done = 0;
    while (done < 6) {
        done = 0;
        for (int i = 0; i < 6; i++)
            done += ran(&j[i]);
        nap();
    }
    int sizes[9] = {0};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(ran(&j[i]), 1);
        assert_int_equal(j[i].worker, h1.worker);
        sizes[j[i].batch_n]++;
    }
    assert_int_equal(sizes[3], 3); /* one batch of 3 */
    assert_int_equal(sizes[2], 2); /* one of 2 */
    assert_int_equal(sizes[1], 1); /* one of 1 */
    pthread_mutex_unlock(&g2);
    settle(p);
    srv_pool_destroy(p);
}

/* A shutdown with a timeout returns false while a job still runs (the queued ones cancelled),
 * and true, having joined, once it is done. */
static void test_shutdown_within_a_time(void **state)
{
    (void)state;
    srv_pool *p = make(2, 4, 1, 0);
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&gate);
    tjob a, b, c;
    init(&a, -1), init(&b, -1), init(&c, -1);
    a.gate = b.gate = &gate;
    assert_int_equal(srv_pool_submit(p, &a.job), SRV_SUBMIT_OK);
    assert_int_equal(srv_pool_submit(p, &b.job), SRV_SUBMIT_OK);
    for (int q = 1, busy = 0; q || busy < 2;) /* both workers blocked in a job */
        srv_pool_stats(p, &q, &busy, NULL), nap();
    assert_int_equal(srv_pool_submit(p, &c.job), SRV_SUBMIT_OK);
    assert_false(srv_pool_shutdown_within(p, 50));
    assert_int_equal(c.cancelled, 1);
    assert_int_equal(srv_pool_submit(p, &c.job), SRV_SUBMIT_CLOSED);
    assert_false(srv_pool_shutdown_within(p, 0));
    pthread_mutex_unlock(&gate);
    assert_true(srv_pool_shutdown_within(p, -1));
    assert_int_equal(ran(&a) + ran(&b), 2);
    assert_true(srv_pool_shutdown_within(p, 0)); /* joined: at once */
    srv_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_job_runs_once),
        cmocka_unit_test(test_every_job_runs_once_with_spinning_workers),
        cmocka_unit_test(test_a_worker_spins_only_on_a_free_core),
        cmocka_unit_test(test_a_spinning_worker_goes_before_a_sleeping_one),
        cmocka_unit_test(test_a_free_core_for_the_http_thread),
        cmocka_unit_test(test_a_pool_finds_its_cores),
        cmocka_unit_test(test_cpu_quota_from_cgroup_files),
        cmocka_unit_test(test_full_queue_refuses_and_shutdown_cancels),
        cmocka_unit_test(test_the_last_idle_worker_takes_the_next_job),
        cmocka_unit_test(test_a_spinning_worker_takes_the_next_job),
        cmocka_unit_test(test_a_gathering_worker_gets_its_batch),
        cmocka_unit_test(test_how_a_gathering_ended_is_counted),
        cmocka_unit_test(test_a_backlog_is_shared_between_workers),
        cmocka_unit_test(test_shutdown_within_a_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
