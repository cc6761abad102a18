/* test_multipart.c - server/multipart.c: boundary parameters as clients send them, a curl-style
 * form with the image among other fields, preambles, quoted names, headerless parts, and the
 * message for every malformed body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "multipart.h"

enum { ERR_MAX = 512, BOUNDARY_MAX = 72 };

static void test_boundary_parameter(void **state)
{
    (void)state;
    char b[BOUNDARY_MAX];
    assert_true(srv_multipart_boundary("multipart/form-data; boundary=abc", b, sizeof b));
    assert_string_equal(b, "abc");
    assert_true(srv_multipart_boundary("Multipart/Form-Data ;charset=utf-8; BOUNDARY=\"a b;c\"", b,
                                       sizeof b));
    assert_string_equal(b, "a b;c");
    assert_true(srv_multipart_boundary("  multipart/form-data; boundary=x y", b, sizeof b));
    assert_string_equal(b, "x"); /* an unquoted value stops at white space */
    assert_false(srv_multipart_boundary("multipart/mixed; boundary=abc", b, sizeof b));
    assert_false(srv_multipart_boundary("multipart/form-data", b, sizeof b));
    assert_false(srv_multipart_boundary("multipart/form-data; boundary=", b, sizeof b));
    assert_false(srv_multipart_boundary("multipart/form-data; boundary=\"abc", b, sizeof b));
    assert_false(srv_multipart_boundary("multipart/form-datax; boundary=abc", b, sizeof b));
    char longer[200];
    snprintf(longer, sizeof longer, "multipart/form-data; boundary=%0100d", 7);
    assert_false(srv_multipart_boundary(longer, b, sizeof b)); /* over 71 bytes */
}

static bool find(const char *body, const char *boundary, const char *field, char *got,
                 size_t gotcap, char *err)
{
    const unsigned char *data = NULL;
    size_t len = 0;
    bool ok = srv_multipart_find((const unsigned char *)body, strlen(body), boundary, field, &data,
                                 &len, err, ERR_MAX);
    if (ok) {
        assert_true(data >= (const unsigned char *)body);
        assert_true(len < gotcap);
        memcpy(got, data, len);
        got[len] = '\0';
    }
    return ok;
}

static void test_curl_form(void **state)
{
    (void)state;
    const char *body = "--XyZ\r\n"
                       "Content-Disposition: form-data; name=\"note\"\r\n\r\n"
                       "hello\r\n"
                       "--XyZ\r\n"
                       "Content-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
                       "Content-Type: image/jpeg\r\n\r\n"
                       "\xff\xd8\xff\r\n-- not a delimiter\r\n"
                       "--XyZ--\r\n";
    char got[64], err[ERR_MAX];
    assert_true(find(body, "XyZ", "image", got, sizeof got, err));
    assert_string_equal(got, "\xff\xd8\xff\r\n-- not a delimiter");
    assert_true(find(body, "XyZ", "note", got, sizeof got, err));
    assert_string_equal(got, "hello");
    assert_false(find(body, "XyZ", "file", got, sizeof got, err));
    assert_string_equal(err, "no field \"file\" in the form (fields: note, image)");
}

static void test_preamble_unquoted_name_no_headers(void **state)
{
    (void)state;
    char got[64], err[ERR_MAX];
    assert_true(find("preamble text\r\n--q\r\ncontent-disposition: form-data; name=image\r\n\r\n"
                     "XYZ\r\n--q--",
                     "q", "image", got, sizeof got, err));
    assert_string_equal(got, "XYZ");
    assert_true(find("--q\r\n\r\nanon\r\n--q\r\nContent-Disposition: form-data; name=\"image\""
                     "\r\n\r\n\r\n--q--\r\n",
                     "q", "image", got, sizeof got, err));
    assert_string_equal(got, ""); /* an empty field is found; the decoder says it is empty */
    /* the boundary may be followed by white space before its CRLF */
    assert_true(find("--q \t\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nA\r\n--q--",
                     "q", "image", got, sizeof got, err));
    assert_string_equal(got, "A");
}

static void test_malformed_bodies(void **state)
{
    (void)state;
    char got[64], err[ERR_MAX];
    assert_false(find("no delimiter at all", "q", "image", got, sizeof got, err));
    assert_string_equal(err, "multipart body has no boundary line \"--q\"");
    assert_false(find("--qX\r\n", "q", "image", got, sizeof got, err));
    assert_string_equal(err, "multipart boundary line not followed by CRLF");
    assert_false(find("--q\r\nContent-Disposition: form-data; name=\"image\"\r\n", "q", "image",
                      got, sizeof got, err));
    assert_string_equal(err, "multipart part headers not terminated by a blank line");
    assert_false(find("--q\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nJPEG...", "q",
                      "image", got, sizeof got, err));
    assert_string_equal(err, "multipart part not closed by \"--q\" (body cut short?)");
    assert_false(find("--q--\r\n", "q", "image", got, sizeof got, err));
    assert_string_equal(err, "no field \"image\" in the form (fields: none)");
    char boundary[100];
    memset(boundary, 'b', sizeof boundary - 1);
    boundary[sizeof boundary - 1] = '\0';
    assert_false(find("--q--", boundary, "image", got, sizeof got, err));
    assert_string_equal(err, "multipart boundary too long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary_parameter),
        cmocka_unit_test(test_curl_form),
        cmocka_unit_test(test_preamble_unquoted_name_no_headers),
        cmocka_unit_test(test_malformed_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
