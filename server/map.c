/* map.c - running map requests on a worker (see map.h). */
#include "map.h"
#include "http_status.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onespike/clock.h"
#include "onespike/scenemap.h"
#include "request.h"
#include "server.h"

#define NS_PER_MS              1e6
#define NS_PER_S               1e9

static bool is_jpeg(const unsigned char *b, size_t n)
{
    return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

/* After each batch of windows (one thread: the worker's): the windows into the metrics, and the
 * run stopped at the next batch if the server drains or the client has reset the connection. */
static void on_progress(void *ctx, int done, int total)
{
    srv_request *r = ctx;
    (void)total;
    srv_metrics_map_windows(r->srv->metrics, (uint64_t)done - r->map_windows);
    r->map_windows = (uint64_t)done;
    if (atomic_load(&r->srv->draining) || (r->gone && r->gone(r)))
        atomic_store(&r->map_stop, true);
}

static void deadline_reply(srv_request *r, const char *what)
{
    srv_reply_error(&r->reply, HTTP_DEADLINE,
                    "map deadline of %d s (--map-timeout) passed %s (%.1f ms since arrival)",
                    r->srv->cfg->map_timeout_s, what,
                    (double)(os_clock_ns() - r->t_start_ns) / NS_PER_MS);
}

/* The scene's status as an HTTP answer, as classify maps image errors (infer.c). */
static void error_reply(srv_request *r, os_status st)
{
    const char *d = *os_errdetail() ? os_errdetail() : os_strerror(st);
    switch (st) {
    case OS_EEMPTY: srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "body: %s", d); break;
    case OS_EUNSUPPORTED:
        srv_reply_error(&r->reply, HTTP_UNSUPPORTED_MEDIA, "body: %s (a map reads %s)", d,
                        SRV_MAP_TYPES);
        break;
    case OS_ECORRUPT:
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "body: corrupt or truncated raster: %s", d);
        break;
    case OS_ETOOBIG:
    case OS_EMISMATCH:
    case OS_EINVAL: /* a window this raster cannot give (window_m without metres, ...) */
        srv_reply_error(&r->reply, HTTP_UNPROCESSABLE, "body: %s", d);
        break;
    case OS_ECANCELED:
        if (!atomic_load(&r->srv->draining) && r->gone && r->gone(r))
            srv_reply_error(&r->reply, HTTP_CLIENT_CLOSED,
                            "the client reset the connection: map stopped: %s", d);
        else if (atomic_load(&r->srv->draining))
            srv_reply_error(&r->reply, HTTP_UNAVAILABLE, "server is shutting down (draining): %s",
                            d);
        else
            deadline_reply(r, d);
        break;
    default: srv_reply_error(&r->reply, HTTP_INTERNAL_ERROR, "body: %s", d); break;
    }
}

static void run_map(srv_request *r)
{
    srv_server *s = r->srv;
    os_map *map = NULL;
    char *text = NULL;
    size_t len = 0;
    if (is_jpeg(r->body, r->body_len)) {
        srv_reply_error(&r->reply, HTTP_UNSUPPORTED_MEDIA,
                        "body: a JPEG; a map reads %s (a scene is georeferenced: GeoTIFF)",
                        SRV_MAP_TYPES);
        return;
    }
    os_map_opts o = {
        .window = r->map_window,
        .window_m = r->map_window_m,
        .stride = r->map_stride,
        .top_k = r->top_k,
        .views = r->views,
        .threads = 1, /* this worker's thread only: the pool's other workers stay free */
        .input = r->raster_set ? &r->raster_in : NULL,
        .limits = {.max_pixels = s->cfg->max_pixels},
        .progress = on_progress,
        .progress_ctx = r,
        .cancel = &r->map_stop,
        .deadline_s = (double)r->deadline_ns / NS_PER_S,
    };
    os_map_source src = {.buf = r->body, .len = r->body_len};
    os_errclear();
    uint64_t t0 = os_clock_ns();
    os_status st = os_map_run(s->models[r->model], &src, &o, &map);
    r->compute_ms = (double)(os_clock_ns() - t0) / NS_PER_MS;
    if (st) {
        error_reply(r, st);
        goto out;
    }
    if (os_clock_ns() > r->deadline_ns) { /* the last batch ended past it: never a late 200 */
        deadline_reply(r, "while computing the last windows");
        goto out;
    }
    os_errclear();
    if (r->map_cog) {
        unsigned char *cog;
        if ((st = os_map_cog(map, &cog, &len))) {
            error_reply(r, st == OS_EUNSUPPORTED ? OS_EMISMATCH : st); /* over 255 classes */
            goto out;
        }
        srv_reply_text(&r->reply, HTTP_OK, (char *)cog, len, SRV_MAP_COG_TYPE);
        goto out;
    }
    if ((st = os_map_geojson(map, &text, &len))) {
        error_reply(r, st == OS_EUNSUPPORTED ? OS_EMISMATCH : st); /* a CRS with no WGS 84 */
        goto out;
    }
    srv_reply_text(&r->reply, HTTP_OK, text, len, SRV_MAP_CONTENT_TYPE);
    text = NULL;
out:
    free(text);
    os_map_destroy(map);
}

void srv_map_run(srv_worker *w, srv_job *job)
{
    srv_request *r = srv_request_of_job(job);
    (void)w;
    r->queue_ms = (double)(os_clock_ns() - job->enqueued_ns) / NS_PER_MS;
    srv_metrics_observe(r->srv->metrics, SRV_HIST_QUEUE, r->model, r->queue_ms / 1e3);
    atomic_store(&r->map_stop, false);
    if (atomic_load(&r->srv->draining))
        srv_reply_error(&r->reply, HTTP_UNAVAILABLE, "server is shutting down (draining)");
    else if (r->gone && r->gone(r))
        srv_reply_error(&r->reply, HTTP_CLIENT_CLOSED,
                        "the client reset the connection before the map ran: not run");
    else if (os_clock_ns() > r->deadline_ns)
        deadline_reply(r, "in the queue");
    else
        run_map(r);
    r->complete(r);
}

void srv_map_cancel(srv_job *job)
{
    srv_request *r = srv_request_of_job(job);
    srv_reply_error(&r->reply, HTTP_UNAVAILABLE,
                    "server shut down (drain time over) before this map could run");
    r->complete(r);
}
