/* metrics.h - Prometheus text exposition (format 0.0.4) of the server's counters.
 *
 * Counters and histograms are lock-free atomics updated from any thread; rendering reads them
 * without stopping anyone, so a scrape is a consistent-enough snapshot, as usual for Prometheus.
 * Exposed:
 *   onespike_requests_total{route,status}          counter
 *   onespike_queue_wait_seconds{model}             histogram (submit -> a worker picks it up)
 *   onespike_decode_seconds{model}                 histogram (JPEG decode + resize)
 *   onespike_compute_seconds{model}                histogram (network + softmax)
 *   onespike_map_windows_total                     counter (windows of scenes classified by map)
 *   onespike_maps_active, onespike_maps_max        gauges (maps admitted and not yet answered;
 *                                                  beyond the max: 503)
 *   onespike_inflight_requests                     gauge (received, not yet answered)
 *   onespike_connections_open                      gauge (accepted, not yet closed)
 *   onespike_connections_closed_total{reason}      counter (cut by the server: header_timeout,
 *                                                  body_timeout, half_close)
 *   onespike_connections_refused_total{reason}     counter (max_conns: at the door, or a
 *                                                  non-health request in the health reserve;
 *                                                  budget: a body over --body-budget;
 *                                                  bad_head: a malformed head or one over the
 *                                                  head limits, at the door or keep-alive)
 *   onespike_queue_depth, onespike_queue_capacity  gauges
 *   onespike_workers, onespike_workers_busy        gauges
 *   onespike_batches_total{ended}                  counter (dynamic batches gathered: full,
 *                                                  delay ran out, other: another model next)
 *   onespike_batched_requests_total                counter (the requests those batches held)
 *   onespike_worker_handoffs_total{worker}         counter (requests handed to an idle worker:
 *                                                  spinning, still watching; or sleeping)
 *   onespike_ready                                 gauge (0 while draining)
 *   onespike_model_loaded{model,version}           gauge (1 loaded and verified)
 *   process_resident_memory_bytes                  gauge (from /proc/self/statm)
 */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "request.h"
#include "onespike/status.h"

typedef enum { SRV_HIST_QUEUE = 0, SRV_HIST_DECODE, SRV_HIST_COMPUTE, SRV_HIST_COUNT } srv_hist;

typedef struct srv_metrics srv_metrics;

/* names/versions borrowed; they must outlive the metrics. */
os_status srv_metrics_create(const char *const *names, const char *const *versions, int n_models,
                             srv_metrics **out);
void srv_metrics_destroy(srv_metrics *m); /* NULL is fine */

/* One answered request. Status codes outside 100..599 are counted as 500. */
void srv_metrics_count(srv_metrics *m, srv_route route, int status);
void srv_metrics_observe(srv_metrics *m, srv_hist h, int model, double seconds);
void srv_metrics_inflight_add(srv_metrics *m, int delta);
void srv_metrics_map_windows(srv_metrics *m, uint64_t n);

/* Why the server ended a connection on its own. */
typedef enum {
    SRV_CUT_HEADER_TIMEOUT = 0, /* head not complete within --header-timeout */
    SRV_CUT_BODY_TIMEOUT,       /* body not complete within --body-timeout */
    SRV_CUT_HALF_CLOSE,         /* the client closed its side in the middle of a request */
    SRV_CUT_EVICTED,            /* a slow or idle head closed for a new connection: all taken */
    SRV_CUT_COUNT
} srv_cut_reason;

/* Why the server refused a connection or a request before reading it. */
typedef enum {
    SRV_REFUSE_MAX_CONNS = 0, /* beyond --max-conns and the health reserve */
    SRV_REFUSE_BUDGET,        /* its body did not fit in --body-budget */
    SRV_REFUSE_BAD_HEAD,      /* its head was malformed or over a limit (400, 413, 414, 431, 505) */
    SRV_REFUSE_COUNT
} srv_refuse_reason;

void srv_metrics_conn_open_add(srv_metrics *m, int delta);
void srv_metrics_conn_cut(srv_metrics *m, srv_cut_reason why);
void srv_metrics_conn_refused(srv_metrics *m, srv_refuse_reason why);

/* Gauges that live elsewhere, sampled by the caller at scrape time. */
typedef struct {
    int queued, queue_capacity, busy, workers;
    int maps_active, maps_max;
    bool ready;
    srv_pool_counts counts;
} srv_metrics_gauges;

/* The exposition text (malloc'd, caller frees), or NULL when out of memory. */
char *srv_metrics_render(srv_metrics *m, const srv_metrics_gauges *g, size_t *len);

#endif
