/* raster.c - rasters through GDAL (GTiff, PNG, JP2OpenJPEG only); see raster.h. The only file
 * of the project that reads pixels through GDAL (scenemap.c uses its CRS code and writers). */
#include "onespike/raster.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <gdal_frmts.h>

#include "onespike/select.h"

#define RASTER_MAX_LEVEL  255.0
#define RASTER_PERCENT    100.0
#define RASTER_VSI_PREFIX "/vsi"
#define RASTER_FORMATS    "JPEG, TIFF, PNG or JPEG 2000"
/* GDAL's block cache, shared by every open raster of the process (MB). Small: a window is read
 * once, and a server's memory is sized by its requests, not by a cache. */
#define RASTER_CACHE_MB "64"

enum {
    RASTER_CHANNELS = 3,
    RASTER_GDAL_MSG_MAX = 256, /* the first GDAL error of a call, kept for the detail */
    RASTER_NAME_MAX = 64,      /* a /vsimem/ name */
};

/* The drivers we read with, and nothing else (a COG is a GeoTIFF to the GTiff driver; the COG
 * driver only writes). Passed to GDALOpenEx too, so a driver registered by someone else in the
 * same process is not used either. */
static const char *const allowed_drivers[] = {"GTiff", "PNG", "JP2OpenJPEG", NULL};

struct os_raster {
    GDALDatasetH ds;
    char vsi_name[RASTER_NAME_MAX]; /* set when opened from memory: unlinked on close */
    int width, height, bands;
    GDALDataType type; /* band 1's */
};

struct os_raster_buf {
    uint8_t *pix; /* interleaved RGB of the last window */
    size_t pix_cap;
    float *val, *sorted; /* one band's values (scaled reads), and a copy for percentiles */
    size_t val_cap;
};

/* ---- GDAL set-up and its messages ---- */

static _Thread_local char gdal_msg[RASTER_GDAL_MSG_MAX];
static pthread_once_t gdal_once = PTHREAD_ONCE_INIT;
static atomic_ulong vsi_serial;

/* Every GDAL message of every thread comes here: the first failure of the current call is kept
 * for the status detail, everything else (warnings, debug) is dropped; nothing reaches stderr. */
static void CPL_STDCALL gdal_handler(CPLErr cls, CPLErrorNum no, const char *msg)
{
    (void)no;
    if (cls >= CE_Failure && !gdal_msg[0] && msg)
        snprintf(gdal_msg, sizeof gdal_msg, "%s", msg);
}

static void gdal_init(void)
{
    CPLSetErrorHandler(gdal_handler);
    /* No directory listing to find side files, no .aux.xml read or written beside the input. */
    CPLSetConfigOption("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR");
    CPLSetConfigOption("GDAL_PAM_ENABLED", "NO");
    CPLSetConfigOption("GDAL_CACHEMAX", RASTER_CACHE_MB);
    GDALRegister_GTiff();
    GDALRegister_PNG();
    GDALRegister_JP2OpenJPEG();
}

static void gdal_begin(void)
{
    pthread_once(&gdal_once, gdal_init);
    gdal_msg[0] = '\0';
    CPLErrorReset();
}

/* GDAL's message for the call that just failed, or what to say when it gave none. */
static const char *gdal_reason(const char *otherwise)
{
    return gdal_msg[0] ? gdal_msg : otherwise;
}

/* ---- the input description ---- */

os_raster_input os_raster_input_default(void)
{
    return (os_raster_input){.bands = {1, 2, 3}, .scale = OS_SCALE_NONE};
}

bool os_raster_input_equal(const os_raster_input *a, const os_raster_input *b)
{
    bool same = a->scale == b->scale;
    for (int k = 0; same && k < 3; k++)
        same = a->bands[k] == b->bands[k];
    const int limits = a->scale == OS_SCALE_RANGE ? 3 : a->scale == OS_SCALE_PERCENTILE ? 1 : 0;
    for (int k = 0; same && k < limits; k++)
        same = a->lo[k] == b->lo[k] && a->hi[k] == b->hi[k];
    return same;
}

bool os_raster_input_is_default(const os_raster_input *in)
{
    const os_raster_input d = os_raster_input_default();
    return os_raster_input_equal(in, &d);
}

/* Up to max comma-separated finite numbers of text (all of it), into v; their count, or -1. */
static int parse_numbers(const char *text, double *v, int max)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        if (n == max)
            return -1;
        char *end;
        v[n] = strtod(p, &end);
        if (end == p || !isfinite(v[n]))
            return -1;
        n++;
        if (*end == '\0')
            return n;
        if (*end != ',' || end[1] == '\0')
            return -1;
        p = end + 1;
    }
    return n ? n : -1;
}

os_status os_raster_bands_parse(const char *text, os_raster_input *in)
{
    double v[RASTER_CHANNELS];
    if (!text || parse_numbers(text, v, RASTER_CHANNELS) != RASTER_CHANNELS)
        return os_fail(OS_EINVAL, "bands \"%.64s\": expected three band numbers, e.g. 1,2,3",
                       text ? text : "");
    for (int c = 0; c < RASTER_CHANNELS; c++)
        if (v[c] != floor(v[c]) || v[c] < 1 || v[c] > OS_RASTER_MAX_BANDS)
            return os_fail(OS_EINVAL, "bands \"%.64s\": %g is not a band number 1..%d", text, v[c],
                           OS_RASTER_MAX_BANDS);
    for (int c = 0; c < RASTER_CHANNELS; c++)
        in->bands[c] = (int)v[c];
    return OS_OK;
}

os_status os_raster_scale_parse(const char *text, os_raster_input *in)
{
    static const char range[] = "range:", pct[] = "percentile:";
    double v[2 * RASTER_CHANNELS];
    os_raster_input got = *in;
    if (!text)
        text = "";
    if (!strcmp(text, "none")) {
        got.scale = OS_SCALE_NONE;
    } else if (!strncmp(text, range, sizeof range - 1)) {
        int n = parse_numbers(text + sizeof range - 1, v, 2 * RASTER_CHANNELS);
        if (n != 2 && n != 2 * RASTER_CHANNELS)
            return os_fail(OS_EINVAL,
                           "scale \"%.64s\": expected range:LO,HI or "
                           "range:LO1,HI1,LO2,HI2,LO3,HI3",
                           text);
        got.scale = OS_SCALE_RANGE;
        for (int c = 0; c < RASTER_CHANNELS; c++) {
            got.lo[c] = v[n == 2 ? 0 : 2 * c];
            got.hi[c] = v[n == 2 ? 1 : 2 * c + 1];
            if (!(got.hi[c] > got.lo[c]))
                return os_fail(OS_EINVAL, "scale \"%.64s\": HI %g must be above LO %g", text,
                               got.hi[c], got.lo[c]);
        }
    } else if (!strncmp(text, pct, sizeof pct - 1)) {
        if (parse_numbers(text + sizeof pct - 1, v, 2) != 2 || v[0] < 0 || v[1] > RASTER_PERCENT ||
            !(v[1] > v[0]))
            return os_fail(OS_EINVAL,
                           "scale \"%.64s\": expected percentile:LO,HI with "
                           "0 <= LO < HI <= 100, e.g. percentile:2,98",
                           text);
        got.scale = OS_SCALE_PERCENTILE;
        memset(got.lo, 0, sizeof got.lo);
        memset(got.hi, 0, sizeof got.hi);
        got.lo[0] = v[0], got.hi[0] = v[1];
    } else {
        return os_fail(OS_EINVAL,
                       "scale \"%.64s\": expected none, range:LO,HI or "
                       "percentile:LO,HI",
                       text);
    }
    *in = got;
    return OS_OK;
}

void os_raster_scale_format(const os_raster_input *in, char *buf, size_t n)
{
    switch (in->scale) {
    case OS_SCALE_NONE: snprintf(buf, n, "none"); return;
    case OS_SCALE_PERCENTILE:
        snprintf(buf, n, "percentile:%.17g,%.17g", in->lo[0], in->hi[0]);
        return;
    case OS_SCALE_RANGE:
        if (in->lo[1] == in->lo[0] && in->lo[2] == in->lo[0] && in->hi[1] == in->hi[0] &&
            in->hi[2] == in->hi[0])
            snprintf(buf, n, "range:%.17g,%.17g", in->lo[0], in->hi[0]);
        else
            snprintf(buf, n, "range:%.17g,%.17g,%.17g,%.17g,%.17g,%.17g", in->lo[0], in->hi[0],
                     in->lo[1], in->hi[1], in->lo[2], in->hi[2]);
        return;
    }
    snprintf(buf, n, "?");
}

bool os_raster_is_image_name(const char *name)
{
    static const char *const ext[] = {".jpg", ".jpeg", ".tif", ".tiff", ".png", ".jp2"};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(dot, ext[i]))
            return true;
    return false;
}

/* ---- opening ---- */

static os_status open_dataset(const char *name, const char *label, const os_raster_limits *lim,
                              os_raster *r)
{
    /* Which allowed driver claims the bytes: none is a format we do not read; one that then
     * fails to open is a damaged file of its format. */
    GDALDriverH drv = GDALIdentifyDriverEx(name, GDAL_OF_RASTER, allowed_drivers, NULL);
    if (!drv)
        return os_fail(OS_EUNSUPPORTED,
                       "%s: not a raster this build reads, expected " RASTER_FORMATS, label);
    r->ds = GDALOpenEx(name, GDAL_OF_RASTER | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR,
                       allowed_drivers, NULL, NULL);
    if (!r->ds)
        return os_fail(OS_ECORRUPT, "%s: %s header: %s", label, GDALGetDriverShortName(drv),
                       gdal_reason("cannot be opened"));
    r->width = GDALGetRasterXSize(r->ds);
    r->height = GDALGetRasterYSize(r->ds);
    r->bands = GDALGetRasterCount(r->ds);
    const int max_side = lim && lim->max_side > 0 ? lim->max_side : OS_RASTER_MAX_SIDE;
    const int max_bands = lim && lim->max_bands > 0 ? lim->max_bands : OS_RASTER_MAX_BANDS;
    const size_t max_pixels = lim ? lim->max_pixels : 0;
    if (r->bands < 1)
        return os_fail(OS_EUNSUPPORTED, "%s: a raster without bands", label);
    r->type = GDALGetRasterDataType(GDALGetRasterBand(r->ds, 1));
    if (r->width < 1 || r->height < 1 || r->width > max_side || r->height > max_side)
        return os_fail(OS_ETOOBIG, "%s: raster %dx%d: each side must be 1..%d pixels", label,
                       r->width, r->height, max_side);
    if (r->bands > max_bands)
        return os_fail(OS_ETOOBIG, "%s: raster with %d bands, over the limit of %d", label,
                       r->bands, max_bands);
    uint64_t npix = (uint64_t)r->width * (uint64_t)r->height;
    if (max_pixels > 0 && npix > max_pixels)
        return os_fail(OS_ETOOBIG, "%s: raster %dx%d (%llu pixels) exceeds the limit of %zu pixels",
                       label, r->width, r->height, (unsigned long long)npix, max_pixels);
    return OS_OK;
}

os_status os_raster_open(const char *path, const os_raster_limits *lim, os_raster **out)
{
    assert(path && out);
    *out = NULL;
    if (!strncmp(path, RASTER_VSI_PREFIX, sizeof RASTER_VSI_PREFIX - 1))
        return os_fail(OS_EINVAL,
                       "%s: not a plain file path (GDAL virtual file systems, the "
                       "network included, are not read)",
                       path);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return os_fail(OS_EIO, "%s: cannot read: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return os_fail(OS_EIO, "%s: not a regular file", path);
    os_raster *r = calloc(1, sizeof *r);
    if (!r)
        return os_fail(OS_ENOMEM, "%s: no memory", path);
    gdal_begin();
    os_status st = open_dataset(path, path, lim, r);
    if (st) {
        os_raster_close(r);
        return st;
    }
    *out = r;
    return OS_OK;
}

os_status os_raster_open_bytes(const void *buf, size_t len, const os_raster_limits *lim,
                               os_raster **out)
{
    assert(out && (buf || len == 0));
    *out = NULL;
    if (len == 0)
        return os_fail(OS_EEMPTY, "empty image (0 bytes)");
    os_raster *r = calloc(1, sizeof *r);
    if (!r)
        return os_fail(OS_ENOMEM, "raster of %zu bytes: no memory", len);
    gdal_begin();
    /* A name no other call uses: a process-wide counter, and the pid so that a forked child
     * (which inherits both /vsimem/ and the counter) never reuses its parent's names. */
    snprintf(r->vsi_name, sizeof r->vsi_name, "/vsimem/onespike/%ld-%lu", (long)getpid(),
             (unsigned long)atomic_fetch_add(&vsi_serial, 1));
    /* GDAL reads the caller's bytes in place (no copy, not taken: bTakeOwnership 0). */
    VSILFILE *f = VSIFileFromMemBuffer(r->vsi_name, (GByte *)(uintptr_t)buf, (vsi_l_offset)len, 0);
    if (!f) {
        r->vsi_name[0] = '\0';
        os_raster_close(r);
        return os_fail(OS_ENOMEM, "raster of %zu bytes: %s", len, gdal_reason("no memory"));
    }
    VSIFCloseL(f); /* the file stays until VSIUnlink */
    char label[OS_RASTER_TEXT_MAX];
    snprintf(label, sizeof label, "%s image of %zu bytes",
             os_image_format_name(os_image_sniff(buf, len)), len);
    os_status st = open_dataset(r->vsi_name, label, lim, r);
    if (st) {
        os_raster_close(r);
        return st;
    }
    *out = r;
    return OS_OK;
}

void os_raster_close(os_raster *r)
{
    if (!r)
        return;
    if (r->ds)
        GDALClose(r->ds);
    if (r->vsi_name[0])
        VSIUnlink(r->vsi_name);
    free(r);
}

int os_raster_width(const os_raster *r)
{
    return r->width;
}
int os_raster_height(const os_raster *r)
{
    return r->height;
}
int os_raster_bands(const os_raster *r)
{
    return r->bands;
}
const char *os_raster_dtype(const os_raster *r)
{
    return GDALGetDataTypeName(r->type);
}
const char *os_raster_driver(const os_raster *r)
{
    return GDALGetDriverShortName(GDALGetDatasetDriver(r->ds));
}

bool os_raster_geotransform(const os_raster *r, double gt[6])
{
    if (GDALGetGeoTransform(r->ds, gt) == CE_None)
        return true;
    const double id[6] = {0, 1, 0, 0, 0, 1};
    memcpy(gt, id, sizeof id);
    return false;
}

const char *os_raster_crs_wkt(const os_raster *r)
{
    const char *wkt = GDALGetProjectionRef(r->ds);
    return wkt ? wkt : "";
}

void os_raster_describe(const os_raster *r, char *buf, size_t n)
{
    snprintf(buf, n, "%d band%s, %s, %dx%d", r->bands, r->bands == 1 ? "" : "s", os_raster_dtype(r),
             r->width, r->height);
}

static void bands_text(const os_raster_input *in, char *buf, size_t n)
{
    snprintf(buf, n, "%d,%d,%d", in->bands[0], in->bands[1], in->bands[2]);
}

os_status os_raster_check(const os_raster *r, const os_raster_input *in)
{
    char has[OS_RASTER_TEXT_MAX], want[OS_RASTER_TEXT_MAX];
    os_raster_describe(r, has, sizeof has);
    bands_text(in, want, sizeof want);
    for (int c = 0; c < RASTER_CHANNELS; c++) {
        if (in->bands[c] < 1 || in->bands[c] > r->bands)
            return os_fail(OS_EMISMATCH,
                           "the raster has %s; bands %s (as R,G,B) asks for band %d, which it "
                           "does not have",
                           has, want, in->bands[c]);
        GDALDataType t = GDALGetRasterDataType(GDALGetRasterBand(r->ds, in->bands[c]));
        if (GDALDataTypeIsComplex(t))
            return os_fail(OS_EMISMATCH,
                           "the raster has %s; band %d holds complex values (%s), "
                           "which no scale maps to RGB",
                           has, in->bands[c], GDALGetDataTypeName(t));
        if (in->scale == OS_SCALE_NONE && t != GDT_Byte)
            return os_fail(OS_EMISMATCH,
                           "the raster has %s; bands %s are read as 8-bit values 0..255 (scale "
                           "none) but band %d is %s: give a scale (range:LO,HI or "
                           "percentile:LO,HI)",
                           has, want, in->bands[c], GDALGetDataTypeName(t));
    }
    return OS_OK;
}

/* ---- reading ---- */

os_status os_raster_buf_create(os_raster_buf **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? OS_OK : os_fail(OS_ENOMEM, "no memory for a raster buffer");
}

void os_raster_buf_destroy(os_raster_buf *b)
{
    if (!b)
        return;
    free(b->pix);
    free(b->val);
    free(b->sorted);
    free(b);
}

/* Grow b to hold n pixels of RGB (and, when scaled, n floats twice). */
static os_status buf_reserve(os_raster_buf *b, size_t n, bool scaled)
{
    if (n > SIZE_MAX / (RASTER_CHANNELS * sizeof(float)))
        return os_fail(OS_ETOOBIG, "a window of %zu pixels does not fit in memory", n);
    if (n * RASTER_CHANNELS > b->pix_cap) {
        uint8_t *p = realloc(b->pix, n * RASTER_CHANNELS);
        if (!p)
            return os_fail(OS_ENOMEM, "no memory for %zu pixels", n);
        b->pix = p, b->pix_cap = n * RASTER_CHANNELS;
    }
    if (scaled && n > b->val_cap) {
        float *v = realloc(b->val, n * sizeof *v);
        if (v)
            b->val = v;
        float *s = v ? realloc(b->sorted, n * sizeof *s) : NULL;
        if (!v || !s)
            return os_fail(OS_ENOMEM, "no memory for %zu values", n);
        b->sorted = s, b->val_cap = n;
    }
    return OS_OK;
}

void os_raster_percentiles(const float *v, float *s, size_t n, double p_lo, double p_hi,
                           double *lo, double *hi)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]))
            s[m++] = v[i];
    if (m == 0) {
        *lo = *hi = NAN;
        return;
    }
    size_t k_lo = (size_t)floor(p_lo / RASTER_PERCENT * (double)(m - 1) + 0.5);
    size_t k_hi = (size_t)floor(p_hi / RASTER_PERCENT * (double)(m - 1) + 0.5);
    k_lo = k_lo < m ? k_lo : m - 1, k_hi = k_hi < m ? k_hi : m - 1;
    os_select_kth(s, m, k_hi);
    if (k_lo < k_hi) /* what precedes s[k_hi] holds the k_hi smallest */
        os_select_kth(s, k_hi, k_lo);
    *lo = s[k_lo], *hi = s[k_hi];
}

/* Values of one band into channel c of the interleaved pixels: (v - lo) * 255 / (hi - lo),
 * rounded to nearest, clamped to 0..255; NaN and a flat band (hi <= lo) become 0. */
static void scale_band(const float *v, size_t n, double lo, double hi, uint8_t *pix, int c)
{
    const double k = hi > lo ? RASTER_MAX_LEVEL / (hi - lo) : 0.0;
    for (size_t i = 0; i < n; i++) {
        double q = k > 0 && !isnan(v[i]) ? floor(((double)v[i] - lo) * k + 0.5) : 0.0;
        pix[i * RASTER_CHANNELS + (size_t)c] = (uint8_t)(q < 0                  ? 0
                                                         : q > RASTER_MAX_LEVEL ? RASTER_MAX_LEVEL
                                                                                : q);
    }
}

os_status os_raster_read(os_raster *r, int x, int y, int w, int h, const os_raster_input *in,
                         int out_w, int out_h, os_raster_buf *b, os_rgb_image *out)
{
    assert(r && in && b && out);
    memset(out, 0, sizeof *out);
    if (x < 0 || y < 0 || w < 1 || h < 1 || x > r->width - w || y > r->height - h)
        return os_fail(OS_EINVAL, "window %dx%d at (%d,%d) is not inside the raster's %dx%d", w, h,
                       x, y, r->width, r->height);
    if (out_w <= 0 || out_h <= 0)
        out_w = w, out_h = h;
    os_status st = os_raster_check(r, in);
    if (st)
        return st;
    const bool scaled = in->scale != OS_SCALE_NONE;
    const size_t n = (size_t)out_w * (size_t)out_h;
    if ((st = buf_reserve(b, n, scaled)))
        return st;
    gdal_begin();
    GDALRasterIOExtraArg extra;
    INIT_RASTERIO_EXTRA_ARG(extra);
    extra.eResampleAlg = GRIORA_Average; /* only used when the output size differs */
    int bands[RASTER_CHANNELS] = {in->bands[0], in->bands[1], in->bands[2]};
    const int stride = out_w * RASTER_CHANNELS;
    if (!scaled) {
        /* 8-bit bands straight into interleaved R,G,B: GDAL does the interleaving. */
        if (GDALDatasetRasterIOEx(r->ds, GF_Read, x, y, w, h, b->pix, out_w, out_h, GDT_Byte,
                                  RASTER_CHANNELS, bands, RASTER_CHANNELS, stride, 1,
                                  &extra) != CE_None)
            return os_fail(OS_ECORRUPT, "%s pixels of window %dx%d at (%d,%d): %s",
                           os_raster_driver(r), w, h, x, y, gdal_reason("read failed"));
    } else {
        for (int c = 0; c < RASTER_CHANNELS; c++) {
            GDALRasterBandH band = GDALGetRasterBand(r->ds, bands[c]);
            if (GDALRasterIOEx(band, GF_Read, x, y, w, h, b->val, out_w, out_h, GDT_Float32, 0, 0,
                               &extra) != CE_None)
                return os_fail(OS_ECORRUPT, "%s band %d of window %dx%d at (%d,%d): %s",
                               os_raster_driver(r), bands[c], w, h, x, y,
                               gdal_reason("read failed"));
            double lo = in->lo[c], hi = in->hi[c];
            if (in->scale == OS_SCALE_PERCENTILE)
                os_raster_percentiles(b->val, b->sorted, n, in->lo[0], in->hi[0], &lo, &hi);
            scale_band(b->val, n, lo, hi, b->pix, c);
        }
    }
    *out = (os_rgb_image){.pixels = b->pix,
                          .width = out_w,
                          .height = out_h,
                          .stride = stride,
                          .src_width = w,
                          .src_height = h};
    return OS_OK;
}

os_status os_raster_decode_any(os_decoder *d, os_raster_buf *b, const void *buf, size_t len,
                               size_t max_pixels, int min_w, int min_h, const os_raster_input *in,
                               os_rgb_image *out)
{
    const os_image_format f = os_image_sniff(buf, len);
    switch (f) {
    case OS_IMG_TIFF:
    case OS_IMG_PNG:
    case OS_IMG_JP2: break;
    case OS_IMG_JPEG:
        if (!os_raster_input_is_default(in)) {
            char scale[OS_RASTER_TEXT_MAX];
            os_raster_scale_format(in, scale, sizeof scale);
            return os_fail(OS_EMISMATCH,
                           "a JPEG is read as bands 1,2,3 (R,G,B), 8-bit; bands "
                           "%d,%d,%d with scale %s apply to TIFF, PNG or JPEG 2000",
                           in->bands[0], in->bands[1], in->bands[2], scale);
        }
        return os_decoder_decode(d, buf, len, max_pixels, min_w, min_h, out);
    case OS_IMG_EMPTY: return os_fail(OS_EEMPTY, "empty image (0 bytes), expected " RASTER_FORMATS);
    case OS_IMG_UNKNOWN: {
        const uint8_t *p = buf;
        return os_fail(
            OS_EUNSUPPORTED,
            "unrecognised image data (%zu bytes, starting %02X %02X), expected " RASTER_FORMATS,
            len, p[0], len > 1 ? p[1] : 0);
    }
    default: /* GIF, WebP, BMP */
        return os_fail(OS_EUNSUPPORTED, "%s image, expected " RASTER_FORMATS,
                       os_image_format_name(f));
    }
    os_raster *r = NULL;
    const os_raster_limits lim = {.max_pixels = max_pixels};
    os_status st = os_raster_open_bytes(buf, len, &lim, &r);
    int ow, oh;
    if (!st) {
        os_raster_reduced(r->width, r->height, min_w, min_h, &ow, &oh);
        st = os_raster_read(r, 0, 0, r->width, r->height, in, ow, oh, b, out);
    }
    os_raster_close(r);
    return st;
}

void os_raster_reduced(int w, int h, int min_w, int min_h, int *out_w, int *out_h)
{
    *out_w = w, *out_h = h;
    for (int d = 2; (size_t)*out_w * (size_t)*out_h > OS_RASTER_FULL_PIXELS && d <= 1 << 20;
         d *= 2) {
        const int nw = (w + d - 1) / d, nh = (h + d - 1) / d;
        if (nw < min_w || nh < min_h)
            break;
        *out_w = nw, *out_h = nh;
    }
}
