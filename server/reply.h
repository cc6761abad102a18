/* reply.h - an HTTP answer being prepared: status, body and the few headers that depend on it.
 *
 * Bodies are JSON unless content_type says otherwise. Errors are always {"error": "..."} with a
 * message that names the problem. The body is malloc'd here and taken by http.c, which hands it
 * to libmicrohttpd without copying.
 */
#ifndef SRV_REPLY_H
#define SRV_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define SRV_JSON_FLAGS    (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))
#define SRV_RETRY_AFTER_S 1   /* Retry-After on 503: the queue turns over in well under that */
#define SRV_ERROR_MAX     512 /* bytes of an error message, at most */

typedef struct {
    int status; /* 0: not decided yet */
    char *body; /* malloc'd, or NULL (empty / out of memory, see http.c) */
    size_t len;
    const char *content_type;  /* static; NULL means application/json */
    int retry_after_s;         /* > 0: add Retry-After */
    const char *allow;         /* 405: the Allow header (static) */
    bool auth_challenge;       /* 401: add WWW-Authenticate: Bearer */
    char error[SRV_ERROR_MAX]; /* the message of an error reply, for the log; "" otherwise */
} srv_reply;

/* Set a JSON answer; takes j (decref'd here). Out of memory leaves status 500 and no body. */
void srv_reply_json(srv_reply *rp, int status, json_t *j);

/* Set {"error": message}. Bytes of the message that are not strict UTF-8 (utf8.h; they may come
 * from the request) are replaced by '?', so the answer is always JSON. 503 answers get
 * Retry-After. */
void srv_reply_error(srv_reply *rp, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Set a non-JSON answer; takes body (malloc'd). */
void srv_reply_text(srv_reply *rp, int status, char *body, size_t len, const char *content_type);

/* Free the body and forget the answer. */
void srv_reply_clear(srv_reply *rp);

#endif
