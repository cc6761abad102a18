/* http.h - the libmicrohttpd side: listening socket, request lifecycle, suspend/resume around
 * the worker pool, sending answers, access logs and request metrics.
 *
 * A door thread accepts connections (503 at once beyond --max-conns and the health reserve),
 * holds each until its first request head is complete and checked as bytes (head.h; a bad one
 * is answered there with our JSON error), and every 100 ms enforces the head and body deadlines
 * and cuts clients that half-closed mid-request.
 * libmicrohttpd's epoll thread parses HTTP and collects bodies into buffers grown as the bytes
 * arrive, within --max-body and --body-budget. Inference requests are handed to the worker pool
 * with the connection suspended; the worker resumes it with the answer. Request and connection
 * state live in tables allocated at start-up.
 */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include "server.h"
#include "onespike/status.h"

typedef struct srv_http srv_http;

/* Bind cfg->listen:cfg->port and start serving. s is borrowed and must outlive the daemon. On
 * failure the status detail says what could not be done ("cannot bind 127.0.0.1:8080: ..."). */
os_status srv_http_start(srv_server *s, srv_http **out);

/* The bound TCP port (useful with --port 0). */
int srv_http_port(const srv_http *h);

/* Stop accepting connections: new connection attempts are refused; open ones go on. */
void srv_http_quiesce(srv_http *h);

/* Requests received and not yet fully answered. */
int srv_http_active(const srv_http *h);

/* Stop the daemon (all requests must be out of the worker pool) and free everything. NULL ok. */
void srv_http_stop(srv_http *h);

#endif
