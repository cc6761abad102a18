/* test_head.c - server/head.c: valid heads (CRLF and bare LF, leading empty lines, a body
 * behind) and every prefix of each incomplete, never refused; each kind of bad head with its
 * status; the limits exactly at and one past; messages fit in a JSON string as they are. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "head.h"

static const srv_head_limits small = {.max_head = 256, .max_target = 64, .max_items = 4};

static srv_head_result check(const char *s, size_t n, const srv_head_limits *lim)
{
    srv_head_result r = srv_head_check(s, n, lim ? lim : &(srv_head_limits){0});
    if (r.state == SRV_HEAD_BAD) {
        /* The message goes into a JSON string unescaped. */
        if (!r.msg[0])
            fail_msg("empty message");
        for (const char *p = r.msg; *p; p++)
            if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
                fail_msg("message \"%s\" has byte 0x%02x", r.msg, (unsigned char)*p);
    }
    return r;
}

/* s is a complete, acceptable head followed by `tail` bytes; every shorter prefix of the head is
 * INCOMPLETE. */
static void expect_ok_lim(const char *s, size_t n, size_t tail, const srv_head_limits *lim)
{
    for (size_t i = 0; i < n - tail; i++) {
        srv_head_result r = check(s, i, lim);
        if (r.state != SRV_HEAD_INCOMPLETE)
            fail_msg("prefix %zu of a valid head: state %d (%d %s)", i, r.state, r.status, r.msg);
    }
    for (size_t i = n - tail; i <= n; i++) {
        srv_head_result r = check(s, i, lim);
        if (r.state != SRV_HEAD_OK)
            fail_msg("%zu bytes: state %d (%d %s)", i, r.state, r.status, r.msg);
        assert_int_equal(r.head_len, n - tail);
    }
}

static const srv_head_limits *dflt(void)
{
    static srv_head_limits l;
    l = srv_head_default_limits();
    return &l;
}

#define OK(lit)         expect_ok_lim(lit, sizeof lit - 1, 0, dflt())
#define OK_TAIL(lit, t) expect_ok_lim(lit, sizeof lit - 1, t, dflt())

static void expect_bad_lim(const char *s, size_t n, int status, const char *needle,
                           const srv_head_limits *lim)
{
    srv_head_result r = check(s, n, lim);
    if (r.state != SRV_HEAD_BAD)
        fail_msg("\"%.*s\": state %d, want %d", (int)(n > 60 ? 60 : n), s, r.state, status);
    if (r.status != status || !strstr(r.msg, needle))
        fail_msg("\"%.*s\": %d \"%s\", want %d with \"%s\"", (int)(n > 60 ? 60 : n), s, r.status,
                 r.msg, status, needle);
}

#define BAD(lit, st, needle) expect_bad_lim(lit, sizeof lit - 1, st, needle, dflt())

static void test_valid_heads_and_every_prefix(void **state)
{
    (void)state;
    OK("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
    OK("GET / HTTP/1.0\r\n\r\n");                    /* HTTP/1.0: Host optional */
    OK("GET /v2/health/live HTTP/1.1\nHost: x\n\n"); /* bare LF, as libmicrohttpd takes it */
    OK("GET / HTTP/1.1\r\nHost: x\n\r\n");           /* mixed */
    OK("\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");   /* empty lines first (RFC 9112 §2.2) */
    OK("POST /v2/models/m/classify?top_k=3 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
       "Content-Type: image/jpeg\r\nContent-Length: 12345\r\nX-Request-Id: abc-1\r\n"
       "Authorization: Bearer s3cret\r\nUser-Agent: python-requests/2.28\r\n\r\n");
    OK("GET / HTTP/1.1\r\nHost:x\r\nX-Tab:\tone\ttwo\t\r\nX-Empty:\r\nX-Sp:   \r\n\r\n");
    OK("GET / HTTP/1.1\r\nHost: x\r\nX-Utf8: caf\xc3\xa9\r\nX-Obs: \x80\xff\r\n\r\n");
    OK("GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n");
    OK("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    OK("M-SEARCH! / HTTP/1.1\r\nHost: x\r\n\r\n"); /* any token is a method */
    OK("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n");
    OK("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 000\r\n\r\n");
    OK("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n");
    OK("POST / HTTP/1.1\r\nhOsT: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    /* a body (or the next request) behind the head is not the head's business */
    OK_TAIL("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 5);
    OK_TAIL("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n\0\r", 2);
}

static void test_request_line(void **state)
{
    (void)state;
    BAD("GET\r\n\r\n", 400, "METHOD SP target");
    BAD("GET /\r\nHost: x\r\n\r\n", 400, "METHOD SP target");
    BAD("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "METHOD SP target");
    BAD(" GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "METHOD SP target");
    BAD("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400, "METHOD SP target");
    BAD("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "METHOD SP target");
    BAD("GET / http/1.1\r\nHost: x\r\n\r\n", 400, "METHOD SP target");
    BAD("GET / HTTP/1.1x\r\nHost: x\r\n\r\n", 400, "METHOD SP target");
    BAD("GET / HTTP/11\r\nHost: x\r\n\r\n", 400, "METHOD SP target");
    BAD("GET / HTTP/1.\r\nHost: x\r\n\r\n", 400, "METHOD SP target");
    BAD("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "method");
    BAD("GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "control byte 0x09 in the request line");
    BAD("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0");
    BAD("GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505, "HTTP/0.9");
    BAD("GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505, "HTTP/1.2");
    BAD("GET / HTTP/9.9\r\n", 505, "not supported"); /* decided before the fields */
}

static void test_control_bytes(void **state)
{
    (void)state;
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 400, "NUL byte in the header fields");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX-A: ab\0\r\n\r\n", 400, "NUL");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX\0A: ab\r\n\r\n", 400, "NUL");
    BAD("GET / HTTP/1.1\r\nHost: x\r\n\0\r\n\r\n", 400, "NUL");
    BAD("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "NUL byte in the request line");
    BAD("G\0T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "NUL");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01"
        "b\r\n\r\n",
        400, "control byte 0x01");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n", 400, "control byte 0x7f");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x1b[0m\r\n\r\n", 400, "control byte 0x1b");
    /* a CR alone is no line end (libmicrohttpd would keep it inside the value) */
    BAD("GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400, "CR not followed by LF");
    BAD("GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", 400, "CR not followed by LF");
    BAD("GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400, "CR not followed by LF in the request line");
    /* decided at once, before the line (or the head) ends */
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0", 400, "NUL");
    BAD("GET /\0", 400, "NUL");
    BAD("\0", 400, "NUL");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb", 400, "CR not followed by LF");
}

static void test_field_lines(void **state)
{
    (void)state;
    BAD("GET / HTTP/1.1\r\nHost: x\r\nfoo\r\n\r\n", 400, "without a colon");
    BAD("GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400, "empty name");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX-A : v\r\n\r\n", 400, "whitespace before the colon");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX-A\t: v\r\n\r\n", 400, "whitespace before the colon");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX(A): v\r\n\r\n", 400, "not a token");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400, "obs-fold");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", 400, "obs-fold");
    BAD("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400, "obs-fold");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b", 400, "obs-fold"); /* before its end */
}

static void test_content_length(void **state)
{
    (void)state;
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "not a number");
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400, "empty");
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:  \r\n\r\n", 400, "empty");
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 \r\n\r\n", 400, "not a number");
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\t\r\n\r\n", 400, "not a number");
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", 400, "not a number");
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "not a number");
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400, "not a number");
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400, "not a number");
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400,
        "different values");
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\n", 400,
        "different values");
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n", 413, "2^64");
    BAD("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413,
        "2^64");
}

static void test_host(void **state)
{
    (void)state;
    BAD("GET / HTTP/1.1\r\n\r\n", 400, "without Host");
    BAD("GET / HTTP/1.1\r\nX-Host: x\r\n\r\n", 400, "without Host");
    BAD("GET / HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n", 400, "more than one Host");
    BAD("GET / HTTP/1.0\r\nHost: x\r\nHost: x\r\n\r\n", 400, "more than one Host");
}

/* A head of exactly n bytes: "GET / HTTP/1.1\r\nHost: x\r\nX-P: aaa...\r\n\r\n". */
static char *head_of(size_t n)
{
    static const char pre[] = "GET / HTTP/1.1\r\nHost: x\r\nX-P: ";
    size_t fixed = sizeof pre - 1 + 4;
    assert_true(n >= fixed);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, pre, sizeof pre - 1);
    memset(s + sizeof pre - 1, 'a', n - fixed);
    memcpy(s + n - 4, "\r\n\r\n", 4);
    s[n] = 0;
    return s;
}

static void test_head_limit_at_and_past(void **state)
{
    (void)state;
    const srv_head_limits *lims[] = {&small, dflt()};
    for (int k = 0; k < 2; k++) {
        const srv_head_limits *lim = lims[k];
        size_t max = lim->max_head;
        char *s = head_of(max);
        expect_ok_lim(s, max, 0, lim);
        free(s);
        s = head_of(max + 1);
        expect_bad_lim(s, max + 1, 431, "request head longer than", lim);
        /* decided once max bytes are in, without waiting for the end */
        expect_bad_lim(s, max, 431, "request head longer than", lim);
        srv_head_result r = check(s, max - 1, lim);
        assert_int_equal(r.state, SRV_HEAD_INCOMPLETE);
        free(s);
        /* a head ending with its last field line at the limit (no room for the empty line) */
        s = head_of(max + 2);
        expect_bad_lim(s, max, 431, "request head longer than", lim);
        free(s);
    }
    /* the request line alone passes the limit without a line end: 414 */
    char *s = malloc(small.max_head + 1);
    assert_non_null(s);
    memset(s, 'A', small.max_head);
    expect_bad_lim(s, small.max_head, 414, "request line longer", &small);
    assert_int_equal(check(s, small.max_head - 1, &small).state, SRV_HEAD_INCOMPLETE);
    memcpy(s, "GET / HTTP/1.1", 14); /* a version that never ends */
    expect_bad_lim(s, small.max_head, 414, "request line longer", &small);
    free(s);
}

/* "GET /aaa... HTTP/1.1\r\nHost: x\r\n\r\n" with a target of n bytes. */
static char *target_of(size_t n, size_t *len)
{
    char *s = malloc(n + 64);
    assert_non_null(s);
    memcpy(s, "GET ", 4);
    memset(s + 4, 'a', n);
    s[4] = '/';
    *len = 4 + n + (size_t)snprintf(s + 4 + n, 64, " HTTP/1.1\r\nHost: x\r\n\r\n");
    return s;
}

static void test_target_limit_at_and_past(void **state)
{
    (void)state;
    srv_head_limits lims[] = {small, *dflt()};
    for (int k = 0; k < 2; k++) {
        srv_head_limits lim = lims[k];
        lim.max_head = 4 * lim.max_target; /* the target, not the head, is what is too long */
        size_t len, max = lim.max_target;
        char *s = target_of(max, &len);
        expect_ok_lim(s, len, 0, &lim);
        free(s);
        s = target_of(max + 1, &len);
        expect_bad_lim(s, len, 414, "request target longer than", &lim);
        /* decided as soon as the target passes the limit, before its end */
        expect_bad_lim(s, 4 + max + 1, 414, "request target longer than", &lim);
        assert_int_equal(check(s, 4 + max, &lim).state, SRV_HEAD_INCOMPLETE);
        free(s);
    }
}

static void test_items_limit_at_and_past(void **state)
{
    (void)state;
    /* header fields, query parameters and cookies count together (libmicrohttpd's records) */
    static const char four[] = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    static const char five[] = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    expect_ok_lim(four, sizeof four - 1, 0, &small);
    expect_bad_lim(five, sizeof five - 1, 431, "more than 4 header fields, query parameters",
                   &small);
    static const char q2[] = "GET /?a=1&b HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n";
    static const char q3[] = "GET /?a=1&b&c HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n";
    expect_ok_lim(q2, sizeof q2 - 1, 0, &small);
    expect_bad_lim(q3, sizeof q3 - 1, 431, "more than 4", &small);
    static const char q4[] = "GET /?a&b&c&d HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char q5[] = "GET /?a&b&c&&d HTTP/1.1\r\nHost: x\r\n\r\n";
    expect_bad_lim(q4, sizeof q4 - 1, 431, "more than 4", &small); /* with Host: 5 */
    expect_bad_lim(q5, sizeof q5 - 1, 414, "more than 4 query parameters", &small);
    static const char c2[] = "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; b=2\r\n\r\n";
    static const char c3[] = "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; b=2,c\r\n\r\n";
    expect_ok_lim(c2, sizeof c2 - 1, 0, &small); /* Host, Cookie and its 2 cookies */
    expect_bad_lim(c3, sizeof c3 - 1, 431, "more than 4", &small);
    assert_int_equal(srv_head_query_items("", 0), 0);
    assert_int_equal(srv_head_query_items("a", 1), 1);
    assert_int_equal(srv_head_query_items("a&", 2), 2); /* an upper bound */
    assert_int_equal(srv_head_cookie_items("", 0), 1);
    assert_int_equal(srv_head_cookie_items("a=1; b=2,c", 10), 3);
    /* the default: 64 in all */
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf,
                                "GET /?q=1&r=2 HTTP/1.1\r\nHost: x\r\n"
                                "Cookie: a=1; b=2\r\n");
    for (int i = 6; i < SRV_HEAD_ITEMS_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "X-%d: v\r\n", i);
    size_t at = n;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n");
    assert_true(n < sizeof buf);
    expect_ok_lim(buf, n, 0, dflt());
    n = at + (size_t)snprintf(buf + at, sizeof buf - at, "X-last: v\r\n\r\n");
    expect_bad_lim(buf, n, 431, "more than 64 header fields, query parameters and cookies", dflt());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_heads_and_every_prefix),
        cmocka_unit_test(test_request_line),
        cmocka_unit_test(test_control_bytes),
        cmocka_unit_test(test_field_lines),
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_head_limit_at_and_past),
        cmocka_unit_test(test_target_limit_at_and_past),
        cmocka_unit_test(test_items_limit_at_and_past),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
