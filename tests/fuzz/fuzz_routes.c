/* fuzz_routes.c - libFuzzer harness: a request head as the routes see it (srv_routes_begin:
 * path matching, model and version lookup, method, bearer token, Content-Length and
 * Transfer-Encoding, top_k query, Content-Type and multipart boundary), then srv_routes_finish
 * with the rest of the input as the body, against a real server context (one tiny model, one
 * worker, metrics, a token). Nothing is submitted to the pool: running a job is the JPEG, OIP
 * and multipart harnesses' business.
 *
 * Input: up to 8 lines (method, path, Content-Length, Transfer-Encoding, Content-Type,
 * Authorization, X-Request-Id, top_k), each "\n"-terminated; a line that is exactly "-" stands
 * for an absent header; what follows the eighth line is the body. Not covered here:
 * libmicrohttpd's own parsing of the request line, headers and query string, and http.c's
 * framing (they need a connection). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "routes.h"
#include "server.h"

#ifndef FUZZ_MODEL
#error "build with -DFUZZ_MODEL=\"/abs/path/model.safetensors\""
#endif

enum { FUZZ_FIELDS = 8, FUZZ_FIELD_MAX = 4096 };
#define FUZZ_TOKEN "s3cret-token"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static srv_server *server_once(void)
{
    static srv_server s;
    static srv_config cfg;
    static os_model *model;
    static const char *versions[1]; /* the metrics borrow it for good */
    if (model)
        return &s;
    char *argv[] = {"onespike-serve", "--model", "tiny=" FUZZ_MODEL, NULL};
    if (srv_config_parse(3, argv, &cfg) != SRV_CONFIG_RUN || os_model_load(FUZZ_MODEL, &model))
        abort();
    s.cfg = &cfg;
    s.models[0] = model;
    s.names[0] = "tiny";
    s.n_models = 1;
    versions[0] = os_model_version(model);
    srv_pool_opts po = {.workers = 1, .queue = 1, .max_pixels = cfg.max_pixels};
    if (srv_pool_create(s.models, 1, &po, &s.pool) ||
        srv_metrics_create(s.names, versions, 1, &s.metrics))
        abort();
    atomic_init(&s.draining, false);
    atomic_init(&s.maps_active, 0);
    s.maps_max = 1;
    strcpy(s.token, FUZZ_TOKEN);
    s.token_len = strlen(FUZZ_TOKEN);
    return &s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    srv_server *s = server_once();
    char *fields[FUZZ_FIELDS] = {0};
    size_t at = 0;
    for (int i = 0; i < FUZZ_FIELDS && at < size; i++) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t n = nl ? (size_t)(nl - (data + at)) : size - at;
        if (n > FUZZ_FIELD_MAX)
            n = FUZZ_FIELD_MAX;
        /* libmicrohttpd hands over NUL-terminated strings: a NUL ends the value. */
        fields[i] = strndup((const char *)data + at, n);
        if (!fields[i])
            abort();
        if (!strcmp(fields[i], "-")) {
            free(fields[i]);
            fields[i] = NULL;
        }
        at += n + (nl ? 1 : 0);
        if (!nl)
            at = size;
    }
    /* Every request has a method and a path. */
    srv_request_head h = {.method = fields[0] ? fields[0] : "GET",
                          .path = fields[1] ? fields[1] : "/",
                          .content_length = fields[2],
                          .transfer_encoding = fields[3],
                          .content_type = fields[4],
                          .authorization = fields[5],
                          .request_id = fields[6],
                          .top_k = fields[7]};
    srv_request *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->srv = s;
    srv_routes_begin(s, r, &h);
    if (!r->reply.status) {
        /* The body is what the connection would have read, up to the expected length. */
        size_t have = size - at < r->body_expected ? size - at : r->body_expected;
        r->body = malloc(have ? have : 1);
        if (!r->body)
            abort();
        memcpy(r->body, data + at, have);
        r->body_len = have;
        if (srv_routes_finish(s, r) && (!r->job.run || r->model < 0))
            abort(); /* a job ready for the pool must name its handler and its model */
        free(r->body);
    }
    if (r->reply.status && (r->reply.status < 100 || r->reply.status > 599))
        abort();
    srv_reply_clear(&r->reply);
    srv_routes_release(s, r); /* a map's place, as http.c gives it back */
    free(r);
    for (int i = 0; i < FUZZ_FIELDS; i++)
        free(fields[i]);
    return 0;
}
