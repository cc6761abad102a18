/* scenemap.c - a classification map of a whole scene; see scenemap.h.
 *
 * Pixels are read through raster.c; this file uses GDAL only for what a map adds: the CRS
 * (OSR: is it projected in metres, its transform to WGS 84) and the writers of the GeoTIFF
 * (MEM and COG drivers, registered here; the reader's driver list is its own and unchanged).
 * raster.c's set-up (message handler, no side files) has run by the time any of this does,
 * since a map exists only after its scene was opened.
 */
#include "onespike/scenemap.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <gdal_frmts.h>
#include <ogr_srs_api.h>

#include "onespike/clock.h"
#include "onespike/safetensors.h" /* os_write_file_atomic */

enum {
    MAP_CORNERS = 4,          /* a window's polygon; its closed ring has one point more */
    MAP_RING = MAP_CORNERS + 1,
    MAP_ERR_MAX = 512,        /* the first worker error's detail */
    MAP_VSI_NAME_MAX = 64,
    MAP_WHY_MAX = 512, /* an error detail carried into a message with the file's path */
    MAP_JSON_DIGITS = 12,     /* significant digits of GeoJSON numbers: ~1e-10 degree */
    MAP_MAX_CLASSES = OS_MAP_NODATA, /* class indices 0..254 fit the Byte band beside nodata */
    MAP_WGS84 = 4326,
};

#define MAP_PROB_LEVELS 255.0
/* A CRS's linear unit is the metre when GDAL's factor is 1 to within this. */
#define MAP_METRE_TOLERANCE 1e-9

/* ---- the grid ---- */

/* Windows along one side: 1 when the side is not longer than the window, else enough that
 * the last one (snapped to the edge) reaches it. */
static int grid_count(int side, int win, int stride)
{
    if (side <= win)
        return 1;
    return (side - win + stride - 1) / stride + 1;
}

os_status os_map_grid_make(int width, int height, int win_w, int win_h, int stride_x,
                           int stride_y, os_map_grid *g)
{
    if (width < 1 || height < 1)
        return os_fail(OS_EINVAL, "scene %dx%d: each side must be at least 1 pixel", width,
                       height);
    if (win_w < 1 || win_h < 1)
        return os_fail(OS_EINVAL, "window %dx%d: each side must be at least 1 pixel", win_w,
                       win_h);
    if (stride_x < 1 || stride_y < 1 || stride_x > win_w || stride_y > win_h)
        return os_fail(OS_EINVAL, "stride %dx%d: must be 1..the window (%dx%d), or pixels "
                                  "between windows would be left out",
                       stride_x, stride_y, win_w, win_h);
    const int ww = win_w < width ? win_w : width, wh = win_h < height ? win_h : height;
    /* A clipped window is the whole side: its stride no longer matters, keep it <= window. */
    *g = (os_map_grid){.width = width,
                       .height = height,
                       .win_w = ww,
                       .win_h = wh,
                       .stride_x = stride_x < ww ? stride_x : ww,
                       .stride_y = stride_y < wh ? stride_y : wh,
                       .cols = grid_count(width, ww, stride_x),
                       .rows = grid_count(height, wh, stride_y)};
    if ((int64_t)g->cols * g->rows > INT32_MAX)
        return os_fail(OS_ETOOBIG, "a grid of %dx%d windows is too many", g->cols, g->rows);
    return OS_OK;
}

void os_map_grid_window(const os_map_grid *g, int index, int win[4])
{
    assert(index >= 0 && index < g->cols * g->rows);
    const int col = index % g->cols, row = index / g->cols;
    int x = col * g->stride_x, y = row * g->stride_y;
    if (x > g->width - g->win_w)
        x = g->width - g->win_w; /* the last column ends at the edge */
    if (y > g->height - g->win_h)
        y = g->height - g->win_h;
    win[0] = x, win[1] = y, win[2] = g->win_w, win[3] = g->win_h;
}

os_status os_map_window_px(int px, double window_m, bool has_gt, const double gt[6],
                           const char *crs_wkt, int *win_w, int *win_h)
{
    if (!(window_m > 0)) {
        if (px < 1)
            return os_fail(OS_EINVAL, "window %d: expected pixels >= 1", px);
        *win_w = *win_h = px;
        return OS_OK;
    }
    if (!has_gt)
        return os_fail(OS_EINVAL, "window of %g m: the raster has no geotransform, so its pixel "
                                  "size on the ground is unknown; give the window in pixels",
                       window_m);
    if (gt[2] != 0 || gt[4] != 0)
        return os_fail(OS_EINVAL, "window of %g m: the raster's geotransform is rotated; give "
                                  "the window in pixels", window_m);
    if (!crs_wkt || !*crs_wkt)
        return os_fail(OS_EINVAL, "window of %g m: the raster has no CRS, so its units are "
                                  "unknown; give the window in pixels", window_m);
    OGRSpatialReferenceH srs = OSRNewSpatialReference(crs_wkt);
    if (!srs)
        return os_fail(OS_EINVAL, "window of %g m: the raster's CRS cannot be read", window_m);
    const bool projected = OSRIsProjected(srs);
    const char *unit = NULL;
    const double factor = projected ? OSRGetLinearUnits(srs, (char **)&unit) : 0;
    char name[64];
    snprintf(name, sizeof name, "%s", unit ? unit : "?");
    OSRDestroySpatialReference(srs);
    if (!projected)
        return os_fail(OS_EINVAL, "window of %g m: the raster's CRS is not projected (degrees, "
                                  "not metres); give the window in pixels", window_m);
    if (fabs(factor - 1.0) > MAP_METRE_TOLERANCE)
        return os_fail(OS_EINVAL, "window of %g m: the raster's CRS is in %s, not metres; give "
                                  "the window in pixels", window_m, name);
    const double w = floor(window_m / fabs(gt[1]) + 0.5), h = floor(window_m / fabs(gt[5]) + 0.5);
    if (w < 1 || h < 1 || w > OS_RASTER_MAX_SIDE || h > OS_RASTER_MAX_SIDE)
        return os_fail(OS_EINVAL, "window of %g m at %g x %g m pixels: %gx%g pixels, expected "
                                  "1..%d per side", window_m, fabs(gt[1]), fabs(gt[5]), w, h,
                       OS_RASTER_MAX_SIDE);
    *win_w = (int)w, *win_h = (int)h;
    return OS_OK;
}

/* ---- the map ---- */

struct os_map {
    const os_model *model;
    os_map_grid grid;
    int k;          /* classes kept per cell */
    int *cls;       /* cells * k */
    float *prob;    /* cells * k */
    bool has_gt;
    double gt[6];
    char *crs;      /* WKT, "" when none */
};

void os_map_destroy(os_map *map)
{
    if (!map)
        return;
    free(map->cls);
    free(map->prob);
    free(map->crs);
    free(map);
}

const os_map_grid *os_map_get_grid(const os_map *map) { return &map->grid; }
int os_map_top_k(const os_map *map) { return map->k; }
const int *os_map_classes(const os_map *map, int index) { return map->cls + (size_t)index * map->k; }
const float *os_map_probs(const os_map *map, int index) { return map->prob + (size_t)index * map->k; }
bool os_map_georeferenced(const os_map *map) { return map->has_gt && map->crs[0]; }

/* ---- running: workers over a shared counter ---- */

typedef struct {
    os_map *map;
    const os_map_source *src;
    const os_map_opts *o;
    const os_raster_input *in;
    os_session_opts so;
    int batch, cells, views;
    atomic_int next;  /* first window of the next batch to take */
    atomic_int done;  /* windows answered */
    atomic_bool stop; /* a worker failed, or the run was cancelled */
    pthread_mutex_t lock; /* the first error and the progress callback */
    os_status err;
    char detail[MAP_ERR_MAX];
} map_job;

typedef struct {
    map_job *job;
    os_raster *r; /* NULL: the worker opens its own */
} map_worker;

/* The first failure wins: its status and detail are the run's. */
static void job_fail(map_job *j, os_status st)
{
    pthread_mutex_lock(&j->lock);
    if (!j->err) {
        j->err = st;
        snprintf(j->detail, sizeof j->detail, "%s",
                 *os_errdetail() ? os_errdetail() : os_strerror(st));
    }
    pthread_mutex_unlock(&j->lock);
    atomic_store(&j->stop, true);
}

static os_status open_source(const os_map_source *src, const os_raster_limits *lim,
                             os_raster **r)
{
    return src->path ? os_raster_open(src->path, lim, r)
                     : os_raster_open_bytes(src->buf, src->len, lim, r);
}

static bool job_should_stop(map_job *j)
{
    if (atomic_load(&j->stop))
        return true;
    const bool cancelled = j->o->cancel && atomic_load(j->o->cancel);
    if (cancelled || (j->o->deadline_s > 0 && os_clock_s() > j->o->deadline_s)) {
        job_fail(j, os_fail(OS_ECANCELED, "%s after %d of %d windows",
                            cancelled ? "cancelled" : "deadline passed", atomic_load(&j->done),
                            j->cells));
        return true;
    }
    return false;
}

/* Cell `cell`'s top classes and their probabilities from its answer p (idx: scratch). */
static void keep_top(os_map *map, int cell, const float *p, int *idx)
{
    const int k = map->k;
    os_topk(p, os_model_classes(map->model), k, idx);
    for (int c = 0; c < k; c++) {
        map->cls[(size_t)cell * k + c] = idx[c];
        map->prob[(size_t)cell * k + c] = p[idx[c]];
    }
}

static void *map_work(void *arg)
{
    map_worker *w = arg;
    map_job *j = w->job;
    os_map *map = j->map;
    const int nclass = os_model_classes(map->model);
    os_raster *r = w->r;
    os_session *s = NULL;
    float *probs = NULL;
    int *idx = NULL;
    os_status st = OS_OK;
    if (!r && (st = open_source(j->src, &j->o->limits, &r)))
        goto out;
    if ((st = os_session_create(map->model, &j->so, &s)))
        goto out;
    probs = malloc((size_t)(j->batch > j->views ? j->batch : j->views) * nclass * sizeof *probs);
    idx = malloc((size_t)nclass * sizeof *idx);
    if (!probs || !idx) {
        st = os_fail(OS_ENOMEM, "no memory for a batch of %d windows", j->batch);
        goto out;
    }
    while (!job_should_stop(j)) {
        const int first = atomic_fetch_add(&j->next, j->batch);
        if (first >= j->cells)
            break;
        const int n = j->cells - first < j->batch ? j->cells - first : j->batch;
        if (j->views > 1) { /* each window in its views, a pass of its own */
            for (int b = 0; b < n; b++) {
                int win[4];
                os_map_grid_window(&map->grid, first + b, win);
                if ((st = os_session_load_window_at(s, 0, r, win[0], win[1], win[2], win[3],
                                                    j->in)) ||
                    (st = os_session_run_views(s, j->views, probs)))
                    goto out;
                keep_top(map, first + b, probs, idx);
            }
        } else { /* the n windows in one pass */
            for (int b = 0; b < n; b++) {
                int win[4];
                os_map_grid_window(&map->grid, first + b, win);
                if ((st = os_session_load_window_at(s, b, r, win[0], win[1], win[2], win[3],
                                                    j->in)))
                    goto out;
            }
            os_session_run_batch(s, n, probs, NULL);
            for (int b = 0; b < n; b++)
                keep_top(map, first + b, probs + (size_t)b * nclass, idx);
        }
        const int done = atomic_fetch_add(&j->done, n) + n;
        if (j->o->progress) {
            pthread_mutex_lock(&j->lock);
            j->o->progress(j->o->progress_ctx, done, j->cells);
            pthread_mutex_unlock(&j->lock);
        }
    }
out:
    if (st)
        job_fail(j, st);
    free(idx);
    free(probs);
    os_session_destroy(s);
    if (r != w->r)
        os_raster_close(r);
    return NULL;
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > OS_MAP_MAX_THREADS ? OS_MAP_MAX_THREADS : (int)n;
}

os_status os_map_run(const os_model *m, const os_map_source *src, const os_map_opts *opts,
                     os_map **out)
{
    assert(m && src && out);
    *out = NULL;
    const os_map_opts defaults = {0};
    const os_map_opts *o = opts ? opts : &defaults;
    os_status st = OS_OK;
    os_raster *r = NULL;
    os_map *map = NULL;
    map_worker *workers = NULL;
    pthread_t *tids = NULL;
    int started = 0;
    map_job job = {.o = o, .src = src};
    pthread_mutex_init(&job.lock, NULL);

    const int nclass = os_model_classes(m);
    const int k = o->top_k > 0 ? (o->top_k < nclass ? o->top_k : nclass)
                               : (OS_MAP_DEFAULT_TOP_K < nclass ? OS_MAP_DEFAULT_TOP_K : nclass);
    job.batch = o->batch > 0 ? o->batch : OS_MAP_DEFAULT_BATCH;
    job.views = o->views > 0 ? o->views : 1;
    if (o->batch < 0 || job.batch > OS_SESSION_MAX_BATCH || o->top_k < 0 || o->threads < 0 ||
        o->threads > OS_MAP_MAX_THREADS || o->stride < 0 || o->window < 0 ||
        !os_session_views_valid(job.views)) {
        st = os_fail(OS_EINVAL, "map options: batch 1..%d, threads 0..%d, views 1, 2, 4 or 8, "
                                "and top-k, window, stride >= 0 (0: default)",
                     OS_SESSION_MAX_BATCH, OS_MAP_MAX_THREADS);
        goto out;
    }
    if (!src->path && !src->buf) {
        st = os_fail(OS_EINVAL, "map: no scene (neither a path nor bytes)");
        goto out;
    }
    if ((st = open_source(src, &o->limits, &r)))
        goto out;
    job.in = o->input ? o->input : os_model_raster_input(m);
    if ((st = os_raster_check(r, job.in)))
        goto out;

    if (!(map = calloc(1, sizeof *map))) {
        st = os_fail(OS_ENOMEM, "no memory for a map");
        goto out;
    }
    map->model = m;
    map->k = k;
    map->has_gt = os_raster_geotransform(r, map->gt);
    if (!(map->crs = strdup(os_raster_crs_wkt(r)))) {
        st = os_fail(OS_ENOMEM, "no memory for a map");
        goto out;
    }
    int ww, wh;
    if ((st = os_map_window_px(o->window > 0 ? o->window : OS_MAP_DEFAULT_WINDOW, o->window_m,
                               map->has_gt, map->gt, map->crs, &ww, &wh)))
        goto out;
    if ((st = os_map_grid_make(os_raster_width(r), os_raster_height(r), ww, wh,
                               o->stride > 0 ? o->stride : ww, o->stride > 0 ? o->stride : wh,
                               &map->grid)))
        goto out;
    job.cells = map->grid.cols * map->grid.rows;
    map->cls = malloc((size_t)job.cells * k * sizeof *map->cls);
    map->prob = malloc((size_t)job.cells * k * sizeof *map->prob);
    if (!map->cls || !map->prob) {
        st = os_fail(OS_ENOMEM, "no memory for a map of %d cells", job.cells);
        goto out;
    }
    job.map = map;
    if (o->session)
        job.so = *o->session;
    job.so.max_batch = job.batch > job.views ? job.batch : job.views;
    job.so.max_pixels = (size_t)map->grid.win_w * (size_t)map->grid.win_h;

    const int batches = (job.cells + job.batch - 1) / job.batch;
    int nthreads = o->threads > 0 ? o->threads : default_threads();
    if (nthreads > batches)
        nthreads = batches;
    workers = calloc((size_t)nthreads, sizeof *workers);
    tids = calloc((size_t)nthreads, sizeof *tids);
    if (!workers || !tids) {
        st = os_fail(OS_ENOMEM, "no memory for %d threads", nthreads);
        goto out;
    }
    /* Worker 0 runs on this thread with the handle opened above; the others open their own. */
    for (int t = 0; t < nthreads; t++)
        workers[t] = (map_worker){.job = &job, .r = t == 0 ? r : NULL};
    for (started = 1; started < nthreads; started++)
        if (pthread_create(&tids[started], NULL, map_work, &workers[started]) != 0) {
            job_fail(&job, os_fail(OS_ENOMEM, "cannot start thread %d of %d", started + 1,
                                   nthreads));
            break;
        }
    map_work(&workers[0]);
    for (int t = 1; t < started; t++)
        pthread_join(tids[t], NULL);
    if (job.err) {
        st = os_fail(job.err, "%s", job.detail);
        goto out;
    }
    *out = map;
    map = NULL;
out:
    free(tids);
    free(workers);
    os_map_destroy(map);
    os_raster_close(r);
    pthread_mutex_destroy(&job.lock);
    return st;
}

/* ---- GeoJSON ---- */

double os_map_ring_area2(const double *xy, int n)
{
    double a = 0;
    for (int i = 0; i + 1 < n; i++)
        a += xy[2 * i] * xy[2 * i + 3] - xy[2 * i + 2] * xy[2 * i + 1];
    return a;
}

/* Scene pixel (px, py) through the geotransform. */
static void gt_apply(const double gt[6], double px, double py, double *x, double *y)
{
    *x = gt[0] + px * gt[1] + py * gt[2];
    *y = gt[3] + px * gt[4] + py * gt[5];
}

/* The transform from the scene's CRS to WGS 84 lon/lat, both in traditional GIS order
 * (x = easting / longitude), or NULL with the failure recorded. */
static OGRCoordinateTransformationH lonlat_transform(const char *wkt)
{
    OGRSpatialReferenceH src = OSRNewSpatialReference(NULL), dst = OSRNewSpatialReference(NULL);
    OGRCoordinateTransformationH ct = NULL;
    CPLErrorReset();
    if (!src || !dst) {
        os_fail(OS_ENOMEM, "no memory for a CRS");
        goto out;
    }
    if (OSRImportFromWkt(src, (char **)&wkt) != OGRERR_NONE ||
        OSRImportFromEPSG(dst, MAP_WGS84) != OGRERR_NONE) {
        os_fail(OS_EUNSUPPORTED, "the raster's CRS cannot be read: %s", CPLGetLastErrorMsg());
        goto out;
    }
    OSRSetAxisMappingStrategy(src, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(dst, OAMS_TRADITIONAL_GIS_ORDER);
    if (!(ct = OCTNewCoordinateTransformation(src, dst)))
        os_fail(OS_EUNSUPPORTED, "no transform from the raster's CRS to WGS 84: %s",
                CPLGetLastErrorMsg());
out:
    OSRDestroySpatialReference(src);
    OSRDestroySpatialReference(dst);
    return ct;
}

static json_t *pair(double a, double b)
{
    return json_pack("[f,f]", a, b);
}

/* One cell's Feature. xy: its closed ring (MAP_RING points), counterclockwise. */
static json_t *cell_feature(const os_map *map, int index, const double *xy)
{
    const int *cls = os_map_classes(map, index);
    const float *p = os_map_probs(map, index);
    int win[4];
    os_map_grid_window(&map->grid, index, win);
    json_t *ring = json_array(), *topk = json_array();
    for (int i = 0; i < MAP_RING; i++)
        json_array_append_new(ring, pair(xy[2 * i], xy[2 * i + 1]));
    for (int c = 0; c < map->k; c++)
        json_array_append_new(topk, json_pack("{s:s,s:f}", "class", os_model_label(map->model, cls[c]),
                                              "probability", (double)p[c]));
    return json_pack("{s:s,s:{s:s,s:[o]},s:{s:s,s:i,s:f,s:o,s:[i,i,i,i],s:i,s:i}}", "type",
                     "Feature", "geometry", "type", "Polygon", "coordinates", ring, "properties",
                     "class", os_model_label(map->model, cls[0]), "class_index", cls[0],
                     "probability", (double)p[0], "top_k", topk, "window", win[0], win[1],
                     win[2], win[3], "col", index % map->grid.cols, "row",
                     index / map->grid.cols);
}

os_status os_map_geojson(const os_map *map, char **text, size_t *len)
{
    *text = NULL;
    if (len)
        *len = 0;
    const bool geo = os_map_georeferenced(map);
    OGRCoordinateTransformationH ct = NULL;
    if (geo && !(ct = lonlat_transform(map->crs)))
        return OS_EUNSUPPORTED;
    os_status st = OS_OK;
    const os_map_grid *g = &map->grid;
    json_t *features = json_array();
    json_t *doc = json_pack("{s:s,s:{s:s,s:s,s:[i,i],s:[i,i],s:[i,i],s:[i,i],s:i},s:o}", "type",
                            "FeatureCollection", "onespike", "model", os_model_name(map->model),
                            "coordinates", geo ? "lonlat" : "pixel", "size", g->width, g->height,
                            "window", g->win_w, g->win_h, "stride", g->stride_x, g->stride_y,
                            "grid", g->cols, g->rows, "top_k", map->k, "features", features);
    if (!doc) {
        json_decref(features);
        st = os_fail(OS_ENOMEM, "no memory for GeoJSON");
        goto out;
    }
    for (int i = 0; i < g->cols * g->rows; i++) {
        int win[4];
        os_map_grid_window(g, i, win);
        /* Corners in scene pixels, then through the geotransform and to lon/lat. */
        const double px[MAP_CORNERS] = {win[0], win[0] + win[2], win[0] + win[2], win[0]};
        const double py[MAP_CORNERS] = {win[1], win[1], win[1] + win[3], win[1] + win[3]};
        double x[MAP_RING], y[MAP_RING], z[MAP_RING] = {0};
        for (int c = 0; c < MAP_CORNERS; c++) {
            if (geo)
                gt_apply(map->gt, px[c], py[c], &x[c], &y[c]);
            else
                x[c] = px[c], y[c] = py[c];
        }
        if (geo && !OCTTransform(ct, MAP_CORNERS, x, y, z)) {
            st = os_fail(OS_EUNSUPPORTED, "window %d: its corners do not transform to WGS 84",
                         i);
            goto out;
        }
        x[MAP_CORNERS] = x[0], y[MAP_CORNERS] = y[0];
        double xy[2 * MAP_RING];
        for (int c = 0; c < MAP_RING; c++)
            xy[2 * c] = x[c], xy[2 * c + 1] = y[c];
        if (os_map_ring_area2(xy, MAP_RING) < 0) /* reverse: RFC 7946 wants counterclockwise */
            for (int c = 0; c < MAP_RING; c++)
                xy[2 * c] = x[MAP_RING - 1 - c], xy[2 * c + 1] = y[MAP_RING - 1 - c];
        json_t *f = cell_feature(map, i, xy);
        if (!f || json_array_append_new(features, f)) {
            st = os_fail(OS_ENOMEM, "no memory for GeoJSON");
            goto out;
        }
    }
    *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                JSON_REAL_PRECISION(MAP_JSON_DIGITS));
    if (!*text) {
        st = os_fail(OS_ENOMEM, "no memory for GeoJSON");
        goto out;
    }
    if (len)
        *len = strlen(*text);
out:
    json_decref(doc);
    if (ct)
        OCTDestroyCoordinateTransformation(ct);
    return st;
}

os_status os_map_write_geojson(const os_map *map, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    os_status st = os_map_geojson(map, &text, &len);
    if (!st)
        st = os_write_file_atomic(path, text, len);
    free(text);
    return st;
}

/* ---- the GeoTIFF ---- */

static pthread_once_t writers_once = PTHREAD_ONCE_INIT;
static atomic_ulong cog_serial;

static void writers_register(void)
{
    GDALRegister_MEM();
    GDALRegister_COG();
}

/* Class i's colour: a fixed qualitative palette, then hues spread by the golden angle. */
static GDALColorEntry class_colour(int i)
{
    static const unsigned char palette[][3] = {
        {31, 119, 180}, {255, 127, 14}, {44, 160, 44},   {214, 39, 40},   {148, 103, 189},
        {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
        {174, 199, 232}, {255, 187, 120}, {152, 223, 138}, {255, 152, 150}, {197, 176, 213},
        {196, 156, 148}, {247, 182, 210}, {199, 199, 199}, {219, 219, 141}, {158, 218, 229},
        {57, 59, 121},  {99, 121, 57},  {140, 109, 49},  {132, 60, 57}};
    const int n = (int)(sizeof palette / sizeof *palette);
    if (i < n)
        return (GDALColorEntry){palette[i][0], palette[i][1], palette[i][2], 255};
    const double h = fmod(i * 137.508, 360.0) / 60.0, f = h - floor(h);
    const short v = 230, lo = 60, up = (short)(lo + (v - lo) * f), dn = (short)(v - (v - lo) * f);
    const short rgb[6][3] = {{v, up, lo}, {dn, v, lo}, {lo, v, up},
                             {lo, dn, v}, {up, lo, v}, {v, lo, dn}};
    const short *c = rgb[(int)h % 6];
    return (GDALColorEntry){c[0], c[1], c[2], 255};
}

os_status os_map_cog(const os_map *map, unsigned char **bytes_out, size_t *len_out)
{
    *bytes_out = NULL;
    *len_out = 0;
    const char *path = "COG"; /* what the messages name */
    const int nclass = os_model_classes(map->model);
    if (nclass > MAP_MAX_CLASSES)
        return os_fail(OS_EUNSUPPORTED, "%s: %d classes do not fit a Byte class band (at most "
                                        "%d beside nodata)", path, nclass, MAP_MAX_CLASSES);
    pthread_once(&writers_once, writers_register);
    const os_map_grid *g = &map->grid;
    const size_t cells = (size_t)g->cols * g->rows;
    os_status st = OS_OK;
    GDALDatasetH mem = NULL, cog = NULL;
    GDALColorTableH ct = NULL;
    char **names = NULL;
    unsigned char *band = malloc(cells);
    char vsi[MAP_VSI_NAME_MAX];
    snprintf(vsi, sizeof vsi, "/vsimem/onespike-map/%ld-%lu.tif", (long)getpid(),
             (unsigned long)atomic_fetch_add(&cog_serial, 1));
    CPLErrorReset();
    GDALDriverH mem_drv = GDALGetDriverByName("MEM"), cog_drv = GDALGetDriverByName("COG");
    if (!band || !mem_drv || !cog_drv) {
        st = os_fail(band ? OS_EUNSUPPORTED : OS_ENOMEM, "%s: %s", path,
                     band ? "this GDAL has no MEM or COG driver" : "no memory");
        goto out;
    }
    if (!(mem = GDALCreate(mem_drv, "", g->cols, g->rows, 2, GDT_Byte, NULL))) {
        st = os_fail(OS_ENOMEM, "%s: %s", path, CPLGetLastErrorMsg());
        goto out;
    }
    if (map->has_gt) {
        /* A map pixel is the stride x stride block centred on its window's centre. */
        const double ox = (g->win_w - g->stride_x) / 2.0, oy = (g->win_h - g->stride_y) / 2.0;
        const double *s = map->gt;
        double mgt[6] = {s[0] + ox * s[1] + oy * s[2], s[1] * g->stride_x, s[2] * g->stride_y,
                         s[3] + ox * s[4] + oy * s[5], s[4] * g->stride_x, s[5] * g->stride_y};
        GDALSetGeoTransform(mem, mgt);
    }
    if (map->crs[0])
        GDALSetProjection(mem, map->crs);
    GDALSetMetadataItem(mem, "ONESPIKE_MODEL", os_model_name(map->model), NULL);

    GDALRasterBandH b1 = GDALGetRasterBand(mem, 1), b2 = GDALGetRasterBand(mem, 2);
    for (size_t i = 0; i < cells; i++)
        band[i] = (unsigned char)os_map_classes(map, (int)i)[0];
    CPLErr e = GDALRasterIO(b1, GF_Write, 0, 0, g->cols, g->rows, band, g->cols, g->rows,
                            GDT_Byte, 0, 0);
    /* A TIFF has one nodata value for all its bands: a probability never takes it (1.0 is
     * written as 254/255, the only value off by more than half a level). */
    for (size_t i = 0; i < cells; i++) {
        const double q = floor(os_map_probs(map, (int)i)[0] * MAP_PROB_LEVELS + 0.5);
        band[i] = (unsigned char)(q >= OS_MAP_NODATA ? OS_MAP_NODATA - 1 : q < 0 ? 0 : q);
    }
    if (e == CE_None)
        e = GDALRasterIO(b2, GF_Write, 0, 0, g->cols, g->rows, band, g->cols, g->rows, GDT_Byte,
                         0, 0);
    if (e != CE_None) {
        st = os_fail(OS_EIO, "%s: %s", path, CPLGetLastErrorMsg());
        goto out;
    }
    GDALSetDescription(b1, "class");
    GDALSetDescription(b2, "probability");
    GDALSetRasterNoDataValue(b1, OS_MAP_NODATA);
    GDALSetRasterScale(b2, 1.0 / MAP_PROB_LEVELS);
    GDALSetRasterOffset(b2, 0.0);
    ct = GDALCreateColorTable(GPI_RGB);
    for (int i = 0; i < nclass; i++) {
        GDALColorEntry c = class_colour(i);
        GDALSetColorEntry(ct, i, &c);
        char key[32];
        snprintf(key, sizeof key, "CLASS_%d", i);
        GDALSetMetadataItem(b1, key, os_model_label(map->model, i), NULL);
        names = CSLAddString(names, os_model_label(map->model, i));
    }
    GDALColorEntry none = {0, 0, 0, 0};
    GDALSetColorEntry(ct, OS_MAP_NODATA, &none);
    GDALSetRasterColorTable(b1, ct);
    GDALSetRasterCategoryNames(b1, names);

    /* Nearest overviews: an average of class indices is no class. Written to memory, then
     * copied out (GDAL's buffer is GDAL's to free). */
    const char *const copts[] = {"COMPRESS=DEFLATE", "RESAMPLING=NEAREST", NULL};
    if (!(cog = GDALCreateCopy(cog_drv, vsi, mem, FALSE, (char **)copts, NULL, NULL))) {
        st = os_fail(OS_EIO, "%s: %s", path, CPLGetLastErrorMsg());
        goto out;
    }
    GDALClose(cog);
    cog = NULL;
    vsi_l_offset n = 0;
    GByte *bytes = VSIGetMemFileBuffer(vsi, &n, TRUE);
    if (!bytes || !n) {
        VSIFree(bytes);
        st = os_fail(OS_EIO, "%s: nothing written", path);
        goto out;
    }
    if (!(*bytes_out = malloc((size_t)n))) {
        st = os_fail(OS_ENOMEM, "%s: no memory for %llu bytes", path, (unsigned long long)n);
    } else {
        memcpy(*bytes_out, bytes, (size_t)n);
        *len_out = (size_t)n;
    }
    VSIFree(bytes);
out:
    if (cog)
        GDALClose(cog);
    if (mem)
        GDALClose(mem);
    VSIUnlink(vsi);
    if (ct)
        GDALDestroyColorTable(ct);
    CSLDestroy(names);
    free(band);
    return st;
}

os_status os_map_write_cog(const os_map *map, const char *path)
{
    unsigned char *bytes;
    size_t len;
    os_status st = os_map_cog(map, &bytes, &len);
    if (st) {
        char why[MAP_WHY_MAX];
        snprintf(why, sizeof why, "%s", os_errdetail());
        return os_fail(st, "%s: %s", path, why);
    }
    st = os_write_file_atomic(path, bytes, len);
    free(bytes);
    return st;
}
