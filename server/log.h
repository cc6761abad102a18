/* log.h - JSON-lines logs on stderr.
 *
 * One line per event: {"ts":"2024-05-01T12:00:00.123Z","level":"info","msg":"request",...}.
 * A line is assembled in a fixed buffer on the caller's stack (no allocation) and written with one
 * write(2), so lines from different threads never interleave. Values are JSON-escaped; a line
 * longer than SRV_LOG_LINE_MAX is cut and marked "truncated":true, and is still one JSON object:
 * a string value is cut between characters (never inside an escape or a UTF-8 sequence) and
 * closed, a field that does not fit is left out whole, and nothing after it is added.
 *
 *     srv_logline l;
 *     if (srv_log_begin(&l, SRV_LOG_INFO, "request")) {
 *         srv_log_str(&l, "id", id);
 *         srv_log_int(&l, "status", 200);
 *         srv_log_end(&l);
 *     }
 */
#ifndef SRV_LOG_H
#define SRV_LOG_H

#include <stdbool.h>
#include <stddef.h>

#define SRV_LOG_LINE_MAX 2048

typedef enum { SRV_LOG_DEBUG = 0, SRV_LOG_INFO, SRV_LOG_WARN, SRV_LOG_ERROR } srv_log_level;

/* Lines below min are dropped. Call once at start-up, before threads start. */
void srv_log_set_level(srv_log_level min);

/* "debug" | "info" | "warn" | "error" -> level, or -1. */
int srv_log_level_parse(const char *s);

typedef struct {
    char buf[SRV_LOG_LINE_MAX];
    size_t len;
    bool full;
} srv_logline;

/* Start a line; false (and nothing to do) when the level is filtered out. */
bool srv_log_begin(srv_logline *l, srv_log_level level, const char *msg);
/* As srv_log_begin at info level, but never filtered: for the few lifecycle lines (listening,
 * draining, drained) that operators and tests need whatever the level. */
void srv_log_begin_lifecycle(srv_logline *l, const char *msg);
void srv_log_str(srv_logline *l, const char *key, const char *val); /* NULL val: skipped */
void srv_log_int(srv_logline *l, const char *key, long long val);
void srv_log_num(srv_logline *l, const char *key, double val); /* 3 decimals; inf/nan: null */
void srv_log_bool(srv_logline *l, const char *key, bool val);
void srv_log_end(srv_logline *l); /* close and write the line */

/* A line with one formatted "detail" field: srv_log_detail(SRV_LOG_ERROR, "start-up", "%s", s). */
void srv_log_detail(srv_log_level level, const char *msg, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
