/* test_raster.c - the GDAL raster reader: input descriptions, header limits, band and data
 * type checks, scaling, windows, memory files, messages, threads; and the bit-exact check that
 * the same pixels give the same tensor whatever container they came in (a real UC Merced JPEG
 * decoded by TurboJPEG, written as GeoTIFF and PNG by GDAL, read back by our reader). Rasters
 * are written by GDAL itself in a temp folder. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>

#include "onespike/image.h"
#include "onespike/raster.h"
#include "onespike/safetensors.h"
#include "testutil.h"

#ifndef FIXTURE_DIR
#error "build with -DFIXTURE_DIR=\"/abs/path/tests/fixtures\""
#endif

#define NAIP    "/work/shared/data/geotiff/m_4709963_se_14_1_20090818.tif"
#define UCM_TIF "/work/shared/data/ucmerced-tif/airplane/airplane00.tif"

enum {
    W16 = 40,
    H16 = 30, /* the 16-bit test raster */
    UCM_SIDE = 256,
    NET_SIDE = 96, /* a model input smaller than the chip, as the shipped ones are */
    THREADS = 4,
    THREAD_ROUNDS = 25,
    CUT_HEADER = 30, /* bytes: inside a PNG's IHDR chunk, before a TIFF's first directory */
    NAIP_W = 934,
    NAIP_H = 724,
    NAIP_BANDS = 4,
};

static const float UCM_MEAN[3] = {0.4835f, 0.4890f, 0.4495f};
static const float UCM_STD[3] = {0.2115f, 0.1947f, 0.1893f};

static char *tmp;

static int setup(void **state)
{
    (void)state;
    tmp = tu_tmpdir();
    /* Opening anything once runs the reader's GDAL set-up (drivers registered), so the tests
     * can create rasters with GDAL's GTiff and PNG drivers. */
    os_raster *r = NULL;
    os_raster_open(FIXTURE_DIR "/tiny_2x2.png", NULL, &r);
    os_raster_close(r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmdir(tmp);
    return 0;
}

static void path_in_tmp(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmp, name);
}

/* A GeoTIFF of `bands` bands of type t, w x h, written by GDAL; band b pixel (x, y) holds
 * value(b, x, y). Options: NULL-terminated creation options. */
static void write_tiff(const char *path, int w, int h, int bands, GDALDataType t,
                       double (*value)(int b, int x, int y), char **opts)
{
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    assert_non_null(drv);
    GDALDatasetH ds = GDALCreate(drv, path, w, h, bands, t, opts);
    assert_non_null(ds);
    double *row = malloc((size_t)w * sizeof *row);
    assert_non_null(row);
    for (int b = 1; b <= bands; b++)
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++)
                row[x] = value(b, x, y);
            assert_int_equal(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Write, 0, y, w, 1, row, w, 1,
                                          GDT_Float64, 0, 0),
                             CE_None);
        }
    free(row);
    GDALClose(ds);
}

static double value16(int b, int x, int y)
{
    return 1000.0 * b + 50.0 * x + 7.0 * y; /* 1000..5233, distinct per band */
}

static double value8(int b, int x, int y)
{
    return (double)((x * 7 + y * 3 + b * 50) % 256);
}

/* ---- the input description ---- */

static void test_input_parse(void **state)
{
    (void)state;
    os_raster_input in = os_raster_input_default();
    assert_true(os_raster_input_is_default(&in));
    assert_int_equal(os_raster_bands_parse("4,3,2", &in), OS_OK);
    assert_int_equal(in.bands[0], 4);
    assert_int_equal(in.bands[2], 2);
    assert_false(os_raster_input_is_default(&in));
    const char *bad_bands[] = {"",        "1,2",  "1,2,3,4", "0,1,2",  "1,2,x",
                               "1.5,2,3", "1,,3", "1,2,3,",  "-1,2,3", "1,2,99999"};
    for (size_t i = 0; i < sizeof bad_bands / sizeof *bad_bands; i++) {
        assert_int_equal(os_raster_bands_parse(bad_bands[i], &in), OS_EINVAL);
        assert_int_equal(in.bands[0], 4); /* unchanged */
    }
    assert_int_equal(os_raster_scale_parse("range:0,65280", &in), OS_OK);
    assert_int_equal(in.scale, OS_SCALE_RANGE);
    assert_true(in.lo[2] == 0 && in.hi[2] == 65280);
    char text[OS_RASTER_TEXT_MAX];
    os_raster_scale_format(&in, text, sizeof text);
    assert_string_equal(text, "range:0,65280");
    assert_int_equal(os_raster_scale_parse("range:1,2,3,4.5,-5,6", &in), OS_OK);
    assert_true(in.lo[1] == 3 && in.hi[1] == 4.5 && in.lo[2] == -5);
    os_raster_scale_format(&in, text, sizeof text);
    assert_string_equal(text, "range:1,2,3,4.5,-5,6");
    assert_int_equal(os_raster_scale_parse("percentile:2,98", &in), OS_OK);
    assert_int_equal(in.scale, OS_SCALE_PERCENTILE);
    os_raster_scale_format(&in, text, sizeof text);
    assert_string_equal(text, "percentile:2,98");
    const char *bad_scale[] = {"",
                               "None",
                               "range:5,5",
                               "range:0",
                               "range:0,1,2,3",
                               "percentile:50,10",
                               "percentile:-1,50",
                               "percentile:2,101",
                               "range:0,inf",
                               "range:nan,1",
                               "stretch"};
    for (size_t i = 0; i < sizeof bad_scale / sizeof *bad_scale; i++) {
        assert_int_equal(os_raster_scale_parse(bad_scale[i], &in), OS_EINVAL);
        assert_int_equal(in.scale, OS_SCALE_PERCENTILE); /* unchanged */
    }
    assert_int_equal(os_raster_scale_parse("none", &in), OS_OK);
    assert_int_equal(in.scale, OS_SCALE_NONE);
}

/* Equal means read into the same values: limits the scale does not use (left over from an
 * earlier parse) do not count, every one it uses does. */
static void test_input_equal(void **state)
{
    (void)state;
    os_raster_input a = os_raster_input_default(), b = os_raster_input_default();
    assert_true(os_raster_input_equal(&a, &b));
    assert_int_equal(os_raster_scale_parse("range:1,2,3,4.5,-5,6", &a), OS_OK);
    assert_false(os_raster_input_equal(&a, &b));
    assert_int_equal(os_raster_scale_parse("range:1,2,3,4.5,-5,7", &b), OS_OK);
    assert_false(os_raster_input_equal(&a, &b)); /* the third pair differs */
    assert_int_equal(os_raster_scale_parse("percentile:2,98", &a), OS_OK);
    os_raster_input c = os_raster_input_default();
    assert_int_equal(os_raster_scale_parse("percentile:2,98", &c), OS_OK);
    assert_true(os_raster_input_equal(&a, &c)); /* a's left-over range pairs are not used */
    assert_int_equal(os_raster_scale_parse("percentile:2,99", &c), OS_OK);
    assert_false(os_raster_input_equal(&a, &c));
    assert_int_equal(os_raster_scale_parse("none", &a), OS_OK);
    assert_true(os_raster_input_is_default(&a));
    assert_int_equal(os_raster_bands_parse("4,3,2", &a), OS_OK);
    assert_false(os_raster_input_is_default(&a));
}

static void test_image_names(void **state)
{
    (void)state;
    const char *yes[] = {"a.jpg", "a.JPEG", "b.tif", "b.TIFF", "c.png", "d.jp2", "x.y.tif"};
    const char *no[] = {"a", "a.gif", "a.tif.txt", "tif", ".aux.xml", "a.j2k"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        assert_true(os_raster_is_image_name(yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        assert_false(os_raster_is_image_name(no[i]));
}

/* ---- opening ---- */

static void test_open_refusals(void **state)
{
    (void)state;
    os_raster *r = (os_raster *)0x1;
    assert_int_equal(os_raster_open("/vsicurl/http://127.0.0.1/x.tif", NULL, &r), OS_EINVAL);
    assert_null(r);
    assert_non_null(strstr(os_errdetail(), "plain file path"));
    assert_int_equal(os_raster_open("/nonexistent/x.tif", NULL, &r), OS_EIO);
    assert_int_equal(os_raster_open(tmp, NULL, &r), OS_EIO); /* a folder */
    assert_int_equal(os_raster_open_bytes("", 0, NULL, &r), OS_EEMPTY);
    /* A JPEG is not one of GDAL's drivers here: it goes to TurboJPEG (os_raster_decode_any). */
    assert_int_equal(os_raster_open(FIXTURE_DIR "/ucm_airplane00.jpg", NULL, &r), OS_EUNSUPPORTED);
    const char text[] = "just some text, no image\n";
    assert_int_equal(os_raster_open_bytes(text, sizeof text, NULL, &r), OS_EUNSUPPORTED);
    assert_null(r);
}

static void test_header_and_limits(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "u16.tif");
    write_tiff(path, W16, H16, 3, GDT_UInt16, value16, NULL);
    os_raster *r = NULL;
    assert_int_equal(os_raster_open(path, NULL, &r), OS_OK);
    assert_int_equal(os_raster_width(r), W16);
    assert_int_equal(os_raster_height(r), H16);
    assert_int_equal(os_raster_bands(r), 3);
    assert_string_equal(os_raster_dtype(r), "UInt16");
    assert_string_equal(os_raster_driver(r), "GTiff");
    double gt[6];
    assert_false(os_raster_geotransform(r, gt));
    assert_true(gt[1] == 1 && gt[5] == 1);
    assert_string_equal(os_raster_crs_wkt(r), "");
    char what[OS_RASTER_TEXT_MAX];
    os_raster_describe(r, what, sizeof what);
    assert_string_equal(what, "3 bands, UInt16, 40x30");
    os_raster_close(r);

    os_raster_limits lim = {.max_pixels = W16 * H16 - 1};
    assert_int_equal(os_raster_open(path, &lim, &r), OS_ETOOBIG);
    assert_null(r);
    assert_non_null(strstr(os_errdetail(), "exceeds the limit of 1199 pixels"));
    lim = (os_raster_limits){.max_side = W16 - 1};
    assert_int_equal(os_raster_open(path, &lim, &r), OS_ETOOBIG);
    lim = (os_raster_limits){.max_bands = 2};
    assert_int_equal(os_raster_open(path, &lim, &r), OS_ETOOBIG);
    assert_non_null(strstr(os_errdetail(), "3 bands"));
    lim = (os_raster_limits){.max_pixels = W16 * H16, .max_side = W16, .max_bands = 3};
    assert_int_equal(os_raster_open(path, &lim, &r), OS_OK);
    os_raster_close(r);
}

/* A raster of 200000 x 200000 pixels (4e10) that is a few kilobytes on disk: tiled and sparse,
 * no tile written. Refused from its header; nothing the size of its pixels is allocated (the
 * ASan build would report an allocation of 120 GB as an error). */
static void test_huge_sparse_refused(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "huge.tif");
    char *opts[] = {"TILED=YES",
                    "SPARSE_OK=TRUE",
                    "BLOCKXSIZE=512",
                    "BLOCKYSIZE=512",
                    "COMPRESS=DEFLATE",
                    "BIGTIFF=YES",
                    NULL};
    GDALDatasetH ds =
        GDALCreate(GDALGetDriverByName("GTiff"), path, 200000, 200000, 3, GDT_Byte, opts);
    assert_non_null(ds);
    GDALClose(ds);
    size_t len = 0;
    unsigned char *bytes = tu_slurp(path, &len);
    assert_true(len < (size_t)4 << 20);
    os_raster *r = NULL;
    os_raster_limits lim = {.max_pixels = 50 * 1000 * 1000};
    assert_int_equal(os_raster_open(path, &lim, &r), OS_ETOOBIG);
    assert_non_null(strstr(os_errdetail(), "200000x200000"));
    os_decoder *d = NULL;
    os_raster_buf *b = NULL;
    assert_int_equal(os_decoder_create(&d), OS_OK);
    assert_int_equal(os_raster_buf_create(&b), OS_OK);
    os_rgb_image img;
    const os_raster_input in = os_raster_input_default();
    assert_int_equal(os_raster_decode_any(d, b, bytes, len, 50 * 1000 * 1000, 0, 0, &in, &img),
                     OS_ETOOBIG);
    os_raster_buf_destroy(b);
    os_decoder_destroy(d);
    free(bytes);
}

/* ---- bands, types, scaling, windows ---- */

static void test_bands_and_types(void **state)
{
    (void)state;
    char p16[512], p1[512];
    path_in_tmp(p16, sizeof p16, "u16.tif");
    path_in_tmp(p1, sizeof p1, "gray.tif");
    write_tiff(p16, W16, H16, 3, GDT_UInt16, value16, NULL);
    write_tiff(p1, W16, H16, 1, GDT_Byte, value8, NULL);
    os_raster *r = NULL;
    os_raster_input in = os_raster_input_default();
    assert_int_equal(os_raster_open(p16, NULL, &r), OS_OK);
    assert_int_equal(os_raster_check(r, &in), OS_EMISMATCH);
    assert_non_null(strstr(os_errdetail(), "3 bands, UInt16"));
    assert_non_null(strstr(os_errdetail(), "give a scale"));
    assert_int_equal(os_raster_scale_parse("range:0,65535", &in), OS_OK);
    assert_int_equal(os_raster_check(r, &in), OS_OK);
    assert_int_equal(os_raster_bands_parse("1,2,4", &in), OS_OK);
    assert_int_equal(os_raster_check(r, &in), OS_EMISMATCH);
    assert_non_null(strstr(os_errdetail(), "band 4, which it does not have"));
    os_raster_close(r);

    in = os_raster_input_default();
    assert_int_equal(os_raster_open(p1, NULL, &r), OS_OK);
    assert_int_equal(os_raster_check(r, &in), OS_EMISMATCH);
    assert_non_null(strstr(os_errdetail(), "1 band, Byte"));
    assert_int_equal(os_raster_bands_parse("1,1,1", &in), OS_OK); /* gray as R=G=B: allowed */
    os_raster_buf *b = NULL;
    assert_int_equal(os_raster_buf_create(&b), OS_OK);
    os_rgb_image img;
    assert_int_equal(os_raster_read(r, 0, 0, W16, H16, &in, 0, 0, b, &img), OS_OK);
    for (int y = 0; y < H16; y++)
        for (int x = 0; x < W16; x++)
            for (int c = 0; c < 3; c++)
                assert_int_equal(img.pixels[y * img.stride + 3 * x + c], (int)value8(1, x, y));
    os_raster_buf_destroy(b);
    os_raster_close(r);
}

static void test_scaling(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "u16.tif");
    write_tiff(path, W16, H16, 3, GDT_UInt16, value16, NULL);
    os_raster *r = NULL;
    os_raster_buf *b = NULL;
    os_rgb_image img;
    assert_int_equal(os_raster_open(path, NULL, &r), OS_OK);
    assert_int_equal(os_raster_buf_create(&b), OS_OK);
    /* Fixed range per channel, in the order of the bands: bands 3,1,2. */
    os_raster_input in = os_raster_input_default();
    assert_int_equal(os_raster_bands_parse("3,1,2", &in), OS_OK);
    assert_int_equal(os_raster_scale_parse("range:3000,3510,1000,2000,0,65535", &in), OS_OK);
    assert_int_equal(os_raster_read(r, 0, 0, W16, H16, &in, 0, 0, b, &img), OS_OK);
    assert_int_equal(img.width, W16);
    assert_int_equal(img.height, H16);
    for (int y = 0; y < H16; y++)
        for (int x = 0; x < W16; x++) {
            const uint8_t *px = img.pixels + y * img.stride + 3 * x;
            for (int c = 0; c < 3; c++) {
                double v = value16(in.bands[c], x, y);
                double q = floor((v - in.lo[c]) * 255.0 / (in.hi[c] - in.lo[c]) + 0.5);
                q = q < 0 ? 0 : q > 255 ? 255 : q;
                assert_int_equal(px[c], (int)q);
            }
        }
    /* Percentiles 0 and 100: each band's minimum becomes 0 and its maximum 255. */
    in = os_raster_input_default();
    assert_int_equal(os_raster_scale_parse("percentile:0,100", &in), OS_OK);
    assert_int_equal(os_raster_read(r, 0, 0, W16, H16, &in, 0, 0, b, &img), OS_OK);
    for (int c = 0; c < 3; c++) {
        assert_int_equal(img.pixels[c], 0);                                            /* (0,0) */
        assert_int_equal(img.pixels[(H16 - 1) * img.stride + 3 * (W16 - 1) + c], 255); /* max */
    }
    /* A window: the same values as the whole image's, at its offset. */
    in = os_raster_input_default();
    assert_int_equal(os_raster_scale_parse("range:1000,4000", &in), OS_OK);
    uint8_t whole[W16 * H16 * 3];
    assert_int_equal(os_raster_read(r, 0, 0, W16, H16, &in, 0, 0, b, &img), OS_OK);
    memcpy(whole, img.pixels, sizeof whole);
    assert_int_equal(os_raster_read(r, 5, 7, 20, 10, &in, 0, 0, b, &img), OS_OK);
    assert_int_equal(img.width, 20);
    for (int y = 0; y < 10; y++)
        assert_memory_equal(img.pixels + y * img.stride, whole + (y + 7) * W16 * 3 + 5 * 3, 20 * 3);
    /* Resampled by GDAL to half size: the output size, values within the window's range. */
    assert_int_equal(os_raster_read(r, 0, 0, W16, H16, &in, W16 / 2, H16 / 2, b, &img), OS_OK);
    assert_int_equal(img.width, W16 / 2);
    assert_int_equal(img.src_width, W16);
    assert_int_equal(os_raster_read(r, 30, 0, 20, 10, &in, 0, 0, b, &img), OS_EINVAL);
    assert_int_equal(os_raster_read(r, -1, 0, 20, 10, &in, 0, 0, b, &img), OS_EINVAL);
    os_raster_buf_destroy(b);
    os_raster_close(r);
}

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The selection gives the sorted array's nearest-rank percentiles, on orders that break naive
 * quickselects (sorted, reversed, organ pipe, all equal, few values) and with NaNs mixed in. */
static void test_percentiles(void **state)
{
    (void)state;
    enum { N = 5003 };
    static float v[N], s[N], ref[N];
    static const double ps[][2] = {{0, 100}, {2, 98}, {50, 50}, {0, 0}, {100, 100}, {1, 99.5}};
    uint32_t seed = 7;
    for (int order = 0; order < 6; order++) {
        const int n = order == 5 ? 1 : N;
        for (int i = 0; i < n; i++) {
            seed = seed * 1664525u + 1013904223u;
            switch (order) {
            case 0: v[i] = (float)(seed >> 8) / 65536.0f; break;      /* random */
            case 1: v[i] = (float)i; break;                           /* sorted */
            case 2: v[i] = (float)(n - i); break;                     /* reversed */
            case 3: v[i] = (float)(i < n / 2 ? i : n - i); break;     /* organ pipe */
            case 4: v[i] = (float)(seed >> 30); break;                /* four values */
            default: v[i] = 3.0f; break;
            }
            if (order == 0 && i % 17 == 0)
                v[i] = NAN;
        }
        size_t m = 0;
        for (int i = 0; i < n; i++)
            if (!isnan(v[i]))
                ref[m++] = v[i];
        qsort(ref, m, sizeof *ref, cmp_f);
        for (size_t q = 0; q < sizeof ps / sizeof *ps; q++) {
            double lo, hi;
            os_raster_percentiles(v, s, (size_t)n, ps[q][0], ps[q][1], &lo, &hi);
            size_t kl = (size_t)floor(ps[q][0] / 100 * (double)(m - 1) + 0.5);
            size_t kh = (size_t)floor(ps[q][1] / 100 * (double)(m - 1) + 0.5);
            if (lo != ref[kl] || hi != ref[kh])
                fail_msg("order %d, p %g,%g: %g,%g, sorted gives %g,%g", order, ps[q][0],
                         ps[q][1], lo, hi, (double)ref[kl], (double)ref[kh]);
        }
    }
    for (int i = 0; i < 4; i++)
        v[i] = NAN;
    double lo = 0, hi = 0;
    os_raster_percentiles(v, s, 4, 2, 98, &lo, &hi);
    assert_true(isnan(lo) && isnan(hi));
}

/* A raster over OS_RASTER_FULL_PIXELS is read whole but reduced (by a power of two, never
 * below the input), one within them at full size. */
static void test_reduced_read(void **state)
{
    (void)state;
    int w, h;
    os_raster_reduced(256, 256, 96, 96, &w, &h);
    assert_true(w == 256 && h == 256);
    os_raster_reduced(7000, 7000, 96, 96, &w, &h); /* 49 Mpx: by 4 */
    assert_true(w == 1750 && h == 1750);
    os_raster_reduced(7001, 3, 1, 1, &w, &h); /* within the budget */
    assert_true(w == 7001 && h == 3);
    os_raster_reduced(5000, 5000, 3000, 3000, &w, &h); /* halving would go below the input */
    assert_true(w == 5000 && h == 5000);
    char path[512], tif[512];
    path_in_tmp(path, sizeof path, "big.png");
    path_in_tmp(tif, sizeof tif, "big.tif");
    const int side = 2100; /* 4.4 Mpx: read at 1050 x 1050 */
    uint8_t *pix = calloc((size_t)side * side, 3);
    for (int i = 0; i < side * side * 3; i += 7)
        pix[i] = (uint8_t)(i % 251);
    GDALDatasetH mem = GDALCreate(GDALGetDriverByName("GTiff"), tif, side, side, 3, GDT_Byte, NULL);
    int bands[3] = {1, 2, 3};
    assert_int_equal(GDALDatasetRasterIO(mem, GF_Write, 0, 0, side, side, pix, side, side,
                                         GDT_Byte, 3, bands, 3, side * 3, 1),
                     CE_None);
    GDALDatasetH p = GDALCreateCopy(GDALGetDriverByName("PNG"), path, mem, 0, NULL, NULL, NULL);
    assert_non_null(p);
    GDALClose(p);
    GDALClose(mem);
    size_t n = 0;
    unsigned char *bytes = tu_slurp(path, &n);
    os_decoder *d = NULL;
    os_raster_buf *b = NULL;
    os_rgb_image got;
    assert_int_equal(os_decoder_create(&d), OS_OK);
    assert_int_equal(os_raster_buf_create(&b), OS_OK);
    os_raster_input in = os_raster_input_default();
    assert_int_equal(os_raster_decode_any(d, b, bytes, n, 0, 96, 96, &in, &got), OS_OK);
    assert_true(got.width == side / 2 && got.height == side / 2 && got.src_width == side);
    assert_int_equal(os_raster_scale_parse("percentile:2,98", &in), OS_OK);
    assert_int_equal(os_raster_decode_any(d, b, bytes, n, 0, 96, 96, &in, &got), OS_OK);
    assert_true(got.width == side / 2 && got.height == side / 2);
    free(bytes), free(pix);
    os_raster_buf_destroy(b);
    os_decoder_destroy(d);
}

/* ---- same pixels, same tensor ---- */

/* The fixture JPEG decoded by TurboJPEG at full size; written by GDAL as an uncompressed
 * GeoTIFF, a DEFLATE-tiled GeoTIFF and a PNG; each read back by our reader gives exactly the
 * decoded pixels, and the same tensor as the JPEG's pixels. */
static void test_same_pixels_same_tensor(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *jpeg = tu_slurp(FIXTURE_DIR "/ucm_airplane00.jpg", &len);
    os_decoder *d = NULL;
    os_raster_buf *b = NULL;
    os_rgb_image ref, got;
    assert_int_equal(os_decoder_create(&d), OS_OK);
    assert_int_equal(os_raster_buf_create(&b), OS_OK);
    assert_int_equal(os_decoder_decode(d, jpeg, len, 0, 0, 0, &ref), OS_OK);
    assert_int_equal(ref.width, UCM_SIDE);
    const size_t nbytes = (size_t)ref.stride * (size_t)ref.height;
    uint8_t *pix = malloc(nbytes);
    memcpy(pix, ref.pixels, nbytes);
    ref.pixels = pix;
    size_t nt = (size_t)3 * NET_SIDE * NET_SIDE;
    float *t_ref = malloc(nt * sizeof *t_ref), *t_got = malloc(nt * sizeof *t_got);
    os_image_to_tensor(&ref, NET_SIDE, NET_SIDE, OS_RESIZE_STRETCH, UCM_MEAN, UCM_STD, t_ref);

    char tif[512], tiled[512], png[512];
    path_in_tmp(tif, sizeof tif, "same.tif");
    path_in_tmp(tiled, sizeof tiled, "same_tiled.tif");
    path_in_tmp(png, sizeof png, "same.png");
    int bands[3] = {1, 2, 3};
    char *tiled_opts[] = {"TILED=YES", "COMPRESS=DEFLATE", "BLOCKXSIZE=64", "BLOCKYSIZE=64", NULL};
    const char *paths[] = {tif, tiled};
    char **opts[] = {NULL, tiled_opts};
    for (int i = 0; i < 2; i++) {
        GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), paths[i], ref.width, ref.height,
                                     3, GDT_Byte, opts[i]);
        assert_non_null(ds);
        assert_int_equal(GDALDatasetRasterIO(ds, GF_Write, 0, 0, ref.width, ref.height, pix,
                                             ref.width, ref.height, GDT_Byte, 3, bands, 3,
                                             ref.stride, 1),
                         CE_None);
        if (i == 0) {
            GDALDatasetH p =
                GDALCreateCopy(GDALGetDriverByName("PNG"), png, ds, 0, NULL, NULL, NULL);
            assert_non_null(p);
            GDALClose(p);
        }
        GDALClose(ds);
    }
    const os_raster_input in = os_raster_input_default();
    const char *all[] = {tif, tiled, png};
    for (int i = 0; i < 3; i++) {
        size_t n = 0;
        unsigned char *bytes = tu_slurp(all[i], &n);
        assert_int_equal(os_raster_decode_any(d, b, bytes, n, 0, NET_SIDE, NET_SIDE, &in, &got),
                         OS_OK);
        assert_int_equal(got.width, ref.width);
        assert_int_equal(got.height, ref.height);
        assert_int_equal(got.stride, ref.stride);
        assert_memory_equal(got.pixels, pix, nbytes);
        os_image_to_tensor(&got, NET_SIDE, NET_SIDE, OS_RESIZE_STRETCH, UCM_MEAN, UCM_STD, t_got);
        assert_memory_equal(t_got, t_ref, nt * sizeof *t_got);
        free(bytes);
    }
    free(t_ref), free(t_got), free(pix), free(jpeg);
    os_raster_buf_destroy(b);
    os_decoder_destroy(d);
}

/* ---- memory files, messages, threads ---- */

static int vsimem_files(void)
{
    char **list = VSIReadDir("/vsimem/onespike");
    int n = CSLCount(list);
    CSLDestroy(list);
    return n;
}

static void test_vsimem_removed_and_quiet(void **state)
{
    (void)state;
    char path[512], errpath[512];
    path_in_tmp(path, sizeof path, "u16.tif");
    path_in_tmp(errpath, sizeof errpath, "stderr.txt");
    write_tiff(path, W16, H16, 3, GDT_UInt16, value16, NULL);
    size_t len = 0;
    unsigned char *bytes = tu_slurp(path, &len);
    os_raster *r = NULL;
    assert_int_equal(os_raster_open_bytes(bytes, len, NULL, &r), OS_OK);
    assert_int_equal(vsimem_files(), 1);
    os_raster_close(r);
    assert_int_equal(vsimem_files(), 0);

    /* Damaged: cut in its pixel data, and a header cut short. GDAL's message is the detail;
     * nothing is printed on stderr. */
    fflush(stderr);
    int saved = dup(2);
    FILE *capture = fopen(errpath, "w");
    assert_non_null(capture);
    dup2(fileno(capture), 2);
    os_raster_buf *b = NULL;
    os_decoder *d = NULL;
    os_rgb_image img;
    assert_int_equal(os_raster_buf_create(&b), OS_OK);
    assert_int_equal(os_decoder_create(&d), OS_OK);
    os_raster_input in = os_raster_input_default();
    assert_int_equal(os_raster_scale_parse("range:0,65535", &in), OS_OK);
    os_status cut = os_raster_decode_any(d, b, bytes, len / 2, 0, 0, 0, &in, &img);
    char cut_detail[512];
    snprintf(cut_detail, sizeof cut_detail, "%s", os_errdetail());
    os_status head = os_raster_decode_any(d, b, bytes, 12, 0, 0, 0, &in, &img);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(capture);
    assert_int_equal(cut, OS_ECORRUPT);
    assert_non_null(strstr(cut_detail, "GTiff"));
    assert_int_equal(head, OS_ECORRUPT);
    size_t elen = 0;
    free(tu_slurp(errpath, &elen));
    assert_int_equal(elen, 0);
    assert_int_equal(vsimem_files(), 0);
    os_raster_buf_destroy(b);
    os_decoder_destroy(d);
    free(bytes);
}

typedef struct {
    const unsigned char *bytes;
    size_t len;
    const uint8_t *want;
    size_t want_len;
    int bad;
} thread_job;

static void *decode_loop(void *arg)
{
    thread_job *j = arg;
    os_raster_buf *b = NULL;
    os_decoder *d = NULL;
    const os_raster_input in = os_raster_input_default();
    if (os_raster_buf_create(&b) || os_decoder_create(&d)) {
        j->bad++;
        return NULL;
    }
    for (int i = 0; i < THREAD_ROUNDS; i++) {
        os_rgb_image img;
        if (os_raster_decode_any(d, b, j->bytes, j->len, 0, 0, 0, &in, &img) ||
            (size_t)img.stride * (size_t)img.height != j->want_len ||
            memcmp(img.pixels, j->want, j->want_len))
            j->bad++;
        /* and a failure in between: a header cut short (the PNG's whole image is under 100
         * bytes, so only a cut inside its header is sure to fail) */
        if (os_raster_decode_any(d, b, j->bytes, CUT_HEADER, 0, 0, 0, &in, &img) != OS_ECORRUPT)
            j->bad++;
    }
    os_raster_buf_destroy(b);
    os_decoder_destroy(d);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    char tif[512], png[512];
    path_in_tmp(tif, sizeof tif, "t8.tif");
    path_in_tmp(png, sizeof png, "t8.png");
    write_tiff(tif, W16, H16, 3, GDT_Byte, value8, NULL);
    GDALDatasetH src = GDALOpen(tif, GA_ReadOnly);
    GDALClose(GDALCreateCopy(GDALGetDriverByName("PNG"), png, src, 0, NULL, NULL, NULL));
    GDALClose(src);
    uint8_t want[W16 * H16 * 3];
    for (int y = 0; y < H16; y++)
        for (int x = 0; x < W16; x++)
            for (int c = 0; c < 3; c++)
                want[(y * W16 + x) * 3 + c] = (uint8_t)value8(c + 1, x, y);
    size_t lt = 0, lp = 0;
    unsigned char *bt = tu_slurp(tif, &lt), *bp = tu_slurp(png, &lp);
    pthread_t th[THREADS];
    thread_job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (thread_job){t % 2 ? bp : bt, t % 2 ? lp : lt, want, sizeof want, 0};
        assert_int_equal(pthread_create(&th[t], NULL, decode_loop, &jobs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(jobs[t].bad, 0);
    }
    assert_int_equal(vsimem_files(), 0);
    free(bt), free(bp);
}

/* ---- real data ---- */

static void test_naip_geotiff(void **state)
{
    (void)state;
    if (access(NAIP, R_OK) != 0)
        skip();
    os_raster *r = NULL;
    assert_int_equal(os_raster_open(NAIP, NULL, &r), OS_OK);
    assert_int_equal(os_raster_width(r), NAIP_W);
    assert_int_equal(os_raster_height(r), NAIP_H);
    assert_int_equal(os_raster_bands(r), NAIP_BANDS);
    assert_string_equal(os_raster_dtype(r), "Byte");
    double gt[6];
    assert_true(os_raster_geotransform(r, gt));
    assert_true(gt[0] == 485900 && gt[1] == 5 && gt[3] == 5209247 && gt[5] == -5);
    assert_non_null(strstr(os_raster_crs_wkt(r), "UTM zone 14N"));
    os_raster_close(r);
}

static void test_ucm_tiff_dims(void **state)
{
    (void)state;
    if (access(UCM_TIF, R_OK) != 0)
        skip();
    os_raster *r = NULL;
    assert_int_equal(os_raster_open(UCM_TIF, NULL, &r), OS_OK);
    assert_int_equal(os_raster_width(r), UCM_SIDE);
    assert_int_equal(os_raster_bands(r), 3);
    assert_string_equal(os_raster_dtype(r), "Byte");
    assert_int_equal(os_raster_check(r, &(os_raster_input){.bands = {1, 2, 3}}), OS_OK);
    os_raster_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input_parse),
        cmocka_unit_test(test_input_equal),
        cmocka_unit_test(test_image_names),
        cmocka_unit_test(test_open_refusals),
        cmocka_unit_test(test_header_and_limits),
        cmocka_unit_test(test_huge_sparse_refused),
        cmocka_unit_test(test_bands_and_types),
        cmocka_unit_test(test_scaling),
        cmocka_unit_test(test_percentiles),
        cmocka_unit_test(test_reduced_read),
        cmocka_unit_test(test_same_pixels_same_tensor),
        cmocka_unit_test(test_vsimem_removed_and_quiet),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_naip_geotiff),
        cmocka_unit_test(test_ucm_tiff_dims),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
