/* infer.c - running classify and infer requests on a worker (see infer.h). */
#include "infer.h"
#include "http_status.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "b64.h"
#include "oip.h"
#include "onespike/clock.h"
#include "request.h"
#include "server.h"

#define NS_PER_MS              1e6
#define NS_PER_S               1e9

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

/* True (and the reply set to 499) when the client reset its connection: nothing is run for an
 * answer nobody can read. */
static bool client_gone(srv_request *r)
{
    if (!r->gone || !r->gone(r))
        return false;
    srv_reply_error(&r->reply, HTTP_CLIENT_CLOSED,
                    "the client reset the connection before the request ran: not run");
    return true;
}

/* Decode one image into input k of the session; on failure set the reply. what names the image
 * in messages ("body", "field \"image\"", "inputs[0].data[1]"). classify takes any format
 * (raster.h), through the request's bands/scale (NULL: the model's); the OIP BYTES input is
 * JPEG only (jpeg_only). */
static bool load_image(srv_request *r, os_session *sess, int k, const void *img, size_t len,
                       const char *what, bool jpeg_only)
{
    uint64_t t0 = os_clock_ns();
    os_errclear();
    os_status st = jpeg_only ? os_session_load_jpeg_at(sess, k, img, len)
                             : os_session_load_image_at(sess, k, img, len,
                                                        r->raster_set ? &r->raster_in : NULL);
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
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST, "%s: corrupt or truncated image: %s", what, d);
        break;
    case OS_ETOOBIG:
    case OS_EMISMATCH: /* over a limit, or bands / data type the model cannot read */
        srv_reply_error(&r->reply, HTTP_UNPROCESSABLE, "%s: %s", what, d);
        break;
    default: srv_reply_error(&r->reply, HTTP_INTERNAL_ERROR, "%s: %s", what, d); break;
    }
    return false;
}

/* Run images 0..n-1 of the session, or (views > 1) image 0 in its test-time views, probs[0..k)
 * their mean; the compute time is every request's of the batch. */
static void run_network(srv_request *const *rs, int n_req, os_session *sess, int n, int views,
                        float *probs)
{
    uint64_t t0 = os_clock_ns();
    if (views > 1)
        (void)os_session_run_views(sess, views, probs); /* checked: routes.c, oip.c, main.c */
    else
        os_session_run_batch(sess, n, probs, NULL);
    double secs = (double)(os_clock_ns() - t0) / NS_PER_S;
    for (int j = 0; j < n_req; j++) {
        rs[j]->compute_ms += secs * 1e3;
        srv_metrics_observe(rs[j]->srv->metrics, SRV_HIST_COMPUTE, rs[j]->model, secs);
    }
}

static json_t *timing(const srv_request *r)
{
    return json_pack("{s:f, s:f, s:f, s:f}", "queue", r->queue_ms, "decode", r->decode_ms,
                     "compute", r->compute_ms, "total",
                     (double)(os_clock_ns() - r->t_start_ns) / NS_PER_MS);
}

/* A classify request's image (found by routes.c) into input k; false with the reply set if it
 * does not decode, or if the deadline passed. */
static bool classify_load(srv_request *r, os_session *sess, int k)
{
    return load_image(r, sess, k, r->image, r->image_len, r->image_what, false) &&
           !past_deadline(r, "before computing");
}

/* The answer from the class probabilities computed for the request's image. */
static void classify_answer(srv_worker *w, srv_request *r, const float *probs)
{
    if (past_deadline(r, "while computing"))
        return;
    const srv_server *s = r->srv;
    const os_model *m = s->models[r->model];
    int *idx = srv_worker_index(w);
    os_topk(probs, os_model_classes(m), r->top_k, idx);
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

/* n classify requests of one model through the network together: each is loaded, checked and
 * answered on its own (a bad image or a passed deadline is that request's error only), and the
 * images that loaded run as one batch. A request in several views runs alone (n = 1). */
static void run_classify_batch(srv_worker *w, srv_request *const *rs, int n)
{
    os_session *sess = srv_worker_session(w, rs[0]->model);
    float *probs = srv_worker_probs(w);
    const int k = os_model_classes(rs[0]->srv->models[rs[0]->model]);
    srv_request *ok[SRV_MAX_BATCH];
    int loaded = 0;
    for (int j = 0; j < n; j++)
        if (classify_load(rs[j], sess, loaded))
            ok[loaded++] = rs[j];
    if (!loaded)
        return;
    run_network(ok, loaded, sess, loaded, n == 1 ? rs[0]->views : 1, probs);
    for (int j = 0; j < loaded; j++)
        classify_answer(w, ok[j], probs + (size_t)j * k);
}

static void run_infer(srv_worker *w, srv_request *r)
{
    const srv_server *s = r->srv;
    const os_model *m = s->models[r->model];
    os_session *sess = srv_worker_session(w, r->model);
    float *probs = srv_worker_probs(w);
    int k = os_model_classes(m);
    char err[SRV_ERROR_MAX], what[64];
    json_t *out = NULL, *root = NULL;
    /* Counted before it is parsed (the tree's memory is bounded), duplicate keys refused. */
    os_status ls = srv_oip_load(r->body, r->body_len, m, &root, err, sizeof err);
    if (ls) {
        srv_reply_error(&r->reply, ls == OS_ETOOBIG ? HTTP_TOO_LARGE : HTTP_BAD_REQUEST, "%s",
                        err);
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
    /* The request's images go through the network os_session_max_batch at a time, or one at a
     * time in their test-time views (parameters.tta, else --tta). */
    const int views = rq.views ? rq.views : s->cfg->tta;
    if (views > os_session_max_batch(sess)) {
        srv_reply_error(&r->reply, HTTP_BAD_REQUEST,
                        "parameters.tta %d: this server's workers hold %d image(s) at once (the "
                        "larger of --max-batch and --tta); start it with --tta %d to allow it",
                        views, os_session_max_batch(sess), views);
        goto out;
    }
    const int mb = views > 1 ? 1 : os_session_max_batch(sess);
    for (int i0 = 0; i0 < rq.batch; i0 += mb) {
        const int nb = rq.batch - i0 < mb ? rq.batch - i0 : mb;
        for (int j = 0; j < nb; j++) {
            const int i = i0 + j;
            snprintf(what, sizeof what, "inputs[0].data[%d]", i);
            if (rq.kind == SRV_OIP_BYTES) {
                const char *text;
                size_t tlen, jlen = 0, bad = 0;
                srv_oip_bytes_item(&rq, i, &text, &tlen);
                /* The body has been parsed into `root`, so its buffer is free to hold the
                 * decoded JPEG; it is always large enough (decoded bytes <= 3/4 of the base64
                 * text). */
                if ((tlen / 4 + 1) * 3 > r->body_expected) {
                    srv_reply_error(&r->reply, HTTP_INTERNAL_ERROR, "%s: no room to decode",
                                    what);
                    goto out;
                }
                if (!srv_b64_decode(text, tlen, r->body, &jlen, &bad)) {
                    srv_reply_error(&r->reply, HTTP_BAD_REQUEST,
                                    "%s: invalid base64 at offset %zu of %zu", what, bad, tlen);
                    goto out;
                }
                if (!load_image(r, sess, j, r->body, jlen, what, true))
                    goto out;
            } else {
                srv_oip_fp32_item(&rq, i, os_session_input_at(sess, j));
            }
        }
        if (past_deadline(r, "before computing"))
            goto out;
        run_network(&r, 1, sess, nb, views, probs);
        for (int j = 0; j < nb * k; j++)
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
    srv_request *r = srv_request_of_job(job);
    uint64_t t0 = os_clock_ns();
    r->queue_ms = (double)(t0 - job->enqueued_ns) / NS_PER_MS;
    srv_metrics_observe(r->srv->metrics, SRV_HIST_QUEUE, r->model, r->queue_ms / 1e3);
    if (!past_deadline(r, "in the queue") && !client_gone(r)) {
        if (r->route == SRV_ROUTE_CLASSIFY)
            run_classify_batch(w, &r, 1);
        else
            run_infer(w, r);
    }
    r->complete(r);
}

void srv_infer_run_batch(srv_worker *w, srv_job **jobs, int n)
{
    srv_request *rs[SRV_MAX_BATCH], *live[SRV_MAX_BATCH];
    int n_live = 0;
    const uint64_t t0 = os_clock_ns();
    for (int j = 0; j < n; j++) {
        srv_request *r = rs[j] = srv_request_of_job(jobs[j]);
        r->queue_ms = (double)(t0 - jobs[j]->enqueued_ns) / NS_PER_MS;
        srv_metrics_observe(r->srv->metrics, SRV_HIST_QUEUE, r->model, r->queue_ms / 1e3);
        if (!past_deadline(r, "in the queue") && !client_gone(r))
            live[n_live++] = r;
    }
    if (n_live)
        run_classify_batch(w, live, n_live);
    for (int j = 0; j < n; j++)
        rs[j]->complete(rs[j]);
}

void srv_infer_cancel(srv_job *job)
{
    srv_request *r = srv_request_of_job(job);
    srv_reply_error(&r->reply, HTTP_UNAVAILABLE,
                    "server shut down (drain time over) before this request could run");
    r->complete(r);
}
