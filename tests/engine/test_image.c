/* test_image.c - format sniffing, JPEG decoding of real UC Merced images, and resize/normalise
 * values checked against hand-computed numbers and independent averages. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <turbojpeg.h>

#include "onespike/image.h"

#ifndef FIXTURE_DIR
#error "build with -DFIXTURE_DIR=\"/abs/path/tests/fixtures\""
#endif

enum {
    UCM_SIDE = 256,    /* airplane00 and beach00 */
    HARBOR_SIDE = 257, /* harbor10: odd size, so TurboJPEG scaling rounds up */
    HUGE_SIDE = 60000, /* patched into a real header */
    RANDOM_LEN = 4096,
    RANDOM_SEEDS = 16,
    SYNTH_SIDE = 16, /* synthetic JPEGs made with tjCompress2 */
    SYNTH_QUALITY = 100,
    GRAY_TOLERANCE = 2, /* levels a q100 grayscale JPEG may drift */
    NET_SIDE = 32,      /* full-image path output */
};

#define TOL_EXACT 1e-6 /* float rounding only */
#define TOL_PIXEL 1e-4
#define MAX_BLOCK_MEAN_DIFF 2.0 /* levels: 1/8 IDCT vs 8x8 means of the full decode */

static const float ZERO_MEAN[3] = {0, 0, 0};
static const float UNIT_STD[3] = {1, 1, 1};
static const float IMAGENET_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float IMAGENET_STD[3] = {0.229f, 0.224f, 0.225f};

#define ASSERT_NEAR(got, want, tol)                                                                \
    do {                                                                                           \
        double got_ = (got), want_ = (want);                                                       \
        if (!(fabs(got_ - want_) <= (tol)))                                                        \
            fail_msg("%s = %.9g, want %.9g (tol %g)", #got, got_, want_, (double)(tol));           \
    } while (0)

/* A status check that shows the detail message when it fails. */
#define ASSERT_STATUS(call, want)                                                                  \
    do {                                                                                           \
        os_status st_ = (call);                                                                    \
        if (st_ != (want))                                                                         \
            fail_msg("%s = %s (\"%s\"), want %s", #call, os_strerror(st_), os_errdetail(),         \
                     os_strerror(want));                                                           \
    } while (0)

typedef struct {
    uint8_t *data;
    size_t len;
} blob;

typedef struct {
    os_decoder *dec;
    blob airplane, beach, harbor, trunc, png;
} fixture;

static blob read_fixture(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", FIXTURE_DIR, name);
    blob b = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open fixture %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b.data = malloc((size_t)n);
    assert_non_null(b.data);
    b.len = fread(b.data, 1, (size_t)n, f);
    fclose(f);
    assert_int_equal(b.len, (size_t)n);
    return b;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    assert_int_equal(os_decoder_create(&fx->dec), OS_OK);
    fx->airplane = read_fixture("ucm_airplane00.jpg");
    fx->beach = read_fixture("ucm_beach00.jpg");
    fx->harbor = read_fixture("ucm_harbor10.jpg");
    fx->trunc = read_fixture("ucm_airplane00_trunc40.jpg");
    fx->png = read_fixture("tiny_2x2.png");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    os_decoder_destroy(fx->dec);
    free(fx->airplane.data);
    free(fx->beach.data);
    free(fx->harbor.data);
    free(fx->trunc.data);
    free(fx->png.data);
    free(fx);
    return 0;
}

/* Planar CHW index. */
static float at(const float *t, int w, int h, int c, int y, int x)
{
    return t[((size_t)c * (size_t)h + (size_t)y) * (size_t)w + (size_t)x];
}

static uint32_t xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* ---- sniffing and names ---- */

static void test_sniff_every_format(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        os_image_format want;
    } cases[] = {
        {"\xFF\xD8\xFF\xE0\0\x10JFIF", 10, OS_IMG_JPEG},
        {"\xFF\xD8\xFF", 3, OS_IMG_JPEG},
        {"\xFF\xD8", 2, OS_IMG_UNKNOWN}, /* too short for the JPEG signature */
        {"\x89PNG\r\n\x1A\n\0\0\0\rIHDR", 16, OS_IMG_PNG},
        {"\x89PNG\r\n\x1A", 7, OS_IMG_UNKNOWN},
        {"GIF87a\x01\0\x01\0", 10, OS_IMG_GIF},
        {"GIF89a\x01\0\x01\0", 10, OS_IMG_GIF},
        {"II*\0\x08\0\0\0", 8, OS_IMG_TIFF},
        {"MM\0*\0\0\0\x08", 8, OS_IMG_TIFF},
        {"RIFF\x24\0\0\0WEBPVP8 ", 16, OS_IMG_WEBP},
        {"RIFF\x24\0\0\0WAVEfmt ", 16, OS_IMG_UNKNOWN},
        {"RIFF\x24\0\0\0WEB", 11, OS_IMG_UNKNOWN},
        {"BM\x46\0\0\0", 6, OS_IMG_BMP},
        {"hello world", 11, OS_IMG_UNKNOWN},
        {"\0", 1, OS_IMG_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        os_image_format got = os_image_sniff(cases[i].bytes, cases[i].len);
        if (got != cases[i].want)
            fail_msg("case %zu: sniffed %s, want %s", i, os_image_format_name(got),
                     os_image_format_name(cases[i].want));
    }
    assert_int_equal(os_image_sniff(NULL, 0), OS_IMG_EMPTY);
    assert_int_equal(os_image_sniff("\xFF\xD8\xFF", 0), OS_IMG_EMPTY);
}

static void test_sniff_fixtures(void **state)
{
    fixture *fx = *state;
    assert_int_equal(os_image_sniff(fx->airplane.data, fx->airplane.len), OS_IMG_JPEG);
    assert_int_equal(os_image_sniff(fx->trunc.data, fx->trunc.len), OS_IMG_JPEG);
    assert_int_equal(os_image_sniff(fx->png.data, fx->png.len), OS_IMG_PNG);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(os_image_format_name(OS_IMG_EMPTY), "empty");
    assert_string_equal(os_image_format_name(OS_IMG_UNKNOWN), "unknown");
    assert_string_equal(os_image_format_name(OS_IMG_JPEG), "JPEG");
    assert_string_equal(os_image_format_name(OS_IMG_PNG), "PNG");
    assert_string_equal(os_image_format_name(OS_IMG_GIF), "GIF");
    assert_string_equal(os_image_format_name(OS_IMG_TIFF), "TIFF");
    assert_string_equal(os_image_format_name(OS_IMG_WEBP), "WebP");
    assert_string_equal(os_image_format_name(OS_IMG_BMP), "BMP");
    assert_int_equal(os_resize_policy_parse("stretch"), OS_RESIZE_STRETCH);
    assert_int_equal(os_resize_policy_parse("center_crop"), OS_RESIZE_CENTER_CROP);
    assert_int_equal(os_resize_policy_parse("Stretch"), -1);
    assert_int_equal(os_resize_policy_parse("center-crop"), -1);
    assert_int_equal(os_resize_policy_parse(""), -1);
    assert_int_equal(os_resize_policy_parse(NULL), -1);
    assert_string_equal(os_resize_policy_name(OS_RESIZE_STRETCH), "stretch");
    assert_string_equal(os_resize_policy_name(OS_RESIZE_CENTER_CROP), "center_crop");
}

/* ---- decoding real JPEGs ---- */

static void expect_size(fixture *fx, const blob *b, int min_w, int min_h, int want_w, int want_h,
                        int src_w, int src_h)
{
    os_rgb_image img;
    ASSERT_STATUS(os_decoder_decode(fx->dec, b->data, b->len, 0, min_w, min_h, &img), OS_OK);
    if (img.width != want_w || img.height != want_h)
        fail_msg("min %dx%d: decoded %dx%d, want %dx%d", min_w, min_h, img.width, img.height,
                 want_w, want_h);
    assert_int_equal(img.stride, want_w * 3);
    assert_int_equal(img.src_width, src_w);
    assert_int_equal(img.src_height, src_h);
    assert_non_null(img.pixels);
}

static void test_decode_full_size(void **state)
{
    fixture *fx = *state;
    expect_size(fx, &fx->airplane, 0, 0, UCM_SIDE, UCM_SIDE, UCM_SIDE, UCM_SIDE);
    expect_size(fx, &fx->beach, 0, 0, UCM_SIDE, UCM_SIDE, UCM_SIDE, UCM_SIDE);
    expect_size(fx, &fx->harbor, 0, 0, HARBOR_SIDE, HARBOR_SIDE, HARBOR_SIDE, HARBOR_SIDE);
    /* A minimum on one axis only is "no minimum": full size. */
    expect_size(fx, &fx->airplane, 0, 64, UCM_SIDE, UCM_SIDE, UCM_SIDE, UCM_SIDE);
}

static void test_decode_picks_smallest_scale(void **state)
{
    fixture *fx = *state;
    expect_size(fx, &fx->airplane, 64, 64, 64, 64, UCM_SIDE, UCM_SIDE);     /* 2/8 */
    expect_size(fx, &fx->airplane, 65, 64, 96, 96, UCM_SIDE, UCM_SIDE);     /* 3/8 */
    expect_size(fx, &fx->airplane, 64, 100, 128, 128, UCM_SIDE, UCM_SIDE);  /* 4/8 */
    expect_size(fx, &fx->airplane, 1, 1, 32, 32, UCM_SIDE, UCM_SIDE);       /* 1/8 */
    expect_size(fx, &fx->airplane, 224, 224, 224, 224, UCM_SIDE, UCM_SIDE); /* 7/8 */
    expect_size(fx, &fx->airplane, 225, 225, 256, 256, UCM_SIDE, UCM_SIDE); /* 1/1 */
    /* Never upscale in the decoder, even when the minimum is above the image. */
    expect_size(fx, &fx->airplane, 300, 300, 256, 256, UCM_SIDE, UCM_SIDE);
    /* 257 * 1/8 = 32.125 -> 33 (TJSCALED rounds up), too small for 64; 257 * 2/8 -> 65. */
    expect_size(fx, &fx->harbor, 64, 64, 65, 65, HARBOR_SIDE, HARBOR_SIDE);
    expect_size(fx, &fx->harbor, 33, 33, 33, 33, HARBOR_SIDE, HARBOR_SIDE);
    expect_size(fx, &fx->harbor, 34, 33, 65, 65, HARBOR_SIDE, HARBOR_SIDE);
}

/* The 1/8 IDCT keeps only DC coefficients, so each output pixel is close to the mean of its
 * 8x8 block in the full decode: catches a scaled decode that is the wrong picture. */
static void test_decode_scaled_matches_block_means(void **state)
{
    fixture *fx = *state;
    os_rgb_image img;
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->airplane.data, fx->airplane.len, 0, 0, 0, &img),
                  OS_OK);
    size_t full_len = (size_t)img.stride * (size_t)img.height;
    uint8_t *full = malloc(full_len);
    assert_non_null(full);
    memcpy(full, img.pixels, full_len);
    int full_stride = img.stride;

    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->airplane.data, fx->airplane.len, 0, 32, 32, &img),
                  OS_OK);
    assert_int_equal(img.width, 32);
    double total = 0;
    for (int by = 0; by < 32; by++)
        for (int bx = 0; bx < 32; bx++)
            for (int c = 0; c < 3; c++) {
                double sum = 0;
                for (int y = 0; y < 8; y++)
                    for (int x = 0; x < 8; x++)
                        sum += full[(by * 8 + y) * full_stride + (bx * 8 + x) * 3 + c];
                total += fabs(sum / 64 - img.pixels[by * img.stride + bx * 3 + c]);
            }
    free(full);
    double mean_diff = total / (32 * 32 * 3);
    if (mean_diff > MAX_BLOCK_MEAN_DIFF)
        fail_msg("1/8 decode differs from 8x8 block means by %.3f levels on average", mean_diff);
}

static void test_decode_reuses_buffer(void **state)
{
    fixture *fx = *state;
    os_rgb_image img;
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->airplane.data, fx->airplane.len, 0, 0, 0, &img),
                  OS_OK);
    size_t n = (size_t)img.stride * (size_t)img.height;
    uint8_t *first = malloc(n);
    assert_non_null(first);
    memcpy(first, img.pixels, n);
    const uint8_t *buffer = img.pixels;

    /* A smaller decode lands in the same buffer, and a different image gives other pixels. */
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->beach.data, fx->beach.len, 0, 64, 64, &img),
                  OS_OK);
    assert_ptr_equal(img.pixels, buffer);
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->beach.data, fx->beach.len, 0, 0, 0, &img), OS_OK);
    assert_ptr_equal(img.pixels, buffer);
    assert_int_not_equal(memcmp(img.pixels, first, n), 0);

    /* Decoding is deterministic: the same bytes again give the same pixels. */
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->airplane.data, fx->airplane.len, 0, 0, 0, &img),
                  OS_OK);
    assert_memory_equal(img.pixels, first, n);
    free(first);
}

/* ---- refusing bad input ---- */

static void test_decode_empty(void **state)
{
    fixture *fx = *state;
    os_rgb_image img;
    ASSERT_STATUS(os_decoder_decode(fx->dec, NULL, 0, 0, 0, 0, &img), OS_EEMPTY);
    assert_null(img.pixels);
    assert_non_null(strstr(os_errdetail(), "empty"));
}

static void test_decode_truncated(void **state)
{
    fixture *fx = *state;
    os_rgb_image img;
    os_errclear();
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->trunc.data, fx->trunc.len, 0, 0, 0, &img),
                  OS_ECORRUPT);
    assert_null(img.pixels);
    /* TurboJPEG's own message is passed on. */
    assert_non_null(strstr(os_errdetail(), "Premature end of JPEG file"));
    /* Also truncated just after the header, and to a scaled decode. */
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->trunc.data, fx->trunc.len, 0, 64, 64, &img),
                  OS_ECORRUPT);
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->airplane.data, fx->airplane.len, 0, 64, 64, &img),
                  OS_OK);
    assert_int_equal(img.width, 64);
}

static void test_decode_other_formats(void **state)
{
    fixture *fx = *state;
    os_rgb_image img;
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->png.data, fx->png.len, 0, 0, 0, &img),
                  OS_EUNSUPPORTED);
    assert_string_equal(os_errdetail(), "PNG image, expected JPEG");
    ASSERT_STATUS(os_decoder_decode(fx->dec, "GIF89a\x01\0\x01\0", 10, 0, 0, 0, &img),
                  OS_EUNSUPPORTED);
    assert_string_equal(os_errdetail(), "GIF image, expected JPEG");
    ASSERT_STATUS(os_decoder_decode(fx->dec, "RIFF\x24\0\0\0WEBPVP8 ", 16, 0, 0, 0, &img),
                  OS_EUNSUPPORTED);
    assert_string_equal(os_errdetail(), "WebP image, expected JPEG");
}

static void test_decode_random_bytes(void **state)
{
    fixture *fx = *state;
    uint8_t buf[RANDOM_LEN];
    os_rgb_image img;
    for (uint32_t seed = 1; seed <= RANDOM_SEEDS; seed++) {
        uint32_t s = seed * 2654435761u;
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)xorshift(&s);
        buf[0] = 0x00; /* no format starts with a zero byte */
        ASSERT_STATUS(os_decoder_decode(fx->dec, buf, sizeof buf, 0, 0, 0, &img), OS_EUNSUPPORTED);
        assert_non_null(strstr(os_errdetail(), "expected JPEG"));

        /* The JPEG signature followed by garbage is corrupt JPEG, not another format. */
        memcpy(buf, "\xFF\xD8\xFF", 3);
        os_status st = os_decoder_decode(fx->dec, buf, sizeof buf, 1u << 24, 0, 0, &img);
        if (st != OS_ECORRUPT)
            fail_msg("seed %u: %s (%s), want corrupt", seed, os_strerror(st), os_errdetail());
        assert_true(strlen(os_errdetail()) > 0);

        /* A failed header read must not poison the decoder for the next, valid, image
         * (libjpeg-turbo 2.1 keeps its mid-header state in the handle). */
        ASSERT_STATUS(
            os_decoder_decode(fx->dec, fx->airplane.data, fx->airplane.len, 0, 0, 0, &img), OS_OK);
        assert_int_equal(img.width, UCM_SIDE);
    }
}

/* Offset of the SOF0 segment's payload in a baseline JPEG, by walking the marker segments. */
static size_t find_sof0(const blob *b)
{
    size_t i = 2;
    while (i + 4 <= b->len && b->data[i] == 0xFF) {
        uint8_t marker = b->data[i + 1];
        size_t seglen = (size_t)b->data[i + 2] << 8 | b->data[i + 3];
        if (marker == 0xC0)
            return i + 4;
        i += 2 + seglen;
    }
    fail_msg("no SOF0 marker in fixture");
    return 0;
}

/* Split a baseline JPEG into a tables-only stream (SOI, DQT, DHT, EOI) and the abbreviated
 * image without them. Both are malloc'd. */
static void split_tables(const blob *b, blob *tables, blob *abbrev)
{
    tables->data = malloc(b->len);
    abbrev->data = malloc(b->len);
    assert_true(tables->data && abbrev->data);
    memcpy(tables->data, b->data, 2);
    memcpy(abbrev->data, b->data, 2);
    tables->len = abbrev->len = 2;
    size_t i = 2;
    while (i + 4 <= b->len && b->data[i] == 0xFF) {
        uint8_t marker = b->data[i + 1];
        size_t seg = 2 + ((size_t)b->data[i + 2] << 8 | b->data[i + 3]);
        if (marker == 0xDA) { /* start of scan: the rest is entropy-coded data */
            memcpy(abbrev->data + abbrev->len, b->data + i, b->len - i);
            abbrev->len += b->len - i;
            break;
        }
        blob *to = marker == 0xDB || marker == 0xC4 ? tables : abbrev;
        memcpy(to->data + to->len, b->data + i, seg);
        to->len += seg;
        i += seg;
    }
    memcpy(tables->data + tables->len, "\xFF\xD9", 2);
    tables->len += 2;
}

static void test_decode_tables_only(void **state)
{
    fixture *fx = *state;
    blob tables, abbrev;
    split_tables(&fx->airplane, &tables, &abbrev);
    os_decoder *dec = NULL;
    ASSERT_STATUS(os_decoder_create(&dec), OS_OK);
    os_rgb_image img;
    /* On a fresh decoder an image without its quantisation tables cannot decode. */
    ASSERT_STATUS(os_decoder_decode(dec, abbrev.data, abbrev.len, 0, 0, 0, &img), OS_ECORRUPT);
    /* A tables-only stream is no image, and it must not prime the next request. */
    ASSERT_STATUS(os_decoder_decode(dec, tables.data, tables.len, 0, 0, 0, &img), OS_ECORRUPT);
    assert_non_null(strstr(os_errdetail(), "tables only"));
    ASSERT_STATUS(os_decoder_decode(dec, abbrev.data, abbrev.len, 0, 0, 0, &img), OS_ECORRUPT);
    ASSERT_STATUS(os_decoder_decode(dec, fx->airplane.data, fx->airplane.len, 0, 0, 0, &img),
                  OS_OK);
    /* libjpeg keeps the tables of the image it just decoded; the abbreviated stream must still
     * be refused right after a complete JPEG, not decoded with another image's tables. */
    ASSERT_STATUS(os_decoder_decode(dec, abbrev.data, abbrev.len, 0, 0, 0, &img), OS_ECORRUPT);
    assert_non_null(strstr(os_errdetail(), "abbreviated"));
    os_decoder_destroy(dec);
    free(tables.data);
    free(abbrev.data);
}

static void test_decode_refuses_huge_header(void **state)
{
    fixture *fx = *state;
    uint8_t *copy = malloc(fx->airplane.len);
    assert_non_null(copy);
    memcpy(copy, fx->airplane.data, fx->airplane.len);
    blob b = {copy, fx->airplane.len};
    size_t sof = find_sof0(&b);
    /* SOF0 payload: precision(1) height(2) width(2); the fixture says 256x256. */
    assert_int_equal(copy[sof + 1] << 8 | copy[sof + 2], UCM_SIDE);
    assert_int_equal(copy[sof + 3] << 8 | copy[sof + 4], UCM_SIDE);
    copy[sof + 1] = copy[sof + 3] = HUGE_SIDE >> 8;
    copy[sof + 2] = copy[sof + 4] = HUGE_SIDE & 0xFF;

    os_rgb_image img;
    /* Were it decoded, 60000x60000 would be a 10.8 GB buffer and then corrupt data; the limit
     * answers first. */
    ASSERT_STATUS(os_decoder_decode(fx->dec, copy, b.len, (size_t)1 << 24, 224, 224, &img),
                  OS_ETOOBIG);
    assert_null(img.pixels);
    assert_non_null(strstr(os_errdetail(), "60000x60000"));
    assert_non_null(strstr(os_errdetail(), "3600000000"));
    assert_non_null(strstr(os_errdetail(), "16777216"));
    free(copy);
}

static void test_decode_max_pixels(void **state)
{
    fixture *fx = *state;
    os_rgb_image img;
    const size_t exact = (size_t)UCM_SIDE * UCM_SIDE;
    ASSERT_STATUS(
        os_decoder_decode(fx->dec, fx->airplane.data, fx->airplane.len, exact, 0, 0, &img), OS_OK);
    ASSERT_STATUS(
        os_decoder_decode(fx->dec, fx->airplane.data, fx->airplane.len, exact - 1, 0, 0, &img),
        OS_ETOOBIG);
    assert_non_null(strstr(os_errdetail(), "256x256"));
    assert_non_null(strstr(os_errdetail(), "65535"));
    /* The limit is on the stated size, not the scaled one. */
    ASSERT_STATUS(
        os_decoder_decode(fx->dec, fx->airplane.data, fx->airplane.len, exact - 1, 32, 32, &img),
        OS_ETOOBIG);
    /* 257*257 = 66049 */
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->harbor.data, fx->harbor.len, 66049, 0, 0, &img),
                  OS_OK);
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->harbor.data, fx->harbor.len, 66048, 0, 0, &img),
                  OS_ETOOBIG);
}

/* Compress synthetic pixels with TurboJPEG; the result is freed with tjFree. */
static unsigned char *compress(const uint8_t *px, int pixel_size, int pf, int subsamp,
                               unsigned long *len)
{
    tjhandle tj = tjInitCompress();
    assert_non_null(tj);
    unsigned char *jpeg = NULL;
    *len = 0;
    int rc = tjCompress2(tj, px, SYNTH_SIDE, SYNTH_SIDE * pixel_size, SYNTH_SIDE, pf, &jpeg, len,
                         subsamp, SYNTH_QUALITY, 0);
    if (rc != 0)
        fail_msg("tjCompress2: %s", tjGetErrorStr2(tj));
    tjDestroy(tj);
    return jpeg;
}

/* Compress with explicit size and flags (TJFLAG_PROGRESSIVE); freed with tjFree. */
static unsigned char *compress_flags(const uint8_t *px, int side, int subsamp, int flags,
                                     unsigned long *len)
{
    tjhandle tj = tjInitCompress();
    assert_non_null(tj);
    unsigned char *jpeg = NULL;
    *len = 0;
    if (tjCompress2(tj, px, side, side * 3, side, TJPF_RGB, &jpeg, len, subsamp, SYNTH_QUALITY,
                    flags) != 0)
        fail_msg("tjCompress2: %s", tjGetErrorStr2(tj));
    tjDestroy(tj);
    return jpeg;
}

/* Offset of the payload of the first SOF marker of any kind (after FFCn and the length). */
static size_t find_sof_any(const unsigned char *b, size_t len, unsigned char *kind)
{
    for (size_t i = 2; i + 4 < len; i++)
        if (b[i] == 0xFF && b[i + 1] >= 0xC0 && b[i + 1] <= 0xC2) {
            *kind = b[i + 1];
            return i + 4;
        }
    fail_msg("no SOF marker");
    return 0;
}

static void patch_size(unsigned char *b, size_t sof, int w, int h)
{
    b[sof + 1] = (unsigned char)(h >> 8), b[sof + 2] = (unsigned char)h;
    b[sof + 3] = (unsigned char)(w >> 8), b[sof + 4] = (unsigned char)w;
}

/* A progressive JPEG needs whole-image coefficient buffers (~6 bytes a pixel at 4:4:4, 3 at
 * 4:2:0, whatever the scale decoded at): refused before decoding once they pass the budget,
 * while a small one decodes like its baseline twin, and a baseline header of the same large
 * size is not refused by the budget (it needs no such buffers). */
static void test_decode_progressive_budget(void **state)
{
    fixture *fx = *state;
    enum { SIDE = 32, BIG = 6000, FITS_444 = 3200, PIXEL_TOLERANCE = 4 };
    uint8_t rgb[SIDE * SIDE * 3];
    for (int i = 0; i < SIDE * SIDE * 3; i++)
        rgb[i] = (uint8_t)(i * 7 % 251);
    unsigned long plen, blen;
    unsigned char *prog = compress_flags(rgb, SIDE, TJSAMP_444, TJFLAG_PROGRESSIVE, &plen);
    unsigned char *base = compress_flags(rgb, SIDE, TJSAMP_444, 0, &blen);
    unsigned char kind = 0;
    size_t psof = find_sof_any(prog, plen, &kind);
    assert_int_equal(kind, 0xC2);
    /* the buffers' size as os_jpeg_coef_bytes reads it: 3 components x 4 x 4 blocks x 128 B */
    assert_int_equal(os_jpeg_coef_bytes(prog, plen), 3 * 4 * 4 * 128);
    assert_int_equal(os_jpeg_coef_bytes(base, blen), 0);
    assert_int_equal(os_jpeg_coef_bytes(prog, 2), 0);
    assert_int_equal(os_jpeg_coef_bytes("\x89PNG\r\n\x1a\n", 8), 0);

    /* small: decodes, and to the same pixels as the baseline encoding (within rounding) */
    os_rgb_image img;
    uint8_t first[SIDE * SIDE * 3];
    ASSERT_STATUS(os_decoder_decode(fx->dec, base, blen, 0, 0, 0, &img), OS_OK);
    memcpy(first, img.pixels, sizeof first);
    ASSERT_STATUS(os_decoder_decode(fx->dec, prog, plen, 0, 0, 0, &img), OS_OK);
    assert_int_equal(img.width, SIDE);
    for (size_t i = 0; i < sizeof first; i++)
        assert_in_range(img.pixels[i] - first[i] + PIXEL_TOLERANCE, 0, 2 * PIXEL_TOLERANCE);

    /* 6000x6000 at 4:4:4: 3 x 750 x 750 blocks x 128 bytes = 216e6 bytes (205 MB of 2^20),
     * over 64 MB */
    patch_size(prog, psof, BIG, BIG);
    assert_int_equal(os_jpeg_coef_bytes(prog, plen), 216000000);
    ASSERT_STATUS(os_decoder_decode(fx->dec, prog, plen, 0, 224, 224, &img), OS_ETOOBIG);
    assert_null(img.pixels);
    assert_non_null(strstr(os_errdetail(), "progressive JPEG 6000x6000 needs 205 MB"));
    assert_non_null(strstr(os_errdetail(), "budget of 64 MB"));
    /* 3200x3200: 3 x 400 x 400 x 128 = 61.4e6 bytes, inside: passes the check, then fails as the
     * corrupt data it is (the scans are those of a 32x32 image) */
    patch_size(prog, psof, FITS_444, FITS_444);
    os_status st = os_decoder_decode(fx->dec, prog, plen, 0, 224, 224, &img);
    assert_int_not_equal(st, OS_ETOOBIG);
    /* its scans (TurboJPEG writes about 10) over those 61.4e6 bytes are within the 1 GiB of
     * passes; with scan headers added before EOI up to 18 (1.1e9 bytes) it is refused, naming
     * the scans */
    int scans = 0;
    for (unsigned long i = 0; i + 1 < plen; i++)
        scans += prog[i] == 0xFF && prog[i + 1] == 0xDA;
    assert_in_range(scans, 2, 17);
    enum { EXTRA = 18 };
    static const unsigned char sos[] = {0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x01, 0x01, 0x00};
    /* a comment holding an EOI and a scan header's bytes first: a segment's bytes are not
     * markers (counting bytes there would end the count at 10, or add one) */
    static const unsigned char com[] = {0xFF, 0xFE, 0x00, 0x06, 0xFF, 0xD9, 0xFF, 0xDA};
    unsigned long mlen = plen - 2 + sizeof com + (unsigned long)(EXTRA - scans) * sizeof sos + 2;
    unsigned char *many = malloc(mlen);
    assert_non_null(many);
    memcpy(many, prog, plen - 2); /* all but EOI */
    memcpy(many + plen - 2, com, sizeof com);
    for (int k = 0; k < EXTRA - scans; k++)
        memcpy(many + plen - 2 + sizeof com + (size_t)k * sizeof sos, sos, sizeof sos);
    memcpy(many + mlen - 2, "\xFF\xD9", 2);
    ASSERT_STATUS(os_decoder_decode(fx->dec, many, mlen, 0, 224, 224, &img), OS_ETOOBIG);
    assert_non_null(strstr(os_errdetail(), "has 18 scans over 58 MB"));
    free(many);

    size_t bsof = find_sof_any(base, blen, &kind);
    assert_int_equal(kind, 0xC0);
    patch_size(base, bsof, BIG, BIG);
    st = os_decoder_decode(fx->dec, base, blen, 0, 224, 224, &img);
    assert_int_not_equal(st, OS_ETOOBIG);
    tjFree(prog);
    tjFree(base);

    /* 4:2:0 quarters the chroma: 6000x6000 is 750x750 + 2 x 375x375 blocks = 108e6 bytes,
     * refused; 4200x4200 is 53e6, not */
    unsigned char *p420 = compress_flags(rgb, SIDE, TJSAMP_420, TJFLAG_PROGRESSIVE, &plen);
    psof = find_sof_any(p420, plen, &kind);
    patch_size(p420, psof, BIG, BIG);
    assert_int_equal(os_jpeg_coef_bytes(p420, plen), 108000000);
    ASSERT_STATUS(os_decoder_decode(fx->dec, p420, plen, 0, 224, 224, &img), OS_ETOOBIG);
    assert_non_null(strstr(os_errdetail(), "needs 102 MB"));
    patch_size(p420, psof, 4200, 4200);
    assert_int_not_equal(os_decoder_decode(fx->dec, p420, plen, 0, 224, 224, &img), OS_ETOOBIG);
    tjFree(p420);
}

static void test_decode_grayscale_is_rgb(void **state)
{
    fixture *fx = *state;
    uint8_t gray[SYNTH_SIDE * SYNTH_SIDE];
    for (int i = 0; i < SYNTH_SIDE * SYNTH_SIDE; i++)
        gray[i] = (uint8_t)(i % SYNTH_SIDE * 8 + i / SYNTH_SIDE * 4);
    unsigned long len;
    unsigned char *jpeg = compress(gray, 1, TJPF_GRAY, TJSAMP_GRAY, &len);

    os_rgb_image img;
    ASSERT_STATUS(os_decoder_decode(fx->dec, jpeg, len, 0, 0, 0, &img), OS_OK);
    tjFree(jpeg);
    assert_int_equal(img.width, SYNTH_SIDE);
    assert_int_equal(img.stride, SYNTH_SIDE * 3);
    for (int y = 0; y < SYNTH_SIDE; y++)
        for (int x = 0; x < SYNTH_SIDE; x++) {
            const uint8_t *p = img.pixels + y * img.stride + x * 3;
            assert_int_equal(p[0], p[1]);
            assert_int_equal(p[1], p[2]);
            assert_in_range(p[0] - gray[y * SYNTH_SIDE + x] + GRAY_TOLERANCE, 0,
                            2 * GRAY_TOLERANCE);
        }
}

/* Left half red, right half blue (8x8 blocks, 4:4:4, q100): the decoder emits R,G,B order. */
static void test_decode_colour_order(void **state)
{
    fixture *fx = *state;
    enum { HALF = SYNTH_SIDE / 2, RED = 220, LOW = 20, CHANNEL_TOLERANCE = 3 };
    uint8_t rgb[SYNTH_SIDE * SYNTH_SIDE * 3];
    for (int y = 0; y < SYNTH_SIDE; y++)
        for (int x = 0; x < SYNTH_SIDE; x++) {
            uint8_t *p = rgb + (y * SYNTH_SIDE + x) * 3;
            p[0] = x < HALF ? RED : LOW;
            p[1] = LOW;
            p[2] = x < HALF ? LOW : RED;
        }
    unsigned long len;
    unsigned char *jpeg = compress(rgb, 3, TJPF_RGB, TJSAMP_444, &len);
    os_rgb_image img;
    ASSERT_STATUS(os_decoder_decode(fx->dec, jpeg, len, 0, 0, 0, &img), OS_OK);
    tjFree(jpeg);
    for (int y = 0; y < SYNTH_SIDE; y++)
        for (int x = 0; x < SYNTH_SIDE; x++)
            for (int c = 0; c < 3; c++) {
                int got = img.pixels[y * img.stride + x * 3 + c];
                int want = rgb[(y * SYNTH_SIDE + x) * 3 + c];
                if (abs(got - want) > CHANNEL_TOLERANCE)
                    fail_msg("pixel (%d,%d) channel %d = %d, want %d", x, y, c, got, want);
            }
}

static void test_decode_cmyk_refused(void **state)
{
    fixture *fx = *state;
    uint8_t cmyk[SYNTH_SIDE * SYNTH_SIDE * 4];
    for (size_t i = 0; i < sizeof cmyk; i++)
        cmyk[i] = (uint8_t)(i * 7);
    unsigned long len;
    unsigned char *jpeg = compress(cmyk, 4, TJPF_CMYK, TJSAMP_444, &len);
    os_rgb_image img;
    os_status st = os_decoder_decode(fx->dec, jpeg, len, 0, 0, 0, &img);
    tjFree(jpeg);
    assert_int_equal(st, OS_EUNSUPPORTED);
    /* TurboJPEG writes CMYK as YCCK. */
    assert_non_null(strstr(os_errdetail(), "YCCK JPEG"));
}

/* ---- resize and normalise ---- */

/* A w x h RGB image with `pad` junk bytes after each row, so stride handling is exercised. */
typedef struct {
    uint8_t px[64 * 3 * 16];
    os_rgb_image img;
} synth;

static void synth_init(synth *s, int w, int h, int pad)
{
    assert_true((size_t)(w * 3 + pad) * (size_t)h <= sizeof s->px);
    memset(s->px, 0xEE, sizeof s->px);
    s->img = (os_rgb_image){s->px, w, h, w * 3 + pad, w, h};
}

static void synth_set(synth *s, int x, int y, uint8_t r, uint8_t g, uint8_t b)
{
    uint8_t *p = s->px + y * s->img.stride + x * 3;
    p[0] = r, p[1] = g, p[2] = b;
}

static void test_tensor_constant_colour(void **state)
{
    (void)state;
    static const uint8_t rgb[3] = {10, 128, 250};
    static const int sizes[][2] = {{3, 4}, {7, 5}, {11, 9}, {1, 1}, {2, 13}};
    synth s;
    synth_init(&s, 7, 5, 5);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 7; x++)
            synth_set(&s, x, y, rgb[0], rgb[1], rgb[2]);
    float out[3 * 13 * 11];
    for (int p = OS_RESIZE_STRETCH; p <= OS_RESIZE_CENTER_CROP; p++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            int w = sizes[k][0], h = sizes[k][1];
            os_image_to_tensor(&s.img, w, h, (os_resize_policy)p, IMAGENET_MEAN, IMAGENET_STD, out);
            for (int c = 0; c < 3; c++) {
                double want = (rgb[c] / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
                for (int i = 0; i < w * h; i++)
                    ASSERT_NEAR(out[c * w * h + i], want, TOL_EXACT);
            }
        }
}

/* 4x4 -> 2x2 is an exact 2x2 box average; G and B planes carry other patterns so a channel
 * mix-up or an interleaved layout shows. */
static void test_tensor_area_4x4_to_2x2(void **state)
{
    (void)state;
    static const uint8_t r[4][4] = {
        {0, 10, 20, 30},
        {40, 50, 60, 70},
        {100, 100, 0, 0},
        {200, 200, 255, 255},
    };
    synth s;
    synth_init(&s, 4, 4, 3);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            synth_set(&s, x, y, r[y][x], (uint8_t)(255 - r[y][x]), (uint8_t)(x * 4 + y));
    float out[3 * 2 * 2];
    os_image_to_tensor(&s.img, 2, 2, OS_RESIZE_STRETCH, ZERO_MEAN, UNIT_STD, out);
    /* Block means: (0+10+40+50)/4 = 25, (20+30+60+70)/4 = 45, (100+100+200+200)/4 = 150,
     * (0+0+255+255)/4 = 127.5. */
    static const double want_r[2][2] = {{25, 45}, {150, 127.5}};
    /* B = 4x + y: means over {x0,x0+1} x {y0,y0+1} = 4*(x0+0.5) + (y0+0.5). */
    static const double want_b[2][2] = {{2.5, 10.5}, {4.5, 12.5}};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++) {
            ASSERT_NEAR(at(out, 2, 2, 0, y, x), want_r[y][x] / 255, TOL_EXACT);
            ASSERT_NEAR(at(out, 2, 2, 1, y, x), (255 - want_r[y][x]) / 255, TOL_EXACT);
            ASSERT_NEAR(at(out, 2, 2, 2, y, x), want_b[y][x] / 255, TOL_EXACT);
        }
}

/* 2x2 -> 4x4: source x = (i + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped
 * to 1); the same on y. */
static void test_tensor_bilinear_2x2_to_4x4(void **state)
{
    (void)state;
    synth s;
    synth_init(&s, 2, 2, 0);
    synth_set(&s, 0, 0, 0, 0, 0);
    synth_set(&s, 1, 0, 100, 0, 0);
    synth_set(&s, 0, 1, 200, 0, 0);
    synth_set(&s, 1, 1, 50, 0, 0);
    float out[3 * 4 * 4];
    os_image_to_tensor(&s.img, 4, 4, OS_RESIZE_STRETCH, ZERO_MEAN, UNIT_STD, out);
    static const double want[4][4] = {
        {0, 25, 75, 100},
        {50, 59.375, 78.125, 87.5},
        {150, 128.125, 84.375, 62.5},
        {200, 162.5, 87.5, 50},
    };
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            ASSERT_NEAR(at(out, 4, 4, 0, y, x), want[y][x] / 255, TOL_EXACT);
            ASSERT_NEAR(at(out, 4, 4, 1, y, x), 0, TOL_EXACT);
        }
}

/* 5 -> 2 is a ratio of 2.5: output 0 covers source [0, 2.5), output 1 covers [2.5, 5), each
 * taking half of the middle pixel. Checked on both axes. */
static void test_tensor_area_fractional(void **state)
{
    (void)state;
    static const uint8_t v[5] = {10, 20, 30, 40, 50};
    const double want0 = (10 + 20 + 0.5 * 30) / 2.5; /* 18 */
    const double want1 = (0.5 * 30 + 40 + 50) / 2.5; /* 42 */
    float out[3 * 2 * 2];

    synth s;
    synth_init(&s, 5, 1, 1);
    for (int x = 0; x < 5; x++)
        synth_set(&s, x, 0, v[x], 0, 0);
    os_image_to_tensor(&s.img, 2, 1, OS_RESIZE_STRETCH, ZERO_MEAN, UNIT_STD, out);
    ASSERT_NEAR(at(out, 2, 1, 0, 0, 0), want0 / 255, TOL_EXACT);
    ASSERT_NEAR(at(out, 2, 1, 0, 0, 1), want1 / 255, TOL_EXACT);

    synth_init(&s, 1, 5, 2);
    for (int y = 0; y < 5; y++)
        synth_set(&s, 0, y, 0, v[y], 0);
    os_image_to_tensor(&s.img, 1, 2, OS_RESIZE_STRETCH, ZERO_MEAN, UNIT_STD, out);
    ASSERT_NEAR(at(out, 1, 2, 1, 0, 0), want0 / 255, TOL_EXACT);
    ASSERT_NEAR(at(out, 1, 2, 1, 1, 0), want1 / 255, TOL_EXACT);

    /* 5x5 -> 2x2: the 2D weights are the product of the 1D ones. With value = x + 10*y the
     * average is mean_x + 10*mean_y, where mean over [0, 2.5) of pixel index = (0+1+0.5*2)/2.5
     * = 0.8 and over [2.5, 5) = (0.5*2+3+4)/2.5 = 3.2. */
    synth_init(&s, 5, 5, 0);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++)
            synth_set(&s, x, y, (uint8_t)(x + 10 * y), 0, 0);
    os_image_to_tensor(&s.img, 2, 2, OS_RESIZE_STRETCH, ZERO_MEAN, UNIT_STD, out);
    static const double m[2] = {0.8, 3.2};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
            ASSERT_NEAR(at(out, 2, 2, 0, y, x), (m[x] + 10 * m[y]) / 255, TOL_EXACT);
}

static void test_tensor_center_crop(void **state)
{
    (void)state;
    float out[3 * 4 * 4], stretched[3 * 2 * 2];
    synth s;

    /* 4x2 (2:1) -> 2x2: the centre square is columns 1..2, taken 1:1. */
    synth_init(&s, 4, 2, 1);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 4; x++)
            synth_set(&s, x, y, (uint8_t)(10 * x + 100 * y), 7, 7);
    os_image_to_tensor(&s.img, 2, 2, OS_RESIZE_CENTER_CROP, ZERO_MEAN, UNIT_STD, out);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
            ASSERT_NEAR(at(out, 2, 2, 0, y, x), (10 * (x + 1) + 100 * y) / 255.0, TOL_EXACT);
    /* Stretching the same image averages column pairs instead. */
    os_image_to_tensor(&s.img, 2, 2, OS_RESIZE_STRETCH, ZERO_MEAN, UNIT_STD, stretched);
    ASSERT_NEAR(at(stretched, 2, 2, 0, 0, 0), 5 / 255.0, TOL_EXACT);
    ASSERT_NEAR(at(stretched, 2, 2, 0, 0, 1), 25 / 255.0, TOL_EXACT);

    /* 8x4 -> 2x2: centre square columns 2..5, box-averaged 2x2. */
    synth_init(&s, 8, 4, 0);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 8; x++)
            synth_set(&s, x, y, (uint8_t)(10 * x + 50 * y), 0, 0);
    os_image_to_tensor(&s.img, 2, 2, OS_RESIZE_CENTER_CROP, ZERO_MEAN, UNIT_STD, out);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++) /* mean column 2.5 + 2x, mean row 0.5 + 2y */
            ASSERT_NEAR(at(out, 2, 2, 0, y, x), (10 * (2.5 + 2 * x) + 50 * (0.5 + 2 * y)) / 255,
                        TOL_EXACT);

    /* Tall 2x4 -> 2x2: the centre rows 1..2. */
    synth_init(&s, 2, 4, 0);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 2; x++)
            synth_set(&s, x, y, 0, 0, (uint8_t)(30 * y + x));
    os_image_to_tensor(&s.img, 2, 2, OS_RESIZE_CENTER_CROP, ZERO_MEAN, UNIT_STD, out);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
            ASSERT_NEAR(at(out, 2, 2, 2, y, x), (30 * (y + 1) + x) / 255.0, TOL_EXACT);

    /* 5x4 -> 4x4: the crop [0.5, 4.5) is centred to the half pixel, so each output column
     * is the mean of two neighbouring source columns. */
    static const uint8_t col[5] = {0, 40, 80, 200, 100};
    synth_init(&s, 5, 4, 0);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 5; x++)
            synth_set(&s, x, y, col[x], 0, 0);
    os_image_to_tensor(&s.img, 4, 4, OS_RESIZE_CENTER_CROP, ZERO_MEAN, UNIT_STD, out);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            ASSERT_NEAR(at(out, 4, 4, 0, y, x), (col[x] + col[x + 1]) / 2.0 / 255, TOL_EXACT);
}

/* Normalised value of channel c of a 0..255 average. */
static double normalise(double v, int c)
{
    return (v / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
}

/* Decode at full size, shrink to 32x32, and compare with averages computed here from the
 * full-resolution pixels. */
static void test_tensor_full_image(void **state)
{
    fixture *fx = *state;
    os_rgb_image img;
    static float out[3 * NET_SIDE * NET_SIDE];

    /* airplane00: 256 / 32 = 8, so output (x, y) is the plain mean of an 8x8 block. */
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->airplane.data, fx->airplane.len, 0, 0, 0, &img),
                  OS_OK);
    assert_int_equal(img.width, UCM_SIDE);
    os_image_to_tensor(&img, NET_SIDE, NET_SIDE, OS_RESIZE_STRETCH, IMAGENET_MEAN, IMAGENET_STD,
                       out);
    static const int probes[][2] = {{5, 7}, {0, 0}, {31, 31}, {16, 3}};
    for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
        int ox = probes[k][0], oy = probes[k][1];
        for (int c = 0; c < 3; c++) {
            double sum = 0;
            for (int y = oy * 8; y < oy * 8 + 8; y++)
                for (int x = ox * 8; x < ox * 8 + 8; x++)
                    sum += img.pixels[y * img.stride + x * 3 + c];
            ASSERT_NEAR(at(out, NET_SIDE, NET_SIDE, c, oy, ox), normalise(sum / 64, c), TOL_PIXEL);
        }
    }

    /* harbor10: 257 / 32 is not an integer; weigh every source pixel by the area of it
     * inside the output cell, in two dimensions at once. */
    ASSERT_STATUS(os_decoder_decode(fx->dec, fx->harbor.data, fx->harbor.len, 0, 0, 0, &img),
                  OS_OK);
    assert_int_equal(img.width, HARBOR_SIDE);
    os_image_to_tensor(&img, NET_SIDE, NET_SIDE, OS_RESIZE_STRETCH, IMAGENET_MEAN, IMAGENET_STD,
                       out);
    const double step = (double)HARBOR_SIDE / NET_SIDE;
    for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
        int ox = probes[k][0], oy = probes[k][1];
        double x0 = ox * step, x1 = x0 + step, y0 = oy * step, y1 = y0 + step;
        for (int c = 0; c < 3; c++) {
            double sum = 0, area = 0;
            for (int y = 0; y < HARBOR_SIDE; y++)
                for (int x = 0; x < HARBOR_SIDE; x++) {
                    double cover = fmax(0, fmin(x + 1, x1) - fmax(x, x0)) *
                                   fmax(0, fmin(y + 1, y1) - fmax(y, y0));
                    sum += cover * img.pixels[y * img.stride + x * 3 + c];
                    area += cover;
                }
            ASSERT_NEAR(area, step * step, 1e-9);
            ASSERT_NEAR(at(out, NET_SIDE, NET_SIDE, c, oy, ox), normalise(sum / area, c),
                        TOL_PIXEL);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sniff_every_format),
        cmocka_unit_test(test_sniff_fixtures),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_decode_full_size),
        cmocka_unit_test(test_decode_picks_smallest_scale),
        cmocka_unit_test(test_decode_scaled_matches_block_means),
        cmocka_unit_test(test_decode_reuses_buffer),
        cmocka_unit_test(test_decode_empty),
        cmocka_unit_test(test_decode_truncated),
        cmocka_unit_test(test_decode_other_formats),
        cmocka_unit_test(test_decode_random_bytes),
        cmocka_unit_test(test_decode_tables_only),
        cmocka_unit_test(test_decode_refuses_huge_header),
        cmocka_unit_test(test_decode_max_pixels),
        cmocka_unit_test(test_decode_progressive_budget),
        cmocka_unit_test(test_decode_grayscale_is_rgb),
        cmocka_unit_test(test_decode_colour_order),
        cmocka_unit_test(test_decode_cmyk_refused),
        cmocka_unit_test(test_tensor_constant_colour),
        cmocka_unit_test(test_tensor_area_4x4_to_2x2),
        cmocka_unit_test(test_tensor_bilinear_2x2_to_4x4),
        cmocka_unit_test(test_tensor_area_fractional),
        cmocka_unit_test(test_tensor_center_crop),
        cmocka_unit_test(test_tensor_full_image),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
