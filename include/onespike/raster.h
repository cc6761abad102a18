/* raster.h - TIFF, GeoTIFF (COG included), PNG and JPEG 2000 through GDAL, as model input.
 *
 * A raster is opened once (from a plain file path or from bytes in memory), which reads its
 * header only: size, bands, data type, geotransform, CRS. The size, band count and pixel count
 * are checked against limits there, before any pixel is read. Windows of it are then read (the
 * primitive: a whole image is one window) through the model's input description: which bands
 * are R, G, B and how their values become 0..255 (os_raster_input), giving the same
 * os_rgb_image the JPEG decoder gives, so the usual resize and normalisation follow.
 *
 * Only GDAL's GTiff, PNG and JP2OpenJPEG drivers are registered (a COG is read by GTiff); no
 * network (paths starting "/vsi" are refused), no directory listing on open, no .aux.xml side
 * files read or written. GDAL's messages never reach stderr: the first error of a call becomes
 * the status detail (status.h, thread-local). Every function here is thread-safe for distinct
 * handles; one handle is used by one thread at a time. JPEG bytes keep the TurboJPEG path
 * (image.h); os_raster_decode_any chooses by magic bytes.
 */
#ifndef ONESPIKE_RASTER_H
#define ONESPIKE_RASTER_H

#include <stdbool.h>
#include <stddef.h>

#include "onespike/image.h"
#include "onespike/status.h"

#define OS_RASTER_MAX_SIDE  1000000 /* pixels per side, whatever the pixel limit */
#define OS_RASTER_MAX_BANDS 1024    /* bands a raster may declare */
#define OS_RASTER_TEXT_MAX  160     /* room for os_raster_input_format and a band list */

/* ---- the model's input description ---- */

typedef enum {
    OS_SCALE_NONE = 0,   /* 8-bit values used as they are (other data types are refused) */
    OS_SCALE_RANGE,      /* v -> 255 * (v - lo) / (hi - lo), clamped, rounded */
    OS_SCALE_PERCENTILE, /* as RANGE with lo, hi the lo[0] and hi[0] percentiles of each band,
                            computed from the window being read (per image, per window) */
} os_scale_kind;

typedef struct {
    int bands[3]; /* 1-based raster bands read as R, G, B */
    os_scale_kind scale;
    double lo[3], hi[3]; /* RANGE: per output channel; PERCENTILE: lo[0], hi[0] in percent */
} os_raster_input;

/* Bands 1,2,3, no scaling: what every model file without "input.bands"/"input.scale" means. */
os_raster_input os_raster_input_default(void);
bool os_raster_input_is_default(const os_raster_input *in);
/* Whether a and b read a raster into the same values: the same bands and scale, and the limits
 * the scale uses (RANGE: the three pairs; PERCENTILE: the one pair; NONE: none). */
bool os_raster_input_equal(const os_raster_input *a, const os_raster_input *b);

/* "1,2,3" (three band numbers 1..OS_RASTER_MAX_BANDS) into in->bands. OS_EINVAL with a detail
 * naming the text otherwise; in is unchanged on failure. */
os_status os_raster_bands_parse(const char *text, os_raster_input *in);

/* "none", "range:LO,HI" (all channels), "range:LO1,HI1,LO2,HI2,LO3,HI3" (per channel, in the
 * order of the bands) or "percentile:LO,HI" (0 <= LO < HI <= 100). Every HI > LO. OS_EINVAL
 * otherwise; in is unchanged on failure. */
os_status os_raster_scale_parse(const char *text, os_raster_input *in);

/* The scale as os_raster_scale_parse reads it ("none", "range:0,65280", "percentile:2,98"). */
void os_raster_scale_format(const os_raster_input *in, char *buf, size_t n);

/* A file name an image folder lists: .jpg .jpeg .tif .tiff .png .jp2, any case. */
bool os_raster_is_image_name(const char *name);

/* ---- opening ---- */

typedef struct {
    size_t max_pixels; /* width*height over it: OS_ETOOBIG (0: no limit) */
    int max_side;      /* 0: OS_RASTER_MAX_SIDE */
    int max_bands;     /* 0: OS_RASTER_MAX_BANDS */
} os_raster_limits;

typedef struct os_raster os_raster;

/* Open a raster file (path borrowed; a plain path, "/vsi..." refused with OS_EINVAL; missing or
 * not a regular file: OS_EIO). Reads the
 * header only and checks it against lim (NULL: no pixel limit, default side and band limits).
 * Not a raster GDAL's allowed drivers read: OS_EUNSUPPORTED; a damaged header: OS_ECORRUPT;
 * over a limit: OS_ETOOBIG. Close with os_raster_close. */
os_status os_raster_open(const char *path, const os_raster_limits *lim, os_raster **out);

/* As os_raster_open, from bytes in memory (borrowed: they must outlive the handle; GDAL reads
 * them in place through a /vsimem/ name unique to the call, removed by os_raster_close).
 * len == 0: OS_EEMPTY. */
os_status os_raster_open_bytes(const void *buf, size_t len, const os_raster_limits *lim,
                               os_raster **out);

void os_raster_close(os_raster *r); /* NULL is fine */

int os_raster_width(const os_raster *r);
int os_raster_height(const os_raster *r);
int os_raster_bands(const os_raster *r);
/* GDAL's name of band 1's data type: "Byte", "UInt16", "Int16", "Float32", ... Static. */
const char *os_raster_dtype(const os_raster *r);
/* "GTiff", "PNG", "JP2OpenJPEG". Static. */
const char *os_raster_driver(const os_raster *r);
/* The affine geotransform (GDAL order: x0, dx/dcol, dx/drow, y0, dy/dcol, dy/drow); false and
 * the identity when the raster has none. */
bool os_raster_geotransform(const os_raster *r, double gt[6]);
/* The CRS as WKT, "" when the raster has none. Borrowed from the handle. */
const char *os_raster_crs_wkt(const os_raster *r);

/* "4 bands, UInt16, 934x724": what a message about this raster says it has. */
void os_raster_describe(const os_raster *r, char *buf, size_t n);

/* Can `in` read this raster? OS_EMISMATCH naming what it has and what `in` wants when a band
 * is out of range or its data type needs a scale that `in` does not give. */
os_status os_raster_check(const os_raster *r, const os_raster_input *in);

/* ---- reading ---- */

/* Pixel memory that grows to the largest window read, then is reused. One per thread. */
typedef struct os_raster_buf os_raster_buf;
os_status os_raster_buf_create(os_raster_buf **out);
void os_raster_buf_destroy(os_raster_buf *b); /* NULL is fine */

/* Read the window (x, y, w, h) of r through `in` into *out (pixels in b, valid until b's next
 * read): out_w x out_h RGB (GDAL's average resampling when it differs from w x h; 0, 0: w x h).
 * The window must lie inside the raster (OS_EINVAL otherwise); os_raster_check is applied
 * first. Damaged pixel data: OS_ECORRUPT with GDAL's message. */
os_status os_raster_read(os_raster *r, int x, int y, int w, int h, const os_raster_input *in,
                         int out_w, int out_h, os_raster_buf *b, os_rgb_image *out);

/* Image bytes of any supported format into *out: JPEG through d (TurboJPEG, the scaled decode
 * of image.h with min_w, min_h; `in` must then be the default, JPEG being R,G,B 8-bit: else
 * OS_EMISMATCH), any other format opened from memory, checked against max_pixels and read
 * whole through `in`: at full size up to OS_RASTER_FULL_PIXELS, beyond that reduced by GDAL's
 * average (os_raster_reduced), so a scene sent to be classified whole costs its decode, not
 * full-size buffers and full-size percentiles. Errors as image.h and above (GIF, WebP, BMP:
 * OS_EUNSUPPORTED). */
/* The p_lo-th and p_hi-th percentiles (0..100, nearest rank, p_lo <= p_hi) of the values
 * v[0..n) that are not NaN, into *lo and *hi; NaN when there are none. s: room for n floats,
 * overwritten. O(n) as a rule (a selection, not a sort), O(n log n) at worst. */
void os_raster_percentiles(const float *v, float *s, size_t n, double p_lo, double p_hi,
                           double *lo, double *hi);

/* The size a whole w x h raster is read at for a min_w x min_h input: (w, h) up to
 * OS_RASTER_FULL_PIXELS pixels, else (w, h) divided (rounding up) by the smallest power of two
 * that brings it within them, but never below min_w x min_h. */
#define OS_RASTER_FULL_PIXELS ((size_t)4 << 20)
void os_raster_reduced(int w, int h, int min_w, int min_h, int *out_w, int *out_h);

os_status os_raster_decode_any(os_decoder *d, os_raster_buf *b, const void *buf, size_t len,
                               size_t max_pixels, int min_w, int min_h, const os_raster_input *in,
                               os_rgb_image *out);

#endif
