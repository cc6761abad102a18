/* http.c - libmicrohttpd glue (see http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "onespike/clock.h"
#include "request.h"
#include "routes.h"

#define HTTP_INTERNAL_ERROR    500
#define HTTP_UNAVAILABLE       503
#define HTTP_GATEWAY_TIMEOUT   504
#define HTTP_CLIENT_CLOSED     499 /* nginx's code for "client went away before the answer" */
#define RETRY_AFTER_MAX_DIGITS 16
#define MHD_LOG_MAX            512
/* Slots beyond the connection limit: a closing connection's slot may come back just after a
 * new connection's request begins. */
#define SLOT_MARGIN 16

static const char oom_body[] = "{\"error\":\"out of memory\"}";
static const char busy_body[] = "{\"error\":\"too many connections\"}";

typedef struct http_slot {
    srv_request req; /* first: the slot is found from its request */
    struct MHD_Connection *conn;
    struct http_slot *next_free;
    bool answered; /* a response has been queued */
} http_slot;

struct srv_http {
    srv_server *srv;
    struct MHD_Daemon *daemon;
    int listen_fd;
    int port;
    bool quiesced;
    http_slot *slots;
    int n_slots;
    http_slot *free_list;
    pthread_mutex_t mu; /* free_list */
    atomic_int active;
    struct MHD_Response *busy; /* shared answer when no slot is free */
};

static http_slot *slot_take(srv_http *h)
{
    pthread_mutex_lock(&h->mu);
    http_slot *s = h->free_list;
    if (s)
        h->free_list = s->next_free;
    pthread_mutex_unlock(&h->mu);
    return s;
}

static void slot_put(srv_http *h, http_slot *s)
{
    free(s->req.body);
    srv_reply_clear(&s->req.reply);
    memset(&s->req, 0, offsetof(srv_request, reply));
    s->conn = NULL;
    s->answered = false;
    pthread_mutex_lock(&h->mu);
    s->next_free = h->free_list;
    h->free_list = s;
    pthread_mutex_unlock(&h->mu);
}

static void log_request(const http_slot *slot, int status, double ms)
{
    const srv_request *r = &slot->req;
    /* 503 and 504 are load, not faults: warnings. Other 5xx are errors. */
    srv_log_level lv = status == HTTP_UNAVAILABLE || status == HTTP_GATEWAY_TIMEOUT ? SRV_LOG_WARN
                       : status >= HTTP_INTERNAL_ERROR                              ? SRV_LOG_ERROR
                                                                                    : SRV_LOG_INFO;
    srv_logline l;
    if (!srv_log_begin(&l, lv, "request"))
        return;
    srv_log_str(&l, "id", r->id);
    srv_log_str(&l, "method",
                r->method == SRV_METHOD_GET    ? "GET"
                : r->method == SRV_METHOD_HEAD ? "HEAD"
                : r->method == SRV_METHOD_POST ? "POST"
                                               : "other");
    srv_log_str(&l, "path", r->path);
    srv_log_str(&l, "route", srv_route_name(r->route));
    if (r->model >= 0)
        srv_log_str(&l, "model", r->srv->names[r->model]);
    srv_log_int(&l, "status", status);
    srv_log_int(&l, "bytes_in", (long long)r->body_len);
    srv_log_num(&l, "ms", ms);
    if (r->route == SRV_ROUTE_INFER || r->route == SRV_ROUTE_CLASSIFY) {
        srv_log_num(&l, "queue_ms", r->queue_ms);
        srv_log_num(&l, "decode_ms", r->decode_ms);
        srv_log_num(&l, "compute_ms", r->compute_ms);
    }
    if (r->reply.error[0])
        srv_log_str(&l, "error", r->reply.error);
    srv_log_end(&l);
}

/* Queue the slot's reply on its connection. */
static enum MHD_Result send_reply(srv_http *h, http_slot *slot)
{
    srv_request *r = &slot->req;
    srv_reply *rp = &r->reply;
    struct MHD_Response *resp;
    if (rp->body) {
        resp = MHD_create_response_from_buffer_with_free_callback_cls(rp->len, rp->body, free,
                                                                      rp->body);
        if (resp)
            rp->body = NULL; /* libmicrohttpd frees it with the response */
    } else {
        /* Only an out-of-memory path leaves an answer without a body. */
        resp = MHD_create_response_from_buffer(sizeof oom_body - 1, (void *)oom_body,
                                               MHD_RESPMEM_PERSISTENT);
        rp->status = HTTP_INTERNAL_ERROR;
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            rp->content_type ? rp->content_type : "application/json");
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (rp->retry_after_s > 0) {
        char v[RETRY_AFTER_MAX_DIGITS];
        snprintf(v, sizeof v, "%d", rp->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (rp->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rp->allow);
    if (rp->auth_challenge)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"onespike\"");
    /* While draining, tell keep-alive clients not to send more on this connection. */
    if (atomic_load(&h->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(slot->conn, (unsigned)rp->status, resp);
    MHD_destroy_response(resp);
    slot->answered = true;
    srv_metrics_count(h->srv->metrics, r->route, rp->status);
    log_request(slot, rp->status, (double)(os_clock_ns() - r->t_start_ns) / 1e6);
    return ret;
}

/* A worker finished (or the pool cancelled) the request: wake the connection up. Called on the
 * worker's thread; the reply is complete before this, and resume publishes it. */
static void on_worker_done(srv_request *r)
{
    http_slot *slot = (http_slot *)(void *)r;
    MHD_resume_connection(slot->conn);
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static enum MHD_Result begin(srv_http *h, struct MHD_Connection *c, const char *url,
                             const char *method, void **con_cls)
{
    http_slot *slot = slot_take(h);
    if (!slot) /* cannot happen with one slot per allowed connection; answer anyway */
        return MHD_queue_response(c, HTTP_UNAVAILABLE, h->busy);
    *con_cls = slot;
    slot->conn = c;
    srv_request *r = &slot->req;
    r->srv = h->srv;
    r->complete = on_worker_done;
    atomic_fetch_add(&h->active, 1);
    srv_metrics_inflight_add(h->srv->metrics, 1);
    srv_request_head hd = {
        .method = method,
        .path = url,
        .content_length = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH),
        .transfer_encoding = header(c, MHD_HTTP_HEADER_TRANSFER_ENCODING),
        .content_type = header(c, MHD_HTTP_HEADER_CONTENT_TYPE),
        .authorization = header(c, MHD_HTTP_HEADER_AUTHORIZATION),
        .request_id = header(c, "X-Request-Id"),
        .top_k = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "top_k"),
    };
    srv_routes_begin(h->srv, r, &hd);
    if (!r->reply.status && r->body_expected && !(r->body = malloc(r->body_expected)))
        srv_reply_error(&r->reply, HTTP_INTERNAL_ERROR, "no memory for a body of %zu bytes",
                        r->body_expected);
    /* An answer decided from the head goes out now only if a body is on its way (then it is not
     * read, and libmicrohttpd closes the connection after answering). Without a body, the next
     * call comes at once and answering there keeps the connection alive. */
    bool body_follows =
        hd.transfer_encoding ||
        (hd.content_length && strspn(hd.content_length, "0") != strlen(hd.content_length));
    if (r->reply.status && body_follows)
        return send_reply(h, slot);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    srv_http *h = cls;
    http_slot *slot = *con_cls;
    (void)version;
    if (!slot)
        return begin(h, c, url, method, con_cls);
    srv_request *r = &slot->req;
    if (slot->answered) { /* answered early: drop whatever body still arrives */
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->reply.status) /* resumed by the worker with its answer */
        return send_reply(h, slot);
    if (*upload_size) {
        /* libmicrohttpd never delivers more than Content-Length, which was checked. */
        size_t n = *upload_size;
        if (n > r->body_expected - r->body_len)
            return MHD_NO;
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        *upload_size = 0;
        return MHD_YES;
    }
    if (!srv_routes_finish(h->srv, r))
        return send_reply(h, slot);
    /* Suspend before submitting: the worker may resume the connection at any moment after. */
    MHD_suspend_connection(c);
    srv_submit_result sr = srv_pool_submit(h->srv->pool, &r->job);
    if (sr != SRV_SUBMIT_OK) {
        if (sr == SRV_SUBMIT_FULL)
            srv_reply_error(&r->reply, HTTP_UNAVAILABLE,
                            "server busy: the queue of %d requests is full, retry later",
                            srv_pool_capacity(h->srv->pool));
        else
            srv_reply_error(&r->reply, HTTP_UNAVAILABLE, "server is shutting down (draining)");
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    srv_http *h = cls;
    http_slot *slot = *con_cls;
    (void)c;
    if (!slot)
        return;
    if (!slot->answered) { /* the client went away (or timed out) before an answer was queued */
        srv_reply_clear(&slot->req.reply);
        snprintf(slot->req.reply.error, sizeof slot->req.reply.error,
                 "connection closed before the answer (%s)",
                 toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED   ? "timeout"
                 : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                                                                 : "client closed");
        srv_metrics_count(h->srv->metrics, slot->req.route, HTTP_CLIENT_CLOSED);
        log_request(slot, HTTP_CLIENT_CLOSED, (double)(os_clock_ns() - slot->req.t_start_ns) / 1e6);
    }
    *con_cls = NULL;
    slot_put(h, slot);
    srv_metrics_inflight_add(h->srv->metrics, -1);
    atomic_fetch_sub(&h->active, 1);
}

/* libmicrohttpd's own messages become log lines. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[MHD_LOG_MAX];
    (void)cls;
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" /* the format is libmicrohttpd's */
#endif
    vsnprintf(msg, sizeof msg, fmt, ap);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    srv_log_detail(SRV_LOG_WARN, "libmicrohttpd", "%s", msg);
}

static os_status open_listener(const char *addr, int port, int *fd_out, int *family,
                               int *bound_port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        sl = sizeof *v4;
    } else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        sl = sizeof *v6;
    } else {
        return os_fail(OS_EINVAL, "--listen \"%s\": not an IPv4 or IPv6 address", addr);
    }
    *family = ss.ss_family;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return os_fail(OS_EIO, "cannot create a socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, SOMAXCONN)) {
        int e = errno;
        close(fd);
        return os_fail(OS_EIO, "cannot listen on %s port %d: %s", addr, port, strerror(e));
    }
    sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    *fd_out = fd;
    return OS_OK;
}

os_status srv_http_start(srv_server *s, srv_http **out)
{
    const srv_config *cfg = s->cfg;
    os_status st = OS_OK;
    int family = AF_INET;
    *out = NULL;
    srv_http *h = calloc(1, sizeof *h);
    if (!h)
        return os_fail(OS_ENOMEM, "no memory for the HTTP server");
    h->srv = s;
    h->listen_fd = -1;
    pthread_mutex_init(&h->mu, NULL);
    h->n_slots = cfg->max_conns + SLOT_MARGIN;
    h->slots = calloc((size_t)h->n_slots, sizeof *h->slots);
    h->busy = MHD_create_response_from_buffer(sizeof busy_body - 1, (void *)busy_body,
                                              MHD_RESPMEM_PERSISTENT);
    if (!h->slots || !h->busy) {
        st = os_fail(OS_ENOMEM, "no memory for %d connection slots", h->n_slots);
        goto out;
    }
    MHD_add_response_header(h->busy, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(h->busy, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    for (int i = h->n_slots - 1; i >= 0; i--) {
        h->slots[i].next_free = h->free_list;
        h->free_list = &h->slots[i];
    }
    if ((st = open_listener(cfg->listen, cfg->port, &h->listen_fd, &family, &h->port)))
        goto out;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
                                 on_mhd_log, h, MHD_OPTION_LISTEN_SOCKET, h->listen_fd,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_conns,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->conn_timeout_s,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    if (!h->daemon) {
        st = os_fail(OS_EIO, "libmicrohttpd could not start on %s port %d", cfg->listen, h->port);
        goto out;
    }
out:
    if (st) {
        srv_http_stop(h);
        return st;
    }
    *out = h;
    return OS_OK;
}

int srv_http_port(const srv_http *h)
{
    return h->port;
}

void srv_http_quiesce(srv_http *h)
{
    if (h->quiesced)
        return;
    MHD_quiesce_daemon(h->daemon);
    h->quiesced = true;
    /* The socket stays open until the daemon stops (libmicrohttpd's rule), and an open
     * listening socket would still complete handshakes into its backlog, leaving clients
     * hanging until exit. Shutting it down (without closing) makes the kernel refuse them. */
    shutdown(h->listen_fd, SHUT_RDWR);
}

int srv_http_active(const srv_http *h)
{
    return atomic_load(&h->active);
}

void srv_http_stop(srv_http *h)
{
    if (!h)
        return;
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    /* libmicrohttpd closes the listening socket itself unless it was quiesced. */
    if (h->listen_fd >= 0 && (h->quiesced || !h->daemon))
        close(h->listen_fd);
    if (h->busy)
        MHD_destroy_response(h->busy);
    for (int i = 0; h->slots && i < h->n_slots; i++) {
        free(h->slots[i].req.body);
        srv_reply_clear(&h->slots[i].req.reply);
    }
    free(h->slots);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
