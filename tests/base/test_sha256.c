/* test_sha256.c - SHA-256 against the FIPS 180-2/180-4 example vectors, plus padding-boundary
 * lengths whose digests were computed with an independent implementation (Python hashlib).
 * Every vector runs twice: with the block function os_sha256_init picks for this CPU (the SHA
 * extensions where it has them) and with ONESPIKE_ISA=scalar (portable C); and both ways must
 * give one digest for a long message fed in uneven pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "onespike/sha256.h"

static void digest_hex(const uint8_t d[32], char hex[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static void test_empty(void **state)
{
    (void)state;
    char hex[65];
    os_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    os_sha256_hex(NULL, 0, hex); /* NULL with length 0 is allowed */
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_abc(void **state)
{
    (void)state;
    char hex[65];
    os_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* 448 bits: the padding needs a second block. */
static void test_448_bits(void **state)
{
    (void)state;
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    char hex[65];
    assert_int_equal(strlen(m), 56);
    os_sha256_hex(m, strlen(m), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_896_bits(void **state)
{
    (void)state;
    const char *m = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                    "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    char hex[65];
    os_sha256_hex(m, strlen(m), hex);
    assert_string_equal(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* One million 'a', streamed in chunks whose sizes straddle block boundaries in every way. */
static void test_million_a_chunked(void **state)
{
    (void)state;
    static const size_t chunks[] = {1, 63, 64, 65, 7, 127, 128, 1000, 3, 4096, 55, 56, 9};
    static uint8_t as[4096];
    memset(as, 'a', sizeof as);
    os_sha256 c;
    uint8_t d[32];
    char hex[65];
    os_sha256_init(&c);
    size_t left = 1000000, k = 0;
    while (left > 0) {
        size_t n = chunks[k++ % (sizeof chunks / sizeof chunks[0])];
        if (n > left)
            n = left;
        os_sha256_update(&c, as, n);
        os_sha256_update(&c, as, 0); /* empty updates change nothing */
        left -= n;
    }
    os_sha256_final(&c, d);
    digest_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Lengths around the 55/56-byte padding boundary and the 64-byte block, one-shot and byte by
 * byte. Message bytes are i*7 mod 256. */
static void test_boundaries(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        const char *hex;
    } v[] = {
        {55, "576a1bf8d4478657e6dc4af9398544765c2a92cde28478b019235cfed315fc09"},
        {56, "9b20501dfd1d99161c257950f3444f3e49230c351c5c8e0943ef369f85f5205d"},
        {57, "a5534a9d0694341dfde5b1bb3d8addcb38bd46f44a629dc97b3f8fb2721b0720"},
        {63, "30b345906b493f06f69444b6521113511c242f30e29840462950035043682f1e"},
        {64, "d8bc63b4fc1156e5e7d95a418b9bf54cd3174bedbc2db40f74895349b229b3c0"},
        {65, "1ee23b0fbcaecc1aff4a9e8f1645f35ab2c8e13609cd73b68df8b5e3f63ce073"},
        {119, "7a6589821178918ca8d9edaba5abfc1e9b2669564f4469b66885379c1530b2c8"},
        {120, "655250427d56b1b0eeb8497d21428704273458a01772d6881b65c0abac0f8a98"},
        {128, "54c9eb041badfd7064645067b107661fed6113197ce2dd066ba69618abd3732f"},
    };
    uint8_t msg[128];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7);
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        char hex[65];
        os_sha256_hex(msg, v[k].n, hex);
        assert_string_equal(hex, v[k].hex);

        os_sha256 c;
        uint8_t d[32];
        os_sha256_init(&c);
        for (size_t i = 0; i < v[k].n; i++)
            os_sha256_update(&c, msg + i, 1);
        os_sha256_final(&c, d);
        digest_hex(d, hex);
        assert_string_equal(hex, v[k].hex);
    }
}

/* 1 MiB + 7 bytes of pseudo-random data, in pieces of 1 to 300 bytes, both ways. */
static void test_both_block_functions_agree(void **state)
{
    (void)state;
    enum { N = (1 << 20) + 7 };
    uint8_t *msg = malloc(N);
    assert_non_null(msg);
    uint32_t x = 12345;
    for (size_t i = 0; i < N; i++) {
        x = x * 1664525u + 1013904223u;
        msg[i] = (uint8_t)(x >> 24);
    }
    char hex[2][65];
    const char *saved = getenv("ONESPIKE_ISA");
    for (int way = 0; way < 2; way++) {
        if (way)
            setenv("ONESPIKE_ISA", "scalar", 1);
        os_sha256 c;
        uint8_t d[32];
        os_sha256_init(&c);
        for (size_t at = 0, k = 0; at < N; k++) {
            size_t n = 1 + (k * 37) % 300;
            n = n > N - at ? N - at : n;
            os_sha256_update(&c, msg + at, n);
            at += n;
        }
        os_sha256_final(&c, d);
        digest_hex(d, hex[way]);
    }
    if (saved)
        setenv("ONESPIKE_ISA", saved, 1);
    else
        unsetenv("ONESPIKE_ISA");
    assert_string_equal(hex[0], hex[1]);
    free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_abc),
        cmocka_unit_test(test_448_bits),
        cmocka_unit_test(test_896_bits),
        cmocka_unit_test(test_million_a_chunked),
        cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_both_block_functions_agree),
    };
    /* the vectors with this CPU's block function, then with the portable one */
    int failed = cmocka_run_group_tests_name("cpu", tests, NULL, NULL);
    setenv("ONESPIKE_ISA", "scalar", 1);
    failed += cmocka_run_group_tests_name("portable", tests, NULL, NULL);
    return failed;
}
