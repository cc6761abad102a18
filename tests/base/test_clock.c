/* test_clock.c - the one monotonic clock: never goes back, its three units agree, and it
 * measures a known sleep. Only lower bounds on elapsed time are asserted, never upper ones, so
 * a slow or loaded machine cannot fail it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "onespike/clock.h"

static void test_monotonic(void **state)
{
    (void)state;
    uint64_t prev = os_clock_ns();
    for (int i = 0; i < 100000; i++) {
        uint64_t now = os_clock_ns();
        assert_true(now >= prev);
        prev = now;
    }
}

/* Read in the order ns, ms, s, ns: each reading lies between the ones around it. */
static void test_units_agree(void **state)
{
    (void)state;
    uint64_t a = os_clock_ns();
    int64_t ms = os_clock_ms();
    double s = os_clock_s();
    uint64_t b = os_clock_ns();
    assert_true((uint64_t)ms >= a / OS_NS_PER_MS && (uint64_t)ms <= b / OS_NS_PER_MS);
    assert_true(s >= (double)a / 1e9 - 1e-6 && s <= (double)b / 1e9 + 1e-6);
}

static void test_measures_a_sleep(void **state)
{
    (void)state;
    const struct timespec nap = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
    uint64_t t0 = os_clock_ns();
    int64_t m0 = os_clock_ms();
    double s0 = os_clock_s();
    struct timespec left = nap;
    while (nanosleep(&left, &left) != 0) /* interrupted: sleep the rest */
        ;
    assert_true(os_clock_ns() - t0 >= 20 * OS_NS_PER_MS);
    assert_true(os_clock_ms() - m0 >= 19); /* whole milliseconds: one may be lost to rounding */
    assert_true(os_clock_s() - s0 >= 0.02 - 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monotonic),
        cmocka_unit_test(test_units_agree),
        cmocka_unit_test(test_measures_a_sleep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
