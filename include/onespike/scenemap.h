/* scenemap.h - a classification map of a whole scene: the model run over a grid of windows.
 *
 * A scene (a raster file, or raster bytes in memory) is cut into a grid of windows; every window
 * is read through the model's input description (raster.h), resized to the model's input and
 * classified; the answers land in a grid of cells, one per window. The map is then written as
 * GeoJSON (one polygon per window, WGS 84 lon/lat when the scene is georeferenced) and/or as a
 * Cloud-Optimized GeoTIFF (class index and probability, one map pixel per cell).
 *
 * The grid covers every pixel: windows start at i*stride, and the last one of each row and
 * column is moved back to end at the scene's edge (it then overlaps its neighbour more than
 * the stride says). A side shorter than the window is one window of that side's length.
 *
 * Threads take batches of windows from a shared counter; each thread has its own session and
 * its own raster handle over the same source, and writes its answers into the grid by window
 * index, so the map is the same for any thread count and batch size (a batched answer is
 * bit-identical to a lone one: session.h). Memory: per thread one session and one window batch
 * of pixels, plus the grid of answers; the scene's pixels are never held whole.
 */
#ifndef ONESPIKE_SCENEMAP_H
#define ONESPIKE_SCENEMAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "onespike/model.h"
#include "onespike/raster.h"
#include "onespike/session.h"
#include "onespike/status.h"

/* 256 px: the side of the UC Merced chips the shipped model was trained on (at 0.3 m, about
 * 77 m on the ground); a window of that size shows a scene as the model learnt to see one. */
#define OS_MAP_DEFAULT_WINDOW 256
#define OS_MAP_DEFAULT_TOP_K 3
#define OS_MAP_DEFAULT_BATCH 8      /* windows per pass, as classify's batch */
#define OS_MAP_MAX_THREADS 256
#define OS_MAP_NODATA 255           /* class band of the GeoTIFF: a cell without a class */

/* ---- the grid (pure arithmetic, no GDAL) ---- */

typedef struct {
    int width, height;     /* the scene, pixels */
    int win_w, win_h;      /* every window's size: the asked size, or the side when shorter */
    int stride_x, stride_y;
    int cols, rows;
} os_map_grid;

/* The grid of windows win_w x win_h at stride_x, stride_y over a width x height scene. Every
 * value >= 1; a stride over its window would leave pixels out: OS_EINVAL (so is a window or
 * stride < 1). The window is clipped to the scene per side. */
os_status os_map_grid_make(int width, int height, int win_w, int win_h, int stride_x,
                           int stride_y, os_map_grid *g);

/* Window `index` (row-major: index = row * cols + col) as x, y, w, h in scene pixels. */
void os_map_grid_window(const os_map_grid *g, int index, int win[4]);

/* Window pixels: px (>= 1) as given, else metres on the ground through the geotransform
 * (window_m > 0: needs a north-up geotransform and a projected CRS in metres, given as WKT;
 * else OS_EINVAL saying what the raster lacks). win_w, win_h: round(window_m / pixel size). */
os_status os_map_window_px(int px, double window_m, bool has_gt, const double gt[6],
                           const char *crs_wkt, int *win_w, int *win_h);

/* ---- running ---- */

typedef struct {
    const char *path; /* a raster file (borrowed), or */
    const void *buf;  /* raster bytes (borrowed; outlive the run) when path is NULL */
    size_t len;
} os_map_source;

typedef void (*os_map_progress_fn)(void *ctx, int done, int total);

typedef struct {
    int window;             /* pixels per side; 0: OS_MAP_DEFAULT_WINDOW */
    double window_m;        /* > 0: the window side in metres instead (os_map_window_px) */
    int stride;             /* pixels; 0: the window (no overlap) */
    int top_k;              /* classes kept per cell; 0: OS_MAP_DEFAULT_TOP_K (capped at the
                               number of classes) */
    int batch;              /* windows per pass, 1..OS_SESSION_MAX_BATCH; 0: OS_MAP_DEFAULT_BATCH */
    int views;              /* test-time views of each window (os_session_run_views: 1, 2, 4,
                               8; a window then fills a pass by itself); 0: 1 */
    int threads;            /* 0: every core this process may use */
    const os_raster_input *input; /* bands and scale (borrowed); NULL: the model's */
    const os_session_opts *session; /* isa, dense, timesteps (borrowed; max_batch and
                                       max_pixels are set by the map); NULL: defaults */
    os_raster_limits limits; /* checked when the scene is opened ({0}: no pixel limit) */
    os_map_progress_fn progress; /* called by one thread at a time, after each batch; may be
                                    NULL */
    void *progress_ctx;
    const atomic_bool *cancel; /* set (by any thread): the run stops at its next batch with
                                  OS_ECANCELED; may be NULL */
    double deadline_s;      /* os_clock_s() time after which the run stops at its next batch
                               with OS_ECANCELED; 0: none */
} os_map_opts;

typedef struct os_map os_map;

/* Map the scene src with model m (borrowed: it must outlive the map). o may be NULL for the
 * defaults. The raster errors of raster.h (not a raster: OS_EUNSUPPORTED; bands it lacks:
 * OS_EMISMATCH naming what it has), a bad option OS_EINVAL, a cancel or a passed deadline
 * OS_ECANCELED ("cancelled after N of M windows" / "deadline passed after N of M windows"). Destroy
 * with os_map_destroy. */
os_status os_map_run(const os_model *m, const os_map_source *src, const os_map_opts *o,
                     os_map **out);
void os_map_destroy(os_map *map); /* NULL is fine */

const os_map_grid *os_map_get_grid(const os_map *map);
int os_map_top_k(const os_map *map);
/* Cell `index`'s classes and probabilities, most probable first (os_map_top_k of each;
 * borrowed from the map). */
const int *os_map_classes(const os_map *map, int index);
const float *os_map_probs(const os_map *map, int index);
/* Whether the answers carry lon/lat (the scene has a geotransform and a CRS). */
bool os_map_georeferenced(const os_map *map);

/* The map as an RFC 7946 GeoJSON FeatureCollection (one Polygon per cell, counterclockwise
 * exterior ring, properties class, class_index, probability, top_k, window, col, row; the
 * foreign member "onespike" names the model, window, stride and coordinates, "lonlat" or
 * "pixel"). *text is NUL-terminated, caller frees with free(). A CRS GDAL cannot transform to
 * WGS 84: OS_EUNSUPPORTED with its message. */
os_status os_map_geojson(const os_map *map, char **text, size_t *len);
/* os_map_geojson written to path atomically (temporary file in the same folder, rename). */
os_status os_map_write_geojson(const os_map *map, const char *path);

/* A Cloud-Optimized GeoTIFF of the map, written atomically: band 1 the class index (Byte,
 * nodata OS_MAP_NODATA, a colour table, labels as category names and as band metadata
 * CLASS_<i>, since a GeoTIFF keeps category names only in a side file), band 2 the top
 * probability as round(255 p) with scale 1/255, at most 254 (a TIFF's nodata value is every
 * band's; GDAL's reader calls band 2 alpha, as it does the second band of any paletted TIFF). One map pixel per cell, covering the stride x stride
 * input pixels centred on the window's centre, in the scene's CRS: the map's geotransform is
 * the scene's with pixel size stride and origin (win - stride) / 2 in. The last (snapped) row
 * and column then stand for the windows that end at the edge, placed one stride after their
 * neighbours: their pixels are off by the snap (< stride) from the windows' centres. More than
 * 255 classes: OS_EUNSUPPORTED. */
os_status os_map_write_cog(const os_map *map, const char *path);
/* The same GeoTIFF in memory: *bytes (caller frees with free()) of *len bytes. */
os_status os_map_cog(const os_map *map, unsigned char **bytes, size_t *len);

/* Ring orientation helper (also used by the tests): twice the signed area of the closed ring
 * of n points (xy interleaved, last == first); > 0 counterclockwise in x-east, y-north axes. */
double os_map_ring_area2(const double *xy, int n);

#endif
