/* head.c - request heads checked as bytes (see head.h). */
#include "head.h"
#include "http_status.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>


/* "HTTP/d.d" */
#define VERSION_LEN 8

srv_head_limits srv_head_default_limits(void)
{
    return (srv_head_limits){SRV_HEAD_MAX, SRV_HEAD_TARGET_MAX, SRV_HEAD_ITEMS_MAX};
}

static int count_parts(const char *s, size_t n, const char *seps)
{
    int k = 1;
    for (size_t i = 0; i < n; i++)
        k += s[i] && strchr(seps, s[i]) != NULL;
    return k;
}

int srv_head_query_items(const char *q, size_t n)
{
    return n ? count_parts(q, n, "&") : 0;
}

int srv_head_cookie_items(const char *v, size_t n)
{
    return count_parts(v, n, ";,"); /* an empty Cookie is one (empty) cookie there */
}

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

bool srv_head_is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return n > 0;
}

bool srv_head_is_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_ctl((unsigned char)s[i]) && s[i] != '\t')
            return false;
    return true;
}

bool srv_head_is_target(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_ctl((unsigned char)s[i]) || s[i] == ' ')
            return false;
    return true;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static srv_head_result
bad(int status, const char *fmt, ...)
{
    srv_head_result r = {.state = SRV_HEAD_BAD, .status = status};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.msg, sizeof r.msg, fmt, ap);
    va_end(ap);
    return r;
}

static const srv_head_result incomplete = {.state = SRV_HEAD_INCOMPLETE};

/* The first control byte of s[0..n) (HTAB allowed when tab_ok), or -1. */
static int first_ctl(const char *s, size_t n, bool tab_ok)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_ctl(c) && !(tab_ok && c == '\t'))
            return c;
    }
    return -1;
}

static srv_head_result bad_ctl(int c, const char *where)
{
    if (c == 0)
        return bad(HTTP_BAD_REQUEST, "NUL byte in the %s", where);
    if (c == '\r')
        return bad(HTTP_BAD_REQUEST, "CR not followed by LF in the %s", where);
    return bad(HTTP_BAD_REQUEST, "control byte 0x%02x in the %s", c, where);
}

#define SHAPE "request line is not METHOD SP target SP HTTP-version"

/* The request line s[0..n), without its line end. */
static srv_head_result request_line(const char *s, size_t n, const srv_head_limits *lim,
                                    bool *http11, int *items)
{
    int c = first_ctl(s, n, false);
    if (c >= 0)
        return bad_ctl(c, "request line");
    const char *sp1 = memchr(s, ' ', n);
    if (!sp1 || sp1 == s)
        return bad(HTTP_BAD_REQUEST, SHAPE);
    const char *t = sp1 + 1, *end = s + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    size_t tn = (size_t)((sp2 ? sp2 : end) - t);
    if (tn > lim->max_target)
        return bad(HTTP_URI_TOO_LONG, "request target longer than %zu bytes", lim->max_target);
    if (!sp2 || tn == 0)
        return bad(HTTP_BAD_REQUEST, SHAPE);
    const char *q = memchr(t, '?', tn);
    *items = q ? srv_head_query_items(q + 1, (size_t)(t + tn - q - 1)) : 0;
    if (*items > lim->max_items)
        return bad(HTTP_URI_TOO_LONG, "more than %d query parameters", lim->max_items);
    if (!srv_head_is_token(s, (size_t)(sp1 - s)))
        return bad(HTTP_BAD_REQUEST, "request method is not a token");
    const char *v = sp2 + 1;
    size_t vn = (size_t)(end - v);
    if (vn != VERSION_LEN || memcmp(v, "HTTP/", 5) || !is_digit((unsigned char)v[5]) ||
        v[6] != '.' || !is_digit((unsigned char)v[7]))
        return bad(HTTP_BAD_REQUEST, SHAPE);
    if (memcmp(v, "HTTP/1.1", VERSION_LEN) && memcmp(v, "HTTP/1.0", VERSION_LEN))
        return bad(HTTP_VERSION_NOT_SUPP, "HTTP version %.8s not supported: HTTP/1.1 and 1.0 are",
                   v);
    *http11 = v[7] == '1';
    return (srv_head_result){.state = SRV_HEAD_OK};
}

/* What the field lines said so far. */
typedef struct {
    int n_items; /* header fields, query parameters and cookies */
    int n_host;
    const char *cl; /* the first Content-Length value */
    size_t cl_len;
} fields_seen;

#define CL_NAME     "Content-Length"
#define HOST_NAME   "Host"
#define COOKIE_NAME "Cookie"

static bool name_is(const char *s, size_t n, const char *name)
{
    return n == strlen(name) && !strncasecmp(s, name, n);
}

/* Content-Length's value v[0..n) (leading whitespace skipped): 1*DIGIT within 64 bits. */
static srv_head_result content_length(const char *v, size_t n, fields_seen *fs)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)v[i] - '0';
        if (d > 9)
            return bad(HTTP_BAD_REQUEST, "Content-Length is not a number (digits only, no "
                                         "spaces or lists)");
        if (x > (UINT64_MAX - d) / 10)
            return bad(HTTP_TOO_LARGE, "Content-Length over 2^64 - 1");
        x = x * 10 + d;
    }
    if (n == 0)
        return bad(HTTP_BAD_REQUEST, "Content-Length is empty");
    /* The same value twice is one length (RFC 9110 §8.6), as http.c's head_error reads it: the
     * same bytes, so "5" and "05" differ there and here alike. */
    if (fs->cl && (fs->cl_len != n || memcmp(fs->cl, v, n)))
        return bad(HTTP_BAD_REQUEST, "Content-Length given twice with different values");
    fs->cl = v;
    fs->cl_len = n;
    return (srv_head_result){.state = SRV_HEAD_OK};
}

/* A field line s[0..n), without its line end. */
static srv_head_result field_line(const char *s, size_t n, const srv_head_limits *lim,
                                  fields_seen *fs)
{
    int c = first_ctl(s, n, true);
    if (c >= 0)
        return bad_ctl(c, "header fields");
    if (s[0] == ' ' || s[0] == '\t')
        return bad(HTTP_BAD_REQUEST, "header line starts with whitespace (obs-fold, RFC 9112 "
                                     "section 5.2): not accepted");
    const char *colon = memchr(s, ':', n);
    if (!colon)
        return bad(HTTP_BAD_REQUEST, "header line without a colon");
    size_t nn = (size_t)(colon - s);
    if (nn == 0)
        return bad(HTTP_BAD_REQUEST, "header field with an empty name");
    if (!srv_head_is_token(s, nn))
        return bad(HTTP_BAD_REQUEST,
                   memchr(s, ' ', nn) || memchr(s, '\t', nn)
                       ? "whitespace before the colon of a header field (RFC 9112 section 5.1)"
                       : "header field name is not a token");
    const char *v = colon + 1, *end = s + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    fs->n_items +=
        1 + (name_is(s, nn, COOKIE_NAME) ? srv_head_cookie_items(v, (size_t)(end - v)) : 0);
    if (fs->n_items > lim->max_items)
        return bad(HTTP_FIELDS_TOO_LARGE,
                   "more than %d header fields, query parameters and cookies together",
                   lim->max_items);
    if (name_is(s, nn, CL_NAME))
        return content_length(v, (size_t)(end - v), fs);
    if (name_is(s, nn, HOST_NAME) && ++fs->n_host > 1)
        return bad(HTTP_BAD_REQUEST, "more than one Host field (RFC 9112 section 3.2)");
    return (srv_head_result){.state = SRV_HEAD_OK};
}

/* A line not ended yet, s[0..n): only what no continuation can mend is refused. A CR at its very
 * end may be the start of CRLF. */
static srv_head_result partial_line(const char *s, size_t n, bool in_fields)
{
    if (n && s[n - 1] == '\r')
        n--;
    int c = first_ctl(s, n, in_fields);
    if (c >= 0)
        return bad_ctl(c, in_fields ? "header fields" : "request line");
    if (in_fields && n && (s[0] == ' ' || s[0] == '\t'))
        return bad(HTTP_BAD_REQUEST, "header line starts with whitespace (obs-fold, RFC 9112 "
                                     "section 5.2): not accepted");
    return incomplete;
}

srv_head_result srv_head_check(const char *buf, size_t len, const srv_head_limits *lim)
{
    size_t pos = 0;
    /* Empty lines before the request line are skipped (RFC 9112 §2.2), as libmicrohttpd does. */
    for (;;) {
        if (pos < len && buf[pos] == '\n')
            pos++;
        else if (pos + 1 < len && buf[pos] == '\r' && buf[pos + 1] == '\n')
            pos += 2;
        else
            break;
    }
    bool http11 = false, in_fields = false;
    fields_seen fs = {0};
    for (;;) {
        const char *lf = memchr(buf + pos, '\n', len - pos);
        if (!lf) {
            /* No end of this line yet: a target already over its limit or a head that cannot end
             * within its own are decided now, whatever follows. */
            if (!in_fields) {
                const char *sp1 = memchr(buf + pos, ' ', len - pos);
                if (sp1) {
                    const char *t = sp1 + 1, *end = buf + len;
                    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
                    if ((size_t)((sp2 ? sp2 : end) - t) > lim->max_target)
                        return bad(HTTP_URI_TOO_LONG, "request target longer than %zu bytes",
                                   lim->max_target);
                }
            }
            srv_head_result r = partial_line(buf + pos, len - pos, in_fields);
            if (r.state == SRV_HEAD_BAD)
                return r;
            if (len >= lim->max_head)
                return in_fields ? bad(HTTP_FIELDS_TOO_LARGE, "request head longer than %zu bytes",
                                       lim->max_head)
                                 : bad(HTTP_URI_TOO_LONG,
                                       "request line longer than the head limit of %zu bytes",
                                       lim->max_head);
            return incomplete;
        }
        size_t next = (size_t)(lf - buf) + 1, end = next - 1;
        if (end > pos && buf[end - 1] == '\r')
            end--;
        srv_head_result r;
        if (!in_fields) {
            r = request_line(buf + pos, end - pos, lim, &http11, &fs.n_items);
            in_fields = true;
        } else if (end == pos) { /* the empty line: the end of the head */
            if (next > lim->max_head)
                return bad(HTTP_FIELDS_TOO_LARGE, "request head longer than %zu bytes",
                           lim->max_head);
            if (http11 && fs.n_host == 0)
                return bad(HTTP_BAD_REQUEST, "HTTP/1.1 request without Host (RFC 9112 section "
                                             "3.2)");
            return (srv_head_result){.state = SRV_HEAD_OK, .head_len = next};
        } else {
            r = field_line(buf + pos, end - pos, lim, &fs);
        }
        if (r.state == SRV_HEAD_BAD)
            return r;
        if (next >= lim->max_head) /* the empty line still to come would pass the limit */
            return bad(HTTP_FIELDS_TOO_LARGE, "request head longer than %zu bytes", lim->max_head);
        pos = next;
    }
}
