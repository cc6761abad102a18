/* test_scenemap.c - the grid of windows (snapping, small scenes, strides), window sizes in
 * metres, ring orientation, and whole runs over GeoTIFFs written here with GDAL: the same map
 * for any thread count and batch size, lon/lat or pixel coordinates, the COG's bands. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cpl_conv.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include "onespike/scenemap.h"
#include "testutil.h"

enum {
    SCENE_W = 300, /* not a multiple of the windows below: the last ones snap */
    SCENE_H = 200,
    WIN = 64,
    NCLASS = 5,
    UTM_14N = 32614,
};

#define PIXEL_M 0.5
#define ORIGIN_E 500000.0
#define ORIGIN_N 4500000.0

static os_map_grid grid(int w, int h, int win, int stride)
{
    os_map_grid g;
    assert_int_equal(os_map_grid_make(w, h, win, win, stride, stride, &g), OS_OK);
    return g;
}

static void test_grid_snaps_last_window(void **state)
{
    (void)state;
    os_map_grid g = grid(1000, 600, 256, 256);
    assert_int_equal(g.cols, 4); /* 0, 256, 512, 744 (snapped from 768) */
    assert_int_equal(g.rows, 3); /* 0, 256, 344 (snapped from 512) */
    int win[4];
    os_map_grid_window(&g, 3, win);
    assert_int_equal(win[0], 1000 - 256);
    assert_int_equal(win[1], 0);
    os_map_grid_window(&g, 2 * 4 + 1, win);
    assert_int_equal(win[0], 256);
    assert_int_equal(win[1], 600 - 256);
    assert_int_equal(win[2], 256);
    assert_int_equal(win[3], 256);
    /* An exact multiple: no snapped duplicate. */
    g = grid(1024, 1024, 256, 256);
    assert_int_equal(g.cols, 4);
    assert_int_equal(g.rows, 4);
    os_map_grid_window(&g, 15, win);
    assert_int_equal(win[0], 768);
    assert_int_equal(win[1], 768);
}

static void test_grid_covers_every_pixel(void **state)
{
    (void)state;
    static const int cases[][4] = {{300, 200, 64, 64}, {300, 200, 64, 48}, {257, 255, 256, 100},
                                   {1000, 7, 50, 1},   {5, 5, 8, 3},       {65, 65, 64, 64}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        os_map_grid g = grid(cases[c][0], cases[c][1], cases[c][2], cases[c][3]);
        unsigned char *seen = calloc((size_t)g.width * g.height, 1);
        for (int i = 0; i < g.cols * g.rows; i++) {
            int win[4];
            os_map_grid_window(&g, i, win);
            assert_true(win[0] >= 0 && win[1] >= 0);
            assert_true(win[0] + win[2] <= g.width && win[1] + win[3] <= g.height);
            for (int y = win[1]; y < win[1] + win[3]; y++)
                for (int x = win[0]; x < win[0] + win[2]; x++)
                    seen[(size_t)y * g.width + x] = 1;
        }
        for (size_t p = 0; p < (size_t)g.width * g.height; p++)
            assert_int_equal(seen[p], 1);
        free(seen);
    }
    /* With a stride: windows at i*stride, the last snapped. */
    os_map_grid g = grid(300, 200, 64, 48);
    assert_int_equal(g.cols, 6); /* 0,48,...,192 then 236 */
    assert_int_equal(g.rows, 4); /* 0,48,96, then 136 */
    int win[4];
    os_map_grid_window(&g, 5, win);
    assert_int_equal(win[0], 236); /* 5*48 = 240 > 300-64: snapped to 236 */
    os_map_grid_window(&g, 3 * 6, win);
    assert_int_equal(win[1], 136);
    os_map_grid_window(&g, 4, win);
    assert_int_equal(win[0], 192);
}

static void test_grid_small_scene(void **state)
{
    (void)state;
    os_map_grid g = grid(100, 40, 256, 256);
    assert_int_equal(g.cols, 1);
    assert_int_equal(g.rows, 1);
    assert_int_equal(g.win_w, 100);
    assert_int_equal(g.win_h, 40);
    int win[4];
    os_map_grid_window(&g, 0, win);
    assert_int_equal(win[0], 0);
    assert_int_equal(win[2], 100);
    assert_int_equal(win[3], 40);
    g = grid(300, 40, 256, 128); /* clipped on one side only */
    assert_int_equal(g.cols, 2);
    assert_int_equal(g.rows, 1);
    assert_int_equal(g.win_h, 40);
}

static void test_grid_refuses(void **state)
{
    (void)state;
    os_map_grid g;
    assert_int_equal(os_map_grid_make(100, 100, 64, 64, 65, 65, &g), OS_EINVAL);
    assert_non_null(strstr(os_errdetail(), "left out"));
    assert_int_equal(os_map_grid_make(100, 100, 0, 64, 1, 1, &g), OS_EINVAL);
    assert_int_equal(os_map_grid_make(0, 100, 64, 64, 64, 64, &g), OS_EINVAL);
    assert_int_equal(os_map_grid_make(100, 100, 64, 64, 0, 64, &g), OS_EINVAL);
}

static char *utm_wkt(int epsg)
{
    OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
    assert_int_equal(OSRImportFromEPSG(s, epsg), OGRERR_NONE);
    char *wkt = NULL;
    OSRExportToWkt(s, &wkt);
    OSRDestroySpatialReference(s);
    char *copy = strdup(wkt);
    CPLFree(wkt);
    return copy;
}

static void test_window_in_metres(void **state)
{
    (void)state;
    const double gt[6] = {ORIGIN_E, PIXEL_M, 0, ORIGIN_N, 0, -PIXEL_M};
    char *utm = utm_wkt(UTM_14N), *geo = utm_wkt(4326);
    int w = 0, h = 0;
    assert_int_equal(os_map_window_px(0, 128.0, true, gt, utm, &w, &h), OS_OK);
    assert_int_equal(w, 256);
    assert_int_equal(h, 256);
    assert_int_equal(os_map_window_px(100, 0, false, gt, "", &w, &h), OS_OK);
    assert_int_equal(w, 100);
    assert_int_equal(os_map_window_px(0, 128.0, false, gt, utm, &w, &h), OS_EINVAL);
    assert_non_null(strstr(os_errdetail(), "no geotransform"));
    assert_int_equal(os_map_window_px(0, 128.0, true, gt, "", &w, &h), OS_EINVAL);
    assert_non_null(strstr(os_errdetail(), "no CRS"));
    assert_int_equal(os_map_window_px(0, 128.0, true, gt, geo, &w, &h), OS_EINVAL);
    assert_non_null(strstr(os_errdetail(), "not projected"));
    const double rot[6] = {ORIGIN_E, PIXEL_M, 0.1, ORIGIN_N, 0.1, -PIXEL_M};
    assert_int_equal(os_map_window_px(0, 128.0, true, rot, utm, &w, &h), OS_EINVAL);
    assert_non_null(strstr(os_errdetail(), "rotated"));
    free(utm);
    free(geo);
}

static void test_ring_area(void **state)
{
    (void)state;
    const double ccw[] = {0, 0, 2, 0, 2, 1, 0, 1, 0, 0}; /* x east, y north */
    const double cw[] = {0, 0, 0, 1, 2, 1, 2, 0, 0, 0};
    assert_true(os_map_ring_area2(ccw, 5) == 4.0);
    assert_true(os_map_ring_area2(cw, 5) == -4.0);
}

/* ---- whole runs ---- */

typedef struct {
    char *dir;
    os_model *m;
    char geo[512], plain[512];
} fixture;

/* A SCENE_W x SCENE_H RGB GeoTIFF of smooth patterns (georeferenced or not). */
static void write_scene(const char *path, bool georef)
{
    GDALAllRegister();
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    GDALDatasetH ds = GDALCreate(drv, path, SCENE_W, SCENE_H, 3, GDT_Byte, NULL);
    assert_non_null(ds);
    unsigned char *row = malloc(SCENE_W);
    for (int b = 1; b <= 3; b++)
        for (int y = 0; y < SCENE_H; y++) {
            for (int x = 0; x < SCENE_W; x++)
                row[x] = (unsigned char)(127.5 + 127 * sin(0.05 * b * x + 0.03 * y * (4 - b)));
            assert_int_equal(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Write, 0, y, SCENE_W, 1,
                                          row, SCENE_W, 1, GDT_Byte, 0, 0),
                             CE_None);
        }
    free(row);
    if (georef) {
        double gt[6] = {ORIGIN_E, PIXEL_M, 0, ORIGIN_N, 0, -PIXEL_M};
        GDALSetGeoTransform(ds, gt);
        char *wkt = utm_wkt(UTM_14N);
        GDALSetProjection(ds, wkt);
        free(wkt);
    }
    GDALClose(ds);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    os_arch_opts o = {.name = "msresnet20", .width_mult = 0.25, .input = 32,
                      .classes = NCLASS, .spiking = true, .batchnorm = true,
                      .threshold = 0.5f, .leak = 1.0f, .seed = 3};
    f->m = tu_arch_model(&o, f->dir);
    snprintf(f->geo, sizeof f->geo, "%s/geo.tif", f->dir);
    snprintf(f->plain, sizeof f->plain, "%s/plain.tif", f->dir);
    write_scene(f->geo, true);
    write_scene(f->plain, false);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    os_model_destroy(f->m);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static os_map *run(const fixture *f, const char *path, int threads, int batch, int stride)
{
    const os_map_opts o = {.window = WIN, .stride = stride, .threads = threads, .batch = batch,
                           .top_k = 2};
    const os_map_source src = {.path = path};
    os_map *map = NULL;
    os_status st = os_map_run(f->m, &src, &o, &map);
    if (st)
        fail_msg("os_map_run: %s", os_errdetail());
    return map;
}

static void test_same_map_any_threads_and_batch(void **state)
{
    fixture *f = *state;
    os_map *ref = run(f, f->geo, 1, 1, 48);
    const os_map_grid *g = os_map_get_grid(ref);
    assert_int_equal(g->cols, 6);
    assert_int_equal(g->rows, 4);
    const int cells = g->cols * g->rows, k = os_map_top_k(ref);
    assert_int_equal(k, 2);
    char *ref_json = NULL;
    assert_int_equal(os_map_geojson(ref, &ref_json, NULL), OS_OK);
    static const int runs[][2] = {{2, 1}, {1, 8}, {2, 8}, {2, 3}, {3, 5}};
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        os_map *m = run(f, f->geo, runs[r][0], runs[r][1], 48);
        for (int i = 0; i < cells; i++) {
            assert_memory_equal(os_map_classes(m, i), os_map_classes(ref, i), k * sizeof(int));
            assert_memory_equal(os_map_probs(m, i), os_map_probs(ref, i), k * sizeof(float));
        }
        char *json = NULL;
        assert_int_equal(os_map_geojson(m, &json, NULL), OS_OK);
        assert_string_equal(json, ref_json);
        free(json);
        os_map_destroy(m);
    }
    free(ref_json);
    os_map_destroy(ref);
}

/* views 8: each cell is its window's 8-view answer (a session's os_session_run_views on the
 * window), for any threads and batch, and other than the one-view map. */
static void test_map_views(void **state)
{
    fixture *f = *state;
    os_map *one = run(f, f->geo, 1, 1, 48);
    os_session *s = NULL;
    assert_int_equal(os_session_create(f->m, &(os_session_opts){.max_batch = 8}, &s), OS_OK);
    os_raster *r = NULL;
    assert_int_equal(os_raster_open(f->geo, NULL, &r), OS_OK);
    static const int runs[][2] = {{1, 1}, {2, 3}, {1, 8}};
    bool differs = false;
    for (size_t q = 0; q < sizeof runs / sizeof *runs; q++) {
        const os_map_opts o = {.window = WIN, .stride = 48, .threads = runs[q][0],
                               .batch = runs[q][1], .top_k = 2, .views = 8};
        const os_map_source src = {.path = f->geo};
        os_map *m = NULL;
        if (os_map_run(f->m, &src, &o, &m))
            fail_msg("os_map_run: %s", os_errdetail());
        const os_map_grid *g = os_map_get_grid(m);
        for (int i = 0; i < g->cols * g->rows; i++) {
            int win[4], idx[2];
            float p[8 * NCLASS];
            os_map_grid_window(g, i, win);
            assert_int_equal(os_session_load_window_at(s, 0, r, win[0], win[1], win[2], win[3],
                                                       NULL),
                             OS_OK);
            assert_int_equal(os_session_run_views(s, 8, p), OS_OK);
            os_topk(p, NCLASS, 2, idx);
            assert_memory_equal(os_map_classes(m, i), idx, sizeof idx);
            assert_true(os_map_probs(m, i)[0] == p[idx[0]] && os_map_probs(m, i)[1] == p[idx[1]]);
            differs |= os_map_probs(m, i)[0] != os_map_probs(one, i)[0];
        }
        os_map_destroy(m);
    }
    assert_true(differs);
    const os_map_opts bad = {.window = WIN, .views = 3};
    const os_map_source src = {.path = f->geo};
    os_map *m = NULL;
    assert_int_equal(os_map_run(f->m, &src, &bad, &m), OS_EINVAL);
    os_raster_close(r);
    os_session_destroy(s);
    os_map_destroy(one);
}

static void test_geojson_lonlat_ccw(void **state)
{
    fixture *f = *state;
    os_map *map = run(f, f->geo, 2, 4, 0);
    assert_true(os_map_georeferenced(map));
    char *text = NULL;
    assert_int_equal(os_map_geojson(map, &text, NULL), OS_OK);
    json_error_t e;
    json_t *doc = json_loads(text, 0, &e);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "onespike"),
                                                          "coordinates")), "lonlat");
    json_t *feats = json_object_get(doc, "features");
    const os_map_grid *g = os_map_get_grid(map);
    assert_int_equal(json_array_size(feats), (size_t)(g->cols * g->rows));
    for (size_t i = 0; i < json_array_size(feats); i++) {
        json_t *ring = json_array_get(
            json_object_get(json_object_get(json_array_get(feats, i), "geometry"), "coordinates"),
            0);
        assert_int_equal(json_array_size(ring), 5);
        double xy[10];
        for (int c = 0; c < 5; c++) {
            xy[2 * c] = json_real_value(json_array_get(json_array_get(ring, c), 0));
            xy[2 * c + 1] = json_real_value(json_array_get(json_array_get(ring, c), 1));
            /* UTM 14N at 500 km east, 4500 km north: about 99 W, 40.6 N. */
            assert_true(fabs(xy[2 * c] + 99.0) < 0.01);
            assert_true(fabs(xy[2 * c + 1] - 40.65) < 0.05);
        }
        assert_true(xy[0] == xy[8] && xy[1] == xy[9]);
        assert_true(os_map_ring_area2(xy, 5) > 0);
    }
    json_decref(doc);
    free(text);
    os_map_destroy(map);
}

static void test_geojson_pixel_coordinates(void **state)
{
    fixture *f = *state;
    os_map *map = run(f, f->plain, 1, 8, 0);
    assert_false(os_map_georeferenced(map));
    char *text = NULL;
    assert_int_equal(os_map_geojson(map, &text, NULL), OS_OK);
    json_t *doc = json_loads(text, 0, NULL);
    json_t *meta = json_object_get(doc, "onespike");
    assert_string_equal(json_string_value(json_object_get(meta, "coordinates")), "pixel");
    assert_string_equal(json_string_value(json_object_get(meta, "model")), os_model_name(f->m));
    json_t *last = json_array_get(json_object_get(doc, "features"), 4 * 5 - 1);
    json_t *win = json_object_get(json_object_get(last, "properties"), "window");
    assert_int_equal(json_integer_value(json_array_get(win, 0)), SCENE_W - WIN);
    assert_int_equal(json_integer_value(json_array_get(win, 1)), SCENE_H - WIN);
    json_t *p0 = json_array_get(json_array_get(json_object_get(json_object_get(last, "geometry"),
                                                               "coordinates"), 0), 0);
    assert_true(json_number_value(json_array_get(p0, 0)) >= SCENE_W - WIN);
    json_decref(doc);
    free(text);
    os_map_destroy(map);
}

static void test_errors(void **state)
{
    fixture *f = *state;
    os_map *map = NULL;
    const os_map_source plain = {.path = f->plain}, geo = {.path = f->geo};
    os_map_opts o = {.window_m = 32.0};
    assert_int_equal(os_map_run(f->m, &plain, &o, &map), OS_EINVAL);
    assert_non_null(strstr(os_errdetail(), "no geotransform"));
    assert_null(map);
    o = (os_map_opts){.window_m = 32.0, .threads = 1};
    assert_int_equal(os_map_run(f->m, &geo, &o, &map), OS_OK);
    assert_int_equal(os_map_get_grid(map)->win_w, 64); /* 32 m at 0.5 m */
    os_map_destroy(map);
    map = NULL;
    os_raster_input in = os_raster_input_default();
    in.bands[2] = 4;
    o = (os_map_opts){.input = &in};
    assert_int_equal(os_map_run(f->m, &geo, &o, &map), OS_EMISMATCH);
    assert_non_null(strstr(os_errdetail(), "3 bands, Byte, 300x200"));
    char junk[512];
    snprintf(junk, sizeof junk, "%s/junk.tif", f->dir);
    tu_spit(junk, "not a raster at all", 19);
    const os_map_source bad = {.path = junk};
    assert_int_equal(os_map_run(f->m, &bad, NULL, &map), OS_EUNSUPPORTED);
    atomic_bool cancel = true;
    o = (os_map_opts){.cancel = &cancel, .window = 16};
    assert_int_equal(os_map_run(f->m, &geo, &o, &map), OS_ECANCELED);
    assert_non_null(strstr(os_errdetail(), "cancelled after 0 of"));
    assert_null(map);
}

static void test_cog(void **state)
{
    fixture *f = *state;
    os_map *map = run(f, f->geo, 2, 8, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/map.tif", f->dir);
    assert_int_equal(os_map_write_cog(map, path), OS_OK);
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    assert_non_null(ds);
    const os_map_grid *g = os_map_get_grid(map);
    assert_int_equal(GDALGetRasterXSize(ds), g->cols);
    assert_int_equal(GDALGetRasterYSize(ds), g->rows);
    assert_int_equal(GDALGetRasterCount(ds), 2);
    const char *layout = GDALGetMetadataItem(ds, "LAYOUT", "IMAGE_STRUCTURE");
    assert_non_null(layout);
    assert_string_equal(layout, "COG");
    double gt[6];
    assert_int_equal(GDALGetGeoTransform(ds, gt), CE_None);
    assert_true(gt[0] == ORIGIN_E && gt[3] == ORIGIN_N); /* stride = window: no offset */
    assert_true(gt[1] == WIN * PIXEL_M && gt[5] == -WIN * PIXEL_M);
    unsigned char cls[64], prob[64];
    const int cells = g->cols * g->rows;
    assert_true(cells <= 64);
    GDALRasterBandH b1 = GDALGetRasterBand(ds, 1), b2 = GDALGetRasterBand(ds, 2);
    assert_int_equal(GDALRasterIO(b1, GF_Read, 0, 0, g->cols, g->rows, cls, g->cols, g->rows,
                                  GDT_Byte, 0, 0), CE_None);
    assert_int_equal(GDALRasterIO(b2, GF_Read, 0, 0, g->cols, g->rows, prob, g->cols, g->rows,
                                  GDT_Byte, 0, 0), CE_None);
    for (int i = 0; i < cells; i++) {
        assert_int_equal(cls[i], os_map_classes(map, i)[0]);
        assert_true(fabs(prob[i] / 255.0 - os_map_probs(map, i)[0]) <= 0.5 / 255 + 1e-6);
    }
    assert_true(fabs(GDALGetRasterScale(b2, NULL) - 1.0 / 255) < 1e-12);
    assert_non_null(GDALGetRasterColorTable(b1));
    assert_string_equal(GDALGetMetadataItem(b1, "CLASS_0", NULL), os_model_label(f->m, 0));
    GDALClose(ds);
    os_map_destroy(map);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_snaps_last_window),
        cmocka_unit_test(test_grid_covers_every_pixel),
        cmocka_unit_test(test_grid_small_scene),
        cmocka_unit_test(test_grid_refuses),
        cmocka_unit_test(test_window_in_metres),
        cmocka_unit_test(test_ring_area),
        cmocka_unit_test(test_same_map_any_threads_and_batch),
        cmocka_unit_test(test_map_views),
        cmocka_unit_test(test_geojson_lonlat_ccw),
        cmocka_unit_test(test_geojson_pixel_coordinates),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_cog),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
