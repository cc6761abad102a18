/* log.c - JSON lines on stderr, assembled on the stack (see log.h). */
#include "log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "onespike/utf8.h"

/* Room kept at the end of the buffer for what closes a cut line: the quote of the string being
 * cut, `,"truncated":true`, `}` and the newline (1 + 17 + 2 bytes, with room to spare). */
#define LOG_TAIL_RESERVE 24

static srv_log_level log_min = SRV_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void srv_log_set_level(srv_log_level min)
{
    log_min = min;
}

int srv_log_level_parse(const char *s)
{
    for (int i = 0; i <= SRV_LOG_ERROR; i++)
        if (!strcmp(s, level_names[i]))
            return i;
    return -1;
}

/* Append n bytes whole or not at all: a cut never splits an escape or a UTF-8 sequence. Once
 * something did not fit the line is full and nothing more is added, so what the line holds is
 * a prefix of what was logged. */
static bool put_raw(srv_logline *l, const char *s, size_t n)
{
    size_t cap = SRV_LOG_LINE_MAX - LOG_TAIL_RESERVE;
    if (l->full || l->len > cap || n > cap - l->len) {
        l->full = true;
        return false;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

/* A JSON string. Cut short when the line fills, but always closed: the closing quote goes into
 * the reserved tail. False (nothing written) when not even the opening quote fits. */
static bool put_escaped(srv_logline *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (!put_raw(l, "\"", 1))
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p && !l->full; p++) {
        char e[6];
        switch (*p) {
        case '"': put_raw(l, "\\\"", 2); break;
        case '\\': put_raw(l, "\\\\", 2); break;
        case '\n': put_raw(l, "\\n", 2); break;
        case '\r': put_raw(l, "\\r", 2); break;
        case '\t': put_raw(l, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                memcpy(e, "\\u00", 4);
                e[4] = hex[*p >> 4], e[5] = hex[*p & 15];
                put_raw(l, e, 6);
            } else if (*p < 0x80) {
                put_raw(l, (const char *)p, 1);
            } else {
                /* Logs must stay valid JSON: bytes that are not strict UTF-8 become U+FFFD. */
                size_t n = os_utf8_seq((const char *)p);
                if (n)
                    put_raw(l, (const char *)p, n), p += n - 1;
                else
                    put_raw(l, "\\ufffd", 6);
            }
        }
    }
    if (!put_raw(l, "\"", 1))
        l->buf[l->len++] = '"'; /* the line is full now; the quote fits in LOG_TAIL_RESERVE */
    return true;
}

/* `,"key":`, or nothing if it does not fit whole (the caller then drops the value too). */
static bool put_key(srv_logline *l, const char *key)
{
    size_t mark = l->len;
    if (put_raw(l, ",", 1) && put_escaped(l, key) && !l->full && put_raw(l, ":", 1))
        return true;
    l->len = mark;
    l->full = true;
    return false;
}

/* A key and a value that is not a string (number, boolean): both or neither. */
static void put_field(srv_logline *l, const char *key, const char *val, size_t n)
{
    size_t mark = l->len;
    if (put_key(l, key) && !put_raw(l, val, n))
        l->len = mark;
}

static void begin_line(srv_logline *l, srv_log_level level, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    l->full = false;
    int n = snprintf(l->buf, SRV_LOG_LINE_MAX, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000);
    l->len = n > 0 ? (size_t)n : 0;
    put_raw(l, "\"level\":", 8);
    put_escaped(l, level_names[level]);
    put_key(l, "msg");
    put_escaped(l, msg);
}

bool srv_log_begin(srv_logline *l, srv_log_level level, const char *msg)
{
    if (level < log_min)
        return false;
    begin_line(l, level, msg);
    return true;
}

void srv_log_begin_lifecycle(srv_logline *l, const char *msg)
{
    begin_line(l, SRV_LOG_INFO, msg);
}

void srv_log_str(srv_logline *l, const char *key, const char *val)
{
    if (!val)
        return;
    size_t mark = l->len;
    /* The value may be cut (and is then closed); a key without any value is taken back. */
    if (put_key(l, key) && !put_escaped(l, val))
        l->len = mark;
}

void srv_log_int(srv_logline *l, const char *key, long long val)
{
    char b[32];
    int n = snprintf(b, sizeof b, "%lld", val);
    put_field(l, key, b, (size_t)n);
}

void srv_log_num(srv_logline *l, const char *key, double val)
{
    char b[64];
    /* JSON has no inf or nan; a non-finite timing would make the line unparseable. */
    int n = isfinite(val) ? snprintf(b, sizeof b, "%.3f", val) : snprintf(b, sizeof b, "null");
    put_field(l, key, b, (size_t)n);
}

void srv_log_bool(srv_logline *l, const char *key, bool val)
{
    put_field(l, key, val ? "true" : "false", val ? 4 : 5);
}

void srv_log_end(srv_logline *l)
{
    static const char trunc[] = ",\"truncated\":true";
    if (l->full) {
        memcpy(l->buf + l->len, trunc, sizeof trunc - 1);
        l->len += sizeof trunc - 1;
    }
    l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    /* One write per line: lines of different threads stay whole. A failed log write has
     * nowhere to be reported. */
    ssize_t w = write(STDERR_FILENO, l->buf, l->len);
    (void)w;
}

void srv_log_detail(srv_log_level level, const char *msg, const char *fmt, ...)
{
    srv_logline l;
    char detail[SRV_LOG_LINE_MAX / 2];
    va_list ap;
    if (!srv_log_begin(&l, level, msg))
        return;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    srv_log_str(&l, "detail", detail);
    srv_log_end(&l);
}
