/* routes.h - the URL space of docs/DESIGN.md §4 and what each request needs.
 *
 * srv_routes_begin sees the head (method, path, headers, query) before any body byte is read, so
 * everything that can be refused early is refused there without reading the body: unknown route
 * or model (404), wrong method (405), missing token (401), no framing or too large
 * Content-Length (411/413), bad top_k or a multipart Content-Type without a usable boundary
 * (400), draining (503), a map beyond the maps allowed at once (503). GET routes are answered right there. The Content-Type header does not
 * decide the image format: the body's bytes do, so an image that is not JPEG gets its 415 from the worker
 * (infer.c) once the body is read, whatever the header claimed. srv_routes_finish runs once a
 * POST body is complete and prepares the request for the worker pool.
 */
#ifndef SRV_ROUTES_H
#define SRV_ROUTES_H

#include <stdbool.h>

#include "request.h"
#include "server.h"

/* Classify the request from its head (borrowed; its framing already checked by http.c).
 * Afterwards either r->reply.status is set (answer now, without reading the body), or the body
 * is to be collected into r->body: r->body_expected bytes (possibly 0, then the body is complete
 * at once), or with r->body_chunked, up to --max-body bytes. */
void srv_routes_begin(srv_server *s, srv_request *r, const srv_request_head *h);

/* The body is complete. Returns true when r->job is ready to be submitted to the pool; false
 * when r->reply is set (answer now). */
bool srv_routes_finish(srv_server *s, srv_request *r);

/* The request is over (answered or cut): give back what srv_routes_begin took for it (a map's
 * place). Called by http.c once per request, before its slot is reused. */
void srv_routes_release(srv_server *s, srv_request *r);

#endif
