/* Architecture recipes: every recipe yields a model file that loads, with the shapes the recipe
 * promises; Units keep channel count and spatial size and sit where asked. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "onespike/arch.h"
#include "onespike/model.h"
#include "testutil.h"

static const os_layer *find(const os_net *net, const char *name)
{
    for (int i = 0; i < os_net_count(net); i++)
        if (!strcmp(os_net_layer(net, i)->name, name))
            return os_net_layer(net, i);
    fail_msg("no layer %s", name);
    return NULL;
}

static void test_recipes_load(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    static const struct {
        const char *name;
        int input;
        const char *last_feature;
        int c, hw;
    } cases[] = {
        {"resnet18", 32, "s4.b1.act", 32, 4},  /* 512 x 0.0625, 32 / 8 */
        {"resnet18", 64, "s4.b1.act", 32, 2},  /* stem /4 from 64 px */
        {"resnet18", 128, "s4.b1.act", 32, 4},
        {"resnet20", 32, "s3.b2.act", 4, 8},   /* 64 x 0.0625, min 4 channels */
        {"vgg11", 64, "s5.pool", 32, 2},
        {"vgg16", 32, "s5.pool", 32, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        os_arch_opts o = {.name = cases[i].name, .width_mult = 0.0625, .input = cases[i].input,
                          .classes = 7, .batchnorm = true, .seed = 3};
        os_model *m = tu_arch_model(&o, dir);
        const os_layer *L = find(os_model_net(m), cases[i].last_feature);
        assert_int_equal(L->c, cases[i].c);
        assert_int_equal(L->h, cases[i].hw);
        assert_int_equal(L->w, cases[i].hw);
        assert_int_equal(os_net_units(os_model_net(m)), 0);
        os_model_destroy(m);
    }
    tu_rmdir(dir);
}

static void test_units_placement(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    static const struct {
        const char *name;
        int unit_at;
        const char *unit_layer, *before;
    } cases[] = {
        {"vgg11", 3, "s3.unit2.act", "s3.c1.act"},
        {"resnet20", 2, "s2.unit2.act", "s2.b2.act"},
        {"resnet18", 4, "s4.unit2.act", "s4.b1.act"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        os_arch_opts base = {.name = cases[i].name, .width_mult = 0.125, .input = 32,
                             .classes = 4, .spiking = true, .threshold = 1, .leak = 1, .seed = 1};
        os_arch_opts with = base;
        with.units = 2, with.unit_at = cases[i].unit_at;
        os_model *m0 = tu_arch_model(&base, dir), *m2 = tu_arch_model(&with, dir);
        const os_net *n0 = os_model_net(m0), *n2 = os_model_net(m2);
        assert_int_equal(os_net_units(n2), 2);
        const os_layer *u = find(n2, cases[i].unit_layer), *b = find(n2, cases[i].before);
        assert_int_equal(u->unit, 2);
        assert_int_equal(u->c * 10000 + u->h * 100 + u->w, b->c * 10000 + b->h * 100 + b->w);
        /* The Units add parameters and layers, all of them marked. */
        size_t unit_params = 0;
        int unit_layers = 0;
        for (int k = 0; k < os_net_count(n2); k++)
            if (os_net_layer(n2, k)->unit) {
                unit_params += os_net_layer(n2, k)->params;
                unit_layers++;
            }
        assert_int_equal(os_net_params(n2) - unit_params, os_net_params(n0));
        assert_int_equal(os_net_count(n2) - unit_layers, os_net_count(n0));
        assert_true(unit_params > 0);
        os_model_destroy(m0);
        os_model_destroy(m2);
    }
    tu_rmdir(dir);
}

static void test_bad_options(void **state)
{
    (void)state;
    os_arch *a = NULL;
    os_arch_opts o = {.name = "resnet50", .width_mult = 1, .input = 64, .classes = 3};
    assert_int_equal(os_arch_build(&o, &a), OS_EINVAL);
    assert_non_null(strstr(os_errdetail(), "resnet50"));
    o.name = "resnet20", o.units = 1, o.unit_at = 4;
    assert_int_equal(os_arch_build(&o, &a), OS_EINVAL);
    assert_non_null(strstr(os_errdetail(), "stages 1..3"));
    assert_null(a);
}

static void test_deterministic_init(void **state)
{
    (void)state;
    os_arch_opts o = {.name = "resnet20", .width_mult = 0.25, .input = 32, .classes = 3,
                      .batchnorm = true, .seed = 9};
    os_arch *a, *b;
    assert_int_equal(os_arch_build(&o, &a), OS_OK);
    assert_int_equal(os_arch_build(&o, &b), OS_OK);
    size_t na, nb;
    const os_tensor_view *ta = os_arch_tensors(a, &na), *tb = os_arch_tensors(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ta[0].data, tb[0].data, ta[0].count * sizeof(float));
    /* Kaiming normal: the stem's weights have std close to sqrt(2 / (3*3*3)). */
    double s2 = 0;
    for (size_t i = 0; i < ta[0].count; i++)
        s2 += (double)ta[0].data[i] * ta[0].data[i];
    double sd = sqrt(s2 / (double)ta[0].count), want = sqrt(2.0 / 27);
    assert_true(fabs(sd - want) < 0.2 * want);
    os_arch_destroy(a);
    os_arch_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recipes_load),
        cmocka_unit_test(test_units_placement),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_deterministic_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
