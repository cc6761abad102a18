/* test_ema.c - core/train/ema.c: the decay's warm-up, the average against the recursion
 * computed by hand in double precision (weights, buffers and LIF scalars alike; frozen ones
 * kept), swapping in and back, and the shadow written out and restored as a checkpoint does. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ema.h"

static os_params *make(void)
{
    static const float w[3] = {1.0f, -2.0f, 0.5f}, mean[2] = {3.0f, 4.0f}, f[1] = {7.0f};
    os_params *p = NULL;
    assert_int_equal(os_params_create(&p), OS_OK);
    os_tensor_view t[] = {{.name = "conv.weight", .ndim = 1, .shape = {3}, .data = w, .count = 3},
                          {.name = "bn.running_mean", .ndim = 1, .shape = {2}, .data = mean,
                           .count = 2},
                          {.name = "stem.weight", .ndim = 1, .shape = {1}, .data = f, .count = 1}};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(os_params_add(p, &t[i]), OS_OK);
    assert_int_equal(os_params_add_scalar(p, "lif.threshold", 0.5f), OS_OK);
    os_params_find(p, "stem.weight")->frozen = true;
    return p;
}

static void test_decay_warms_up(void **state)
{
    (void)state;
    os_params *p = make();
    os_ema *e = NULL;
    assert_int_equal(os_ema_create(p, 0.99, &e), OS_OK);
    assert_true(fabs(os_ema_decay_at(e, 1) - 2.0 / 11.0) < 1e-12);
    assert_true(fabs(os_ema_decay_at(e, 10) - 11.0 / 20.0) < 1e-12);
    assert_true(os_ema_decay_at(e, 100000) == 0.99);
    for (long t = 1; t < 2000; t++)
        assert_true(os_ema_decay_at(e, t) <= os_ema_decay_at(e, t + 1));
    os_ema_destroy(e);
    assert_int_equal(os_ema_create(p, 1.0, &e), OS_EINVAL);
    assert_int_equal(os_ema_create(p, 0.0, &e), OS_EINVAL);
    os_params_destroy(p);
}

static void test_average_follows_the_recursion(void **state)
{
    (void)state;
    os_params *p = make();
    const int n = os_params_count(p);
    double want[4][3];
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < os_params_at(p, i)->view.count; j++)
            want[i][j] = os_params_at(p, i)->data[j];
    os_ema *e = NULL;
    assert_int_equal(os_ema_create(p, 0.9, &e), OS_OK);
    for (long t = 1; t <= 50; t++) {
        /* a "step": every value moves, the frozen one too (as if something wrote it) */
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < os_params_at(p, i)->view.count; j++)
                os_params_at(p, i)->data[j] += (float)(0.1 * (double)(i + 1) * sin((double)(t + (long)j)));
        os_ema_update(e, p, t);
        double d = fmin(0.9, (1.0 + (double)t) / (10.0 + (double)t));
        for (int i = 0; i < n; i++) {
            if (os_params_at(p, i)->frozen)
                continue;
            for (size_t j = 0; j < os_params_at(p, i)->view.count; j++)
                want[i][j] = d * want[i][j] + (1 - d) * os_params_at(p, i)->data[j];
        }
    }
    /* swap the average in: the values are the recursion's; the frozen one its starting value */
    float live[4][3];
    for (int i = 0; i < n; i++)
        memcpy(live[i], os_params_at(p, i)->data, os_params_at(p, i)->view.count * sizeof(float));
    os_ema_swap(e, p);
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < os_params_at(p, i)->view.count; j++)
            assert_true(fabs(os_params_at(p, i)->data[j] - want[i][j]) < 1e-5);
    assert_true(os_params_find(p, "stem.weight")->data[0] == 7.0f);
    os_ema_swap(e, p); /* and back: the live values, bit for bit */
    for (int i = 0; i < n; i++)
        assert_memory_equal(live[i], os_params_at(p, i)->data,
                            os_params_at(p, i)->view.count * sizeof(float));
    os_ema_destroy(e);
    os_params_destroy(p);
}

typedef struct {
    const os_tensor_view *v;
    size_t n;
} view_list;

static const os_tensor_view *find(const void *ctx, const char *name)
{
    const view_list *l = ctx;
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].name, name))
            return &l->v[i];
    return NULL;
}

static void test_shadow_round_trips(void **state)
{
    (void)state;
    os_params *p = make();
    os_ema *a = NULL, *b = NULL;
    assert_int_equal(os_ema_create(p, 0.9, &a), OS_OK);
    os_params_find(p, "conv.weight")->data[1] = 5.0f;
    os_ema_update(a, p, 3);
    os_tensor_view *v = NULL;
    size_t n = 0;
    assert_int_equal(os_ema_views(a, "ema.", &v, &n), OS_OK);
    assert_int_equal(n, 4);
    assert_string_equal(v[0].name, "ema.conv.weight");
    assert_string_equal(v[3].name, "ema.lif.threshold");
    /* b starts from other values and takes a's shadow */
    os_params_find(p, "conv.weight")->data[1] = -9.0f;
    assert_int_equal(os_ema_create(p, 0.9, &b), OS_OK);
    view_list l = {v, n};
    assert_int_equal(os_ema_restore(b, "ema.", find, &l), OS_OK);
    os_tensor_view *w = NULL;
    size_t m = 0;
    assert_int_equal(os_ema_views(b, "ema.", &w, &m), OS_OK);
    for (size_t i = 0; i < n; i++)
        assert_memory_equal(v[i].data, w[i].data, v[i].count * sizeof(float));
    /* a checkpoint without the average, or with a misshapen one, is refused */
    l.n = 2;
    assert_int_equal(os_ema_restore(b, "ema.", find, &l), OS_EFORMAT);
    free(v), free(w);
    os_ema_destroy(a), os_ema_destroy(b);
    os_params_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decay_warms_up),
        cmocka_unit_test(test_average_follows_the_recursion),
        cmocka_unit_test(test_shadow_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
