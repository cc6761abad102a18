/* Status codes: every code has its own message, and os_fail records a per-thread detail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "onespike/status.h"

static void test_every_code_has_a_distinct_message(void **state)
{
    (void)state;
    for (int i = 0; i < OS_ECOUNT; i++) {
        assert_non_null(os_strerror((os_status)i));
        assert_true(strlen(os_strerror((os_status)i)) > 1);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(os_strerror((os_status)i), os_strerror((os_status)j));
    }
    assert_string_equal(os_strerror(OS_ECOUNT), "unknown status");
    assert_string_equal(os_strerror(OS_ECHECKSUM), "checksum mismatch");
}

static void test_fail_records_detail(void **state)
{
    (void)state;
    os_errclear();
    assert_string_equal(os_errdetail(), "");
    assert_int_equal(os_fail(OS_ESHAPE, "%s: tensor \"%s\" [%d]", "m.st", "w", 3), OS_ESHAPE);
    assert_string_equal(os_errdetail(), "m.st: tensor \"w\" [3]");
    char longer[2000];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    os_fail(OS_EIO, "%s", longer); /* truncated, never overflows */
    assert_true(strlen(os_errdetail()) < sizeof longer - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_a_distinct_message),
        cmocka_unit_test(test_fail_records_detail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
