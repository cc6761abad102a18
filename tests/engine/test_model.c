/* Model file: write -> read bit-exact, and a specific refusal for each kind of damage. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "onespike/model.h"
#include "testutil.h"

static const char tiny_layers[] =
    "[{\"name\":\"conv1\",\"op\":\"conv\",\"out\":4,\"kernel\":3,\"stride\":2,\"pad\":1,"
    "  \"weight\":\"conv1.weight\",\"bias\":\"conv1.bias\"},"
    " {\"name\":\"lif1\",\"op\":\"lif\",\"threshold\":0.5,\"leak\":0.9},"
    " {\"name\":\"pool1\",\"op\":\"maxpool\",\"kernel\":2},"
    " {\"name\":\"fc\",\"op\":\"linear\",\"out\":3,\"weight\":\"fc.weight\",\"bias\":\"fc.bias\"}]";

typedef struct {
    char *dir;
    char path[256];
    float w1[4 * 3 * 3 * 3], b1[4], wf[3 * 64], bf[3];
    os_tensor_view t[4];
    json_t *doc;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    snprintf(f->path, sizeof f->path, "%s/tiny.safetensors", f->dir);
    tu_fill(f->w1, 108, 1, 0.5f);
    tu_fill(f->b1, 4, 2, 0.1f);
    tu_fill(f->wf, 192, 3, 0.3f);
    tu_fill(f->bf, 3, 4, 0.1f);
    f->t[0] = (os_tensor_view){"conv1.weight", 4, {4, 3, 3, 3}, f->w1, 108};
    f->t[1] = (os_tensor_view){"conv1.bias", 1, {4}, f->b1, 4};
    f->t[2] = (os_tensor_view){"fc.weight", 2, {3, 64}, f->wf, 192};
    f->t[3] = (os_tensor_view){"fc.bias", 1, {3}, f->bf, 3};
    f->doc = tu_doc(tiny_layers, 16, 16, 3, 2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    json_decref(f->doc);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static char *doc_text(const fixture *f)
{
    return json_dumps(f->doc, JSON_COMPACT);
}

/* Load and expect failure with status `want` and a detail containing `needle` and the path. */
static void expect_refused(const char *path, os_status want, const char *needle)
{
    os_model *m = (os_model *)0x1;
    os_errclear();
    os_status st = os_model_load(path, &m);
    if (st != want)
        fprintf(stderr, "got %s (%s), want %s\n", os_strerror(st), os_errdetail(), os_strerror(want));
    assert_int_equal(st, want);
    assert_null(m);
    assert_non_null(strstr(os_errdetail(), path));
    if (!strstr(os_errdetail(), needle))
        fprintf(stderr, "detail \"%s\" lacks \"%s\"\n", os_errdetail(), needle);
    assert_non_null(strstr(os_errdetail(), needle));
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    assert_int_equal(os_model_write(f->path, f->doc, f->t, 4), OS_OK);
    os_model *m = NULL;
    assert_int_equal(os_model_load(f->path, &m), OS_OK);
    assert_string_equal(os_model_name(m), "test");
    assert_string_equal(os_model_version(m), "7");
    assert_int_equal(os_model_timesteps(m), 2);
    assert_int_equal(os_model_classes(m), 3);
    assert_string_equal(os_model_label(m, 2), "c2");
    int c, h, w;
    os_model_input(m, &c, &h, &w);
    assert_int_equal(c * 10000 + h * 100 + w, 31616);
    assert_true(os_model_mean(m)[1] == 0.5f && os_model_std(m)[2] == 0.25f);
    const os_st_file *st = os_model_tensors(m);
    assert_int_equal(os_st_count(st), 4);
    for (int i = 0; i < 4; i++) {
        const os_tensor_view *t = os_st_find(st, f->t[i].name);
        assert_non_null(t);
        assert_int_equal(t->count, f->t[i].count);
        assert_int_equal(t->ndim, f->t[i].ndim);
        assert_memory_equal(t->shape, f->t[i].shape, (size_t)t->ndim * sizeof *t->shape);
        assert_memory_equal(t->data, f->t[i].data, t->count * sizeof(float));
    }
    /* The checksum in the file is the SHA-256 of the concatenated tensor bytes. */
    size_t len;
    const void *data = os_st_data(st, &len);
    char hex[65];
    os_sha256_hex(data, len, hex);
    assert_string_equal(hex, os_model_sha256(m));
    assert_int_equal(len, (108 + 4 + 192 + 3) * sizeof(float));
    const os_net *net = os_model_net(m);
    assert_int_equal(os_net_count(net), 4);
    assert_int_equal(os_net_params(net), 108 + 4 + 192 + 3);
    assert_int_equal(os_net_lif_count(net), 1);
    const os_layer *conv = os_net_layer(net, 0);
    assert_int_equal(conv->c * 100 + conv->h * 10 + conv->w, 488);
    assert_true(os_net_layer(net, 1)->threshold == 0.5f && os_net_layer(net, 1)->leak == 0.9f);
    os_model_destroy(m);

    /* Written twice, the bytes are identical (deterministic serialisation). */
    size_t l1, l2;
    unsigned char *a = tu_slurp(f->path, &l1);
    assert_int_equal(os_model_write(f->path, f->doc, f->t, 4), OS_OK);
    unsigned char *b = tu_slurp(f->path, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(a, b, l1);
    free(a);
    free(b);
}

static void test_flipped_data_byte(void **state)
{
    fixture *f = *state;
    assert_int_equal(os_model_write(f->path, f->doc, f->t, 4), OS_OK);
    size_t len;
    unsigned char *b = tu_slurp(f->path, &len);
    b[len - 100] ^= 0x01; /* inside the fc weights */
    tu_spit(f->path, b, len);
    free(b);
    expect_refused(f->path, OS_ECHECKSUM, "SHA-256");
}

static void test_truncated(void **state)
{
    fixture *f = *state;
    assert_int_equal(os_model_write(f->path, f->doc, f->t, 4), OS_OK);
    size_t len;
    unsigned char *b = tu_slurp(f->path, &len);
    tu_spit(f->path, b, len - 10);
    free(b);
    expect_refused(f->path, OS_EFORMAT, "fc.bias");
}

static void test_header_length_past_end(void **state)
{
    fixture *f = *state;
    assert_int_equal(os_model_write(f->path, f->doc, f->t, 4), OS_OK);
    size_t len;
    unsigned char *b = tu_slurp(f->path, &len);
    uint64_t n = (uint64_t)len; /* header claims more bytes than the whole file */
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(n >> (8 * i));
    tu_spit(f->path, b, len);
    free(b);
    expect_refused(f->path, OS_EFORMAT, "header length");
}

static void test_invalid_header_json(void **state)
{
    fixture *f = *state;
    assert_int_equal(os_model_write(f->path, f->doc, f->t, 4), OS_OK);
    size_t len;
    unsigned char *b = tu_slurp(f->path, &len);
    b[8] = '['; /* the header's opening brace */
    tu_spit(f->path, b, len);
    free(b);
    expect_refused(f->path, OS_EFORMAT, "JSON");
}

static void test_unknown_dtype(void **state)
{
    fixture *f = *state;
    assert_int_equal(os_model_write(f->path, f->doc, f->t, 4), OS_OK);
    size_t len;
    unsigned char *b = tu_slurp(f->path, &len);
    char *p = memmem(b, len, "\"F32\"", 5); /* same length, so offsets stay valid */
    assert_non_null(p);
    memcpy(p, "\"F64\"", 5);
    tu_spit(f->path, b, len);
    free(b);
    expect_refused(f->path, OS_EDTYPE, "F64");
}

static void test_shape_contradicts_architecture(void **state)
{
    fixture *f = *state;
    f->t[2].shape[1] = 32, f->t[2].count = 96; /* fc.weight [3,32]: arch wants [3,64] */
    char *txt = doc_text(f);
    tu_write_raw(f->path, "1", txt, NULL, f->t, 4);
    expect_refused(f->path, OS_ESHAPE, "fc.weight");
    assert_non_null(strstr(os_errdetail(), "[3,64]"));
    /* os_model_write refuses it too, and leaves the existing file untouched. */
    size_t l1, l2;
    unsigned char *before = tu_slurp(f->path, &l1);
    assert_int_equal(os_model_write(f->path, f->doc, f->t, 4), OS_ESHAPE);
    unsigned char *after = tu_slurp(f->path, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(before, after, l1);
    free(before);
    free(after);
    free(txt);
}

static void test_checksum_field_mismatch(void **state)
{
    fixture *f = *state;
    char *txt = doc_text(f);
    tu_write_raw(f->path, "1", txt,
                 "0000000000000000000000000000000000000000000000000000000000000000", f->t, 4);
    expect_refused(f->path, OS_ECHECKSUM, "damaged");
    free(txt);
}

static void test_not_a_onespike_file(void **state)
{
    fixture *f = *state;
    char *txt = doc_text(f);
    tu_write_raw(f->path, NULL, txt, NULL, f->t, 4);
    expect_refused(f->path, OS_EFORMAT, "onespike.format");
    tu_write_raw(f->path, "2", txt, NULL, f->t, 4);
    expect_refused(f->path, OS_EFORMAT, "\"2\"");
    free(txt);
}

static void test_invalid_model_document(void **state)
{
    fixture *f = *state;
    tu_write_raw(f->path, "1", "{\"name\": \"x\",", NULL, f->t, 4);
    expect_refused(f->path, OS_EFORMAT, "onespike.model is not valid JSON");
}

/* Architecture errors name the layer and the field. */
static void test_architecture_errors(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *from, *to, *needle;
        os_status st;
        int classes;
    } cases[] = {
        {"\"threshold\":0.5", "\"threshold\":-1", "threshold -1", OS_EARCH, 3},
        {"\"leak\":0.9", "\"leak\":1.5", "leak 1.5", OS_EARCH, 3},
        {"\"op\":\"maxpool\"", "\"op\":\"meanpool\"", "unknown op \"meanpool\"", OS_EARCH, 3},
        {"\"kernel\":2}", "\"kernel\":2,\"from\":\"nowhere\"}", "\"nowhere\"", OS_EARCH, 3},
        {"\"out\":3", "\"out\":4", "architecture wants [4,64]", OS_ESHAPE, 3},
        {"\"out\":3", "\"out\":3", "one per label", OS_EARCH, 4},
        {"\"weight\":\"fc.weight\"", "\"weight\":\"fc.missing\"", "fc.missing", OS_EARCH, 3},
        {"\"name\":\"lif1\"", "\"name\":\"conv1\"", "used twice", OS_EARCH, 3},
        {"\"kernel\":3,", "\"kernel\":40,", "larger than padded input", OS_EARCH, 3},
        /* 3 x 65536 x 65536 overflows an int: refused before the weight's shape is looked at */
        {"\"kernel\":3,\"stride\":2,\"pad\":1", "\"kernel\":65536,\"stride\":2,\"pad\":32768",
         "fan-in 12884901888 is too large", OS_EARCH, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char layers[2048];
        const char *p = strstr(tiny_layers, cases[i].from);
        assert_non_null(p);
        snprintf(layers, sizeof layers, "%.*s%s%s", (int)(p - tiny_layers), tiny_layers,
                 cases[i].to, p + strlen(cases[i].from));
        json_t *doc = tu_doc(layers, 16, 16, cases[i].classes, 1);
        char *txt = json_dumps(doc, JSON_COMPACT);
        tu_write_raw(f->path, "1", txt, NULL, f->t, 4);
        expect_refused(f->path, cases[i].st, cases[i].needle);
        free(txt);
        json_decref(doc);
    }
}

static void test_missing_file(void **state)
{
    fixture *f = *state;
    os_model *m = NULL;
    char path[300];
    snprintf(path, sizeof path, "%s/absent.safetensors", f->dir);
    assert_int_equal(os_model_load(path, &m), OS_EIO);
    assert_non_null(strstr(os_errdetail(), "absent.safetensors"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_data_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_length_past_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_header_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_dtype, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shape_contradicts_architecture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checksum_field_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_onespike_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_model_document, setup, teardown),
        cmocka_unit_test_setup_teardown(test_architecture_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
