/* test_params.c - core/train/params.c: kinds from tensor names, the learning-rate schedule,
 * SGD and AdamW steps against the update rules computed by hand in double precision, the LIF
 * clamps, decoupled weight decay on weights only, and optimizer state written out and restored. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "params.h"

#define TOL 1e-6

static os_tensor_view view(const char *name, int ndim, int64_t n, const float *data)
{
    os_tensor_view t = {.name = name, .ndim = ndim, .data = data, .count = (size_t)n};
    t.shape[0] = n;
    if (ndim == 2)
        t.shape[0] = 1, t.shape[1] = n;
    return t;
}

static os_params *make(void)
{
    static const float w[4] = {1.0f, -2.0f, 0.5f, 0.0f}, b[2] = {0.25f, -0.25f};
    static const float mean[2] = {3, 4};
    os_params *p = NULL;
    assert_int_equal(os_params_create(&p), OS_OK);
    os_tensor_view t[] = {view("conv.weight", 2, 4, w), view("conv.bias", 1, 2, b),
                          view("bn.running_mean", 1, 2, mean)};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(os_params_add(p, &t[i]), OS_OK);
    assert_int_equal(os_params_add_scalar(p, "lif.threshold", 0.01f), OS_OK);
    assert_int_equal(os_params_add_scalar(p, "lif.leak", 0.9f), OS_OK);
    return p;
}

static void set_grads(os_params *p, float g)
{
    for (int i = 0; i < os_params_count(p); i++) {
        os_param *q = os_params_at(p, i);
        if (q->grad)
            for (size_t j = 0; j < q->view.count; j++)
                q->grad[j] = g * (float)(j + 1);
    }
}

static void test_kinds_and_bookkeeping(void **state)
{
    (void)state;
    os_params *p = make();
    assert_int_equal(os_params_count(p), 5);
    assert_int_equal(os_params_find(p, "conv.weight")->kind, OS_PARAM_WEIGHT);
    assert_int_equal(os_params_find(p, "conv.bias")->kind, OS_PARAM_BIAS);
    assert_int_equal(os_params_find(p, "bn.running_mean")->kind, OS_PARAM_BUFFER);
    assert_null(os_params_find(p, "bn.running_mean")->grad);
    assert_int_equal(os_params_find(p, "lif.threshold")->kind, OS_PARAM_THRESHOLD);
    assert_int_equal(os_params_find(p, "lif.leak")->kind, OS_PARAM_LEAK);
    assert_int_equal(os_params_trainable(p), 4 + 2 + 1 + 1);
    /* a copy: the set owns its data */
    assert_true(os_params_find(p, "conv.weight")->data[1] == -2.0f);
    float x = 1;
    os_tensor_view dup = view("conv.bias", 1, 1, &x);
    assert_int_equal(os_params_add(p, &dup), OS_EINVAL);
    os_params_remove(p, "conv.bias");
    os_params_remove(p, "absent");
    assert_int_equal(os_params_count(p), 4);
    assert_null(os_params_find(p, "conv.bias"));
    assert_non_null(os_params_view(p, "lif.leak"));
    os_params_destroy(p);
}

static void test_lr_schedule(void **state)
{
    (void)state;
    os_opt_config c = {.lr = 0.1f, .warmup_steps = 4, .total_steps = 104};
    assert_true(fabs(os_lr_at(&c, 0) - 0.025) < TOL);
    assert_true(fabs(os_lr_at(&c, 3) - 0.1) < TOL);
    assert_true(fabs(os_lr_at(&c, 4) - 0.1) < TOL);   /* cosine starts at the peak */
    assert_true(fabs(os_lr_at(&c, 54) - 0.05) < TOL); /* half way */
    assert_true(fabs(os_lr_at(&c, 104)) < TOL);
    assert_true(fabs(os_lr_at(&c, 500)) < TOL); /* past the end: stays at 0 */
    os_opt_config flat = {.lr = 0.2f};
    assert_true(fabs(os_lr_at(&flat, 7) - 0.2) < TOL);
}

static void test_sgd_steps(void **state)
{
    (void)state;
    os_params *p = make();
    os_opt_config c = {.kind = OS_OPT_SGD,
                       .lr = 0.1f,
                       .momentum = 0.9f,
                       .weight_decay = 0.01f,
                       .lif_lr_scale = 0.5f};
    double x = -2.0, m = 0, bias = -0.25, mb = 0; /* conv.weight[1], conv.bias[1]: grad 2g */
    for (long step = 0; step < 3; step++) {
        set_grads(p, 0.5f);
        assert_int_equal(os_params_step(p, &c, step), OS_OK);
        m = 0.9 * m + (1.0 + 0.01 * x), x -= 0.1 * m;
        mb = 0.9 * mb + 1.0, bias -= 0.1 * mb; /* no decay on biases */
    }
    assert_true(fabs(os_params_find(p, "conv.weight")->data[1] - x) < 1e-5);
    assert_true(fabs(os_params_find(p, "conv.bias")->data[1] - bias) < 1e-5);
    /* buffers are not touched */
    assert_true(os_params_find(p, "bn.running_mean")->data[0] == 3.0f);
    /* threshold 0.01 - lr * 0.5 * momentum sums: would go negative, clamped */
    assert_true(os_params_find(p, "lif.threshold")->data[0] == OS_MIN_THRESHOLD);
    os_params_destroy(p);
}

static void test_adamw_step_and_leak_clamp(void **state)
{
    (void)state;
    os_params *p = make();
    os_opt_config c = {.kind = OS_OPT_ADAMW,
                       .lr = 0.01f,
                       .beta1 = 0.9f,
                       .beta2 = 0.999f,
                       .eps = 1e-8f,
                       .weight_decay = 0.1f,
                       .lif_lr_scale = 1.0f};
    double x = 0.5, m = 0, v = 0; /* conv.weight[2]: grad 3g */
    for (long step = 0; step < 2; step++) {
        set_grads(p, -0.5f);
        assert_int_equal(os_params_step(p, &c, step), OS_OK);
        double g = -1.5, bc1 = 1 - pow(0.9, step + 1), bc2 = 1 - pow(0.999, step + 1);
        m = 0.9 * m + 0.1 * g, v = 0.999 * v + 0.001 * g * g;
        x -= 0.01 * 0.1 * x;
        x -= 0.01 / bc1 * m / (sqrt(v) / sqrt(bc2) + 1e-8);
    }
    assert_true(fabs(os_params_find(p, "conv.weight")->data[2] - x) < 1e-6);
    /* leak 0.9 with a negative gradient grows; it may not pass 1 */
    os_params_find(p, "lif.leak")->data[0] = 0.995f;
    set_grads(p, -100.0f);
    assert_int_equal(os_params_step(p, &c, 2), OS_OK);
    assert_true(os_params_find(p, "lif.leak")->data[0] == 1.0f);
    os_params_find(p, "lif.leak")->data[0] = 0.06f;
    set_grads(p, 1e6f);
    c.lr = 1.0f;
    assert_int_equal(os_params_step(p, &c, 3), OS_OK);
    assert_true(os_params_find(p, "lif.leak")->data[0] == OS_MIN_LEAK);
    os_params_destroy(p);
}

static const os_tensor_view *find_view(const void *ctx, const char *name)
{
    const os_tensor_view *v = ctx;
    for (; v->name; v++)
        if (!strcmp(v->name, name))
            return v;
    return NULL;
}

/* The moments go out as opt.m.* / opt.v.* and come back: the next step is then the same as in
 * a run that never stopped (what --resume relies on). */
static void test_state_round_trip(void **state)
{
    (void)state;
    os_opt_config c = {.kind = OS_OPT_ADAMW,
                       .lr = 0.01f,
                       .beta1 = 0.9f,
                       .beta2 = 0.999f,
                       .eps = 1e-8f,
                       .weight_decay = 0.1f,
                       .lif_lr_scale = 1.0f};
    os_params *a = make(), *b = make();
    set_grads(a, 0.3f);
    assert_int_equal(os_params_step(a, &c, 0), OS_OK);
    os_tensor_view *views = NULL;
    size_t n = 0;
    assert_int_equal(os_params_views(a, true, false, &views, &n), OS_OK);
    int moments = 0;
    for (size_t i = 0; i < n; i++)
        moments += !strncmp(views[i].name, "opt.m.", 6) || !strncmp(views[i].name, "opt.v.", 6);
    assert_int_equal(moments, 2 * 4); /* m and v of the four trainable tensors */
    /* b: the same values, then the state restored */
    os_tensor_view *copy = calloc(n + 1, sizeof *copy);
    assert_non_null(copy);
    memcpy(copy, views, n * sizeof *copy);
    for (int i = 0; i < os_params_count(b); i++) {
        os_param *q = os_params_at(b, i);
        memcpy(q->data, os_params_find(a, q->view.name)->data, q->view.count * sizeof(float));
    }
    assert_int_equal(os_params_restore_state(b, find_view, copy), OS_OK);
    set_grads(a, -0.7f);
    set_grads(b, -0.7f);
    assert_int_equal(os_params_step(a, &c, 1), OS_OK);
    assert_int_equal(os_params_step(b, &c, 1), OS_OK);
    for (int i = 0; i < os_params_count(a); i++) {
        os_param *q = os_params_at(a, i);
        assert_memory_equal(q->data, os_params_find(b, q->view.name)->data,
                            q->view.count * sizeof(float));
    }
    free(copy);
    free(views);
    os_params_destroy(a);
    os_params_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds_and_bookkeeping),
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_sgd_steps),
        cmocka_unit_test(test_adamw_step_and_leak_clamp),
        cmocka_unit_test(test_state_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
