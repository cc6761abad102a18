/* test_b64.c - server/b64.c: RFC 4648 test vectors, optional padding, MIME line breaks, in-place
 * decoding of a real JPEG's base64, and the offset reported for each kind of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b64.h"

static void expect_ok(const char *in, const char *want)
{
    unsigned char out[128];
    size_t n = 12345, bad = 0;
    if (!srv_b64_decode(in, strlen(in), out, &n, &bad))
        fail_msg("\"%s\" refused at %zu", in, bad);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
}

static void expect_bad(const char *in, size_t at)
{
    unsigned char out[128];
    size_t n = 0, bad = 999;
    if (srv_b64_decode(in, strlen(in), out, &n, &bad))
        fail_msg("\"%s\" accepted", in);
    if (bad != at)
        fail_msg("\"%s\": bad_at %zu, want %zu", in, bad, at);
}

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    expect_ok("", "");
    expect_ok("Zg==", "f");
    expect_ok("Zm8=", "fo");
    expect_ok("Zm9v", "foo");
    expect_ok("Zm9vYg==", "foob");
    expect_ok("Zm9vYmE=", "fooba");
    expect_ok("Zm9vYmFy", "foobar");
}

static void test_padding_optional_and_line_breaks(void **state)
{
    (void)state;
    expect_ok("Zg", "f");
    expect_ok("Zm8", "fo");
    expect_ok("Zm9v\r\nYmFy", "foobar");
    expect_ok("Zm\n9vYg=\r\n=", "foob");
    expect_ok("+/+/", "\xfb\xff\xbf");
}

static void test_bad_input_offsets(void **state)
{
    (void)state;
    expect_bad("Zm9v!mFy", 4);  /* outside the alphabet */
    expect_bad("Zm9v YmFy", 4); /* spaces are not line breaks */
    expect_bad("Zg==Zg==", 4);  /* data after padding */
    expect_bad("Z===", 1);      /* '=' after one sextet */
    expect_bad("Zm9=v", 4);     /* data after padding */
    expect_bad("Zm9vY", 5);     /* a lone sextet at the end */
    expect_bad("Zg=", 3);       /* padding that does not complete the group */
    expect_bad("Zm8==", 4);     /* one '=' too many */
    expect_bad("=", 0);
}

/* The worker decodes into the request body itself: output written behind the read position. */
static void test_in_place_real_jpeg(void **state)
{
    (void)state;
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *f = fopen(FIXTURE_DIR "/ucm_airplane00.jpg", "rb");
    assert_non_null(f);
    unsigned char raw[32768];
    size_t n = fread(raw, 1, sizeof raw, f);
    fclose(f);
    assert_true(n > 1000 && n < sizeof raw);
    size_t tl = (n + 2) / 3 * 4;
    char *text = malloc(tl);
    assert_non_null(text);
    for (size_t i = 0, o = 0; i < n; i += 3) { /* encode */
        uint32_t v = (uint32_t)raw[i] << 16 | (i + 1 < n ? (uint32_t)raw[i + 1] << 8 : 0) |
                     (i + 2 < n ? raw[i + 2] : 0);
        text[o++] = alphabet[v >> 18 & 63], text[o++] = alphabet[v >> 12 & 63];
        text[o++] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        text[o++] = i + 2 < n ? alphabet[v & 63] : '=';
    }
    size_t out_len = 0, bad = 0;
    assert_true(srv_b64_decode(text, tl, (unsigned char *)text, &out_len, &bad));
    assert_int_equal(out_len, n);
    assert_memory_equal(text, raw, n);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_padding_optional_and_line_breaks),
        cmocka_unit_test(test_bad_input_offsets),
        cmocka_unit_test(test_in_place_real_jpeg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
