/* infer.c - running classify and infer requests on a worker (see infer.h). */
#include "infer.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "b64.h"
#include "multipart.h"
#include "oip.h"
#include "onespike/clock.h"
#include "request.h"
#include "server.h"

#define HTTP_BAD_REQUEST       400
#define HTTP_UNSUPPORTED_MEDIA 415
#define HTTP_UNPROCESSABLE     422
#define HTTP_INTERNAL_ERROR    500
#define HTTP_UNAVAILABLE       503
#define HTTP_DEADLINE          504
#define HTTP_OK                200
#define NS_PER_MS              1e6
#define NS_PER_S               1e9

static srv_request *request_of(srv_job *job)
{
    return (srv_request *)(void *)((char *)job - offsetof(srv_request, job));
}

/* True (and the reply set to 504) when the request's deadline has passed. */
static bool past_deadline(srv_request *r, const char *stage)
{
    uint64_t now = os_clock_ns();
    if (now <= r->deadline_ns)
        return false;
    srv_reply_error(&r->reply, HTTP_DEADLINE,
                    "deadline of %ld ms passed %s (%.1f ms since arrival)",
                    r->srv->cfg->deadline_ms, stage, (double)(now - r->t_start_ns) / NS_PER_MS);
    return true;
}

/* Decode one image into the session's input; on failure set the reply. what names the image in
 * messages ("body", "field \"image\"", "inputs[0].data[1]"). */
static bool load_image(srv_request *r, os_session *sess, const void *img, size_t len,
                       const char *what)
{
    uint64_t t0 = os_clock_ns();
    os_errclear();
    os_status st = os_session_load_jpeg(sess, img, len);
    double secs = (double)(os_clock_ns() - t0) / NS_PER_S;
    r->decode_ms += secs * 1e3;
    srv_metrics_observe(r->srv->metrics, SRV_HIST_DECODE, r->model, secs);
    const char *d = *os_errdetail() ? os_errdetail() : os_strerror(st);
    switch (st) {
    case OS_OK: return true;
    case OS_EEMPTY: srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "%s: %s", what, d); break;
    case OS_EUNSUPPORTED:
        srv_reply_error(&r->reply, HTTP_UNSUPPORTED_MEDIA, "%s: %s", what, d);
        break;
    case OS_ECORRUPT:
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "%s: corrupt or truncated JPEG: %s", what, d);
        break;
    case OS_ETOOBIG: srv_reply_error(&r->reply, HTTP_UNPROCESSABLE, "%s: %s", what, d); break;
    default: srv_reply_error(&r->reply, HTTP_INTERNAL_ERROR, "%s: %s", what, d); break;
    }
    return false;
}

static void run_network(srv_request *r, os_session *sess, float *probs)
{
    uint64_t t0 = os_clock_ns();
    os_session_run(sess, probs, NULL);
    double secs = (double)(os_clock_ns() - t0) / NS_PER_S;
    r->compute_ms += secs * 1e3;
    srv_metrics_observe(r->srv->metrics, SRV_HIST_COMPUTE, r->model, secs);
}

static json_t *timing(const srv_request *r)
{
    return json_pack("{s:f, s:f, s:f, s:f}", "queue", r->queue_ms, "decode", r->decode_ms,
                     "compute", r->compute_ms, "total",
                     (double)(os_clock_ns() - r->t_start_ns) / NS_PER_MS);
}

static void run_classify(srv_worker *w, srv_request *r)
{
    const srv_server *s = r->srv;
    const os_model *m = s->models[r->model];
    os_session *sess = srv_worker_session(w, r->model);
    float *probs = srv_worker_probs(w);
    int *idx = srv_worker_index(w);
    const unsigned char *img = r->body;
    size_t len = r->body_len;
    const char *what = "body";
    if (r->body_kind == SRV_BODY_MULTIPART) {
        char err[SRV_ERROR_MAX];
        if (!srv_multipart_find(r->body, r->body_len, r->boundary, SRV_CLASSIFY_FIELD, &img, &len,
                                err, sizeof err)) {
            srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "%s", err);
            return;
        }
        what = "field \"" SRV_CLASSIFY_FIELD "\"";
    }
    if (!load_image(r, sess, img, len, what) || past_deadline(r, "before computing"))
        return;
    run_network(r, sess, probs);
    if (past_deadline(r, "while computing"))
        return;
    int k = os_model_classes(m);
    os_topk(probs, k, r->top_k, idx);
    json_t *preds = json_array();
    for (int j = 0; j < r->top_k; j++)
        json_array_append_new(preds,
                              json_pack("{s:s, s:i, s:f}", "label", os_model_label(m, idx[j]),
                                        "index", idx[j], "probability", (double)probs[idx[j]]));
    srv_reply_json(&r->reply, HTTP_OK,
                   json_pack("{s:s, s:s, s:s, s:o, s:o}", "model_name", s->names[r->model],
                             "model_version", os_model_version(m), "id", r->id, "predictions",
                             preds, "timing_ms", timing(r)));
}

static void run_infer(srv_worker *w, srv_request *r)
{
    const srv_server *s = r->srv;
    const os_model *m = s->models[r->model];
    os_session *sess = srv_worker_session(w, r->model);
    float *probs = srv_worker_probs(w);
    int k = os_model_classes(m);
    char err[SRV_ERROR_MAX], what[64];
    json_error_t je;
    json_t *out = NULL;
    json_t *root = json_loadb((const char *)r->body, r->body_len, 0, &je);
    if (!root) {
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "malformed JSON at line %d column %d: %s",
                        je.line, je.column, je.text);
        goto out;
    }
    srv_oip_request rq;
    if (!srv_oip_parse(root, m, &rq, err, sizeof err)) {
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "%s", err);
        goto out;
    }
    if (!(out = json_array())) {
        srv_reply_error(&r->reply, HTTP_INTERNAL_ERROR, "out of memory");
        goto out;
    }
    for (int i = 0; i < rq.batch; i++) {
        snprintf(what, sizeof what, "inputs[0].data[%d]", i);
        if (rq.kind == SRV_OIP_BYTES) {
            const char *text;
            size_t tlen, jlen = 0, bad = 0;
            srv_oip_bytes_item(&rq, i, &text, &tlen);
            /* The body has been parsed into `root`, so its buffer is free to hold the decoded
             * JPEG; it is always large enough (decoded bytes <= 3/4 of the base64 text). */
            if ((tlen / 4 + 1) * 3 > r->body_expected) {
                srv_reply_error(&r->reply, HTTP_INTERNAL_ERROR, "%s: no room to decode", what);
                goto out;
            }
            if (!srv_b64_decode(text, tlen, r->body, &jlen, &bad)) {
                srv_reply_error(&r->reply, HTTP_BAD_REQUEST,
                                "%s: invalid base64 at offset %zu of %zu", what, bad, tlen);
                goto out;
            }
            if (!load_image(r, sess, r->body, jlen, what))
                goto out;
        } else {
            srv_oip_fp32_item(&rq, i, os_session_input(sess));
        }
        if (past_deadline(r, "before computing"))
            goto out;
        run_network(r, sess, probs);
        for (int j = 0; j < k; j++)
            json_array_append_new(out, json_real((double)probs[j]));
    }
    if (past_deadline(r, "while computing"))
        goto out;
    json_t *resp = srv_oip_response(s->names[r->model], os_model_version(m), rq.id ? rq.id : r->id,
                                    rq.batch, k, out);
    out = NULL; /* taken by the response, even when it could not be built */
    if (resp)
        json_object_set_new(resp, "parameters", json_pack("{s:o}", "timing_ms", timing(r)));
    srv_reply_json(&r->reply, HTTP_OK, resp);
out:
    json_decref(out);
    json_decref(root);
}

void srv_infer_run(srv_worker *w, srv_job *job)
{
    srv_request *r = request_of(job);
    uint64_t t0 = os_clock_ns();
    r->queue_ms = (double)(t0 - job->enqueued_ns) / NS_PER_MS;
    srv_metrics_observe(r->srv->metrics, SRV_HIST_QUEUE, r->model, r->queue_ms / 1e3);
    if (!past_deadline(r, "in the queue")) {
        if (r->route == SRV_ROUTE_CLASSIFY)
            run_classify(w, r);
        else
            run_infer(w, r);
    }
    r->complete(r);
}

void srv_infer_cancel(srv_job *job)
{
    srv_request *r = request_of(job);
    srv_reply_error(&r->reply, HTTP_UNAVAILABLE,
                    "server shut down (drain time over) before this request could run");
    r->complete(r);
}
