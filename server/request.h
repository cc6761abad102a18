/* request.h - one HTTP request as the routes and the workers see it.
 *
 * http.c owns the memory (a fixed slab, one slot per allowed connection, so taking a request
 * allocates nothing) and fills the head; routes.c decides what to do; a worker (infer.c) runs
 * inference requests. Whoever decides the answer fills `reply`; http.c sends it.
 */
#ifndef SRV_REQUEST_H
#define SRV_REQUEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onespike/raster.h"
#include "pool.h"
#include "reply.h"

#define SRV_REQUEST_ID_MAX 65 /* 64 characters and the NUL */
#define SRV_BOUNDARY_MAX   72 /* RFC 2046: a boundary has at most 70 characters */

struct srv_server;

/* The routes of docs/DESIGN.md §4 (routes.c maps paths to them). */
typedef enum {
    SRV_ROUTE_LIVE = 0,
    SRV_ROUTE_READY,
    SRV_ROUTE_SERVER_META,
    SRV_ROUTE_MODEL_META,
    SRV_ROUTE_MODEL_READY,
    SRV_ROUTE_INFER,
    SRV_ROUTE_CLASSIFY,
    SRV_ROUTE_METRICS,
    SRV_ROUTE_MAP,
    SRV_ROUTE_UNKNOWN,
    SRV_ROUTE_COUNT
} srv_route;

/* "live", "ready", "server_metadata", ...: the route's label in metrics and logs. Static. */
const char *srv_route_name(srv_route r);

typedef enum { SRV_METHOD_GET, SRV_METHOD_HEAD, SRV_METHOD_POST, SRV_METHOD_OTHER } srv_method;

/* How a POST body is to be read. */
typedef enum {
    SRV_BODY_NONE = 0,
    SRV_BODY_IMAGE,     /* classify: the body is the image */
    SRV_BODY_MULTIPART, /* classify: multipart/form-data, field "image" */
    SRV_BODY_OIP,       /* infer: Open Inference Protocol JSON */
    SRV_BODY_SCENE,     /* map: the body is a raster (TIFF, PNG, JPEG 2000) */
} srv_body_kind;

/* The request head as read from the connection; strings borrowed from libmicrohttpd, valid until
 * the request completes. NULL when absent. */
typedef struct {
    const char *method, *path;
    const char *content_length, *transfer_encoding, *content_type;
    const char *authorization, *request_id;
    const char *top_k;        /* query argument */
    const char *tta;          /* query argument: test-time views of classify */
    const char *bands, *scale; /* query arguments: raster bands as R,G,B and value scaling */
    const char *window, *window_m, *stride; /* query arguments of map */
    const char *format;                     /* query argument of map: geojson or tiff */
    const char *accept;                     /* the Accept header */
} srv_request_head;

typedef struct srv_request srv_request;
struct srv_request {
    srv_job job; /* the pool's handle while queued or running */
    struct srv_server *srv;
    char id[SRV_REQUEST_ID_MAX];
    srv_method method;
    const char *path; /* borrowed, as in the head */
    srv_route route;
    int model; /* index into srv->models, -1 if none */
    srv_body_kind body_kind;
    char boundary[SRV_BOUNDARY_MAX];
    int top_k;
    int views; /* classify: test-time views (os_session_run_views); 1: the image alone */
    /* classify: the image within the body (the body itself, or its multipart field; set when
     * the body is complete) and what error messages call it */
    const unsigned char *image;
    size_t image_len;
    const char *image_what;
    /* classify: the model's raster input with ?bands= / ?scale= applied (raster_set), else the
     * model's own is used */
    os_raster_input raster_in;
    bool raster_set;
    /* map: the grid asked for (0: the default) and whether this request holds one of the
     * server's map places (srv_server.maps_active; given back when the slot is released) */
    int map_window, map_stride;
    double map_window_m;
    bool map_place;
    bool map_cog; /* answer the map as a Cloud-Optimized GeoTIFF, not GeoJSON */
    atomic_bool map_stop; /* the map's cancel flag: set between batches when draining or gone */
    uint64_t map_windows; /* windows counted into the metrics so far */
    /* The body limit of this route: --max-body, or --map-max-body for map. */
    size_t body_limit;
    /* Grown by http.c as the body arrives (within --max-body and --body-budget) and freed by it;
     * body_cap bytes allocated, body_len received. body_expected is the Content-Length, or 0
     * with body_chunked until the body is complete, then body_len. */
    unsigned char *body;
    size_t body_len, body_cap, body_expected;
    bool body_chunked;
    uint64_t t_start_ns, deadline_ns; /* monotonic */
    double queue_ms, decode_ms, compute_ms;
    srv_reply reply;
    /* Set by http.c; a worker calls it once the reply is set (from the worker's thread). */
    void (*complete)(srv_request *r);
    /* Set by http.c: true once the client has reset the connection, so no answer can reach it
     * (a client that only closed its side may still read one: that is not gone). Workers ask
     * before they run a request, and a map between its batches. Any thread. */
    bool (*gone)(const srv_request *r);
};

/* The request a pool job belongs to (a job is its request's first member). */
static inline srv_request *srv_request_of_job(srv_job *job)
{
    return (srv_request *)(void *)((char *)job - offsetof(srv_request, job));
}

#endif
