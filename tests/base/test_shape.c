/* test_shape.c - the one shape formatter: the text the error messages quote, and snprintf's
 * rule when the buffer is short (a prefix, always terminated). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "onespike/shape.h"

static void test_text(void **state)
{
    (void)state;
    char b[OS_SHAPE_TEXT_MAX(8)];
    static const int64_t conv[] = {64, 32, 3, 3};
    assert_string_equal(os_shape_format(b, sizeof b, conv, 4), "[64,32,3,3]");
    assert_string_equal(os_shape_format(b, sizeof b, conv, 1), "[64]");
    assert_string_equal(os_shape_format(b, sizeof b, NULL, 0), "[]");
    static const int64_t neg[] = {-1, 0, 7};
    assert_string_equal(os_shape_format(b, sizeof b, neg, 3), "[-1,0,7]");
    static const int64_t wide[8] = {INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN,
                                    INT64_MIN, INT64_MIN, INT64_MIN, INT64_MAX};
    os_shape_format(b, sizeof b, wide, 8); /* the widest text fits the promised size */
    assert_int_equal(b[0], '[');
    assert_int_equal(b[strlen(b) - 1], ']');
    assert_non_null(strstr(b, ",9223372036854775807]"));
}

/* Too small a buffer keeps the first cap - 1 bytes of the text. */
static void test_cut(void **state)
{
    (void)state;
    static const int64_t d[] = {100, 200, 300};
    const char *full = "[100,200,300]";
    for (size_t cap = 1; cap <= strlen(full) + 1; cap++) {
        char b[32];
        memset(b, 'x', sizeof b);
        os_shape_format(b, cap, d, 3);
        assert_int_equal(strlen(b), cap - 1);
        assert_memory_equal(b, full, cap - 1);
        assert_int_equal(b[cap], 'x'); /* nothing written past cap */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
