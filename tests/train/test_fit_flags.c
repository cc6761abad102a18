/* The table of fit's flags (core/train/fit_flags.c): one row per setting, defaults that round
 * trip through the parser, a config JSON with one typed key per recipe flag, and the messages
 * bad values get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "onespike/fit_flags.h"

static void test_rows_are_unique_and_complete(void **state)
{
    (void)state;
    size_t n;
    const fit_flag *t = fit_flags(&n);
    assert_true(n > 30);
    assert_non_null(t[0].section);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(t[i].help);
        assert_true(t[i].offset < sizeof(fit_config));
        assert_true((t[i].type == FIT_FLAG_BOOL) == (t[i].metavar == NULL));
        assert_ptr_equal(fit_flag_find(t[i].name), &t[i]);
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(t[i].name, t[j].name);
            assert_int_not_equal(t[i].offset, t[j].offset);
            if (t[i].key && t[j].key)
                assert_string_not_equal(t[i].key, t[j].key);
        }
    }
    assert_null(fit_flag_find("no-such-flag"));
}

/* Every default printed as --help prints it parses back to the same value. */
static void test_defaults_round_trip(void **state)
{
    (void)state;
    size_t n;
    const fit_flag *t = fit_flags(&n);
    fit_config d, c;
    fit_defaults(&d);
    for (size_t i = 0; i < n; i++) {
        if (t[i].type == FIT_FLAG_BOOL || t[i].type == FIT_FLAG_STRING)
            continue;
        char v[64];
        fit_flag_format(&t[i], &d, v, sizeof v);
        c = d;
        assert_int_equal(fit_flag_set(&t[i], &c, v), OS_OK);
        assert_true(fit_flag_is_default(&t[i], &c));
    }
    assert_true(d.threads >= 1);
    assert_string_equal(d.arch, "msresnet18");
    assert_int_equal(d.input, 128);
}

static void test_config_json_types(void **state)
{
    (void)state;
    fit_config c;
    fit_defaults(&c);
    c.data = "d";
    json_t *j = fit_config_json(&c);
    assert_non_null(j);
    size_t n, keys = 0;
    const fit_flag *t = fit_flags(&n);
    for (size_t i = 0; i < n; i++)
        keys += t[i].key != NULL && !t[i].omit_default;
    assert_int_equal(json_object_size(j), keys);
    /* keys added later are there only when set, so older checkpoints still resume */
    assert_null(json_object_get(j, "folds"));
    assert_null(json_object_get(j, "freeze_stages"));
    json_decref(j);
    c.folds = 5, c.fold = 2, c.freeze_stages = 0;
    j = fit_config_json(&c);
    assert_int_equal(json_object_size(j), keys + 2);
    assert_int_equal(json_integer_value(json_object_get(j, "fold")), 2);
    assert_true(json_is_integer(json_object_get(j, "input")));
    assert_true(json_is_integer(json_object_get(j, "seed")));
    assert_true(json_is_real(json_object_get(j, "surrogate_gamma")));
    assert_true(json_is_null(json_object_get(j, "train_list")));
    assert_string_equal(json_string_value(json_object_get(j, "data")), "d");
    assert_null(json_object_get(j, "threads"));
    assert_null(json_object_get(j, "out"));
    json_decref(j);
}

static void test_bad_values(void **state)
{
    (void)state;
    fit_config c, d;
    fit_defaults(&c);
    d = c;
    assert_int_equal(fit_flag_set(fit_flag_find("batch"), &c, "0"), OS_EINVAL);
    assert_string_equal(os_errdetail(), "--batch \"0\": expected an integer in 1..4096");
    assert_int_equal(fit_flag_set(fit_flag_find("lr-ann"), &c, "abc"), OS_EINVAL);
    assert_string_equal(os_errdetail(), "--lr-ann \"abc\": expected a number in 0..10");
    assert_int_equal(fit_flag_set(fit_flag_find("optimizer"), &c, "adam"), OS_EINVAL);
    assert_string_equal(os_errdetail(), "--optimizer \"adam\": adamw or sgd");
    assert_int_equal(fit_flag_set(fit_flag_find("seed"), &c, "-1"), OS_EINVAL);
    assert_string_equal(os_errdetail(), "--seed \"-1\": expected an integer >= 0");
    assert_memory_equal(&c, &d, sizeof c); /* refused values leave the config as it was */
    assert_int_equal(fit_flag_set(fit_flag_find("optimizer"), &c, "sgd"), OS_OK);
    assert_string_equal(c.optimizer, "sgd");
    assert_int_equal(fit_flag_set(fit_flag_find("quiet"), &c, NULL), OS_OK);
    assert_true(c.quiet);
    c = d;
    c.val_list = "v";
    assert_int_equal(fit_config_check(&c), OS_EINVAL);
    assert_string_equal(os_errdetail(), "--val-list needs --train-list");
}

/* The rules between the cross-validation, transfer and freezing flags. */
static void test_fold_and_transfer_rules(void **state)
{
    (void)state;
    fit_config c, d;
    fit_defaults(&d);
    c = d, c.folds = 5;
    assert_int_equal(fit_config_check(&c), OS_EINVAL); /* --folds without --fold */
    c = d, c.fold = 1;
    assert_int_equal(fit_config_check(&c), OS_EINVAL);
    c = d, c.folds = 5, c.fold = 6;
    assert_int_equal(fit_config_check(&c), OS_EINVAL);
    c = d, c.folds = 1, c.fold = 1;
    assert_int_equal(fit_config_check(&c), OS_EINVAL);
    c = d, c.folds = 5, c.fold = 5;
    assert_int_equal(fit_config_check(&c), OS_OK);
    c.train_list = "t";
    assert_int_equal(fit_config_check(&c), OS_EINVAL);

    c = d, c.freeze_stages = 2;
    assert_int_equal(fit_config_check(&c), OS_EINVAL); /* nothing to fine-tune from */
    c = d, c.transfer_from = "m", c.freeze_stages = 2;
    assert_int_equal(fit_config_expand(&c, false), OS_OK);
    assert_string_equal(c.snn_from, "m");
    assert_true(c.new_head);
    assert_true(c.distill == 0);
    assert_int_equal(fit_config_check(&c), OS_OK);
    c.finetune_bn = 1;
    assert_int_equal(fit_config_check(&c), OS_EINVAL);
    c = d, c.transfer_from = "m", c.snn_from = "n";
    assert_int_equal(fit_config_expand(&c, false), OS_EINVAL);
    c = d;
    assert_int_equal(fit_config_expand(&c, false), OS_OK);
    assert_memory_equal(&c, &d, sizeof c); /* nothing to expand: unchanged */
    /* --unit-fade: the default 1 becomes 0 where nothing can fade; given, it stays and is
     * refused there */
    assert_int_equal(d.unit_fade, 1);
    c = d, c.arch = "vgg11";
    assert_int_equal(fit_config_expand(&c, false), OS_OK);
    assert_int_equal(c.unit_fade, 0);
    assert_int_equal(fit_config_check(&c), OS_OK);
    c = d, c.arch = "vgg11";
    assert_int_equal(fit_config_expand(&c, true), OS_OK);
    assert_int_equal(c.unit_fade, 1);
    assert_int_equal(fit_config_check(&c), OS_EINVAL);
    c = d, c.transfer_from = "m";
    assert_int_equal(fit_config_expand(&c, false), OS_OK);
    assert_int_equal(c.unit_fade, 0); /* a fine-tune has no SNN epochs to fade over */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_are_unique_and_complete),
        cmocka_unit_test(test_defaults_round_trip),
        cmocka_unit_test(test_config_json_types),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_fold_and_transfer_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
