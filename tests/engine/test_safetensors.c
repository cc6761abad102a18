/* test_safetensors.c - the safetensors container: round trips, the exact bytes we write, atomic
 * file writes, and rejection of malformed files with the right status and a message that names
 * the file and the fault.
 *
 * Malformed files are built by hand from header JSON strings (make_file), so each case shows
 * exactly what is wrong with it.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onespike/safetensors.h"
#include "onespike/sha256.h"

#define LABEL "m.safetensors"

/* ---------------------------------------------------------------------------------------------
 * Helpers.
 */

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A 64-byte aligned file image: 8-byte little-endian length of json (padded with spaces to a
 * multiple of 8 unless no_pad), the json, then data_len bytes of a recognisable pattern. */
static uint8_t *make_file(const char *json, size_t data_len, int no_pad, size_t *len)
{
    size_t jl = strlen(json);
    size_t hl = no_pad ? jl : (jl + 7) / 8 * 8;
    *len = 8 + hl + data_len;
    uint8_t *buf = aligned_alloc(64, (*len + 63) / 64 * 64);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, json, jl);
    memset(buf + 8 + jl, ' ', hl - jl);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + hl + i] = (uint8_t)(i * 37 + 11);
    return buf;
}

static uint64_t header_len(const uint8_t *buf)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | buf[i];
    return n;
}

static void set_header_len(uint8_t *buf, uint64_t n)
{
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(n >> (8 * i));
}

static void assert_detail_has(const char *want)
{
    const char *got = os_errdetail();
    if (!strstr(got, want)) {
        print_error("detail \"%s\"\n  lacks \"%s\"\n", got, want);
        fail();
    }
}

/* Parse buf and expect failure with status st and a message containing want (and the label). */
static void expect_reject(const uint8_t *buf, size_t len, os_status st, const char *want)
{
    os_st_file *f = (os_st_file *)&f; /* must be reset to NULL on failure */
    os_errclear();
    os_status got = os_st_parse(buf, len, LABEL, &f);
    if (got != st)
        print_error("status %d (%s), detail \"%s\"\n", got, os_strerror(got), os_errdetail());
    assert_int_equal(got, st);
    assert_null(f);
    assert_detail_has(LABEL ": ");
    assert_detail_has(want);
}

/* ---------------------------------------------------------------------------------------------
 * Round trips and the bytes we write.
 */

enum { W_COUNT = 12, B_COUNT = 3, T_COUNT = 5 };

static float w_data[W_COUNT], b_data[B_COUNT], t_data[T_COUNT], s_data[1];

static void fill_test_tensors(os_tensor_view v[5])
{
    for (int i = 0; i < W_COUNT; i++)
        w_data[i] = (float)i * 0.25f - 1.0f;
    /* values whose bits a careless copy or text round trip would change */
    w_data[1] = -0.0f;
    w_data[2] = INFINITY;
    w_data[3] = -INFINITY;
    w_data[4] = bits_to_float(0x7fc12345u); /* NaN with a payload */
    w_data[5] = bits_to_float(0x00000001u); /* smallest denormal */
    w_data[6] = FLT_MAX;
    w_data[7] = 0.1f;
    for (int i = 0; i < B_COUNT; i++)
        b_data[i] = -(float)i - 0.5f;
    for (int i = 0; i < T_COUNT; i++)
        t_data[i] = 1.0f / (float)(i + 3);
    s_data[0] = 3.5f;

    v[0] = (os_tensor_view){
        .name = "conv.weight", .ndim = 4, .shape = {2, 3, 1, 2}, .data = w_data, .count = W_COUNT};
    v[1] = (os_tensor_view){.name = "scalar", .ndim = 0, .data = s_data, .count = 1};
    v[2] = (os_tensor_view){.name = "empty", .ndim = 2, .shape = {0, 5}, .data = NULL, .count = 0};
    v[3] = (os_tensor_view){
        .name = "b\xc3\xa9is", .ndim = 1, .shape = {B_COUNT}, .data = b_data, .count = B_COUNT};
    v[4] = (os_tensor_view){
        .name = "tail", .ndim = 1, .shape = {T_COUNT}, .data = t_data, .count = T_COUNT};
}

static const os_st_meta test_meta[] = {
    {"onespike.format", "1"},
    {"k", "v with \"quotes\", a \\ backslash, \xc3\xa9 and a\nnewline"},
    {"empty", ""},
};

static void check_parsed(const os_st_file *f, const os_tensor_view *v, size_t n)
{
    assert_int_equal(os_st_count(f), n);
    /* the tensors were given in offset order, so the parsed order matches */
    for (size_t i = 0; i < n; i++) {
        const os_tensor_view *p = os_st_tensor(f, i);
        assert_non_null(p);
        assert_string_equal(p->name, v[i].name);
        assert_int_equal(p->ndim, v[i].ndim);
        for (int d = 0; d < v[i].ndim; d++)
            assert_int_equal(p->shape[d], v[i].shape[d]);
        assert_int_equal(p->count, v[i].count);
        assert_int_equal((uintptr_t)p->data % 4, 0);
        if (v[i].count > 0)
            assert_memory_equal(p->data, v[i].data, v[i].count * 4);
        assert_ptr_equal(os_st_find(f, v[i].name), p);
    }
    assert_null(os_st_tensor(f, n));
    assert_null(os_st_find(f, "nope"));
    assert_null(os_st_find(f, "__metadata__"));
}

static void test_roundtrip(void **state)
{
    (void)state;
    os_tensor_view v[5];
    fill_test_tensors(v);
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(os_st_serialize(v, 5, test_meta, 3, &buf, &len), OS_OK);
    assert_non_null(buf);

    uint64_t hl = header_len(buf);
    size_t data_bytes = (W_COUNT + 1 + B_COUNT + T_COUNT) * 4;
    assert_int_equal(hl % 8, 0);
    assert_int_equal(len, 8 + hl + data_bytes);

    os_st_file *f = NULL;
    assert_int_equal(os_st_parse(buf, len, LABEL, &f), OS_OK);
    check_parsed(f, v, 5);
    const os_tensor_view *s = os_st_find(f, "scalar");
    assert_int_equal(s->ndim, 0);
    assert_true(s->data[0] == 3.5f);

    for (size_t i = 0; i < 3; i++)
        assert_string_equal(os_st_meta_get(f, test_meta[i].key), test_meta[i].value);
    assert_null(os_st_meta_get(f, "absent"));

    /* the data section is the tensors back to back, starting right after the header */
    size_t dlen = 0;
    const uint8_t *d = os_st_data(f, &dlen);
    assert_int_equal(dlen, data_bytes);
    assert_ptr_equal(d, (uint8_t *)buf + 8 + hl);
    assert_memory_equal(d, w_data, sizeof w_data);
    assert_memory_equal(d + 48, s_data, 4);
    assert_memory_equal(d + 52, b_data, sizeof b_data);
    assert_memory_equal(d + 64, t_data, sizeof t_data);

    os_st_free(f);
    free(buf);
}

/* The exact bytes: compact JSON, __metadata__ first, keys in the given order, spaces to a
 * multiple of 8, then the data. */
static void test_serialize_exact_bytes(void **state)
{
    (void)state;
    const float a[2] = {1.0f, -2.0f};
    const float z[1] = {0.5f};
    const os_tensor_view v[] = {
        {.name = "z", .ndim = 1, .shape = {1}, .data = z, .count = 1},
        {.name = "a", .ndim = 2, .shape = {1, 2}, .data = a, .count = 2},
    };
    const os_st_meta m[] = {{"k", "v"}, {"b", "c"}};
    const char *want = "{\"__metadata__\":{\"k\":\"v\",\"b\":\"c\"},"
                       "\"z\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[4,12]}}";
    size_t wl = strlen(want), padded = (wl + 7) / 8 * 8;
    assert_true(padded > wl); /* the case exercises padding */

    void *out = NULL;
    size_t len = 0;
    assert_int_equal(os_st_serialize(v, 2, m, 2, &out, &len), OS_OK);
    const uint8_t *p = out;
    assert_int_equal(len, 8 + padded + 12);
    assert_int_equal(header_len(p), padded);
    assert_memory_equal(p + 8, want, wl);
    for (size_t i = wl; i < padded; i++)
        assert_int_equal(p[8 + i], ' ');
    assert_memory_equal(p + 8 + padded, z, 4);
    assert_memory_equal(p + 8 + padded + 4, a, 8);
    free(out);
}

/* No metadata: no __metadata__ key at all; no tensors: "{}" padded to 8. */
static void test_serialize_minimal(void **state)
{
    (void)state;
    void *out = NULL;
    size_t len = 0;
    assert_int_equal(os_st_serialize(NULL, 0, NULL, 0, &out, &len), OS_OK);
    assert_int_equal(len, 16);
    assert_memory_equal(out, "\x08\0\0\0\0\0\0\0{}      ", 16);
    os_st_file *f = NULL;
    assert_int_equal(os_st_parse(out, len, LABEL, &f), OS_OK);
    assert_int_equal(os_st_count(f), 0);
    assert_null(os_st_meta_get(f, "k"));
    size_t dlen = 99;
    os_st_data(f, &dlen);
    assert_int_equal(dlen, 0);
    os_st_free(f);
    free(out);
}

/* Views come out in data-offset order whatever the JSON order; zero-size tensors are fine, even
 * two at the same offset. */
static void test_parse_sorts_by_offset(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = make_file("{\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]},"
                             "\"__metadata__\":{\"x\":\"y\"},"
                             "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                             "\"e2\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[8,8]},"
                             "\"e1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
                             "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]}}",
                             16, 0, &len);
    os_st_file *f = NULL;
    assert_int_equal(os_st_parse(buf, len, LABEL, &f), OS_OK);
    const char *order[] = {"a", "e1", "e2", "b", "c"};
    assert_int_equal(os_st_count(f), 5);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(os_st_tensor(f, i)->name, order[i]);
    const uint8_t *d = os_st_data(f, NULL);
    assert_ptr_equal(os_st_find(f, "c")->data, d + 12);
    assert_ptr_equal(os_st_find(f, "b")->data, d + 8);
    assert_int_equal(os_st_find(f, "b")->ndim, 0);
    assert_int_equal(os_st_find(f, "b")->count, 1);
    assert_int_equal(os_st_find(f, "e2")->count, 0);
    assert_int_equal(os_st_find(f, "e2")->shape[0], 3);
    assert_string_equal(os_st_meta_get(f, "x"), "y");
    os_st_free(f);
    free(buf);
}

static void test_serialize_rejects(void **state)
{
    (void)state;
    const float x[2] = {1, 2};
    void *out = (void *)&out;
    size_t len = 7;
    struct {
        os_tensor_view v[2];
        size_t n;
        const char *want;
    } cases[] = {
        {{{.name = "a", .ndim = 1, .shape = {2}, .data = x, .count = 2},
          {.name = "a", .ndim = 1, .shape = {2}, .data = x, .count = 2}},
         2,
         "duplicate tensor name \"a\""},
        {{{.name = "__metadata__", .ndim = 1, .shape = {2}, .data = x, .count = 2}},
         1,
         "tensor name \"__metadata__\" is reserved"},
        {{{.name = "a", .ndim = 2, .shape = {2, 3}, .data = x, .count = 2}},
         1,
         "tensor \"a\" shape [2,3] has 6 elements but count is 2"},
        {{{.name = "a", .ndim = 1, .shape = {-2}, .data = x, .count = 2}},
         1,
         "tensor \"a\" has negative shape [-2]"},
        {{{.name = "a", .ndim = 9, .shape = {1}, .data = x, .count = 1}},
         1,
         "tensor \"a\" has 9 dimensions"},
        {{{.name = "bad\xff", .ndim = 1, .shape = {2}, .data = x, .count = 2}},
         1,
         "tensor name \"bad\\xff\" is not valid UTF-8"},
        {{{.name = NULL, .ndim = 1, .shape = {2}, .data = x, .count = 2}}, 1, "has no name"},
        {{{.name = "a", .ndim = 1, .shape = {2}, .data = NULL, .count = 2}}, 1, "has no data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        os_errclear();
        assert_int_equal(os_st_serialize(cases[i].v, cases[i].n, NULL, 0, &out, &len), OS_EINVAL);
        assert_null(out);
        assert_int_equal(len, 0);
        assert_detail_has(cases[i].want);
    }

    const os_tensor_view ok = {.name = "a", .ndim = 1, .shape = {2}, .data = x, .count = 2};
    const os_st_meta dup[] = {{"k", "1"}, {"k", "2"}};
    assert_int_equal(os_st_serialize(&ok, 1, dup, 2, &out, &len), OS_EINVAL);
    assert_detail_has("duplicate metadata key \"k\"");
    const os_st_meta badval[] = {{"k", "\xc0\x80"}}; /* overlong NUL */
    assert_int_equal(os_st_serialize(&ok, 1, badval, 1, &out, &len), OS_EINVAL);
    assert_detail_has("metadata \"k\" is not valid UTF-8");
    const os_st_meta nullval[] = {{"k", NULL}};
    assert_int_equal(os_st_serialize(&ok, 1, nullval, 1, &out, &len), OS_EINVAL);
    assert_null(out);
}

/* ---------------------------------------------------------------------------------------------
 * Rejection of broken length fields and truncation (built from a valid file).
 */

static uint8_t *valid_file(size_t *len)
{
    os_tensor_view v[5];
    fill_test_tensors(v);
    void *buf = NULL;
    assert_int_equal(os_st_serialize(v, 5, test_meta, 3, &buf, len), OS_OK);
    return buf; /* malloc'd: aligned enough for floats */
}

static void test_reject_flipped_header_length(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = valid_file(&len);
    uint64_t hl = header_len(buf);
    char want[128];

    buf[2] ^= 0x10; /* +1 MiB: still under OS_ST_MAX_HEADER, far past the end */
    snprintf(want, sizeof want, LABEL ": header length %llu past end of file (%zu bytes)",
             (unsigned long long)(hl ^ ((uint64_t)0x10 << 16)), len);
    expect_reject(buf, len, OS_EFORMAT, want);
    assert_string_equal(os_errdetail(), want);

    buf[2] ^= 0x10;
    buf[7] ^= 0x80; /* top bit: must not wrap around in any size computation */
    snprintf(want, sizeof want, "header length %llu past end of file",
             (unsigned long long)(hl | (uint64_t)1 << 63));
    expect_reject(buf, len, OS_EFORMAT, want);

    /* one byte short: the JSON still parses (a padding space is lost), but the data section now
     * starts one byte early, so no float in it is aligned */
    buf[7] ^= 0x80;
    assert_int_equal(buf[8 + hl - 1], ' ');
    set_header_len(buf, hl - 1);
    expect_reject(buf, len, OS_EFORMAT, "not 4-byte aligned");
    free(buf);
}

static void test_reject_truncated(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = valid_file(&len);
    expect_reject(buf, len - 6, OS_EFORMAT,
                  "tensor \"tail\": data_offsets [64,84] past end of "
                  "data section (78 bytes; file truncated?)");
    /* cut inside the header */
    expect_reject(buf, header_len(buf), OS_EFORMAT, "past end of file");
    expect_reject(buf, 5, OS_EFORMAT, "file is 5 bytes, too short for the 8-byte header length");
    expect_reject(buf, 0, OS_EFORMAT, "file is 0 bytes");
    expect_reject(NULL, 0, OS_EFORMAT, "file is 0 bytes");
    free(buf);
}

static void test_reject_header_longer_than_file(void **state)
{
    (void)state;
    uint8_t *buf = aligned_alloc(64, 64);
    assert_non_null(buf);
    memset(buf, ' ', 64);
    set_header_len(buf, 100);
    memcpy(buf + 8, "{}", 2);
    expect_reject(buf, 18, OS_EFORMAT, LABEL ": header length 100 past end of file (18 bytes)");

    set_header_len(buf, 1);
    expect_reject(buf, 18, OS_EFORMAT, "header length 1 too small");
    set_header_len(buf, 0);
    expect_reject(buf, 8, OS_EFORMAT, "header length 0 too small");
    free(buf);
}

/* A header over OS_ST_MAX_HEADER is refused before any JSON parsing. calloc's pages stay untouched
 * except the first. */
static void test_reject_header_over_limit(void **state)
{
    (void)state;
    size_t len = (size_t)OS_ST_MAX_HEADER + 64;
    uint8_t *buf = calloc(1, len);
    assert_non_null(buf);
    set_header_len(buf, (uint64_t)OS_ST_MAX_HEADER + 1);
    char want[128];
    snprintf(want, sizeof want, "header length %llu over the limit of %u bytes",
             (unsigned long long)OS_ST_MAX_HEADER + 1, OS_ST_MAX_HEADER);
    expect_reject(buf, len, OS_EFORMAT, want);
    free(buf);
}

static void test_parse_bad_arguments(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = make_file("{}", 0, 0, &len);
    os_st_file *f = NULL;
    /* a NULL label still gives a message with a name */
    set_header_len(buf, 1);
    assert_int_equal(os_st_parse(buf, len, NULL, &f), OS_EFORMAT);
    assert_null(f);
    assert_non_null(strstr(os_errdetail(), "<buffer>: header length 1"));
    set_header_len(buf, 8);
    /* float views need 4-byte alignment */
    memmove(buf + 1, buf, len);
    assert_int_equal(os_st_parse(buf + 1, len, LABEL, &f), OS_EINVAL);
    assert_detail_has("not 4-byte aligned");
    memmove(buf, buf + 1, len);
    assert_int_equal(os_st_parse(buf, len, LABEL, NULL), OS_EINVAL);
    assert_int_equal(os_st_parse(buf, len, LABEL, &f), OS_OK);
    os_st_free(f);
    os_st_free(NULL);
    free(buf);
}

/* ---------------------------------------------------------------------------------------------
 * Rejection of malformed headers: one named test per case.
 */

typedef struct {
    const char *name;
    const char *json;
    size_t data_len;
    int no_pad;
    os_status st;
    const char *want;
} reject_case;

#define T(n, d, s, e) "\"" n "\":{\"dtype\":\"" d "\",\"shape\":" s ",\"data_offsets\":" e "}"

static const reject_case reject_cases[] = {
    {"invalid_json", "{\"a\": ", 0, 1, OS_EFORMAT,
     LABEL ": invalid JSON header at line 1 column 6: "},
    {"invalid_json_trailing_garbage", "{} x", 0, 1, OS_EFORMAT,
     "invalid JSON header at line 1 column 4: end of file expected"},
    {"invalid_utf8", "{\"a\xff\":1}", 0, 0, OS_EFORMAT, "invalid JSON header"},
    {"json_array", "[1,2]", 0, 0, OS_EFORMAT, "header is an array, expected a JSON object"},
    {"json_string", "\"x\"", 0, 0, OS_EFORMAT,
     "invalid JSON header at line 1 column 3: '[' or '{' expected"},
    {"duplicate_key", "{" T("a", "F32", "[1]", "[0,4]") "," T("a", "F32", "[1]", "[4,8]") "}", 8, 0,
     OS_EFORMAT, "invalid JSON header at line 1 column 57: duplicate object key"},
    {"dtype_f16", "{" T("fc.weight", "F16", "[2]", "[0,4]") "}", 4, 0, OS_EDTYPE,
     LABEL ": tensor \"fc.weight\": dtype \"F16\" not supported (only F32)"},
    {"dtype_bf16", "{" T("fc.weight", "BF16", "[2]", "[0,4]") "}", 4, 0, OS_EDTYPE,
     "tensor \"fc.weight\": dtype \"BF16\" not supported (only F32)"},
    {"dtype_garbage", "{" T("w", "QX9", "[2]", "[0,8]") "}", 8, 0, OS_EDTYPE,
     "tensor \"w\": unknown dtype \"QX9\" (only F32 is supported)"},
    {"dtype_lowercase", "{" T("w", "f32", "[2]", "[0,8]") "}", 8, 0, OS_EDTYPE,
     "unknown dtype \"f32\""},
    {"dtype_not_string", "{\"w\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0,
     OS_EFORMAT, "tensor \"w\": dtype is an integer, expected a string"},
    {"shape_offsets_mismatch", "{" T("x", "F32", "[2,3]", "[0,20]") "}", 20, 0, OS_EFORMAT,
     LABEL ": tensor \"x\" shape [2,3] needs 24 bytes, offsets give 20"},
    {"scalar_needs_4_bytes", "{" T("s", "F32", "[]", "[0,8]") "}", 8, 0, OS_EFORMAT,
     "tensor \"s\" shape [] needs 4 bytes, offsets give 8"},
    {"overlap", "{" T("a", "F32", "[4]", "[0,16]") "," T("b", "F32", "[4]", "[8,24]") "}", 24, 0,
     OS_EFORMAT, LABEL ": tensors \"a\" and \"b\" overlap"},
    {"overlap_same_range", "{" T("b", "F32", "[2]", "[0,8]") "," T("a", "F32", "[2]", "[0,8]") "}",
     8, 0, OS_EFORMAT, "tensors \"a\" and \"b\" overlap"},
    {"empty_inside_other", "{" T("a", "F32", "[2]", "[0,8]") "," T("e", "F32", "[0]", "[4,4]") "}",
     8, 0, OS_EFORMAT, "empty tensor \"e\" at offset 4 lies inside tensor \"a\""},
    {"hole_at_end", "{" T("a", "F32", "[2]", "[0,8]") "}", 20, 0, OS_EFORMAT,
     LABEL ": data section has 12 bytes not covered by any tensor (offsets [8,20))"},
    {"hole_in_middle", "{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[12,20]") "}",
     20, 0, OS_EFORMAT, "data section has 4 bytes not covered by any tensor (offsets [8,12))"},
    {"hole_at_start", "{" T("a", "F32", "[2]", "[4,12]") "}", 12, 0, OS_EFORMAT,
     "data section has 4 bytes not covered by any tensor (offsets [0,4))"},
    {"data_without_tensors", "{}", 8, 0, OS_EFORMAT,
     "data section has 8 bytes not covered by any tensor"},
    {"offsets_out_of_bounds", "{" T("a", "F32", "[4]", "[0,16]") "}", 8, 0, OS_EFORMAT,
     LABEL ": tensor \"a\": data_offsets [0,16] past end of data section (8 bytes"},
    {"offsets_huge", "{" T("a", "F32", "[4]", "[9223372036854775800,9223372036854775807]") "}", 8,
     0, OS_EFORMAT, "data_offsets [9223372036854775800,9223372036854775807] past end"},
    {"offsets_reversed", "{" T("a", "F32", "[2]", "[8,0]") "}", 8, 0, OS_EFORMAT,
     "tensor \"a\": data_offsets [8,0] begin after end"},
    {"offsets_negative", "{" T("a", "F32", "[1]", "[-4,0]") "}", 8, 0, OS_EFORMAT,
     "tensor \"a\": data_offsets [-4,0] are negative"},
    {"offsets_real", "{" T("a", "F32", "[1]", "[0.0,4]") "}", 4, 0, OS_EFORMAT,
     "tensor \"a\": data_offsets must be an array of two integers"},
    {"offsets_three", "{" T("a", "F32", "[1]", "[0,4,8]") "}", 4, 0, OS_EFORMAT,
     "tensor \"a\": data_offsets must be an array of two integers"},
    {"offsets_not_array", "{" T("a", "F32", "[1]", "{}") "}", 4, 0, OS_EFORMAT,
     "tensor \"a\": data_offsets must be an array of two integers"},
    {"shape_negative", "{" T("a", "F32", "[-1,2]", "[0,8]") "}", 8, 0, OS_EFORMAT,
     "tensor \"a\": shape[0] is negative (-1)"},
    {"shape_not_integer", "{" T("a", "F32", "[2,\"3\"]", "[0,24]") "}", 24, 0, OS_EFORMAT,
     "tensor \"a\": shape[1] is a string, expected an integer"},
    {"shape_not_array", "{" T("a", "F32", "6", "[0,24]") "}", 24, 0, OS_EFORMAT,
     "tensor \"a\": shape is an integer, expected an array"},
    {"shape_too_many_dims", "{" T("a", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, 0, OS_EFORMAT,
     "tensor \"a\": shape has 9 dimensions, at most 8 supported"},
    /* 2^32 * 2^31 * 2 = 2^64 elements: the product must not wrap to a small value */
    {"shape_product_overflow", "{" T("a", "F32", "[4294967296,2147483648,2]", "[0,0]") "}", 0, 0,
     OS_EFORMAT, "tensor \"a\": shape [4294967296,2147483648,2] is too large"},
    /* 2^62 * 4 bytes wraps to 0 in 64 bits */
    {"shape_bytes_overflow", "{" T("a", "F32", "[4611686018427387904]", "[0,0]") "}", 0, 0,
     OS_EFORMAT, "shape [4611686018427387904] is too large"},
    {"meta_non_string", "{\"__metadata__\":{\"ok\":\"x\",\"k\":1}}", 0, 0, OS_EFORMAT,
     LABEL ": metadata \"k\" is an integer, expected a string"},
    {"meta_nested_object", "{\"__metadata__\":{\"k\":{}}}", 0, 0, OS_EFORMAT,
     "metadata \"k\" is an object, expected a string"},
    {"meta_not_object", "{\"__metadata__\":\"x\"}", 0, 0, OS_EFORMAT,
     "__metadata__ is a string, expected an object of strings"},
    {"missing_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, 0, OS_EFORMAT,
     "tensor \"a\": missing \"data_offsets\""},
    {"missing_dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, OS_EFORMAT,
     "tensor \"a\": missing \"dtype\""},
    {"unknown_field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"foo\":1}}",
     4, 0, OS_EFORMAT, "tensor \"a\": unknown field \"foo\""},
    {"entry_not_object", "{\"a\":[1]}", 0, 0, OS_EFORMAT,
     "tensor \"a\" is an array, expected an object"},
    /* 8 + 54 bytes of header: data starts at file offset 62 */
    {"misaligned_data", "{" T("a", "F32", "[1]", "[0,4]") "}", 4, 1, OS_EFORMAT,
     "tensor \"a\": data at file offset 62 is not 4-byte aligned"},
    {"misaligned_offset", "{" T("a", "F32", "[1]", "[2,6]") "," T("b", "F32", "[]", "[6,10]") "}",
     12, 0, OS_EFORMAT, "is not 4-byte aligned"},
    /* names from the file are quoted with control bytes escaped */
    {"name_escaped", "{" T("a\\u0001\\\"b", "F16", "[1]", "[0,2]") "}", 4, 0, OS_EDTYPE,
     "tensor \"a\\x01\\\"b\": dtype \"F16\" not supported"},
};

static void test_reject_case(void **state)
{
    const reject_case *c = *state;
    size_t len;
    uint8_t *buf = make_file(c->json, c->data_len, c->no_pad, &len);
    expect_reject(buf, len, c->st, c->want);
    free(buf);
}

/* ---------------------------------------------------------------------------------------------
 * Files: atomic write, read back.
 */

static int rm_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return -1;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d)
            return -1;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
        closedir(d);
        return rmdir(path);
    }
    return unlink(path);
}

static int dir_setup(void **state)
{
    static char dir[64];
    strcpy(dir, "/tmp/os_st_test_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    *state = dir;
    return 0;
}

static int dir_teardown(void **state)
{
    return rm_tree(*state);
}

/* Names in dir other than . and .., joined by '|' in readdir order; returns the count. */
static int list_dir(const char *dir, char *names, size_t cap)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    names[0] = '\0';
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n++)
            strncat(names, "|", cap - strlen(names) - 1);
        strncat(names, e->d_name, cap - strlen(names) - 1);
    }
    closedir(d);
    return n;
}

static void test_write_read_roundtrip(void **state)
{
    const char *dir = *state;
    char path[256], names[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);

    size_t len;
    uint8_t *img = valid_file(&len);
    assert_int_equal(os_write_file_atomic(path, img, len), OS_OK);
    assert_int_equal(list_dir(dir, names, sizeof names), 1);
    assert_string_equal(names, "model.safetensors");
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, len);
    assert_int_equal(sb.st_mode & 0777, 0644);

    void *back = NULL;
    size_t blen = 0;
    assert_int_equal(os_read_file(path, 0, &back, &blen), OS_OK);
    assert_int_equal(blen, len);
    assert_int_equal((uintptr_t)back % 64, 0);
    assert_memory_equal(back, img, len);

    /* and what we read parses to the tensors we wrote */
    os_tensor_view v[5];
    fill_test_tensors(v);
    os_st_file *f = NULL;
    assert_int_equal(os_st_parse(back, blen, path, &f), OS_OK);
    check_parsed(f, v, 5);
    os_st_free(f);
    free(back);

    /* overwrite with different, shorter contents: replaced whole, still no temporaries */
    const char small[] = "replaced";
    assert_int_equal(os_write_file_atomic(path, small, sizeof small), OS_OK);
    assert_int_equal(os_read_file(path, sizeof small, &back, &blen), OS_OK);
    assert_int_equal(blen, sizeof small);
    assert_memory_equal(back, small, sizeof small);
    free(back);
    assert_int_equal(list_dir(dir, names, sizeof names), 1);

    /* an empty file is fine too */
    assert_int_equal(os_write_file_atomic(path, NULL, 0), OS_OK);
    assert_int_equal(os_read_file(path, 0, &back, &blen), OS_OK);
    assert_int_equal(blen, 0);
    assert_non_null(back);
    free(back);
    free(img);
}

/* A relative path (no slash) lands in the current folder. */
static void test_write_relative_path(void **state)
{
    const char *dir = *state;
    char cwd[4096], names[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    os_status st = os_write_file_atomic("rel.bin", "abc", 3);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(st, OS_OK);
    assert_int_equal(list_dir(dir, names, sizeof names), 1);
    assert_string_equal(names, "rel.bin");
}

static void test_write_missing_folder(void **state)
{
    const char *dir = *state;
    char sub[256], path[300], names[512];
    snprintf(sub, sizeof sub, "%s/no/such", dir);
    snprintf(path, sizeof path, "%s/m.safetensors", sub);
    os_errclear();
    assert_int_equal(os_write_file_atomic(path, "abc", 3), OS_EIO);
    assert_detail_has(path);
    assert_detail_has(strerror(ENOENT));
    assert_int_equal(list_dir(dir, names, sizeof names), 0);
}

/* rename over a non-empty folder fails after the temporary was written: it must be removed. */
static void test_write_failure_removes_temp(void **state)
{
    const char *dir = *state;
    char path[256], inner[300], names[512];
    snprintf(path, sizeof path, "%s/target", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(inner, sizeof inner, "%s/keep", path);
    assert_int_equal(os_write_file_atomic(inner, "x", 1), OS_OK);

    os_errclear();
    assert_int_equal(os_write_file_atomic(path, "abc", 3), OS_EIO);
    assert_detail_has(path);
    assert_detail_has("cannot rename");
    assert_int_equal(list_dir(dir, names, sizeof names), 1);
    assert_string_equal(names, "target");
    assert_int_equal(list_dir(path, names, sizeof names), 1);
    assert_string_equal(names, "keep");
}

static void test_read_errors(void **state)
{
    const char *dir = *state;
    char path[256];
    void *buf = (void *)&buf;
    size_t len = 5;

    snprintf(path, sizeof path, "%s/absent.safetensors", dir);
    os_errclear();
    assert_int_equal(os_read_file(path, 0, &buf, &len), OS_EIO);
    assert_null(buf);
    assert_int_equal(len, 0);
    assert_detail_has(path);
    assert_detail_has(strerror(ENOENT));

    snprintf(path, sizeof path, "%s/big", dir);
    assert_int_equal(os_write_file_atomic(path, "0123456789", 10), OS_OK);
    os_errclear();
    assert_int_equal(os_read_file(path, 9, &buf, &len), OS_ETOOBIG);
    assert_null(buf);
    assert_detail_has(path);
    assert_detail_has("10 bytes, over the limit of 9 bytes");
    assert_int_equal(os_read_file(path, 10, &buf, &len), OS_OK); /* the limit is inclusive */
    assert_int_equal(len, 10);
    free(buf);

    os_errclear();
    assert_int_equal(os_read_file(dir, 0, &buf, &len), OS_EIO);
    assert_detail_has(dir);
    assert_detail_has("not a regular file");
}

/* ---------------------------------------------------------------------------------------------
 */

enum { N_REJECT = sizeof reject_cases / sizeof reject_cases[0] };

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_serialize_exact_bytes),
        cmocka_unit_test(test_serialize_minimal),
        cmocka_unit_test(test_parse_sorts_by_offset),
        cmocka_unit_test(test_serialize_rejects),
        cmocka_unit_test(test_reject_flipped_header_length),
        cmocka_unit_test(test_reject_truncated),
        cmocka_unit_test(test_reject_header_longer_than_file),
        cmocka_unit_test(test_reject_header_over_limit),
        cmocka_unit_test(test_parse_bad_arguments),
        cmocka_unit_test_setup_teardown(test_write_read_roundtrip, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_write_relative_path, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_write_missing_folder, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_removes_temp, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_read_errors, dir_setup, dir_teardown),
    };
    enum { N_FIXED = sizeof fixed / sizeof fixed[0] };
    struct CMUnitTest tests[N_FIXED + N_REJECT];
    static char names[N_REJECT][64];

    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < N_REJECT; i++) {
        snprintf(names[i], sizeof names[i], "test_reject_%s", reject_cases[i].name);
        tests[N_FIXED + i] = (struct CMUnitTest){
            .name = names[i],
            .test_func = test_reject_case,
            .initial_state = (void *)&reject_cases[i],
        };
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
