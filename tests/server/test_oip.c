/* test_oip.c - server/oip.c against a real model written by onespike's own code: the value
 * budget checked before any tree is built, duplicate keys, FP32 numbers beyond float range,
 * shapes, and the FP32 items read back in row-major order. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oip.h"
#include "onespike/model.h"

#ifndef FUZZ_MODEL_DIR
#define FUZZ_MODEL_DIR FIXTURE_DIR "/../fuzz/corpus/model"
#endif
#define MODEL_PATH FUZZ_MODEL_DIR "/resnet20-tiny.safetensors" /* input 3x16x16, 3 classes */

enum { ERR_MAX = 512, SIDE = 16, CH = 3 };

static os_model *model;

static int setup(void **state)
{
    (void)state;
    if (os_model_load(MODEL_PATH, &model)) {
        fprintf(stderr, "%s: %s\n", MODEL_PATH, os_errdetail());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    os_model_destroy(model);
    return 0;
}

static os_status load(const char *text, json_t **root, char *err)
{
    return srv_oip_load(text, strlen(text), model, root, err, ERR_MAX);
}

/* A FP32 request [n,3,16,16] whose value k is k/1000, with `first` in place of value 0. */
static char *fp32_request(int n, const char *first)
{
    size_t count = (size_t)n * CH * SIDE * SIDE, cap = count * 16 + 256, at = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    at += (size_t)snprintf(s, cap,
                           "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
                           "\"shape\":[%d,3,16,16],\"data\":[",
                           n);
    for (size_t k = 0; k < count; k++) {
        if (k == 0 && first)
            at += (size_t)snprintf(s + at, cap - at, "%s", first);
        else
            at += (size_t)snprintf(s + at, cap - at, "%s%g", k ? "," : "", (double)k / 1000);
    }
    snprintf(s + at, cap - at, "]}]}");
    return s;
}

static void test_fp32_items_row_major(void **state)
{
    (void)state;
    char *text = fp32_request(2, NULL), err[ERR_MAX];
    json_t *root = NULL;
    assert_int_equal(load(text, &root, err), OS_OK);
    srv_oip_request rq;
    if (!srv_oip_parse(root, model, &rq, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(rq.kind, SRV_OIP_FP32);
    assert_int_equal(rq.batch, 2);
    assert_int_equal(rq.item_floats, CH * SIDE * SIDE);
    float x[CH * SIDE * SIDE];
    srv_oip_fp32_item(&rq, 1, x);
    for (size_t k = 0; k < rq.item_floats; k += 97)
        assert_true(fabsf(x[k] - (float)((double)(k + rq.item_floats) / 1000)) < 1e-6f);
    json_decref(root);
    free(text);
}

static void test_fp32_beyond_float_range(void **state)
{
    (void)state;
    static const char *const bad[] = {"3.5e38", "-1e39", "1.7976931348623157e308"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *text = fp32_request(1, bad[i]), err[ERR_MAX];
        json_t *root = NULL;
        assert_int_equal(load(text, &root, err), OS_OK);
        srv_oip_request rq;
        assert_false(srv_oip_parse(root, model, &rq, err, sizeof err));
        if (!strstr(err, "number 0 is outside the range of FP32"))
            fail_msg("%s: %s", bad[i], err);
        json_decref(root);
        free(text);
    }
    char *text = fp32_request(1, "3.4e38"), err[ERR_MAX]; /* just inside */
    json_t *root = NULL;
    assert_int_equal(load(text, &root, err), OS_OK);
    srv_oip_request rq;
    assert_true(srv_oip_parse(root, model, &rq, err, sizeof err));
    json_decref(root);
    free(text);
}

static void test_duplicate_keys_refused(void **state)
{
    (void)state;
    char err[ERR_MAX];
    json_t *root = NULL;
    assert_int_equal(load("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"BYTES\",\"datatype\":"
                          "\"FP32\",\"shape\":[1],\"data\":[\"YQ==\"]}]}",
                          &root, err),
                     OS_EFORMAT);
    assert_null(root);
    assert_non_null(strstr(err, "duplicate object key"));
    assert_int_equal(load("{\"id\":\"a\",\"id\":\"a\"}", &root, err), OS_EFORMAT);
    assert_int_equal(load("{\"inputs\":[}", &root, err), OS_EFORMAT);
    assert_non_null(strstr(err, "malformed JSON at line 1"));
}

/* More values than any request to the model can need is refused by the scan, before jansson
 * allocates a node; the limit itself is accepted by the scan. */
static void test_value_budget(void **state)
{
    (void)state;
    size_t limit = srv_oip_max_values(model);
    assert_int_equal(limit, (size_t)SRV_OIP_MAX_BATCH * CH * SIDE * SIDE + SRV_OIP_EXTRA_VALUES);
    size_t cap = 2 * (limit + 2) + 8;
    char *text = malloc(cap), err[ERR_MAX];
    assert_non_null(text);
    size_t at = 0;
    text[at++] = '[';
    for (size_t k = 0; k < limit; k++) /* '[' plus limit numbers: one over */
        text[at++] = '0', text[at++] = ',';
    text[at - 1] = ']';
    json_t *root = NULL;
    assert_int_equal(srv_oip_load(text, at, model, &root, err, sizeof err), OS_ETOOBIG);
    assert_null(root);
    assert_non_null(strstr(err, "JSON values, more than any request to this model needs"));
    /* one fewer: within the budget, parsed (and then refused by the shape checks) */
    memmove(text + 1, text + 3, at - 3);
    at -= 2;
    assert_int_equal(srv_oip_load(text, at, model, &root, err, sizeof err), OS_OK);
    json_decref(root);
    /* strings, keys and literals count too; escaped quotes do not end a string */
    assert_int_equal(load("{\"a\\\"b\":[true,null,-1.5e+3,\"x\"]}", &root, err), OS_OK);
    json_decref(root);
    free(text);
}

static void test_shapes(void **state)
{
    (void)state;
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"{\"inputs\":[{\"name\":\"i\",\"datatype\":\"FP32\",\"shape\":[1,3,16,15],\"data\":[]}]}",
         "inputs[0].shape [1,3,16,15]: the model input is [N,3,16,16]"},
        {"{\"inputs\":[{\"name\":\"i\",\"datatype\":\"BYTES\",\"shape\":[65],\"data\":[]}]}",
         "inputs[0].shape [65]: batch of at most 64 images"},
        {"{\"inputs\":[{\"name\":\"i\",\"datatype\":\"BYTES\",\"shape\":[2],\"data\":[\"\"]}]}",
         "inputs[0].data has 1 elements, shape [2] says 2"},
        {"{\"inputs\":[{\"name\":\"i\",\"datatype\":\"INT8\",\"shape\":[1],\"data\":[1]}]}",
         "inputs[0].datatype \"INT8\" not supported"},
        {"{\"inputs\":[]}", "\"inputs\" has 0 entries"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[ERR_MAX];
        json_t *root = NULL;
        assert_int_equal(load(cases[i].body, &root, err), OS_OK);
        srv_oip_request rq;
        assert_false(srv_oip_parse(root, model, &rq, err, sizeof err));
        if (strncmp(err, cases[i].want, strlen(cases[i].want)))
            fail_msg("case %zu: \"%s\", want \"%s\"", i, err, cases[i].want);
        json_decref(root);
    }
}

/* parameters.tta: the test-time views of each image, 1, 2, 4 or 8; absent: 0 (the server's). */
static void test_tta_parameter(void **state)
{
    (void)state;
    static const char head[] = "{\"inputs\":[{\"name\":\"i\",\"datatype\":\"BYTES\",\"shape\":[1],"
                               "\"data\":[\"YQ==\"]}]";
    static const char bad_tta[] = "parameters.tta must be 1, 2, 4 or 8";
    static const struct {
        const char *params;
        int views;       /* when accepted */
        const char *err; /* NULL: accepted */
    } cases[] = {{"", 0, NULL},
                 {",\"parameters\":{}", 0, NULL},
                 {",\"parameters\":{\"tta\":8}", 8, NULL},
                 {",\"parameters\":{\"tta\":1}", 1, NULL},
                 {",\"parameters\":{\"tta\":3}", 0, bad_tta},
                 {",\"parameters\":{\"tta\":16}", 0, bad_tta},
                 {",\"parameters\":{\"tta\":\"8\"}", 0, bad_tta},
                 {",\"parameters\":{\"tta\":8.5}", 0, bad_tta},
                 {",\"parameters\":[]", 0, "\"parameters\" must be an object"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char body[256], err[ERR_MAX];
        snprintf(body, sizeof body, "%s%s}", head, cases[i].params);
        json_t *root = NULL;
        assert_int_equal(load(body, &root, err), OS_OK);
        srv_oip_request rq;
        const bool ok = srv_oip_parse(root, model, &rq, err, sizeof err);
        if (!cases[i].err && !ok)
            fail_msg("case %zu: %s", i, err);
        if (cases[i].err && (ok || !strstr(err, cases[i].err)))
            fail_msg("case %zu: %s, want \"%s\"", i, ok ? "accepted" : err, cases[i].err);
        if (ok)
            assert_int_equal(rq.views, cases[i].views);
        json_decref(root);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32_items_row_major),
        cmocka_unit_test(test_fp32_beyond_float_range),
        cmocka_unit_test(test_duplicate_keys_refused),
        cmocka_unit_test(test_value_budget),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_tta_parameter),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
