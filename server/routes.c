/* routes.c - path matching and the checks made on the request head (see routes.h). */
#include "routes.h"
#include "http_status.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "infer.h"
#include "map.h"
#include "multipart.h"
#include "oip.h"
#include "onespike/clock.h"
#include "onespike/parse.h"
#include "onespike/scenemap.h"
#include "onespike/session.h"


#define SRV_DEFAULT_TOP_K    5
#define MODELS_PREFIX        "/v2/models/"
#define BEARER_PREFIX        "Bearer "
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define NAMES_LIST_MAX       256
/* A progressive JPEG with coefficient buffers over this (about 2.8 Mpx at 4:2:0, a 1680 px
 * square) is not batched: its decode (16.7 Mpx: 0.24 s with the usual 10 scans, 1.05 s with 99,
 * against 0.03 s baseline) would hold every request batched with it. */
#define SRV_BATCH_MAX_COEF_BYTES ((uint64_t)8 << 20)

static const char *const route_names[SRV_ROUTE_COUNT] = {
    "live",    "ready", "server_metadata", "model_metadata", "model_ready", "infer", "classify",
    "metrics", "map",   "unknown"};

const char *srv_route_name(srv_route r)
{
    return r < SRV_ROUTE_COUNT ? route_names[r] : "unknown";
}

int srv_server_find_model(const srv_server *s, const char *name, size_t len)
{
    for (int i = 0; i < s->n_models; i++)
        if (strlen(s->names[i]) == len && !memcmp(s->names[i], name, len))
            return i;
    return -1;
}

/* A client's X-Request-Id is kept if it is short and plain; otherwise we make one up. */
static bool plain_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isalnum((unsigned char)s[n]) && s[n] != '-' && s[n] != '_' && s[n] != '.' &&
            s[n] != ':')
            return false;
    return n > 0 && n < SRV_REQUEST_ID_MAX;
}

static void assign_id(srv_request *r, const char *given)
{
    static atomic_uint_fast64_t counter;
    static atomic_uint_fast32_t prefix;
    if (given && plain_id(given)) {
        strcpy(r->id, given);
        return;
    }
    uint32_t p = (uint32_t)atomic_load(&prefix);
    if (!p) { /* once per process: tells ids of different runs apart */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        p = ((uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec << 12 ^ (uint32_t)getpid()) | 1u;
        uint_fast32_t zero = 0;
        if (!atomic_compare_exchange_strong(&prefix, &zero, p))
            p = (uint32_t)zero;
    }
    unsigned long long n = (unsigned long long)atomic_fetch_add(&counter, 1) + 1;
    snprintf(r->id, sizeof r->id, "%08x-%llu", p, n);
}

/* Split the path into route, model index and version; sets a 404 reply when the path names an
 * unknown model or version. */
static srv_route match(srv_server *s, srv_request *r, const char *path)
{
    size_t pn = strlen(path);
    if (pn > 1 && path[pn - 1] == '/')
        pn--; /* "/v2/" is "/v2" */
    if (pn == 3 && !memcmp(path, "/v2", 3))
        return SRV_ROUTE_SERVER_META;
    if (pn == 15 && !memcmp(path, "/v2/health/live", 15))
        return SRV_ROUTE_LIVE;
    if (pn == 16 && !memcmp(path, "/v2/health/ready", 16))
        return SRV_ROUTE_READY;
    if (pn == 8 && !memcmp(path, "/metrics", 8))
        return SRV_ROUTE_METRICS;
    size_t mp = sizeof MODELS_PREFIX - 1;
    if (pn <= mp || memcmp(path, MODELS_PREFIX, mp))
        return SRV_ROUTE_UNKNOWN;
    const char *name = path + mp, *end = path + pn;
    const char *slash = memchr(name, '/', (size_t)(end - name));
    size_t nlen = slash ? (size_t)(slash - name) : (size_t)(end - name);
    const char *rest = slash ? slash + 1 : end;
    const char *version = NULL;
    size_t vlen = 0;
    if ((size_t)(end - rest) >= 9 && !memcmp(rest, "versions/", 9)) {
        version = rest + 9;
        const char *vs = memchr(version, '/', (size_t)(end - version));
        vlen = vs ? (size_t)(vs - version) : (size_t)(end - version);
        rest = vs ? vs + 1 : end;
        if (vlen == 0)
            return SRV_ROUTE_UNKNOWN;
    }
    size_t rlen = (size_t)(end - rest);
    srv_route route;
    if (rlen == 0)
        route = SRV_ROUTE_MODEL_META;
    else if (rlen == 5 && !memcmp(rest, "ready", 5))
        route = SRV_ROUTE_MODEL_READY;
    else if (rlen == 5 && !memcmp(rest, "infer", 5))
        route = SRV_ROUTE_INFER;
    else if (rlen == 8 && !memcmp(rest, "classify", 8))
        route = SRV_ROUTE_CLASSIFY;
    else if (rlen == 3 && !memcmp(rest, "map", 3))
        route = SRV_ROUTE_MAP;
    else
        return SRV_ROUTE_UNKNOWN;
    if (nlen == 0)
        return SRV_ROUTE_UNKNOWN;
    r->model = srv_server_find_model(s, name, nlen);
    if (r->model < 0) {
        char list[NAMES_LIST_MAX] = "";
        for (int i = 0, n = 0; i < s->n_models && n < (int)sizeof list; i++)
            n += snprintf(list + n, sizeof list - (size_t)n, "%s%s", i ? ", " : "", s->names[i]);
        srv_reply_error(&r->reply, HTTP_NOT_FOUND, "model \"%.*s\" not found (serving: %s)",
                        (int)(nlen > SRV_MODEL_NAME_MAX ? SRV_MODEL_NAME_MAX : nlen), name, list);
        return route;
    }
    const char *have = os_model_version(s->models[r->model]);
    if (version && (strlen(have) != vlen || memcmp(have, version, vlen)))
        srv_reply_error(&r->reply, HTTP_NOT_FOUND,
                        "model \"%s\" has no version \"%.*s\" (serving version \"%s\")",
                        s->names[r->model], (int)(vlen > 64 ? 64 : vlen), version, have);
    return route;
}

/* Constant-time comparison of the Authorization header with "Bearer <token>". */
static bool token_ok(const srv_server *s, const char *auth)
{
    size_t pl = sizeof BEARER_PREFIX - 1;
    if (!auth || strncasecmp(auth, BEARER_PREFIX, pl))
        return false;
    const char *t = auth + pl;
    size_t n = strlen(t);
    unsigned char diff = (unsigned char)(n != s->token_len);
    for (size_t i = 0; i < s->token_len; i++)
        diff |= (unsigned char)(s->token[i] ^ (i < n ? t[i] : 0));
    return diff == 0;
}

static bool is_get(const srv_request *r)
{
    return r->method == SRV_METHOD_GET || r->method == SRV_METHOD_HEAD;
}

static void answer_ready(srv_server *s, srv_request *r)
{
    bool draining = atomic_load(&s->draining);
    json_t *j = r->route == SRV_ROUTE_MODEL_READY
                    ? json_pack("{s:s, s:b}", "name", s->names[r->model], "ready", !draining)
                    : json_pack("{s:b}", "ready", !draining);
    if (draining && j)
        json_object_set_new(j, "error", json_string("server is shutting down (draining)"));
    srv_reply_json(&r->reply, draining ? HTTP_UNAVAILABLE : HTTP_OK, j);
    if (draining)
        r->reply.retry_after_s = SRV_RETRY_AFTER_S;
}

static void answer_metrics(srv_server *s, srv_request *r)
{
    srv_metrics_gauges g = {.queue_capacity = srv_pool_capacity(s->pool),
                            .workers = srv_pool_workers(s->pool),
                            .ready = !atomic_load(&s->draining),
                            .maps_active = atomic_load(&s->maps_active),
                            .maps_max = s->maps_max};
    srv_pool_stats(s->pool, &g.queued, &g.busy, &g.counts);
    size_t len = 0;
    char *text = srv_metrics_render(s->metrics, &g, &len);
    if (!text) {
        srv_reply_error(&r->reply, HTTP_INTERNAL_ERROR, "out of memory rendering metrics");
        return;
    }
    srv_reply_text(&r->reply, HTTP_OK, text, len, METRICS_CONTENT_TYPE);
}

static void answer_get(srv_server *s, srv_request *r)
{
    switch (r->route) {
    case SRV_ROUTE_LIVE: srv_reply_json(&r->reply, HTTP_OK, json_pack("{s:b}", "live", 1)); break;
    case SRV_ROUTE_READY:
    case SRV_ROUTE_MODEL_READY: answer_ready(s, r); break;
    case SRV_ROUTE_SERVER_META:
        srv_reply_json(&r->reply, HTTP_OK, srv_oip_server_meta(s->names, s->n_models));
        break;
    case SRV_ROUTE_MODEL_META:
        srv_reply_json(&r->reply, HTTP_OK,
                       srv_oip_model_meta(s->names[r->model], s->models[r->model], s->cfg->tta));
        break;
    case SRV_ROUTE_METRICS: answer_metrics(s, r); break;
    default: srv_reply_error(&r->reply, HTTP_INTERNAL_ERROR, "no handler"); break;
    }
}

/* The body's framing: chunked (the length is learnt while reading; http.c enforces the route's
 * limit, r->body_limit, as the bytes arrive), else a Content-Length: 411 if absent, 413 if over
 * the limit (--max-body, or --map-max-body for map). Conflicting
 * or unknown framings were refused by http.c before the routes saw the head (RFC 9112 §6.3). */
static bool check_length(srv_server *s, srv_request *r, const srv_request_head *h)
{
    if (h->transfer_encoding) {
        r->body_chunked = true;
        r->body_expected = 0;
        return true;
    }
    if (!h->content_length) {
        srv_reply_error(&r->reply, HTTP_LENGTH_REQUIRED,
                        "Content-Length or Transfer-Encoding: chunked required");
        return false;
    }
    const char *cl = h->content_length;
    if (!isdigit((unsigned char)cl[0]) || cl[strspn(cl, "0123456789")] != '\0') {
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "Content-Length \"%.32s\" is not a number",
                        cl);
        return false;
    }
    errno = 0;
    unsigned long long n = strtoull(cl, NULL, 10);
    (void)s;
    if (errno == ERANGE || n > r->body_limit) {
        srv_reply_error(&r->reply, HTTP_TOO_LARGE,
                        "body of %.32s bytes is over the limit of %zu bytes (%s)", cl,
                        r->body_limit, r->route == SRV_ROUTE_MAP ? "--map-max-body" : "--max-body");
        return false;
    }
    r->body_expected = (size_t)n;
    return true;
}

static bool parse_top_k(srv_server *s, srv_request *r, const char *v)
{
    int classes = os_model_classes(s->models[r->model]);
    r->top_k = classes < SRV_DEFAULT_TOP_K ? classes : SRV_DEFAULT_TOP_K;
    if (!v)
        return true;
    char *end;
    errno = 0;
    long k = strtol(v, &end, 10);
    if (!isdigit((unsigned char)*v) || errno || *end || k < 1 || k > classes) {
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST,
                        "top_k \"%.32s\" out of range: expected an integer 1..%d (the model's "
                        "classes)",
                        v, classes);
        return false;
    }
    r->top_k = (int)k;
    return true;
}

/* ?tta=N: the views of each image of the request (default dflt); 400 unless 1, 2, 4 or 8, or
 * over 1 for a model whose input is not square. */
static bool parse_tta(srv_server *s, srv_request *r, const char *v, int dflt)
{
    r->views = dflt;
    if (!v)
        return true;
    long n;
    if (!isdigit((unsigned char)*v) || !os_parse_long(v, 1, OS_SESSION_MAX_VIEWS, &n) ||
        !os_session_views_valid((int)n)) {
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST,
                        "tta \"%.32s\": expected 1, 2, 4 or 8 views", v);
        return false;
    }
    const int room = srv_views_room(s->cfg);
    if (r->route != SRV_ROUTE_MAP && n > room) { /* a map has sessions of its own */
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST,
                        "tta %ld: this server's workers hold %d image(s) at once (the larger of "
                        "--max-batch and --tta); start it with --tta %ld to allow it",
                        n, room, n);
        return false;
    }
    if (os_session_views_check(s->models[r->model], (int)n)) {
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "tta: %s", os_errdetail());
        return false;
    }
    r->views = (int)n;
    return true;
}

/* ?bands=R,G,B and ?scale=... over the model's raster input; 400 on a bad text. */
static bool parse_raster_input(srv_server *s, srv_request *r, const srv_request_head *h)
{
    r->raster_set = h->bands || h->scale;
    if (!r->raster_set)
        return true;
    r->raster_in = *os_model_raster_input(s->models[r->model]);
    if ((h->bands && os_raster_bands_parse(h->bands, &r->raster_in)) ||
        (h->scale && os_raster_scale_parse(h->scale, &r->raster_in))) {
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "%s", os_errdetail());
        return false;
    }
    return true;
}

/* A positive integer query argument <= hi, or 0 when absent; false with a 400 naming it. */
static bool parse_px(srv_request *r, const char *name, const char *v, long hi, int *out)
{
    *out = 0;
    if (!v)
        return true;
    long n;
    if (!isdigit((unsigned char)*v) || !os_parse_long(v, 1, hi, &n)) {
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST,
                        "%s \"%.32s\" out of range: expected pixels 1..%ld", name, v, hi);
        return false;
    }
    *out = (int)n;
    return true;
}

/* The map's parameters, then a place among the maps allowed at once (503 with Retry-After
 * beyond them, before the body is read). The body is the raster itself, never multipart. */
/* The quality an Accept header gives type/subtype (RFC 9110 12.5.1): that of the most specific
 * media range matching it (type/subtype, then type/<*>, then <*>/<*>; q=1 when not given), or -1
 * when none does. Media types compare case-insensitively. */
static double accept_q(const char *accept, const char *type, const char *subtype)
{
    double q = -1;
    int best = 0; /* specificity of the match found: 1 any, 2 type, 3 exact */
    const size_t tl = strlen(type), sl = strlen(subtype);
    for (const char *s = accept; s && *s;) {
        s += strspn(s, " \t,");
        size_t item = strcspn(s, ","), range = strcspn(s, ";,");
        while (range && (s[range - 1] == ' ' || s[range - 1] == '\t'))
            range--;
        int spec = 0;
        if (range == 3 && !strncmp(s, "*/*", 3))
            spec = 1;
        else if (range > tl && !strncasecmp(s, type, tl) && s[tl] == '/')
            spec = range == tl + 2 && s[tl + 1] == '*'                               ? 2
                   : range == tl + 1 + sl && !strncasecmp(s + tl + 1, subtype, sl) ? 3
                                                                                    : 0;
        if (spec > best) {
            best = spec;
            q = 1;
            for (const char *p = s + range; p < s + item; p++)
                if ((*p == 'q' || *p == 'Q') && p[1] == '=' && (p[-1] == ';' || p[-1] == ' '))
                    q = strtod(p + 2, NULL);
        }
        s += item;
    }
    return q;
}

/* The map's answer: ?format= if given, else by Accept: a COG when it rates image/tiff above
 * GeoJSON (a tie, or no Accept, is GeoJSON, the default). */
static bool map_format(srv_request *r, const srv_request_head *h)
{
    if (h->format) {
        if (!strcmp(h->format, "geojson") || !strcmp(h->format, "tiff")) {
            r->map_cog = !strcmp(h->format, "tiff");
            return true;
        }
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST,
                        "format \"%.32s\" unknown: geojson (the default) or tiff (a "
                        "Cloud-Optimized GeoTIFF: class and probability bands)",
                        h->format);
        return false;
    }
    const double tiff = accept_q(h->accept, "image", "tiff");
    const double json = accept_q(h->accept, "application", "geo+json");
    r->map_cog = tiff > 0 && tiff > json;
    return true;
}

static void begin_map(srv_server *s, srv_request *r, const srv_request_head *h)
{
    if (!map_format(r, h))
        return;
    if (r->map_cog && os_model_classes(s->models[r->model]) > OS_MAP_NODATA) {
        srv_reply_error(&r->reply, HTTP_UNPROCESSABLE,
                        "format=tiff: %d classes do not fit the GeoTIFF's Byte class band (at "
                        "most %d); ask for GeoJSON",
                        os_model_classes(s->models[r->model]), OS_MAP_NODATA);
        return;
    }
    if (!parse_px(r, "window", h->window, OS_RASTER_MAX_SIDE, &r->map_window) ||
        !parse_px(r, "stride", h->stride, OS_RASTER_MAX_SIDE, &r->map_stride))
        return;
    if (h->window_m) {
        char *end;
        errno = 0;
        double m = strtod(h->window_m, &end);
        if (!isdigit((unsigned char)*h->window_m) || errno || *end || !(m > 0) ||
            m > SRV_MAP_MAX_WINDOW_M) {
            srv_reply_error(&r->reply, HTTP_BAD_REQUEST,
                            "window_m \"%.32s\" out of range: expected metres > 0 and <= %g",
                            h->window_m, SRV_MAP_MAX_WINDOW_M);
            return;
        }
        if (h->window) {
            srv_reply_error(&r->reply, HTTP_BAD_REQUEST,
                            "window and window_m both given: the window is one or the other");
            return;
        }
        r->map_window_m = m;
    }
    /* A stride over the window would leave pixels out (scenemap.h); known here in pixels. */
    int win = r->map_window ? r->map_window : OS_MAP_DEFAULT_WINDOW;
    if (!h->window_m && r->map_stride > win) {
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST,
                        "stride %d is over the window of %d px: pixels would be left out",
                        r->map_stride, win);
        return;
    }
    if (h->content_type && !strncasecmp(h->content_type, "multipart/", 10)) {
        srv_reply_error(&r->reply, HTTP_UNSUPPORTED_MEDIA,
                        "Content-Type \"%.100s\": a map's body is the raster itself (%s)",
                        h->content_type, SRV_MAP_TYPES);
        return;
    }
    r->body_kind = SRV_BODY_SCENE;
    if (!h->top_k)
        r->top_k = 0; /* the map's own default (OS_MAP_DEFAULT_TOP_K), as onespike-train map */
    if (atomic_fetch_add(&s->maps_active, 1) >= s->maps_max) {
        atomic_fetch_sub(&s->maps_active, 1);
        srv_reply_error(&r->reply, HTTP_UNAVAILABLE,
                        "server busy: %d map%s already running or waiting (at most max(1, "
                        "workers - 1) at once), retry later",
                        s->maps_max, s->maps_max == 1 ? "" : "s");
        r->reply.retry_after_s = SRV_RETRY_AFTER_S;
        return;
    }
    r->map_place = true;
    r->deadline_ns = r->t_start_ns + (uint64_t)s->cfg->map_timeout_s * 1000000000u;
}

void srv_routes_release(srv_server *s, srv_request *r)
{
    if (r->map_place)
        atomic_fetch_sub(&s->maps_active, 1);
    r->map_place = false;
}

void srv_routes_begin(srv_server *s, srv_request *r, const srv_request_head *h)
{
    assign_id(r, h->request_id);
    r->path = h->path;
    r->t_start_ns = os_clock_ns();
    r->deadline_ns = r->t_start_ns + (uint64_t)s->cfg->deadline_ms * 1000000u;
    r->model = -1;
    r->method = !strcmp(h->method, "GET")    ? SRV_METHOD_GET
                : !strcmp(h->method, "HEAD") ? SRV_METHOD_HEAD
                : !strcmp(h->method, "POST") ? SRV_METHOD_POST
                                             : SRV_METHOD_OTHER;
    r->route = match(s, r, h->path);
    if (r->route == SRV_ROUTE_UNKNOWN) {
        srv_reply_error(&r->reply, HTTP_NOT_FOUND, "no route %.16s %.200s", h->method, h->path);
        return;
    }
    r->body_limit = r->route == SRV_ROUTE_MAP ? s->cfg->map_max_body : s->cfg->max_body;
    bool post_route =
        r->route == SRV_ROUTE_INFER || r->route == SRV_ROUTE_CLASSIFY || r->route == SRV_ROUTE_MAP;
    if (post_route ? r->method != SRV_METHOD_POST : !is_get(r)) {
        srv_reply_clear(&r->reply); /* the method is the first thing wrong */
        srv_reply_error(&r->reply, HTTP_METHOD_NOT_ALLOWED,
                        "method %.16s not allowed on %.200s (use %s)", h->method, h->path,
                        post_route ? "POST" : "GET");
        r->reply.allow = post_route ? "POST" : "GET, HEAD";
        return;
    }
    if (r->reply.status) /* unknown model or version */
        return;
    if (!post_route) {
        answer_get(s, r);
        return;
    }
    if (atomic_load(&s->draining)) {
        srv_reply_error(&r->reply, HTTP_UNAVAILABLE, "server is shutting down (draining)");
        return;
    }
    if (s->token_len && !token_ok(s, h->authorization)) {
        srv_reply_error(&r->reply, HTTP_UNAUTHORIZED,
                        h->authorization ? "invalid bearer token"
                                         : "missing bearer token: send 'Authorization: Bearer "
                                           "<token>'");
        r->reply.auth_challenge = true;
        return;
    }
    if (!check_length(s, r, h))
        return;
    if (r->route == SRV_ROUTE_INFER) {
        r->body_kind = SRV_BODY_OIP;
        return;
    }
    if (!parse_top_k(s, r, h->top_k) || !parse_raster_input(s, r, h))
        return;
    /* --tta is the default of classify; a map has thousands of windows, so it asks */
    if (!parse_tta(s, r, h->tta, r->route == SRV_ROUTE_MAP ? 1 : s->cfg->tta))
        return;
    if (r->route == SRV_ROUTE_MAP) {
        begin_map(s, r, h);
        return;
    }
    /* multipart/form-data reads the "image" field; any other Content-Type is taken as the image
     * itself, and the bytes decide (JPEG, TIFF, PNG, JPEG 2000; a GIF is answered 415 whatever
     * the header claims). */
    r->body_kind = SRV_BODY_IMAGE;
    if (h->content_type && !strncasecmp(h->content_type, "multipart/", 10)) {
        if (!srv_multipart_boundary(h->content_type, r->boundary, sizeof r->boundary)) {
            srv_reply_error(&r->reply, HTTP_BAD_REQUEST,
                            "Content-Type \"%.100s\": expected multipart/form-data with a "
                            "boundary of 1..70 characters",
                            h->content_type);
            return;
        }
        r->body_kind = SRV_BODY_MULTIPART;
    }
}

/* A classify request's image: the body, or its multipart field (400 when there is none). */
static bool find_image(srv_request *r)
{
    r->image = r->body, r->image_len = r->body_len, r->image_what = "body";
    if (r->body_kind != SRV_BODY_MULTIPART)
        return true;
    char err[SRV_ERROR_MAX];
    if (!srv_multipart_find(r->body, r->body_len, r->boundary, SRV_CLASSIFY_FIELD, &r->image,
                            &r->image_len, err, sizeof err)) {
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "%s", err);
        return false;
    }
    r->image_what = "field \"" SRV_CLASSIFY_FIELD "\"";
    return true;
}

bool srv_routes_finish(srv_server *s, srv_request *r)
{
    (void)s;
    if (r->body_len == 0) {
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "empty body: expected %s",
                        r->route == SRV_ROUTE_INFER ? "an Open Inference Protocol JSON request"
                        : r->route == SRV_ROUTE_MAP ? "a raster (" SRV_MAP_TYPES ")"
                                                    : "an image (JPEG, TIFF, PNG, JPEG 2000)");
        return false;
    }
    if (r->route == SRV_ROUTE_MAP) {
        r->job.run = srv_map_run;
        r->job.cancel = srv_map_cancel;
        r->job.batch_key = -1; /* a map has a worker to itself */
        r->job.run_batch = NULL;
        return true;
    }
    if (r->route == SRV_ROUTE_CLASSIFY && !find_image(r))
        return false;
    r->job.run = srv_infer_run;
    r->job.cancel = srv_infer_cancel;
    /* One image per classify request: JPEGs of one model can share a pass (pool.h); an image
     * in its views fills a pass by itself. A raster (TIFF, PNG, JPEG 2000) runs alone: its
     * decode can take seconds (a PNG of zeros compresses 1000:1), and one worker decodes a
     * batch's images in turn, so every request batched behind it would wait. So does a large
     * progressive JPEG: each of its scans (up to 500) passes over the whole image. */
    r->job.batch_key = r->route == SRV_ROUTE_CLASSIFY && r->views <= 1 &&
                               os_image_sniff(r->image, r->image_len) == OS_IMG_JPEG &&
                               os_jpeg_coef_bytes(r->image, r->image_len) <=
                                   SRV_BATCH_MAX_COEF_BYTES
                           ? r->model
                           : -1;
    r->job.run_batch = srv_infer_run_batch;
    return true;
}
