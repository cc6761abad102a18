/* reply.c - building answers (see reply.h). */
#include "reply.h"
#include "http_status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onespike/utf8.h"


void srv_reply_clear(srv_reply *rp)
{
    free(rp->body);
    rp->status = 0;
    rp->body = NULL, rp->len = 0;
    rp->content_type = NULL, rp->retry_after_s = 0, rp->allow = NULL;
    rp->auth_challenge = false;
    rp->error[0] = '\0';
}

void srv_reply_text(srv_reply *rp, int status, char *body, size_t len, const char *content_type)
{
    free(rp->body);
    rp->status = status;
    rp->body = body;
    rp->len = len;
    rp->content_type = content_type;
}

void srv_reply_json(srv_reply *rp, int status, json_t *j)
{
    free(rp->body);
    rp->body = NULL, rp->len = 0, rp->content_type = NULL;
    rp->status = HTTP_INTERNAL_ERROR;
    if (!j)
        return;
    size_t n = json_dumpb(j, NULL, 0, SRV_JSON_FLAGS);
    char *b = n ? malloc(n) : NULL;
    if (b && json_dumpb(j, b, n, SRV_JSON_FLAGS) == n) {
        rp->status = status;
        rp->body = b;
        rp->len = n;
    } else {
        free(b);
    }
    json_decref(j);
}

void srv_reply_error(srv_reply *rp, int status, const char *fmt, ...)
{
    char msg[SRV_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The message may quote the request (a path, a header); jansson refuses what is not strict
     * UTF-8, and a refused string here would turn a 4xx into a bodiless 500. */
    os_utf8_sanitize(msg, '?');
    srv_reply_json(rp, status, json_pack("{s:s}", "error", msg));
    if (rp->status == status)
        memcpy(rp->error, msg, sizeof msg);
    if (status == HTTP_UNAVAILABLE)
        rp->retry_after_s = SRV_RETRY_AFTER_S;
}
