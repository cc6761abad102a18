/* test_utf8.c - the strict UTF-8 check: the boundary cases of RFC 3629 and Markus Kuhn's
 * "UTF-8 decoder capability and stress test", agreement with jansson's own check (the JSON
 * library every checked string is handed to) on every lead byte, and the sanitiser that makes
 * any string JSON-safe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "onespike/utf8.h"

static void test_well_formed(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "",
        "plain ASCII \x01\x7f",
        "\xc2\x80",                                  /* U+0080, the first two-byte code point */
        "\xdf\xbf",                                  /* U+07FF */
        "\xe0\xa0\x80",                              /* U+0800, the first three-byte one */
        "\xed\x9f\xbf",                              /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",                              /* U+E000, just above them */
        "\xef\xbf\xbd",                              /* U+FFFD */
        "\xef\xbf\xbf",                              /* U+FFFF (a noncharacter, but well-formed) */
        "\xf0\x90\x80\x80",                          /* U+10000 */
        "\xf4\x8f\xbf\xbf",                          /* U+10FFFF, the last code point */
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\xb0", /* café € 🛰 */
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        assert_true(os_utf8_valid(ok[i]));
    assert_int_equal(os_utf8_seq("A"), 1);
    assert_int_equal(os_utf8_seq("\xc3\xa9x"), 2);
    assert_int_equal(os_utf8_seq("\xe2\x82\xac"), 3);
    assert_int_equal(os_utf8_seq("\xf0\x9f\x9b\xb0"), 4);
    assert_int_equal(os_utf8_seq(""), 0);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        /* lone continuation bytes */
        "\x80",
        "\xbf",
        "a\x80z",
        /* overlongs: two bytes (C0 and C1 never occur), three, four */
        "\xc0\x80",
        "\xc1\xbf",
        "\xe0\x80\x80",
        "\xe0\x9f\xbf",
        "\xf0\x80\x80\x80",
        "\xf0\x8f\xbf\xbf",
        /* surrogates D800 and DFFF, and a CESU-8 surrogate pair */
        "\xed\xa0\x80",
        "\xed\xbf\xbf",
        "\xed\xa0\xbd\xed\xb2\xa9",
        /* past U+10FFFF, and lead bytes that never occur */
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xf7\xbf\xbf\xbf",
        "\xf8\x88\x80\x80\x80",
        "\xff",
        "\xfe",
        /* cut short by the NUL, by a non-continuation byte, a bad second byte */
        "\xc3",
        "\xe2\x82",
        "\xf0\x9f\x9b",
        "\xc3x",
        "\xe2\x82x",
        "\xf0\x9f\x9bx",
        "ok so far \xe2\x28\xa1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (os_utf8_valid(bad[i]))
            fail_msg("case %zu accepted", i);
    }
    assert_int_equal(os_utf8_seq("\xe0\x80\x80"), 0);
    assert_int_equal(os_utf8_seq("\xed\xa0\x80"), 0);
}

/* Every lead byte with every first continuation byte, and a spread of later bytes: the check
 * agrees with jansson's, so a string that passes here is never refused by json_string. */
static void test_agrees_with_jansson(void **state)
{
    (void)state;
    static const unsigned char tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f,
                                          0x90, 0x9f, 0xa0, 0xbf, 0xc0};
    size_t accepted = 0;
    for (unsigned b0 = 1; b0 < 0x100; b0++)
        for (unsigned b1 = 0; b1 < 0x100; b1++)
            for (size_t i = 0; i < sizeof tails; i++)
                for (size_t j = 0; j < sizeof tails; j++) {
                    const char s[5] = {(char)b0, (char)b1, (char)tails[i], (char)tails[j], 0};
                    json_t *js = json_string(s);
                    bool ours = os_utf8_valid(s), theirs = js != NULL;
                    json_decref(js);
                    if (ours != theirs)
                        fail_msg("%02x %02x %02x %02x: ours %d, jansson %d", b0, b1, tails[i],
                                 tails[j], ours, theirs);
                    accepted += ours;
                }
    assert_true(accepted > 10000);
}

static void test_sanitize(void **state)
{
    (void)state;
    char s[] = "ok \xc3\xa9 \xe0\x80\x80 \xed\xa0\x80 \xf4\x90\x80\x80 \xc3";
    assert_int_equal(os_utf8_sanitize(s, '?'), 3 + 3 + 4 + 1);
    assert_string_equal(s, "ok \xc3\xa9 ??? ??? ???? ?");
    assert_true(os_utf8_valid(s));
    char keep[] = "caf\xc3\xa9 \xe2\x82\xac";
    assert_int_equal(os_utf8_sanitize(keep, '?'), 0);
    assert_string_equal(keep, "caf\xc3\xa9 \xe2\x82\xac");
    /* The byte after a cut sequence is looked at afresh: "x" survives, and so does the "é"
     * after a lone lead byte. */
    char cut[] = "\xe2\x82x\xe2\xc3\xa9";
    assert_int_equal(os_utf8_sanitize(cut, '_'), 3);
    assert_string_equal(cut, "__x_\xc3\xa9");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_well_formed),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_agrees_with_jansson),
        cmocka_unit_test(test_sanitize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
