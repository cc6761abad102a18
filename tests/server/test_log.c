/* test_log.c - server/log.c: every line is one valid JSON object, including lines cut by the
 * SRV_LOG_LINE_MAX cap at every possible position within escapes and multi-byte UTF-8
 * sequences; cut values are prefixes of what was logged; level filtering. stderr is redirected
 * to a temp file and each line parsed back with jansson. */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"

enum { LONG_VALUE = 3 * SRV_LOG_LINE_MAX, CAPTURE_MAX = 1 << 20 };

static char captured[CAPTURE_MAX];

/* Run fn with stderr going to a temp file; the lines written end up in `captured`. */
static size_t capture(void (*fn)(void *), void *arg)
{
    char path[] = "/tmp/onespike-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    fn(arg);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    ssize_t n = pread(fd, captured, sizeof captured - 1, 0);
    assert_true(n >= 0);
    captured[n] = '\0';
    close(fd);
    unlink(path);
    return (size_t)n;
}

/* Every line of `captured` parsed; returns how many; *last gets the last one (caller decrefs). */
static int parse_lines(json_t **last)
{
    int lines = 0;
    *last = NULL;
    for (char *p = captured, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        json_error_t e;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &e);
        if (!json_is_object(j))
            fail_msg("line %d is not a JSON object (%s): %.*s", lines + 1, e.text, (int)(nl - p),
                     p);
        if (nl - p + 1 > SRV_LOG_LINE_MAX)
            fail_msg("line %d is %d bytes, over the cap", lines + 1, (int)(nl - p + 1));
        json_decref(*last);
        *last = j;
        lines++;
    }
    return lines;
}

static void log_plain(void *arg)
{
    (void)arg;
    srv_logline l;
    assert_true(srv_log_begin(&l, SRV_LOG_INFO, "request"));
    srv_log_str(&l, "id", "a\"b\\c\n\t\x01 \xc3\xa9 \xf0\x9f\x9a\x80");
    srv_log_str(&l, "bad", "x\xff\xc0\xafy\xed\xa0\x80z"); /* invalid, overlong, surrogate */
    srv_log_str(&l, "skipped", NULL);
    srv_log_int(&l, "status", 200);
    srv_log_num(&l, "ms", 1.23456);
    srv_log_num(&l, "inf", INFINITY);
    srv_log_bool(&l, "ok", true);
    srv_log_end(&l);
    assert_false(srv_log_begin(&l, SRV_LOG_DEBUG, "filtered out"));
}

static void test_plain_line(void **state)
{
    (void)state;
    capture(log_plain, NULL);
    json_t *j;
    assert_int_equal(parse_lines(&j), 1);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "request");
    assert_string_equal(json_string_value(json_object_get(j, "id")),
                        "a\"b\\c\n\t\x01 \xc3\xa9 \xf0\x9f\x9a\x80");
    assert_string_equal(json_string_value(json_object_get(j, "bad")),
                        "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd"
                        "\xef\xbf\xbdz");
    assert_null(json_object_get(j, "skipped"));
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_true(fabs(json_number_value(json_object_get(j, "ms")) - 1.235) < 1e-9);
    assert_true(json_is_null(json_object_get(j, "inf")));
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_null(json_object_get(j, "truncated"));
    assert_true(json_is_string(json_object_get(j, "ts")));
    json_decref(j);
}

typedef struct {
    const char *unit; /* repeated to make the long value */
    size_t shift;     /* 'a's before it, moving the cut across the unit's bytes */
    char value[LONG_VALUE + 16];
} long_case;

static void log_long(void *arg)
{
    long_case *c = arg;
    size_t n = 0, ul = strlen(c->unit);
    for (; n < c->shift; n++)
        c->value[n] = 'a';
    while (n + ul < LONG_VALUE) {
        memcpy(c->value + n, c->unit, ul);
        n += ul;
    }
    c->value[n] = '\0';
    srv_logline l;
    assert_true(srv_log_begin(&l, SRV_LOG_WARN, "long"));
    srv_log_str(&l, "detail", c->value);
    srv_log_int(&l, "after", 1); /* no room left: dropped whole */
    srv_log_end(&l);
}

/* The cut lands on every byte of a 6-byte escape, a 2-, 3- and 4-byte sequence and a 2-byte
 * escape in turn: the line stays JSON and the value a prefix of the one logged. */
static void test_cut_lines_stay_json(void **state)
{
    (void)state;
    static const char *const units[] = {"\x01", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x9a\x80",
                                        "\"",   "\\",       "\xff"};
    static long_case c;
    for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
        for (size_t shift = 0; shift < 6; shift++) {
            c.unit = units[u], c.shift = shift;
            capture(log_long, &c);
            json_t *j;
            assert_int_equal(parse_lines(&j), 1);
            assert_true(json_is_true(json_object_get(j, "truncated")));
            assert_null(json_object_get(j, "after"));
            const char *got = json_string_value(json_object_get(j, "detail"));
            assert_non_null(got);
            assert_true(strlen(got) > SRV_LOG_LINE_MAX / 8); /* 6-byte escapes: ~340 */
            if (strcmp(units[u], "\xff")) /* \xff is logged as U+FFFD, not as itself */
                assert_memory_equal(got, c.value, strlen(got));
            json_decref(j);
        }
    }
}

static void log_many_fields(void *arg)
{
    (void)arg;
    srv_logline l;
    srv_log_begin_lifecycle(&l, "many");
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        if (i % 3 == 0)
            srv_log_int(&l, key, i);
        else if (i % 3 == 1)
            srv_log_str(&l, key, "v\xc3\xa9");
        else
            srv_log_bool(&l, key, false);
    }
    srv_log_end(&l);
}

static void test_many_fields_cut_between_fields(void **state)
{
    (void)state;
    capture(log_many_fields, NULL);
    json_t *j;
    assert_int_equal(parse_lines(&j), 1);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    assert_int_equal(json_integer_value(json_object_get(j, "k0")), 0);
    /* fields kept are a prefix: no gaps */
    int kept = 0;
    char key[32];
    for (;; kept++) {
        snprintf(key, sizeof key, "k%d", kept);
        if (!json_object_get(j, key))
            break;
    }
    assert_true(kept > 50);
    snprintf(key, sizeof key, "k%d", kept + 1);
    assert_null(json_object_get(j, key));
    json_decref(j);
}

static void test_level_parse(void **state)
{
    (void)state;
    assert_int_equal(srv_log_level_parse("debug"), SRV_LOG_DEBUG);
    assert_int_equal(srv_log_level_parse("error"), SRV_LOG_ERROR);
    assert_int_equal(srv_log_level_parse("Error"), -1);
    assert_int_equal(srv_log_level_parse(""), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_line),
        cmocka_unit_test(test_cut_lines_stay_json),
        cmocka_unit_test(test_many_fields_cut_between_fields),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
