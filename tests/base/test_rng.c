/* test_rng.c - the one generator: splitmix64's published stream (the reference outputs quoted on
 * Rosetta Code's "Pseudo-random numbers/Splitmix64" task and by Vigna's splitmix64.c), the ranges
 * of the uniform deviates, and the moments and fixed stride of the normal one. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "onespike/rng.h"

static void test_reference_stream(void **state)
{
    (void)state;
    static const uint64_t want[] = {6457827717110365317ull, 3203168211198807973ull,
                                    9817491932198370423ull, 4593380528125082431ull,
                                    16408922859458223821ull};
    uint64_t s = 1234567;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        assert_true(os_rng_next(&s) == want[i]);
    s = 0; /* zero is a seed like any other */
    assert_true(os_rng_next(&s) == 0xE220A8397B1DCDAFull);
    assert_true(os_rng_next(&s) == 0x6E789E6AA1B965F4ull);
    assert_true(os_rng_next(&s) == 0x06C45D188009454Full);
}

/* The uniform deviates are the top bits of one step, scaled: in [0, 1), one step each. */
static void test_uniform_is_top_bits(void **state)
{
    (void)state;
    uint64_t s = 42, t = 42;
    double lo = 1, hi = 0, sum = 0;
    enum { N = 100000 };
    for (int i = 0; i < N; i++) {
        uint64_t bits = os_rng_next(&t);
        double u = os_rng_uniform(&s);
        assert_true(u == (double)(bits >> 11) / 9007199254740992.0);
        assert_true(s == t);
        lo = fmin(lo, u), hi = fmax(hi, u), sum += u;
    }
    assert_true(lo >= 0 && lo < 1e-3 && hi < 1 && hi > 1 - 1e-3);
    assert_true(fabs(sum / N - 0.5) < 0.01);
    for (int i = 0; i < N; i++) {
        uint64_t bits = os_rng_next(&t);
        float f = os_rng_uniformf(&s);
        assert_true(f == (float)(bits >> 40) / 16777216.0f);
        assert_true(f >= 0.0f && f < 1.0f);
    }
}

/* N(0, 1) by Box-Muller: mean, variance and tail mass of a long fixed stream, and always two
 * steps per value so that a stream can be skipped ahead by counting draws. */
static void test_normal(void **state)
{
    (void)state;
    uint64_t s = 9, t = 9;
    enum { N = 200000 };
    double sum = 0, sum2 = 0;
    int beyond2 = 0;
    for (int i = 0; i < N; i++) {
        double x = os_rng_normal(&s);
        os_rng_next(&t), os_rng_next(&t);
        assert_true(s == t);
        assert_true(isfinite(x));
        sum += x, sum2 += x * x;
        beyond2 += fabs(x) > 2;
    }
    double mean = sum / N, var = sum2 / N - mean * mean;
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - 1) < 0.02);
    assert_true(fabs((double)beyond2 / N - 0.0455) < 0.003); /* P(|x| > 2) = 4.55 % */
}

/* Seeded streams are reproducible and different seeds give different streams. */
static void test_seeds(void **state)
{
    (void)state;
    uint64_t a = 5, b = 5, c = 6;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = os_rng_next(&a);
        assert_true(x == os_rng_next(&b));
        assert_true(x != os_rng_next(&c));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_stream),
        cmocka_unit_test(test_uniform_is_top_bits),
        cmocka_unit_test(test_normal),
        cmocka_unit_test(test_seeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
