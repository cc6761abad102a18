/* http.c - libmicrohttpd glue (see http.h). */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "http.h"
#include "http_status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "head.h"
#include "log.h"
#include "onespike/clock.h"
#include "request.h"
#include "routes.h"

#define RETRY_AFTER_MAX_DIGITS 16
#define MHD_LOG_MAX            512
#define RAW_ANSWER_MAX         1024
/* Slots beyond the connection limit: a closing connection's slot may come back just after a
 * new connection's request begins. */
#define SLOT_MARGIN 16
/* Table entries, at least, beyond the places for connections on their way out (see srv_http). */
#define DYING_MIN 16
/* The door thread's period: how late a deadline or a half-closed client can be noticed. */
#define TICK_MS   100
#define NS_PER_MS 1000000ull
#define TICK_NS   (TICK_MS * NS_PER_MS)
/* A request head takes longer than this only when the client trickles it (clients send a head in
 * one write): such a head is cut at once in the health reserve (a place kept for probes), and
 * when every ordinary place is taken a later head this slow, or a keep-alive connection idle this
 * long, gives its place to a new connection (--header-timeout is for a server with room). */
#define QUICK_HEAD_NS (1000 * NS_PER_MS)
/* When every ordinary place is taken, a new connection takes the place of the accepted one that
 * has waited longest for its first head, if it has waited this long. Oldest first is what
 * protects a client whose head is in flight: every connection that came before it must go
 * first. This floor keeps a connection from being cut between its connect and its first write
 * (a slowloris that reconnects in bursts held a quarter of the probes off with a 250 ms floor,
 * none with this one). */
#define FIRST_HEAD_GRACE_NS (10 * NS_PER_MS)
/* When every place is taken and no head can give one up, a body arriving more slowly than this on
 * average since its head (bytes a second), after QUICK_HEAD_NS, is answered 408 and gives its
 * place (the slowest first). 32 kbit/s: any real uplink is faster; a slow-body attack is not. */
#define BODY_MIN_RATE 4096
/* An answer sent outside libmicrohttpd (408, 413 mid-body, budget 503, a bad first head) closes
 * our side for writing and then reads and drops what the client still sends for this long, so
 * the client reads the answer instead of a reset; then the connection is cut. */
#define LINGER_NS (2000ull * 1000000ull)
/* The linger of a body answered 408 to give its place: short, as a connection lingering holds a
 * table entry, and evictions come as fast as an attacker connects (a client that reads gets the
 * 408 within this). */
#define EVICT_LINGER_NS (250ull * 1000000ull)
/* Connections answered by the door itself (over --max-conns + the health reserve, or a bad first
 * head) lingering at once, at most; beyond it such a connection is closed at once (a reset). */
#define DOOR_LINGER_MAX 64
/* Events the door thread takes from epoll per wait. */
#define DOOR_EVENTS 64
/* epoll tags of the door's own descriptors; a pending connection's is pending_tag(). */
#define TAG_WAKE   UINT64_MAX
#define TAG_LISTEN (UINT64_MAX - 1)
/* "HTTP/d.d", the version string libmicrohttpd hands over. */
#define VERSION_LEN 8
/* A client seen half-closed (CLOSE-WAIT) on this many consecutive ticks, while we still wait for
 * its head or body, has lost its slot: it cannot send the rest. Two ticks, so a request that
 * arrived complete with its FIN is not cut before libmicrohttpd read it. */
#define CLOSE_WAIT_TICKS 2
/* The first allocation of a body; it then doubles as bytes arrive, up to the request's limit. */
#define BODY_FIRST_ALLOC ((size_t)16 << 10)
#define NS_PER_S         1000000000ull

static const char oom_body[] = "{\"error\":\"out of memory\"}";
#define REFUSED_BODY "{\"error\":\"too many connections (--max-conns): retry later or elsewhere\"}"

/* Where a connection is; the door thread and libmicrohttpd's thread move it with compare and
 * swap, so exactly one of them acts on a deadline, a half-close or the end of a body. */
typedef enum {
    PH_HEAD = 0, /* waiting for (the rest of) a request head */
    PH_BODY,     /* head seen, body arriving */
    PH_WORK,     /* body complete: routed, queued, running or being answered */
    PH_DONE,     /* answered outside libmicrohttpd or cut: drop input, close */
} conn_phase;

typedef struct http_slot http_slot;

/* One accepted connection (libmicrohttpd's socket context). */
typedef struct {
    struct MHD_Connection *mc;
    int fd;
    bool used;
    bool reserved; /* admitted into the health reserve: only health routes are served */
    bool nul;      /* the request's path or query held %00 (seen while unescaping) */
    /* The request target as libmicrohttpd received it, before unescaping (libmicrohttpd's
     * thread only; see on_uri). */
    uintptr_t uri_at;
    size_t uri_len;
    bool uri_bad; /* a space or a control byte in it */
    atomic_int phase;
    _Atomic uint64_t since_ns;   /* start of the phase (monotonic) */
    _Atomic uint64_t body_bytes; /* of the body in PH_BODY, so far */
    uint64_t linger_ns;          /* PH_DONE: how long to linger (0: LINGER_NS); under conn_mu */
    http_slot *slot;           /* the current request; under conn_mu */
    int close_wait_ticks;      /* door thread only */
    uint64_t close_wait_since;
    bool cut; /* door thread only: shut down for good */
} http_conn;

struct http_slot {
    srv_request req; /* first: the slot is found from its request */
    struct MHD_Connection *conn;
    http_conn *cs;
    srv_http *http;
    http_slot *next_free;
    atomic_bool answered; /* a response has been queued or sent */
    bool close_after;     /* answer with Connection: close */
};

/* A connection answered by the door, lingering until until_ns. */
typedef struct {
    int fd;
    uint64_t until_ns;
} door_linger;

/* A connection handed to libmicrohttpd, which takes it on its own thread (on_connection): until
 * then it holds its place here, with the door's choice of place (under conn_mu). */
typedef struct {
    int fd;
    bool reserve;
} door_handover;

/* An accepted connection whose first head the door is still waiting for (door thread only). */
typedef struct {
    int fd;       /* -1: free */
    uint32_t gen; /* counts the entry's connections: an event for an earlier one is not this one's */
    uint64_t since_ns;
    uint64_t last_ns; /* when bytes last arrived (or since_ns): for --conn-timeout */
    struct sockaddr_storage ss;
    socklen_t sl;
    bool reserve; /* admitted beyond --max-conns, into the health reserve */
} door_pending;

struct srv_http {
    srv_server *srv;
    struct MHD_Daemon *daemon;
    int listen_fd;
    int port;
    atomic_bool quiesced;
    http_slot *slots;
    int n_slots;
    http_slot *free_list;
    pthread_mutex_t mu; /* free_list */
    atomic_int active;
    /* Connections: a table of n_conns, under conn_mu; open counts the accepted ones. The table
     * has room beyond the --max-conns + reserve places for connections on their way out (answered
     * outside libmicrohttpd and lingering, or cut), which hold an entry but no place. */
    http_conn *conns;
    int n_conns;
    pthread_mutex_t conn_mu;
    atomic_int open;
    _Atomic size_t body_bytes; /* allocated for bodies, all requests together */
    door_linger lingering[DOOR_LINGER_MAX];
    int n_lingering;
    /* Accepted connections waiting for their first head: n_conns entries, watched by epfd
     * (edge-triggered). They count in open like libmicrohttpd's. */
    door_pending *pending;
    atomic_int n_pending;         /* counted with the table's connections for the places */
    atomic_int n_pending_reserve; /* of them, in the health reserve */
    door_handover *handover;      /* n_handover of n_conns entries, under conn_mu */
    int n_handover;
    int epfd;
    int mhd_epfd; /* libmicrohttpd's epoll descriptor: readable when its thread has work */
    bool listen_watched;
    /* Out of descriptors: the listening socket is unwatched until the next tick, and spare_fd
     * (kept open on /dev/null) is given up to answer one client 503 instead of the backlog. */
    bool listen_paused;
    int spare_fd;
    uint64_t emfile_logged_ns;
    srv_head_limits head_lim;
    char peek[SRV_HEAD_MAX + 1]; /* the door's view of a pending connection's bytes */
    /* libmicrohttpd is the version whose in-place head layout head_error walks (see there) */
    bool mhd_layout;
    pthread_t door;
    bool door_started;
    atomic_bool stopping;
    int wake[2]; /* wakes the door thread to stop */
    char refused_answer[RAW_ANSWER_MAX];
    size_t refused_len;
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
    atomic_fetch_sub(&h->body_bytes, s->req.body_cap);
    srv_reply_clear(&s->req.reply);
    memset(&s->req, 0, offsetof(srv_request, reply));
    s->conn = NULL;
    s->cs = NULL;
    atomic_store(&s->answered, false);
    s->close_after = false;
    pthread_mutex_lock(&h->mu);
    s->next_free = h->free_list;
    h->free_list = s;
    pthread_mutex_unlock(&h->mu);
}

static const char *method_name(srv_method m)
{
    return m == SRV_METHOD_GET    ? "GET"
           : m == SRV_METHOD_HEAD ? "HEAD"
           : m == SRV_METHOD_POST ? "POST"
                                  : "other";
}

static void log_request(const http_slot *slot, int status, double ms)
{
    const srv_request *r = &slot->req;
    /* 503 and 504 are load, not faults: warnings. Other 5xx are errors. */
    srv_log_level lv = status == HTTP_UNAVAILABLE || status == HTTP_DEADLINE ? SRV_LOG_WARN
                       : status >= HTTP_INTERNAL_ERROR                              ? SRV_LOG_ERROR
                                                                                    : SRV_LOG_INFO;
    srv_logline l;
    if (!srv_log_begin(&l, lv, "request"))
        return;
    srv_log_str(&l, "id", r->id);
    srv_log_str(&l, "method", method_name(r->method));
    srv_log_str(&l, "path", r->path);
    srv_log_str(&l, "route", srv_route_name(r->route));
    if (r->model >= 0)
        srv_log_str(&l, "model", r->srv->names[r->model]);
    srv_log_int(&l, "status", status);
    srv_log_int(&l, "bytes_in", (long long)r->body_len);
    srv_log_num(&l, "ms", ms);
    if (r->route == SRV_ROUTE_INFER || r->route == SRV_ROUTE_CLASSIFY ||
        r->route == SRV_ROUTE_MAP) {
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
    /* While draining, tell keep-alive clients not to send more on this connection; a
     * connection in the probes' reserve gets one answer (its later heads would have
     * --header-timeout, not the reserve's second, and could hold the place). */
    if (atomic_load(&h->srv->draining) || (slot->cs && slot->cs->reserved))
        slot->close_after = true; /* (on_completed then frees the place at once) */
    if (slot->close_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(slot->conn, (unsigned)rp->status, resp);
    MHD_destroy_response(resp);
    atomic_store(&slot->answered, true);
    srv_metrics_count(h->srv->metrics, r->route, rp->status);
    log_request(slot, rp->status, (double)(os_clock_ns() - r->t_start_ns) / 1e6);
    return ret;
}

/* The reason phrase of the statuses the server writes on the socket itself. */
static const char *reason_phrase(int status)
{
    switch (status) {
    case HTTP_OK: return "OK";
    case HTTP_BAD_REQUEST: return "Bad Request";
    case HTTP_TIMEOUT: return "Request Timeout";
    case HTTP_TOO_LARGE: return "Content Too Large";
    case HTTP_URI_TOO_LONG: return "URI Too Long";
    case HTTP_UNSUPPORTED_MEDIA: return "Unsupported Media Type";
    case HTTP_UNPROCESSABLE: return "Unprocessable Content";
    case HTTP_FIELDS_TOO_LARGE: return "Request Header Fields Too Large";
    case HTTP_UNAVAILABLE: return "Service Unavailable";
    case HTTP_DEADLINE: return "Gateway Timeout";
    case HTTP_VERSION_NOT_SUPP: return "HTTP Version Not Supported";
    default: return "Internal Server Error";
    }
}

/* The head of an answer we write ourselves, Connection: close, into buf: its length (0 if it
 * does not fit). id: the request's, or NULL when there is none (a bad first head). */
static size_t raw_head_format(char *buf, size_t cap, int status, const char *content_type,
                              const char *id, bool retry_after, size_t body_len)
{
    int n = snprintf(buf, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n%s%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     status, reason_phrase(status), content_type, id ? "X-Request-Id: " : "",
                     id ? id : "", id ? "\r\n" : "", retry_after ? "Retry-After: 1\r\n" : "",
                     body_len);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* A whole answer with a JSON error body, Connection: close, written by us rather than by
 * libmicrohttpd: into buf, its length (0 if it does not fit). msg is ours (plain ASCII, no quotes
 * or backslashes); id is the request's, or NULL when there is no request (a bad first head). */
static size_t raw_answer_format(char *buf, size_t cap, int status, const char *msg, const char *id)
{
    char body[SRV_ERROR_MAX];
    int bn = snprintf(body, sizeof body, "{\"error\":\"%s\"}", msg);
    if (bn < 0 || (size_t)bn >= sizeof body)
        return 0;
    size_t hn = raw_head_format(buf, cap, status, "application/json", id,
                                status == HTTP_UNAVAILABLE, (size_t)bn);
    if (!hn || hn + (size_t)bn >= cap)
        return 0;
    memcpy(buf + hn, body, (size_t)bn + 1);
    return hn + (size_t)bn;
}

/* Answer on the socket itself, where libmicrohttpd 0.9.75 cannot: it queues a response only
 * right after the head or once the body is complete, and a deadline or a cap passed in the middle
 * of a body is neither. Safe because in PH_BODY libmicrohttpd writes nothing (its 100 Continue
 * went out before the first body byte). The caller moved the connection to PH_DONE; our side is
 * then shut for writing, and the input dropped until the client closes or LINGER_NS pass.
 * msg is ours (plain ASCII, no quotes). Called under conn_mu or on libmicrohttpd's thread. */
static void answer_raw(srv_http *h, http_conn *cs, http_slot *slot, int status, const char *msg)
{
    char buf[RAW_ANSWER_MAX];
    size_t n = raw_answer_format(buf, sizeof buf, status, msg, slot ? slot->req.id : NULL);
    if (n) {
        ssize_t w = send(cs->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w; /* a client that cannot take a few hundred bytes gets the close alone */
    }
    shutdown(cs->fd, SHUT_WR);
    atomic_store(&cs->since_ns, os_clock_ns());
    if (!slot)
        return;
    const srv_request *r = &slot->req;
    atomic_store(&slot->answered, true);
    srv_metrics_count(h->srv->metrics, r->route, status);
    srv_logline l;
    if (srv_log_begin(&l, status >= HTTP_INTERNAL_ERROR ? SRV_LOG_WARN : SRV_LOG_INFO, "request")) {
        srv_log_str(&l, "id", r->id);
        srv_log_str(&l, "method", method_name(r->method));
        srv_log_str(&l, "path", r->path);
        srv_log_str(&l, "route", srv_route_name(r->route));
        srv_log_int(&l, "status", status);
        srv_log_num(&l, "ms", (double)(os_clock_ns() - r->t_start_ns) / 1e6);
        srv_log_str(&l, "error", msg);
        srv_log_end(&l);
    }
}

/* The worker's answer written on the socket by us, Connection: close, for a client that has
 * already closed its side (a request sent, then shutdown(SHUT_WR), as `nc -N` does).
 * libmicrohttpd 0.9.75 reads a resumed connection before it writes, sees the end of input and
 * closes without sending the answer it was given; a client seen half-closed when the answer is
 * ready is therefore answered here, in one non-blocking send, and only when the whole answer
 * fits in the socket's free send buffer (a classify answer always does; a large infer or map
 * answer to a slow peer is left to libmicrohttpd, never cut short). True if it was answered. */
static bool answer_half_closed(http_slot *slot)
{
    http_conn *cs = slot->cs;
    srv_http *h = slot->http;
    const srv_request *r = &slot->req;
    const srv_reply *rp = &r->reply;
    char peek;
    if (!cs || !rp->body || recv(cs->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) != 0)
        return false; /* bytes to read (another request), no end seen, or nothing to send */
    char head[RAW_ANSWER_MAX];
    const size_t hn = raw_head_format(head, sizeof head, rp->status,
                                      rp->content_type ? rp->content_type : "application/json",
                                      r->id, rp->retry_after_s > 0, rp->len);
    int sndbuf = 0, queued = 0;
    socklen_t sl = sizeof sndbuf;
    if (!hn || getsockopt(cs->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) ||
        ioctl(cs->fd, SIOCOUTQ, &queued))
        return false;
    /* the kernel reports twice the usable buffer (its bookkeeping): half is what fits */
    const size_t total = hn + rp->len;
    if (queued < 0 || sndbuf / 2 < queued || total > (size_t)(sndbuf / 2 - queued))
        return false;
    char *buf = malloc(total);
    if (!buf)
        return false;
    memcpy(buf, head, hn);
    memcpy(buf + hn, rp->body, rp->len);
    /* Under conn_mu from the phase change to the shutdown, as answer_raw: the door thread,
     * seeing PH_DONE and the peer's close, would otherwise cut the socket before the send. */
    pthread_mutex_lock(&h->conn_mu);
    int expect = PH_WORK;
    const bool ours = atomic_compare_exchange_strong(&cs->phase, &expect, PH_DONE);
    ssize_t w = -1;
    if (ours) {
        w = send(cs->fd, buf, total, MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(cs->fd, SHUT_WR);
        atomic_store(&cs->since_ns, os_clock_ns());
    }
    pthread_mutex_unlock(&h->conn_mu);
    free(buf);
    if (!ours)
        return false;
    if (w != (ssize_t)total)
        srv_log_detail(SRV_LOG_WARN, "half-closed client",
                       "request %s: %zd of %zu bytes of the answer written", r->id, w, total);
    atomic_store(&slot->answered, true);
    srv_metrics_count(h->srv->metrics, r->route, rp->status);
    log_request(slot, rp->status, (double)(os_clock_ns() - r->t_start_ns) / 1e6);
    return true;
}

/* The kernel's TCP state of a socket (TCP_ESTABLISHED, TCP_CLOSE_WAIT, ...), -1 if unknown. */
static int tcp_state(int fd)
{
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    return fd >= 0 && !getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) ? ti.tcpi_state : -1;
}

/* srv_request.gone: the connection was reset (TCP_CLOSE), so its answer can reach nobody. A FIN
 * alone is CLOSE-WAIT: the client may still read (answer_half_closed), so that is not gone. */
static bool client_reset(const srv_request *r)
{
    const http_slot *slot = (const http_slot *)(const void *)r;
    srv_http *h = slot->http;
    bool gone = false;
    pthread_mutex_lock(&h->conn_mu);
    if (slot->cs)
        gone = tcp_state(slot->cs->fd) == TCP_CLOSE;
    pthread_mutex_unlock(&h->conn_mu);
    return gone;
}

/* Called on libmicrohttpd's thread just after it queued a request: with this the only connection
 * open and a core free (srv_pool_core_free), watch for work of libmicrohttpd's thread (the
 * worker resuming this connection with its answer, a new connection, bytes of another) instead
 * of going back to sleep in epoll_wait, for at most --answer-spin-us. A sleeping thread takes
 * tens of microseconds to be woken (~50 on the VMs this is measured on, whose idle cores halt),
 * and at one connection the answer waited for that wake-up; watching, the answer leaves at once.
 * Any other work ends the watch, so nothing queued behind it waits longer than one poll. */
static void watch_answer(srv_http *h)
{
    const long us = h->srv->cfg->answer_spin_us;
    if (us <= 0 || h->mhd_epfd < 0 || atomic_load(&h->open) != 1 ||
        !srv_pool_core_free(h->srv->pool))
        return;
    const uint64_t until = os_clock_ns() + (uint64_t)us * 1000u;
    struct pollfd pfd = {.fd = h->mhd_epfd, .events = POLLIN};
    for (int i = 0;; i++) {
        if (poll(&pfd, 1, 0) != 0 || atomic_load(&h->open) != 1 ||
            ((i & 15) == 15 && os_clock_ns() >= until))
            return;
        for (int k = 0; k < 8; k++)
            srv_cpu_relax();
    }
}

/* A worker finished (or the pool cancelled) the request: wake the connection up. Called on the
 * worker's thread; the reply is complete before this, and resume publishes it. */
static void on_worker_done(srv_request *r)
{
    http_slot *slot = (http_slot *)(void *)r;
    (void)answer_half_closed(slot);
    MHD_resume_connection(slot->conn);
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* What the header fields say about framing (RFC 9112 §6.3), Host, and bytes libmicrohttpd kept
 * or dropped.
 *
 * The first head of a connection was checked byte by byte at the door (head.h) before
 * libmicrohttpd saw it; a later one on a keep-alive connection goes to libmicrohttpd directly, so
 * what can be checked here is checked on every request, the first one too (where it must find
 * nothing: each request is also a test that these checks refuse no good head).
 *
 * libmicrohttpd 0.9.75 stores each field's length as the strlen of what it parsed, so a raw NUL
 * cuts a value short without a trace in the lengths (value_size == strlen(value) always). It does
 * parse the head in place, in one read buffer, in order: the request line, then each field line
 * as key, ':', whitespace, value, each line end (CRLF or LF) overwritten with zeros, and the head's
 * size (MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE) counts from the method to past the empty line.
 * Walking the fields in order, each key must start one or two bytes (a line end) after the end of
 * the previous value (or of the version), and the head must end two to four bytes (two line
 * ends) after the last: any other gap is bytes libmicrohttpd dropped from what it hands over, a
 * NUL inside a line (or a line it took for the end of the head because it began with NUL), or
 * an obs-fold it merged. Only addresses are compared; nothing outside the strings is read. A NUL
 * right before a bare LF (two zero bytes, like CRLF) cuts nothing and is not seen: harmless.
 * This walk depends on that layout, so it is done only with the version it was checked against
 * (h->mhd_layout); with another the NUL cannot be seen on keep-alive requests. */
typedef struct {
    int n_cl, n_te, n_host, n_fields;
    const char *cl, *te;
    size_t cl_len;
    bool cl_differ, bad_name, bad_value;
    bool walk;    /* check the layout */
    uintptr_t at; /* where the previous item ended in libmicrohttpd's buffer */
    bool gap;     /* bytes unaccounted for */
} head_scan;

#define LINE_END_MIN 1 /* LF */
#define LINE_END_MAX 2 /* CRLF */

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    head_scan *hs = cls;
    (void)kind;
    hs->n_fields++;
    if (!srv_head_is_token(key, key_size))
        hs->bad_name = true;
    if (!value)
        return MHD_YES;
    if (!srv_head_is_value(value, value_size))
        hs->bad_value = true;
    if (hs->walk) {
        uintptr_t k = (uintptr_t)key, v = (uintptr_t)value;
        if (k < hs->at + LINE_END_MIN || k > hs->at + LINE_END_MAX || v <= k + key_size)
            hs->gap = true;
        hs->at = v + value_size;
    }
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        if (hs->n_cl++ && (value_size != hs->cl_len || memcmp(value, hs->cl, value_size)))
            hs->cl_differ = true;
        hs->cl = value;
        hs->cl_len = value_size;
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        hs->n_te++;
        hs->te = value;
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_HOST)) {
        hs->n_host++;
    }
    return MHD_YES;
}

/* The status of a head that must be refused before anything else, with its message in msg, or 0.
 * A request whose length two parties could read differently is how requests are smuggled behind
 * a proxy: it is never guessed at. After any of these the connection is closed (the caller sets
 * close_after): a client that sent one bad head does not get to send more on it.
 *
 * On a keep-alive request libmicrohttpd answers some bad heads itself, with its HTML page, before
 * this is called: a head that does not fit its memory per connection (SRV_HEAD_MHD_MEMORY: it
 * grows its read buffer into nearly all of it; between SRV_HEAD_MAX and that, the answer is ours),
 * a request line it cannot parse (no version, a version not HTTP/d.d, HTTP/0.x or 2 and above), a
 * field line without a colon or with a NUL before it, a Content-Length that is not a number. The
 * door refuses all of these with JSON on a connection's first request. */
/* Whether a comma-separated header value (Connection) holds token, case-insensitively. */
static bool has_token(const char *value, const char *token)
{
    const size_t n = strlen(token);
    for (const char *s = value; *s;) {
        s += strspn(s, " \t,");
        size_t len = strcspn(s, " \t,");
        if (len == n && !strncasecmp(s, token, n))
            return true;
        s += len;
    }
    return false;
}

static int head_error(const srv_http *h, struct MHD_Connection *c, const http_conn *cs,
                      const char *method, const char *url, const char *version, char *msg,
                      size_t cap)
{
    head_scan hs = {.walk = h->mhd_layout && cs};
    size_t mn = strlen(method);
    /* The target's raw length: from the address libmicrohttpd parsed it at to the space before
     * the version (the unescaped url is shorter), or as on_uri saw it. */
    size_t tn = cs ? cs->uri_len : strlen(url);
    bool shape = false;
    if (hs.walk) {
        uintptr_t m = (uintptr_t)method, u = cs->uri_at, v = (uintptr_t)version;
        if (u != m + mn + 1 || (uintptr_t)url != u || v <= u)
            shape = true;
        else
            tn = (size_t)(v - 1 - u);
        hs.at = v + VERSION_LEN;
    }
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, scan_header, &hs);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    size_t head_size = ci ? ci->header_size : 0;
    if (hs.walk && ci) {
        uintptr_t end = (uintptr_t)method + head_size;
        if (end < hs.at + 2 * LINE_END_MIN || end > hs.at + 2 * LINE_END_MAX)
            hs.gap = true;
    }
    int n_params = MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, NULL, NULL);
    int n_cookies = MHD_get_connection_values_n(c, MHD_COOKIE_KIND, NULL, NULL);
    if (tn > h->head_lim.max_target || n_params > h->head_lim.max_items) {
        if (tn > h->head_lim.max_target)
            snprintf(msg, cap, "request target longer than %zu bytes", h->head_lim.max_target);
        else
            snprintf(msg, cap, "more than %d query parameters", h->head_lim.max_items);
        return HTTP_URI_TOO_LONG;
    }
    if (head_size > h->head_lim.max_head ||
        hs.n_fields + n_params + n_cookies > h->head_lim.max_items) {
        if (head_size > h->head_lim.max_head)
            snprintf(msg, cap, "request head longer than %zu bytes", h->head_lim.max_head);
        else
            snprintf(msg, cap, "more than %d header fields, query parameters and cookies together",
                     h->head_lim.max_items);
        return HTTP_FIELDS_TOO_LARGE;
    }
    /* libmicrohttpd takes HTTP/1.2 to 1.9 as 1.1; the door does not, nor does this. */
    if (strcmp(version, "HTTP/1.1") && strcmp(version, "HTTP/1.0")) {
        snprintf(msg, cap, "HTTP version not supported: HTTP/1.1 and 1.0 are");
        return HTTP_VERSION_NOT_SUPP;
    }
    const char *bad = NULL;
    if (cs && cs->uri_bad)
        bad = "space or control byte in the request target";
    else if (shape || (cs && cs->uri_at + cs->uri_len + 1 != (uintptr_t)version && hs.walk))
        bad = "NUL byte, control byte or extra space in the request line";
    else if (hs.bad_name)
        bad = "header field name is not a token (whitespace before the colon?)";
    else if (hs.bad_value)
        bad = "control byte in a header field";
    else if (hs.gap)
        bad = "NUL byte or line folding in the header fields";
    else if (cs && cs->nul)
        bad = "NUL byte (%00) in the path or query";
    else if (hs.cl_differ)
        bad = "Content-Length given twice with different values";
    else if (hs.n_te && hs.n_cl)
        bad = "both Transfer-Encoding and Content-Length: send one";
    else if (hs.n_te > 1 || (hs.n_te && strcasecmp(hs.te, "chunked")))
        bad = "Transfer-Encoding not supported: only chunked (alone) is";
    else if (hs.n_host > 1)
        bad = "more than one Host field (RFC 9112 section 3.2)";
    else if (!hs.n_host && !strcmp(version, "HTTP/1.1"))
        bad = "HTTP/1.1 request without Host (RFC 9112 section 3.2)";
    if (!bad)
        return 0;
    snprintf(msg, cap, "%s", bad);
    return HTTP_BAD_REQUEST;
}

static bool health_route(srv_route r)
{
    return r == SRV_ROUTE_LIVE || r == SRV_ROUTE_READY || r == SRV_ROUTE_MODEL_READY ||
           r == SRV_ROUTE_METRICS;
}

static http_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static enum MHD_Result begin(srv_http *h, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, void **con_cls)
{
    http_conn *cs = conn_of(c);
    int expect = PH_HEAD;
    if (cs && !atomic_compare_exchange_strong(&cs->phase, &expect, PH_WORK))
        return MHD_NO; /* the door thread cut the head off at its deadline */
    http_slot *slot = slot_take(h);
    if (!slot) /* cannot happen with one slot per allowed connection */
        return MHD_NO;
    *con_cls = slot;
    slot->conn = c;
    srv_request *r = &slot->req;
    r->srv = h->srv;
    r->complete = on_worker_done;
    r->gone = client_reset;
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
        .tta = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tta"),
        .bands = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "bands"),
        .scale = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "scale"),
        .window = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "window"),
        .window_m = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "window_m"),
        .stride = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "stride"),
        .format = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format"),
        .accept = header(c, MHD_HTTP_HEADER_ACCEPT),
    };
    char bad[SRV_HEAD_MSG_MAX];
    int bad_status = head_error(h, c, cs, method, url, version, bad, sizeof bad);
    srv_routes_begin(h->srv, r, &hd);
    if (bad_status) { /* the framing or the bytes are wrong: nothing else about the request counts
                       */
        srv_reply_clear(&r->reply);
        srv_reply_error(&r->reply, bad_status, "%s", bad);
        slot->close_after = true;
        srv_metrics_conn_refused(h->srv->metrics, SRV_REFUSE_BAD_HEAD);
    } else if (cs && cs->reserved && !health_route(r->route)) {
        srv_reply_clear(&r->reply);
        srv_reply_error(&r->reply, HTTP_UNAVAILABLE,
                        "too many connections (--max-conns %d): this one is kept for health "
                        "checks; retry later",
                        h->srv->cfg->max_conns);
        slot->close_after = true;
        srv_metrics_conn_refused(h->srv->metrics, SRV_REFUSE_MAX_CONNS);
    }
    if (cs)
        cs->nul = false;
    /* A client that asked to close (Connection: close, or HTTP/1.0 without keep-alive) gets it
     * said back, and its place is free once the answer is sent, not when libmicrohttpd gets
     * round to closing the socket. */
    const char *conn_hdr = header(c, MHD_HTTP_HEADER_CONNECTION);
    const bool http10 = version && !strcmp(version, MHD_HTTP_VERSION_1_0);
    if ((conn_hdr && has_token(conn_hdr, "close")) ||
        (http10 && !(conn_hdr && has_token(conn_hdr, "keep-alive"))))
        slot->close_after = true;
    /* An answer decided from the head goes out now only if a body is on its way (then it is not
     * read, and libmicrohttpd closes the connection after answering). Without a body, the next
     * call comes at once and answering there keeps the connection alive. */
    bool body_follows =
        hd.transfer_encoding ||
        (hd.content_length && strspn(hd.content_length, "0") != strlen(hd.content_length));
    if (cs) {
        pthread_mutex_lock(&h->conn_mu);
        slot->cs = cs;
        cs->slot = slot;
        pthread_mutex_unlock(&h->conn_mu);
        if (!r->reply.status && body_follows) {
            atomic_store(&cs->since_ns, os_clock_ns());
            atomic_store(&cs->body_bytes, 0);
            atomic_store(&cs->phase, PH_BODY);
        }
    }
    if (r->reply.status && body_follows)
        return send_reply(h, slot);
    return MHD_YES;
}

/* Make room for `more` bytes of body: doubling, within the request's limit (its Content-Length,
 * or when chunked the route's: --max-body, --map-max-body for map) and the server's body budget.
 * False with the status to answer. */
static bool body_grow(srv_http *h, srv_request *r, size_t more, int *status, const char **msg)
{
    const srv_config *cfg = h->srv->cfg;
    size_t limit = r->body_chunked ? r->body_limit : r->body_expected;
    if (more > limit - r->body_len) {
        *status = HTTP_TOO_LARGE;
        *msg = r->route == SRV_ROUTE_MAP ? "body over the limit of --map-max-body bytes"
                                         : "body over the limit of --max-body bytes";
        return false;
    }
    size_t need = r->body_len + more;
    if (need <= r->body_cap)
        return true;
    size_t cap = r->body_cap ? r->body_cap * 2 : BODY_FIRST_ALLOC;
    if (cap < need)
        cap = need;
    if (cap > limit)
        cap = limit;
    size_t grow = cap - r->body_cap;
    size_t before = atomic_fetch_add(&h->body_bytes, grow);
    if (before + grow > cfg->body_budget) {
        atomic_fetch_sub(&h->body_bytes, grow);
        *status = HTTP_UNAVAILABLE;
        *msg = "server busy: request bodies fill the memory budget (--body-budget), retry later";
        srv_metrics_conn_refused(h->srv->metrics, SRV_REFUSE_BUDGET);
        return false;
    }
    unsigned char *p = realloc(r->body, cap);
    if (!p) {
        atomic_fetch_sub(&h->body_bytes, grow);
        *status = HTTP_INTERNAL_ERROR;
        *msg = "out of memory for the request body";
        return false;
    }
    r->body = p;
    r->body_cap = cap;
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    srv_http *h = cls;
    http_slot *slot = *con_cls;
    if (!slot)
        return begin(h, c, url, method, version, con_cls);
    srv_request *r = &slot->req;
    http_conn *cs = slot->cs;
    if (cs && atomic_load(&cs->phase) == PH_DONE) { /* answered outside: drop, then close */
        if (!*upload_size)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (atomic_load(&slot->answered)) { /* answered early: drop whatever body still arrives */
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->reply.status) /* resumed by the worker with its answer */
        return send_reply(h, slot);
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        int status;
        const char *msg;
        if (!body_grow(h, r, n, &status, &msg)) {
            int expect = PH_BODY;
            if (!cs) /* not tracked (cannot happen): nothing to answer on */
                return MHD_NO;
            pthread_mutex_lock(&h->conn_mu);
            if (atomic_compare_exchange_strong(&cs->phase, &expect, PH_DONE))
                answer_raw(h, cs, slot, status, msg);
            pthread_mutex_unlock(&h->conn_mu);
            return MHD_YES;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        if (cs)
            atomic_store(&cs->body_bytes, r->body_len);
        return MHD_YES;
    }
    int expect = PH_BODY;
    if (cs && !atomic_compare_exchange_strong(&cs->phase, &expect, PH_WORK) && expect != PH_WORK)
        return MHD_NO; /* the door thread answered it at the body's deadline */
    if (r->body_chunked)
        r->body_expected = r->body_len;
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
    } else {
        watch_answer(h);
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
    http_conn *cs = slot->cs;
    if (cs) { /* from here the door thread no longer sees the request */
        pthread_mutex_lock(&h->conn_mu);
        cs->slot = NULL;
        pthread_mutex_unlock(&h->conn_mu);
        int ph = atomic_load(&cs->phase);
        /* libmicrohttpd read the client's end (or a reset) in the middle of the body before the
         * door thread saw it: the same half-close, counted once whoever moves it out of PH_BODY
         * first. (Its code is CLIENT_ABORT, READ_ERROR or WITH_ERROR depending on how the read
         * ended.) */
        if (ph == PH_BODY && toe != MHD_REQUEST_TERMINATED_TIMEOUT_REACHED &&
            toe != MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN &&
            atomic_compare_exchange_strong(&cs->phase, &ph, PH_WORK)) {
            srv_metrics_conn_cut(h->srv->metrics, SRV_CUT_HALF_CLOSE);
            ph = PH_WORK;
        }
        if (ph != PH_DONE) {
            atomic_store(&cs->since_ns, os_clock_ns());
            /* Completed: keep-alive, the next head's clock starts now. Any other end (or an
             * answer with Connection: close) closes the connection: it leaves the ordinary slots
             * now, not when libmicrohttpd gets round to closing it. */
            atomic_compare_exchange_strong(
                &cs->phase, &ph,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && !slot->close_after ? PH_HEAD
                                                                                 : PH_DONE);
        }
    }
    if (!atomic_load(&slot->answered)) { /* the client went away (or timed out) first */
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
    srv_routes_release(h->srv, &slot->req);
    slot_put(h, slot);
    srv_metrics_inflight_add(h->srv->metrics, -1);
    atomic_fetch_sub(&h->active, 1);
}

/* The ordinary places held (under conn_mu), of --max-conns: the connections the door still
 * holds for their first head, and libmicrohttpd's, but those in the health reserve and those
 * answered outside libmicrohttpd or cut (PH_DONE), which are on their way out however late their
 * close is processed, and those handed over but not yet taken. *reserve (if not NULL): the
 * places held in the reserve. */
static int places_taken(srv_http *h, int *reserve)
{
    int in_reserve = atomic_load(&h->n_pending_reserve);
    int n = atomic_load(&h->n_pending) - in_reserve;
    for (int i = 0; i < h->n_handover; i++)
        *(h->handover[i].reserve ? &in_reserve : &n) += 1;
    for (int i = 0; i < h->n_conns; i++) {
        const http_conn *cs = &h->conns[i];
        if (cs->used && atomic_load(&cs->phase) != PH_DONE)
            *(cs->reserved ? &in_reserve : &n) += 1;
    }
    if (reserve)
        *reserve = in_reserve;
    return n;
}

/* Take descriptor fd's handover entry out (under conn_mu): 1 if it was for the reserve, 0 if
 * not, -1 if there was none. */
static int handover_take(srv_http *h, int fd)
{
    for (int i = 0; i < h->n_handover; i++)
        if (h->handover[i].fd == fd) {
            int reserve = h->handover[i].reserve;
            h->handover[i] = h->handover[--h->n_handover];
            return reserve;
        }
    return -1;
}

/* Connection start and end: the table the door thread supervises. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    srv_http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        http_conn *cs = *socket_context;
        /* Every connection the door admitted ends here, tracked or not: the count the door
         * admits against must come back down for each. */
        atomic_fetch_sub(&h->open, 1);
        srv_metrics_conn_open_add(h->srv->metrics, -1);
        if (!cs)
            return;
        /* Before libmicrohttpd closes the descriptor: the door thread never touches a reused
         * one. */
        pthread_mutex_lock(&h->conn_mu);
        cs->used = false;
        cs->mc = NULL;
        cs->fd = -1;
        pthread_mutex_unlock(&h->conn_mu);
        *socket_context = NULL;
        return;
    }
    /* (onespike_connections_open counted it when the door accepted it.) */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    pthread_mutex_lock(&h->conn_mu);
    /* The door chose its place when it handed it over (a count here would also see connections
     * accepted since); one not found there (cannot happen) is counted. */
    const int fd = ci ? ci->connect_fd : -1;
    int ho = handover_take(h, fd);
    bool reserved = ho >= 0 ? ho : places_taken(h, NULL) >= h->srv->cfg->max_conns;
    http_conn *cs = NULL;
    for (int i = 0; i < h->n_conns && !cs; i++)
        if (!h->conns[i].used)
            cs = &h->conns[i];
    if (cs) {
        memset(cs, 0, sizeof *cs);
        cs->used = true;
        cs->mc = c;
        cs->fd = fd;
        cs->reserved = reserved;
        atomic_init(&cs->phase, PH_HEAD);
        atomic_init(&cs->since_ns, os_clock_ns());
    }
    pthread_mutex_unlock(&h->conn_mu);
    *socket_context = cs; /* NULL (no room, cannot happen): served, not supervised */
}

/* libmicrohttpd's view of the request target before it splits off the query and unescapes it
 * in place: its address and raw length (for 414 and the layout walk in head_error) and whether
 * it holds a space or a control byte (libmicrohttpd 0.9.75 takes "GET /a b HTTP/1.1", and a raw
 * NUL ends the string early, which head_error sees from the addresses). The answer becomes the
 * request's con_cls: NULL, which begin() expects. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    http_conn *cs = conn_of(c);
    if (cs) {
        cs->uri_at = (uintptr_t)uri;
        cs->uri_len = strlen(uri);
        cs->uri_bad = !srv_head_is_target(uri, cs->uri_len);
    }
    return NULL;
}

/* libmicrohttpd unescapes the path and each query key and value in place; a %00 would cut them
 * short where we read them as strings, so it is remembered and the request refused. */
static size_t on_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    size_t n = MHD_http_unescape(s);
    if (strlen(s) != n) {
        http_conn *cs = conn_of(c);
        if (cs)
            cs->nul = true;
    }
    return n;
}

static bool client_half_closed(int fd)
{
    return tcp_state(fd) == TCP_CLOSE_WAIT;
}

static void log_cut(const char *why, int seconds)
{
    srv_logline l;
    if (srv_log_begin(&l, SRV_LOG_WARN, "connection closed")) {
        srv_log_str(&l, "reason", why);
        if (seconds > 0)
            srv_log_int(&l, "after_s", seconds);
        srv_log_end(&l);
    }
}

/* One pass of the supervisor over the table: total deadlines (however steadily a client
 * trickles, which libmicrohttpd's idle timeout does not see), clients that closed half-way, and
 * the end of lingering. Shutting a socket down makes libmicrohttpd's next read see the end and
 * close the connection on its own thread, which frees the slot. */
static void supervise(srv_http *h)
{
    const srv_config *cfg = h->srv->cfg;
    uint64_t now = os_clock_ns();
    uint64_t head_ns = (uint64_t)cfg->header_timeout_s * NS_PER_S;
    uint64_t body_ns = (uint64_t)cfg->body_timeout_s * NS_PER_S;
    pthread_mutex_lock(&h->conn_mu);
    for (int i = 0; i < h->n_conns; i++) {
        http_conn *cs = &h->conns[i];
        if (!cs->used || cs->cut || cs->fd < 0)
            continue;
        int ph = atomic_load(&cs->phase);
        uint64_t since = atomic_load(&cs->since_ns);
        uint64_t age = now > since ? now - since : 0;
        if (ph == PH_DONE) {
            if (age > (cs->linger_ns ? cs->linger_ns : LINGER_NS) || client_half_closed(cs->fd)) {
                shutdown(cs->fd, SHUT_RDWR);
                cs->cut = true;
            }
            continue;
        }
        if (ph == PH_HEAD && age > head_ns) {
            /* Closed without an answer, as nginx does at client_header_timeout: for an idle
             * keep-alive connection, an unasked-for 408 could be read as the next answer. */
            if (atomic_compare_exchange_strong(&cs->phase, &ph, PH_DONE)) {
                shutdown(cs->fd, SHUT_RDWR);
                cs->cut = true;
                log_cut("request head not complete within --header-timeout", cfg->header_timeout_s);
                srv_metrics_conn_cut(h->srv->metrics, SRV_CUT_HEADER_TIMEOUT);
            }
            continue;
        }
        if (ph == PH_BODY && age > body_ns) {
            if (atomic_compare_exchange_strong(&cs->phase, &ph, PH_DONE)) {
                answer_raw(h, cs, cs->slot, HTTP_TIMEOUT,
                           "request body not complete within --body-timeout");
                srv_metrics_conn_cut(h->srv->metrics, SRV_CUT_BODY_TIMEOUT);
            }
            continue;
        }
        if (ph != PH_HEAD && ph != PH_BODY)
            continue;
        if (!client_half_closed(cs->fd) || cs->close_wait_since != since) {
            cs->close_wait_ticks = client_half_closed(cs->fd) ? 1 : 0;
            cs->close_wait_since = since;
            continue;
        }
        if (++cs->close_wait_ticks >= CLOSE_WAIT_TICKS &&
            atomic_compare_exchange_strong(&cs->phase, &ph, PH_DONE)) {
            shutdown(cs->fd, SHUT_RDWR);
            cs->cut = true;
            log_cut(ph == PH_HEAD ? "client closed its side in the middle of a request head"
                                  : "client closed its side in the middle of a request body",
                    0);
            srv_metrics_conn_cut(h->srv->metrics, SRV_CUT_HALF_CLOSE);
        }
    }
    pthread_mutex_unlock(&h->conn_mu);
}

/* Connections the door answered: drop what they send until they close or their time is up. */
static void linger_door(srv_http *h, uint64_t now)
{
    char sink[4096];
    int k = 0;
    for (int i = 0; i < h->n_lingering; i++) {
        door_linger *dl = &h->lingering[i];
        ssize_t n;
        while ((n = recv(dl->fd, sink, sizeof sink, MSG_DONTWAIT)) > 0)
            ;
        bool gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
        if (gone || now > dl->until_ns)
            close(dl->fd);
        else
            h->lingering[k++] = *dl;
    }
    h->n_lingering = k;
}

/* Write a whole answer on a connection the door owns, shut it for writing and let it linger (so
 * the client reads the answer, not a reset); the door closes it later. */
static void door_answer(srv_http *h, int fd, const char *answer, size_t len)
{
    if (len) {
        ssize_t w = send(fd, answer, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w; /* a client that cannot take a few hundred bytes gets the close alone */
    }
    shutdown(fd, SHUT_WR);
    if (h->n_lingering == DOOR_LINGER_MAX) {
        close(fd);
        return;
    }
    h->lingering[h->n_lingering++] = (door_linger){fd, os_clock_ns() + LINGER_NS};
}

/* Over --max-conns and the health reserve: a well-formed 503 at once, never the backlog. */
static void refuse(srv_http *h, int fd)
{
    srv_metrics_conn_refused(h->srv->metrics, SRV_REFUSE_MAX_CONNS);
    door_answer(h, fd, h->refused_answer, h->refused_len);
}

/* A pending connection's epoll tag: its entry's generation and its index, so an event is never
 * taken for a later connection in the same entry (one evicted in the middle of a batch of events
 * can leave an event behind, and its successor often gets the same descriptor and entry). */
static uint64_t pending_tag(const srv_http *h, const door_pending *p)
{
    return (uint64_t)p->gen << 32 | (uint64_t)(p - h->pending);
}

/* A pending connection leaves the door's watch (handed to libmicrohttpd, answered or closed).
 * Closing a descriptor removes it from epoll by itself, but a handed-over one stays open. */
static void pending_forget(srv_http *h, door_pending *p)
{
    epoll_ctl(h->epfd, EPOLL_CTL_DEL, p->fd, NULL);
    p->fd = -1;
    if (p->reserve)
        atomic_fetch_sub(&h->n_pending_reserve, 1);
    atomic_fetch_sub(&h->n_pending, 1);
}

/* A pending connection is gone without reaching libmicrohttpd: its place in open comes back. */
static void pending_close(srv_http *h, door_pending *p)
{
    int fd = p->fd;
    pending_forget(h, p);
    close(fd);
    atomic_fetch_sub(&h->open, 1);
    srv_metrics_conn_open_add(h->srv->metrics, -1);
}

/* The first head was refused: our JSON answer instead of libmicrohttpd's HTML page (or of a head
 * libmicrohttpd would have read differently), counted, logged, then lingering like a refusal. */
static void pending_refuse(srv_http *h, door_pending *p, const srv_head_result *r, size_t seen)
{
    char buf[RAW_ANSWER_MAX];
    size_t n = raw_answer_format(buf, sizeof buf, r->status, r->msg, NULL);
    srv_metrics_count(h->srv->metrics, SRV_ROUTE_UNKNOWN, r->status);
    srv_metrics_conn_refused(h->srv->metrics, SRV_REFUSE_BAD_HEAD);
    srv_logline l;
    if (srv_log_begin(&l, SRV_LOG_INFO, "request")) {
        srv_log_str(&l, "route", srv_route_name(SRV_ROUTE_UNKNOWN));
        srv_log_int(&l, "status", r->status);
        srv_log_int(&l, "head_bytes", (long long)seen);
        srv_log_num(&l, "ms", (double)(os_clock_ns() - p->since_ns) / 1e6);
        srv_log_str(&l, "error", r->msg);
        srv_log_end(&l);
    }
    int fd = p->fd;
    pending_forget(h, p);
    atomic_fetch_sub(&h->open, 1);
    srv_metrics_conn_open_add(h->srv->metrics, -1);
    door_answer(h, fd, buf, n);
}

/* The first head is complete and acceptable: libmicrohttpd takes the connection and reads the
 * same bytes from the kernel (the door only peeked). It stays in open until libmicrohttpd closes
 * it (on_connection). */
static void pending_admit(srv_http *h, door_pending *p)
{
    int fd = p->fd;
    pthread_mutex_lock(&h->conn_mu); /* from pending to handed over at once, for the count */
    (void)handover_take(h, fd); /* one left for this descriptor was closed since, never taken */
    h->handover[h->n_handover++] = (door_handover){fd, p->reserve};
    pending_forget(h, p);
    pthread_mutex_unlock(&h->conn_mu);
    if (MHD_add_connection(h->daemon, fd, (struct sockaddr *)&p->ss, p->sl) != MHD_YES) {
        pthread_mutex_lock(&h->conn_mu);
        (void)handover_take(h, fd);
        pthread_mutex_unlock(&h->conn_mu);
        atomic_fetch_sub(&h->open, 1); /* libmicrohttpd closed it */
        srv_metrics_conn_open_add(h->srv->metrics, -1);
    }
}

/* Look at what a pending connection has sent so far, without consuming it, and act on it:
 * admit, refuse or keep waiting. `hup`: the client closed its side (or the socket failed), so
 * an incomplete head can never complete. With edge-triggered epoll the door hears of a pending
 * connection again only when more bytes (or its end) arrive, so a client holding half a head
 * costs no wake-ups; a peek that fills the buffer always decides (head.h). */
typedef enum {
    LOOK_WAITING,  /* still pending */
    LOOK_ADMITTED, /* handed to libmicrohttpd: it keeps its place */
    LOOK_GONE,     /* refused or closed: its place is free */
} look_result;

static look_result pending_look(srv_http *h, door_pending *p, bool hup)
{
    ssize_t n = recv(p->fd, h->peek, sizeof h->peek, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
        srv_head_result r = srv_head_check(h->peek, (size_t)n, &h->head_lim);
        if (r.state == SRV_HEAD_OK) {
            pending_admit(h, p);
            return LOOK_ADMITTED;
        }
        if (r.state == SRV_HEAD_BAD) {
            pending_refuse(h, p, &r, (size_t)n);
            return LOOK_GONE;
        }
        if (!hup)
            return LOOK_WAITING;
        log_cut("client closed its side in the middle of a request head", 0);
        srv_metrics_conn_cut(h->srv->metrics, SRV_CUT_HALF_CLOSE);
        pending_close(h, p);
        return LOOK_GONE;
    }
    if (n == 0 || hup || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        pending_close(h, p); /* closed (or reset) before sending a head: nothing to answer */
        return LOOK_GONE;
    }
    return LOOK_WAITING;
}

/* Pending connections past --header-timeout are closed without an answer, as heads on
 * libmicrohttpd's side are in supervise(); those silent for --conn-timeout are closed as
 * libmicrohttpd closes its idle ones (quietly, not counted as cut). */
static void supervise_pending(srv_http *h, uint64_t now)
{
    const srv_config *cfg = h->srv->cfg;
    uint64_t head_ns = (uint64_t)cfg->header_timeout_s * NS_PER_S;
    uint64_t idle_ns = (uint64_t)cfg->conn_timeout_s * NS_PER_S;
    for (int i = 0; i < h->n_conns; i++) {
        door_pending *p = &h->pending[i];
        if (p->fd < 0)
            continue;
        if (p->reserve && now - p->since_ns > QUICK_HEAD_NS) {
            log_cut("request head not complete within 1 s in the health reserve", 1);
            srv_metrics_conn_cut(h->srv->metrics, SRV_CUT_HEADER_TIMEOUT);
            pending_close(h, p);
        } else if (now - p->since_ns > head_ns) {
            log_cut("request head not complete within --header-timeout", cfg->header_timeout_s);
            srv_metrics_conn_cut(h->srv->metrics, SRV_CUT_HEADER_TIMEOUT);
            pending_close(h, p);
        } else if (idle_ns && now - p->last_ns > idle_ns) {
            pending_close(h, p);
        }
    }
}

/* An accepted connection waits for its first head. Most clients send the whole head in one
 * write, often already there: it is looked at once before epoll, so the common case costs no
 * extra wait. Pending connections count in open, which stays under n_conns, so there is always
 * a free entry here. */
static void pending_add(srv_http *h, int fd, const struct sockaddr_storage *ss, socklen_t sl,
                        bool reserve)
{
    door_pending *p = NULL;
    for (int i = 0; i < h->n_conns && !p; i++)
        if (h->pending[i].fd < 0)
            p = &h->pending[i];
    if (!p) { /* cannot happen: open < n_conns */
        close(fd);
        atomic_fetch_sub(&h->open, 1);
        srv_metrics_conn_open_add(h->srv->metrics, -1);
        return;
    }
    uint64_t now = os_clock_ns();
    *p = (door_pending){.fd = fd, .gen = p->gen + 1, .since_ns = now, .last_ns = now,
                        .ss = *ss, .sl = sl, .reserve = reserve};
    if (reserve)
        atomic_fetch_add(&h->n_pending_reserve, 1);
    atomic_fetch_add(&h->n_pending, 1);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET,
                             .data.u64 = pending_tag(h, p)};
    /* Registered first: bytes arriving between the look below and a later registration would
     * raise no edge. An edge-triggered registration of a readable socket reports it at once. */
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev)) {
        pending_close(h, p);
        return;
    }
    pending_look(h, p, false);
}

/* accept failed for want of a descriptor (the process's or the system's limit): the listening
 * socket stays readable, so left watched it would wake the door at once, forever, while the
 * clients wait in the backlog. The spare descriptor makes room for one accept, whose client
 * gets the 503 of a full server at once; then the door stops watching the socket until the
 * next tick (supervision gives it back). */
static void out_of_descriptors(srv_http *h)
{
    const int err = errno;
    if (h->spare_fd >= 0) {
        close(h->spare_fd);
        int fd = accept4(h->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            srv_metrics_conn_refused(h->srv->metrics, SRV_REFUSE_MAX_CONNS);
            ssize_t w = send(fd, h->refused_answer, h->refused_len, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            close(fd); /* no lingering: the descriptor is the spare's */
        }
        h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    if (h->listen_watched) {
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, h->listen_fd, NULL);
        h->listen_watched = false;
        h->listen_paused = true;
    }
    uint64_t now = os_clock_ns();
    if (now - h->emfile_logged_ns >= NS_PER_S) { /* at most one line a second */
        h->emfile_logged_ns = now;
        srv_log_detail(SRV_LOG_WARN, "accept",
                       "out of file descriptors (%s) with %d connections open: new ones get "
                       "503; raise the limit (ulimit -n) or lower --max-conns",
                       strerror(err), atomic_load(&h->open));
    }
}

static void log_evicted(srv_http *h, const char *why)
{
    log_cut(why, 0);
    srv_metrics_conn_cut(h->srv->metrics, SRV_CUT_EVICTED);
}

/* Every ordinary place is taken and a connection arrives: the pending connection that has spent
 * longest on its first head, if past FIRST_HEAD_GRACE_NS, is closed; its place is free at once.
 * Each candidate is looked at first, so a head that completed since the door last looked is
 * admitted, not cut. True when a place came free. */
static bool evict_pending(srv_http *h, uint64_t now)
{
    for (;;) {
        door_pending *victim = NULL;
        for (int i = 0; i < h->n_conns; i++) {
            door_pending *p = &h->pending[i];
            if (p->fd >= 0 && !p->reserve && now - p->since_ns > FIRST_HEAD_GRACE_NS &&
                (!victim || p->since_ns < victim->since_ns))
                victim = p;
        }
        if (!victim)
            return false;
        look_result lr = pending_look(h, victim, false);
        if (lr == LOOK_GONE)
            return true; /* refused or gone while looked at */
        if (lr == LOOK_ADMITTED)
            continue; /* its head was complete: it keeps its place */
        log_evicted(h, "every place taken: the longest incomplete first head gave its place "
                       "to a new connection");
        pending_close(h, victim);
        return true;
    }
}

/* The same among libmicrohttpd's connections: the one longest in PH_HEAD (an idle keep-alive
 * connection, or a trickled later head), if past QUICK_HEAD_NS and with nothing unread (bytes
 * waiting are a request libmicrohttpd is about to read), is cut; failing that, the body arriving
 * most slowly, if under BODY_MIN_RATE after QUICK_HEAD_NS, is answered 408. The place is free
 * at once for the count of places (a cut connection holds none) but stays in open until
 * libmicrohttpd closes it. Under conn_mu. True when one gave its place. */
static bool evict_conn(srv_http *h, uint64_t now)
{
    uint64_t after = 0; /* head candidates found busy are skipped: only later ones are looked at */
    for (;;) {
        http_conn *head = NULL, *body = NULL;
        uint64_t head_since = 0;
        double body_rate = BODY_MIN_RATE;
        for (int i = 0; i < h->n_conns; i++) {
            http_conn *cs = &h->conns[i];
            int ph = cs->used && !cs->cut && cs->fd >= 0 && !cs->reserved
                         ? atomic_load(&cs->phase)
                         : PH_DONE;
            uint64_t since = atomic_load(&cs->since_ns);
            if ((ph != PH_HEAD && ph != PH_BODY) || now <= since || now - since <= QUICK_HEAD_NS)
                continue;
            if (ph == PH_HEAD && since >= after && (!head || since < head_since)) {
                head = cs, head_since = since;
            } else if (ph == PH_BODY) {
                double rate = (double)atomic_load(&cs->body_bytes) * 1e9 / (double)(now - since);
                if (rate < body_rate)
                    body = cs, body_rate = rate;
            }
        }
        int ph = PH_HEAD, unread = 0;
        if (head) {
            if ((!ioctl(head->fd, SIOCINQ, &unread) && unread > 0) ||
                !atomic_compare_exchange_strong(&head->phase, &ph, PH_DONE)) {
                after = head_since + 1;
                continue;
            }
            shutdown(head->fd, SHUT_RDWR);
            head->cut = true;
            log_evicted(h, "every place taken: the connection idle (or on one head) longest, "
                           "over 1 s, gave its place to a new connection");
            return true;
        }
        ph = PH_BODY;
        if (!body || !atomic_compare_exchange_strong(&body->phase, &ph, PH_DONE))
            return false;
        answer_raw(h, body, body->slot, HTTP_TIMEOUT,
                   "request body slower than 4 KiB/s while every connection place was taken: "
                   "retry");
        body->linger_ns = EVICT_LINGER_NS;
        log_evicted(h, "every place taken: the slowest body, under 4 KiB/s, gave its place to a "
                       "new connection");
        return true;
    }
}

static void accept_all(srv_http *h)
{
    const int max = h->srv->cfg->max_conns;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(h->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                out_of_descriptors(h);
            return; /* EAGAIN, or another transient error: tried again at the next event */
        }
        const int open = atomic_load(&h->open);
        int taken = open, in_reserve = 0;
        if (open >= max) { /* open counts connections on their way out too: count the places */
            pthread_mutex_lock(&h->conn_mu);
            taken = places_taken(h, &in_reserve);
            pthread_mutex_unlock(&h->conn_mu);
        }
        if (taken >= max && open < h->n_conns) {
            /* A slow head's or body's place for the newcomer, before the reserve or a refusal.
             * Only while the table has room for the connection cut, which holds its entry until
             * libmicrohttpd closes it. */
            uint64_t now = os_clock_ns();
            bool evicted = evict_pending(h, now);
            if (!evicted) {
                pthread_mutex_lock(&h->conn_mu);
                evicted = evict_conn(h, now);
                pthread_mutex_unlock(&h->conn_mu);
            }
            taken -= evicted;
        }
        bool reserve = taken >= max;
        if (open >= h->n_conns || (reserve && in_reserve >= SRV_HEALTH_RESERVE)) {
            refuse(h, fd);
            continue;
        }
        atomic_fetch_add(&h->open, 1);
        srv_metrics_conn_open_add(h->srv->metrics, 1);
        pending_add(h, fd, &ss, sl, reserve);
    }
}

/* The door thread: accepts (libmicrohttpd runs without a listening socket of its own, so no
 * connection ever waits unanswered in the kernel's backlog), refuses beyond the limits, holds
 * each new connection until its first head is complete and checked (head.h), and supervises the
 * open connections every TICK_MS. One epoll set: the wake pipe and the listening socket
 * level-triggered, pending connections edge-triggered (their peeked bytes stay unread, so
 * level-triggered they would wake the door at once, forever). */
static void *door_main(void *arg)
{
    srv_http *h = arg;
    struct epoll_event ev[DOOR_EVENTS];
    uint64_t supervised = 0;
    while (!atomic_load(&h->stopping)) {
        if (h->listen_watched && atomic_load(&h->quiesced)) {
            epoll_ctl(h->epfd, EPOLL_CTL_DEL, h->listen_fd, NULL);
            h->listen_watched = false;
        }
        /* Wake for events, and at the next tick at the latest (rounded up, so it is due then). */
        uint64_t now = os_clock_ns(), due = supervised + TICK_NS;
        int wait_ms = now >= due ? 0 : (int)((due - now + NS_PER_MS - 1) / NS_PER_MS);
        int n = epoll_wait(h->epfd, ev, DOOR_EVENTS, wait_ms);
        for (int i = 0; i < n; i++) {
            uint64_t tag = ev[i].data.u64;
            if (tag == TAG_WAKE)
                continue; /* stopping: seen at the top */
            if (tag == TAG_LISTEN) {
                if (!atomic_load(&h->quiesced))
                    accept_all(h);
                continue;
            }
            door_pending *p = &h->pending[(uint32_t)tag];
            /* A socket handed over or closed earlier in this batch is no longer ours. */
            if (p->fd >= 0 && pending_tag(h, p) == tag) {
                p->last_ns = os_clock_ns();
                pending_look(h, p, ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
            }
        }
        /* The rounds over every connection once per tick, not after each event: a connection now
         * wakes the door twice (accepted, then its head), and the common path should not pay for
         * a walk of the table each time. */
        now = os_clock_ns();
        if (now >= supervised + TICK_NS) {
            supervised = now;
            if (h->spare_fd < 0) /* given up and not taken back: try again */
                h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (h->listen_paused && !atomic_load(&h->quiesced)) {
                struct epoll_event le = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
                if (!epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->listen_fd, &le))
                    h->listen_watched = true, h->listen_paused = false;
            }
            linger_door(h, now);
            supervise_pending(h, now);
            supervise(h);
        }
    }
    return NULL;
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
    /* A request answered outside libmicrohttpd (by the door or a worker) ends with our handler
     * returning MHD_NO on purpose, which it reports as an application error: not a fault. */
    const bool ours = !strcmp(msg, "Application reported internal error, closing connection.");
    srv_log_detail(ours ? SRV_LOG_DEBUG : SRV_LOG_WARN, "libmicrohttpd", "%s", msg);
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
    h->epfd = -1;
    h->mhd_epfd = -1;
    h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    h->wake[0] = h->wake[1] = -1;
    h->head_lim = srv_head_default_limits();
    h->mhd_layout = !strcmp(MHD_get_version(), "0.9.75");
    if (!h->mhd_layout)
        srv_log_detail(SRV_LOG_WARN, "start-up",
                       "libmicrohttpd %s, not 0.9.75: a raw NUL in a header field of a later "
                       "request on a keep-alive connection is not detected",
                       MHD_get_version());
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->conn_mu, NULL);
    /* places, and a quarter more (at least DYING_MIN) for connections on their way out */
    h->n_conns = cfg->max_conns + SRV_HEALTH_RESERVE;
    h->n_conns += h->n_conns / 4 > DYING_MIN ? h->n_conns / 4 : DYING_MIN;
    h->n_slots = h->n_conns + SLOT_MARGIN;
    h->slots = calloc((size_t)h->n_slots, sizeof *h->slots);
    h->conns = calloc((size_t)h->n_conns, sizeof *h->conns);
    h->pending = calloc((size_t)h->n_conns, sizeof *h->pending);
    h->handover = calloc((size_t)h->n_conns, sizeof *h->handover);
    if (!h->slots || !h->conns || !h->pending || !h->handover) {
        st = os_fail(OS_ENOMEM, "no memory for %d connection slots", h->n_slots);
        goto out;
    }
    h->refused_len =
        (size_t)snprintf(h->refused_answer, sizeof h->refused_answer,
                         "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                         "Cache-Control: no-store\r\nRetry-After: %d\r\nConnection: close\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         SRV_RETRY_AFTER_S, sizeof REFUSED_BODY - 1, REFUSED_BODY);
    for (int i = h->n_slots - 1; i >= 0; i--) {
        h->slots[i].next_free = h->free_list;
        h->slots[i].http = h;
        h->free_list = &h->slots[i];
    }
    if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK)) {
        st = os_fail(OS_EIO, "cannot create a pipe: %s", strerror(errno));
        goto out;
    }
    for (int i = 0; i < h->n_conns; i++)
        h->pending[i].fd = -1;
    if ((st = open_listener(cfg->listen, cfg->port, &h->listen_fd, &family, &h->port)))
        goto out;
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event wake_ev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
    struct epoll_event listen_ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
    if (h->epfd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->wake[0], &wake_ev) ||
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->listen_fd, &listen_ev)) {
        st = os_fail(OS_EIO, "cannot set up epoll for the connection thread: %s", strerror(errno));
        goto out;
    }
    h->listen_watched = true;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* libmicrohttpd's own limit is above ours: the door thread admits, so libmicrohttpd never
     * stops reading its (absent) listening socket and never refuses on its own. */
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)h->n_slots, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->conn_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_UNESCAPE_CALLBACK, on_unescape,
        h, MHD_OPTION_URI_LOG_CALLBACK, on_uri, h, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)SRV_HEAD_MHD_MEMORY, MHD_OPTION_END);
    if (!h->daemon) {
        st = os_fail(OS_EIO, "libmicrohttpd could not start on %s port %d", cfg->listen, h->port);
        goto out;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    h->mhd_epfd = di ? di->epoll_fd : -1;
    if (pthread_create(&h->door, NULL, door_main, h)) {
        st = os_fail(OS_EIO, "cannot start the connection thread");
        goto out;
    }
    h->door_started = true;
    pthread_setname_np(h->door, "onespike-door");
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
    if (atomic_exchange(&h->quiesced, true))
        return;
    /* The door thread stops accepting at its next tick; shutting the socket down (it is closed
     * at stop) makes the kernel refuse new connections instead of queueing them. */
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
    if (h->door_started) {
        atomic_store(&h->stopping, true);
        ssize_t w = write(h->wake[1], "x", 1);
        (void)w;
        pthread_join(h->door, NULL);
    }
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    if (h->spare_fd >= 0)
        close(h->spare_fd);
    for (int i = 0; i < h->n_lingering; i++)
        close(h->lingering[i].fd);
    for (int i = 0; h->pending && i < h->n_conns; i++)
        if (h->pending[i].fd >= 0)
            close(h->pending[i].fd);
    if (h->epfd >= 0)
        close(h->epfd);
    for (int i = 0; i < 2; i++)
        if (h->wake[i] >= 0)
            close(h->wake[i]);
    for (int i = 0; h->slots && i < h->n_slots; i++) {
        free(h->slots[i].req.body);
        srv_reply_clear(&h->slots[i].req.reply);
    }
    free(h->slots);
    free(h->conns);
    free(h->pending);
    free(h->handover);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->conn_mu);
    free(h);
}
