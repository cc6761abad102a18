/* metrics.c - atomic counters and their Prometheus rendering (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATUS_MIN           100
#define STATUS_SPAN          500 /* codes 100..599 */
#define STATUS_FALLBACK      500
#define RENDER_INITIAL_BYTES 8192
#define LABEL_MAX            256

/* Upper bounds (seconds) of the histogram buckets; +Inf is implicit. */
static const double bucket_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define N_BUCKETS (sizeof bucket_le / sizeof bucket_le[0])

typedef struct {
    atomic_uint_fast64_t le[N_BUCKETS + 1]; /* last: +Inf */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_ns;
} histogram;

struct srv_metrics {
    atomic_uint_fast64_t requests[SRV_ROUTE_COUNT][STATUS_SPAN];
    atomic_int inflight;
    atomic_uint_fast64_t map_windows;
    atomic_int conn_open;
    atomic_uint_fast64_t conn_cut[SRV_CUT_COUNT];
    atomic_uint_fast64_t conn_refused[SRV_REFUSE_COUNT];
    int n_models;
    const char *const *names;
    const char *const *versions;
    histogram *hist; /* [n_models][SRV_HIST_COUNT] */
};

static const char *const cut_names[SRV_CUT_COUNT] = {"header_timeout", "body_timeout",
                                                     "half_close", "evicted"};
static const char *const refuse_names[SRV_REFUSE_COUNT] = {"max_conns", "budget", "bad_head"};

static const char *const hist_names[SRV_HIST_COUNT] = {"queue_wait", "decode", "compute"};
static const char *const hist_help[SRV_HIST_COUNT] = {
    "Time from queueing an inference request to a worker starting it.",
    "Time to decode, resize and normalise the input image.",
    "Time to run the network and softmax."};

os_status srv_metrics_create(const char *const *names, const char *const *versions, int n_models,
                             srv_metrics **out)
{
    srv_metrics *m = calloc(1, sizeof *m);
    histogram *h = calloc((size_t)(n_models ? n_models : 1) * SRV_HIST_COUNT, sizeof *h);
    *out = NULL;
    if (!m || !h) {
        free(m);
        free(h);
        return os_fail(OS_ENOMEM, "no memory for metrics");
    }
    /* calloc's zero bytes are valid zero atomics on every platform we build for. */
    m->n_models = n_models, m->names = names, m->versions = versions, m->hist = h;
    *out = m;
    return OS_OK;
}

void srv_metrics_destroy(srv_metrics *m)
{
    if (!m)
        return;
    free(m->hist);
    free(m);
}

void srv_metrics_map_windows(srv_metrics *m, uint64_t n)
{
    atomic_fetch_add_explicit(&m->map_windows, n, memory_order_relaxed);
}

void srv_metrics_count(srv_metrics *m, srv_route route, int status)
{
    if (status < STATUS_MIN || status >= STATUS_MIN + STATUS_SPAN)
        status = STATUS_FALLBACK;
    atomic_fetch_add_explicit(&m->requests[route][status - STATUS_MIN], 1, memory_order_relaxed);
}

void srv_metrics_observe(srv_metrics *m, srv_hist which, int model, double seconds)
{
    if (model < 0 || model >= m->n_models)
        return;
    histogram *h = &m->hist[model * SRV_HIST_COUNT + which];
    size_t b = 0;
    while (b < N_BUCKETS && seconds > bucket_le[b])
        b++;
    atomic_fetch_add_explicit(&h->le[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint_fast64_t)(seconds * 1e9), memory_order_relaxed);
}

void srv_metrics_inflight_add(srv_metrics *m, int delta)
{
    atomic_fetch_add_explicit(&m->inflight, delta, memory_order_relaxed);
}

void srv_metrics_conn_open_add(srv_metrics *m, int delta)
{
    atomic_fetch_add_explicit(&m->conn_open, delta, memory_order_relaxed);
}

void srv_metrics_conn_cut(srv_metrics *m, srv_cut_reason why)
{
    atomic_fetch_add_explicit(&m->conn_cut[why], 1, memory_order_relaxed);
}

void srv_metrics_conn_refused(srv_metrics *m, srv_refuse_reason why)
{
    atomic_fetch_add_explicit(&m->conn_refused[why], 1, memory_order_relaxed);
}

typedef struct {
    char *p;
    size_t len, cap;
    bool failed;
} textbuf;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
put(textbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (int attempt = 0; attempt < 2 && !b->failed; attempt++) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 > b->len + (size_t)n + 1 ? b->cap * 2 : b->len + (size_t)n + 1;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = true;
            return;
        }
        b->p = q, b->cap = cap;
    }
}

static long resident_bytes(void)
{
    long pages_total = 0, pages_rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    int n = fscanf(f, "%ld %ld", &pages_total, &pages_rss);
    fclose(f);
    return n == 2 ? pages_rss * sysconf(_SC_PAGESIZE) : -1;
}

/* A label value as the exposition format wants it: backslash, quote and newline escaped.
 * (Model names need none: the configuration allows only [A-Za-z0-9._-].) */
static void label_escape(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 3 < cap; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            out[n++] = '\\';
            out[n++] = *s == '\n' ? 'n' : *s;
        } else {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
}

static uint64_t load(atomic_uint_fast64_t *a)
{
    return (uint64_t)atomic_load_explicit(a, memory_order_relaxed);
}

char *srv_metrics_render(srv_metrics *m, const srv_metrics_gauges *g, size_t *len)
{
    textbuf b = {malloc(RENDER_INITIAL_BYTES), 0, RENDER_INITIAL_BYTES, false};
    if (!b.p)
        return NULL;
    put(&b, "# HELP onespike_requests_total HTTP requests answered, by route and status.\n"
            "# TYPE onespike_requests_total counter\n");
    for (int r = 0; r < SRV_ROUTE_COUNT; r++)
        for (int s = 0; s < STATUS_SPAN; s++) {
            uint64_t v = load(&m->requests[r][s]);
            if (v)
                put(&b, "onespike_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                    srv_route_name((srv_route)r), s + STATUS_MIN, (unsigned long long)v);
        }
    for (int k = 0; k < SRV_HIST_COUNT; k++) {
        put(&b, "# HELP onespike_%s_seconds %s\n# TYPE onespike_%s_seconds histogram\n",
            hist_names[k], hist_help[k], hist_names[k]);
        for (int mi = 0; mi < m->n_models; mi++) {
            histogram *h = &m->hist[mi * SRV_HIST_COUNT + k];
            uint64_t cum = 0;
            for (size_t i = 0; i <= N_BUCKETS; i++) {
                cum += load(&h->le[i]);
                if (i < N_BUCKETS)
                    put(&b, "onespike_%s_seconds_bucket{model=\"%s\",le=\"%g\"} %llu\n",
                        hist_names[k], m->names[mi], bucket_le[i], (unsigned long long)cum);
                else
                    put(&b, "onespike_%s_seconds_bucket{model=\"%s\",le=\"+Inf\"} %llu\n",
                        hist_names[k], m->names[mi], (unsigned long long)cum);
            }
            put(&b, "onespike_%s_seconds_sum{model=\"%s\"} %.9f\n", hist_names[k], m->names[mi],
                (double)load(&h->sum_ns) / 1e9);
            put(&b, "onespike_%s_seconds_count{model=\"%s\"} %llu\n", hist_names[k], m->names[mi],
                (unsigned long long)load(&h->count));
        }
    }
    put(&b,
        "# HELP onespike_map_windows_total Windows of scenes classified by map requests.\n"
        "# TYPE onespike_map_windows_total counter\nonespike_map_windows_total %llu\n"
        "# HELP onespike_maps_active Map requests admitted and not yet answered.\n"
        "# TYPE onespike_maps_active gauge\nonespike_maps_active %d\n"
        "# HELP onespike_maps_max Map requests allowed at once; beyond them 503.\n"
        "# TYPE onespike_maps_max gauge\nonespike_maps_max %d\n",
        (unsigned long long)load(&m->map_windows), g->maps_active, g->maps_max);
    put(&b,
        "# HELP onespike_inflight_requests Requests received and not yet answered.\n"
        "# TYPE onespike_inflight_requests gauge\nonespike_inflight_requests %d\n"
        "# HELP onespike_queue_depth Inference requests waiting for a worker.\n"
        "# TYPE onespike_queue_depth gauge\nonespike_queue_depth %d\n"
        "# HELP onespike_queue_capacity Queue size; beyond it requests get 503.\n"
        "# TYPE onespike_queue_capacity gauge\nonespike_queue_capacity %d\n"
        "# HELP onespike_workers Inference worker threads.\n"
        "# TYPE onespike_workers gauge\nonespike_workers %d\n"
        "# HELP onespike_workers_busy Workers running a request.\n"
        "# TYPE onespike_workers_busy gauge\nonespike_workers_busy %d\n"
        "# HELP onespike_ready 1 when every model is loaded and the server is not draining.\n"
        "# TYPE onespike_ready gauge\nonespike_ready %d\n"
        "# HELP onespike_model_loaded 1 when the model is loaded and verified.\n"
        "# TYPE onespike_model_loaded gauge\n",
        atomic_load_explicit(&m->inflight, memory_order_relaxed), g->queued, g->queue_capacity,
        g->workers, g->busy, g->ready ? 1 : 0);
    static const char *const batch_end_names[SRV_BATCH_END_COUNT] = {"full", "delay", "other"};
    put(&b, "# HELP onespike_batches_total Dynamic batches a worker gathered, by how the "
            "gathering ended (full: --max-batch requests; delay: --batch-delay-us ran out; "
            "other: another model's request next, or no delay).\n"
            "# TYPE onespike_batches_total counter\n");
    for (int i = 0; i < SRV_BATCH_END_COUNT; i++)
        put(&b, "onespike_batches_total{ended=\"%s\"} %llu\n", batch_end_names[i],
            (unsigned long long)g->counts.batches[i]);
    put(&b, "# HELP onespike_batched_requests_total Requests those batches held.\n"
            "# TYPE onespike_batched_requests_total counter\nonespike_batched_requests_total %llu\n",
        (unsigned long long)g->counts.jobs);
    put(&b, "# HELP onespike_worker_handoffs_total Requests handed to an idle worker, by whether "
            "it was still watching for one (--idle-spin-us) or asleep.\n"
            "# TYPE onespike_worker_handoffs_total counter\n"
            "onespike_worker_handoffs_total{worker=\"spinning\"} %llu\n"
            "onespike_worker_handoffs_total{worker=\"sleeping\"} %llu\n",
        (unsigned long long)g->counts.handoffs[SRV_HANDOFF_SPINNING],
        (unsigned long long)g->counts.handoffs[SRV_HANDOFF_SLEEPING]);
    /* Every reason is always present: a counter that appears only after its first event
     * breaks rate() over the scrape where it appears. */
    put(&b,
        "# HELP onespike_connections_open Connections accepted and not yet closed.\n"
        "# TYPE onespike_connections_open gauge\nonespike_connections_open %d\n"
        "# HELP onespike_connections_closed_total Connections the server cut, by reason.\n"
        "# TYPE onespike_connections_closed_total counter\n",
        atomic_load_explicit(&m->conn_open, memory_order_relaxed));
    for (int i = 0; i < SRV_CUT_COUNT; i++)
        put(&b, "onespike_connections_closed_total{reason=\"%s\"} %llu\n", cut_names[i],
            (unsigned long long)load(&m->conn_cut[i]));
    put(&b, "# HELP onespike_connections_refused_total Connections or requests refused before "
            "being read, by reason.\n# TYPE onespike_connections_refused_total counter\n");
    for (int i = 0; i < SRV_REFUSE_COUNT; i++)
        put(&b, "onespike_connections_refused_total{reason=\"%s\"} %llu\n", refuse_names[i],
            (unsigned long long)load(&m->conn_refused[i]));
    /* Every configured model is loaded: start-up refuses to run otherwise (see main.c). */
    for (int mi = 0; mi < m->n_models; mi++) {
        char version[LABEL_MAX];
        label_escape(m->versions[mi], version, sizeof version);
        put(&b, "onespike_model_loaded{model=\"%s\",version=\"%s\"} 1\n", m->names[mi], version);
    }
    put(&b,
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
        resident_bytes());
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
