/* image.c - JPEG decoding (TurboJPEG) and resizing into normalised planar float input. */
#include "onespike/image.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <turbojpeg.h>

enum {
    IMG_CHANNELS = 3, /* output is always RGB, grayscale included */
    /* Stop at the first warning (corrupt or truncated data) rather than decode a grey
     * remainder we would throw away; a progressive JPEG with thousands of scans is a known
     * CPU-exhaustion trick. */
    IMG_DECODE_FLAGS = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS,
};

#define IMG_BLOCK_COEF_BYTES 128   /* an 8x8 block of 16-bit DCT coefficients */
#define IMG_MAX_LEVEL 255.0 /* 8-bit samples map onto [0, 1] before normalising */

struct os_decoder {
    tjhandle tj;
    uint8_t *pixels; /* grows to the largest decoded image, then reused */
    size_t cap;      /* bytes allocated in pixels */
};

/* ---- format sniffing ---- */

static bool has_prefix(const uint8_t *b, size_t len, const void *magic, size_t n)
{
    return len >= n && memcmp(b, magic, n) == 0;
}

os_image_format os_image_sniff(const void *buf, size_t len)
{
    const uint8_t *b = buf;
    if (len == 0)
        return OS_IMG_EMPTY;
    if (has_prefix(b, len, "\xFF\xD8\xFF", 3))
        return OS_IMG_JPEG;
    if (has_prefix(b, len, "\x89PNG\r\n\x1A\n", 8))
        return OS_IMG_PNG;
    if (has_prefix(b, len, "GIF87a", 6) || has_prefix(b, len, "GIF89a", 6))
        return OS_IMG_GIF;
    if (has_prefix(b, len, "II*\0", 4) || has_prefix(b, len, "MM\0*", 4) ||
        has_prefix(b, len, "II+\0", 4) || has_prefix(b, len, "MM\0+", 4)) /* TIFF, BigTIFF */
        return OS_IMG_TIFF;
    /* RIFF is a generic container (WAV, AVI); only the form type at offset 8 says WebP. */
    if (has_prefix(b, len, "RIFF", 4) && len >= 12 && memcmp(b + 8, "WEBP", 4) == 0)
        return OS_IMG_WEBP;
    if (has_prefix(b, len, "BM", 2))
        return OS_IMG_BMP;
    if (has_prefix(b, len, "\0\0\0\x0CjP  \r\n\x87\n", 12) || has_prefix(b, len, "\xFF\x4F\xFF\x51", 4))
        return OS_IMG_JP2;
    return OS_IMG_UNKNOWN;
}

const char *os_image_format_name(os_image_format f)
{
    switch (f) {
    case OS_IMG_EMPTY: return "empty";
    case OS_IMG_UNKNOWN: return "unknown";
    case OS_IMG_JPEG: return "JPEG";
    case OS_IMG_PNG: return "PNG";
    case OS_IMG_GIF: return "GIF";
    case OS_IMG_TIFF: return "TIFF";
    case OS_IMG_WEBP: return "WebP";
    case OS_IMG_BMP: return "BMP";
    case OS_IMG_JP2: return "JPEG 2000";
    }
    return "unknown";
}

/* ---- decoder ---- */

os_status os_decoder_create(os_decoder **out)
{
    assert(out);
    *out = NULL;
    os_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return os_fail(OS_ENOMEM, "JPEG decoder: out of memory");
    d->tj = tjInitDecompress();
    if (!d->tj) {
        os_status st = os_fail(OS_ENOMEM, "JPEG decoder: %s", tjGetErrorStr2(NULL));
        free(d);
        return st;
    }
    *out = d;
    return OS_OK;
}

void os_decoder_destroy(os_decoder *d)
{
    if (!d)
        return;
    if (d->tj)
        tjDestroy(d->tj);
    free(d->pixels);
    free(d);
}

/* Replace the TurboJPEG handle after it reports an error. In libjpeg-turbo 2.1 a failed
 * tjDecompressHeader3 leaves libjpeg mid-header, and every later header read on that handle
 * repeats the old error; one bad upload would otherwise disable the decoder for good. This runs
 * only on the error path. Should re-creating fail, the next decode retries it. */
static void decoder_reset(os_decoder *d)
{
    if (d->tj)
        tjDestroy(d->tj);
    d->tj = tjInitDecompress();
}

/* The smallest TurboJPEG scale (never above 1/1) that keeps both sides >= min_w x min_h, so a
 * 4000x3000 photo bound for a 224x224 model is IDCT-decoded at 1/8 instead of in full. Full
 * size when no minimum is asked for or when even 1/1 falls short (the resizer upscales). */
static tjscalingfactor pick_scale(int w, int h, int min_w, int min_h)
{
    tjscalingfactor best = {1, 1};
    if (min_w <= 0 || min_h <= 0)
        return best;
    int n = 0;
    const tjscalingfactor *sf = tjGetScalingFactors(&n);
    /* Starting from 1/1 and only ever moving to a smaller factor means never upscaling. */
    for (int i = 0; sf && i < n; i++) {
        bool smaller = sf[i].num * best.denom < best.num * sf[i].denom;
        if (smaller && TJSCALED(w, sf[i]) >= min_w && TJSCALED(h, sf[i]) >= min_h)
            best = sf[i];
    }
    return best;
}

static const char *colorspace_name(int cs)
{
    return cs == TJCS_CMYK ? "CMYK" : cs == TJCS_YCCK ? "YCCK" : "?";
}

/* What the markers before the first scan say, read by our own scan of them (TurboJPEG 2.1 tells
 * neither whether a frame is progressive nor how many components its first scan has). */
typedef struct {
    bool dqt, dht, arith; /* tables seen; arithmetic coding needs no DHT */
    bool progressive;     /* SOF2 / SOF10 */
    bool sof, sos;        /* a frame header / a first scan header was read whole */
    int width, height, n_comp, scan_comp;
    uint8_t hs[4], vs[4]; /* sampling factors of the first four components */
    size_t sos_at;        /* where the first scan's header begins */
} jpeg_frame;

static void read_sof(jpeg_frame *f, const uint8_t *seg, size_t seg_len)
{
    /* P(1) Y(2) X(2) Nf(1), then Nf x {C, HV, Tq} */
    if (seg_len < 6)
        return;
    f->height = seg[1] << 8 | seg[2];
    f->width = seg[3] << 8 | seg[4];
    f->n_comp = seg[5];
    if (f->n_comp < 1 || (size_t)f->n_comp * 3 + 6 > seg_len)
        return;
    for (int c = 0; c < f->n_comp && c < 4; c++) {
        f->hs[c] = seg[6 + 3 * c + 1] >> 4;
        f->vs[c] = seg[6 + 3 * c + 1] & 15;
    }
    f->sof = true;
}

/* Walk the markers from SOI to the first SOS. A truncated or malformed header is left for
 * TurboJPEG to report (the fields stay unset). */
static void scan_markers(const uint8_t *b, size_t len, jpeg_frame *f)
{
    memset(f, 0, sizeof *f);
    size_t i = 2; /* after SOI */
    while (i + 4 <= len) {
        if (b[i] != 0xFF)
            return; /* not a marker where one must be: TurboJPEG will say what is wrong */
        uint8_t m = b[i + 1];
        if (m == 0xFF) { /* fill byte */
            i++;
            continue;
        }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { /* markers without a length */
            i += 2;
            continue;
        }
        size_t seg_len = (size_t)b[i + 2] << 8 | b[i + 3];
        const uint8_t *seg = b + i + 4;
        size_t have = len - (i + 4) < seg_len ? len - (i + 4) : seg_len;
        if (seg_len >= 2)
            have = have < seg_len - 2 ? have : seg_len - 2;
        else
            have = 0;
        if (m == 0xDA) { /* start of scan: Ns is its first byte */
            if (have >= 1) {
                f->scan_comp = seg[0];
                f->sos = true;
                f->sos_at = i;
            }
            return;
        }
        f->dqt |= m == 0xDB;
        f->dht |= m == 0xC4;
        f->arith |= m == 0xC9 || m == 0xCA || m == 0xCB || m == 0xCD || m == 0xCE || m == 0xCF;
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC && !f->sof) {
            f->progressive = m == 0xC2 || m == 0xCA;
            read_sof(f, seg, have);
        }
        i += 2 + seg_len;
    }
}

static uint64_t coef_buffer_bytes(const jpeg_frame *f);

/* The length of the marker segment at b[i] (FF xx, then a 16-bit length that counts itself), or
 * 0 when it runs past the end. */
static size_t segment_len(const uint8_t *b, size_t len, size_t i)
{
    if (i + 4 > len)
        return 0;
    size_t n = 2 + ((size_t)b[i + 2] << 8 | b[i + 3]);
    return n >= 4 && n <= len - i ? n : 0;
}

/* Scans in the stream, from the first to EOI, walked as libjpeg reads it: a scan header is
 * skipped by its length, its entropy-coded data up to the next marker (there a 0xFF is followed
 * by 0x00, a fill 0xFF or a restart marker), and every other segment between scans (tables,
 * comments, APPn) by its length, so bytes inside them are never taken for markers. */
static int count_scans(const uint8_t *b, size_t len, const jpeg_frame *f)
{
    if (!f->sos)
        return 0;
    int n = 0;
    size_t i = f->sos_at;
    while (i + 1 < len && b[i] == 0xFF) {
        const uint8_t m = b[i + 1];
        if (m == 0xD9 || m == 0xFF) { /* EOI; a fill byte before a marker */
            if (m == 0xD9)
                break;
            i++;
            continue;
        }
        size_t seg = segment_len(b, len, i);
        if (!seg)
            break; /* truncated: libjpeg stops here too */
        i += seg;
        if (m != 0xDA)
            continue;
        n++;
        for (;;) { /* the scan's data, to the next marker */
            const uint8_t *ff = i < len ? memchr(b + i, 0xFF, len - i) : NULL;
            if (!ff || (size_t)(ff - b) + 1 >= len)
                return n;
            i = (size_t)(ff - b);
            const uint8_t next = b[i + 1];
            if (next == 0x00 || (next >= 0xD0 && next <= 0xD7))
                i += 2;
            else if (next == 0xFF)
                i++;
            else
                break;
        }
    }
    return n;
}

uint64_t os_jpeg_coef_bytes(const void *buf, size_t len)
{
    jpeg_frame f;
    if (!has_prefix(buf, len, "\xFF\xD8", 2))
        return 0;
    scan_markers(buf, len, &f);
    return coef_buffer_bytes(&f);
}

/* Does the stream carry its own quantisation and Huffman tables before its first scan?
 * libjpeg keeps the tables of the previous image in the handle, so an abbreviated stream (no
 * DQT/DHT) would decode with whatever the last request left there: an answer that depends on
 * another client's image. Such streams are refused; a truncated header (no scan found) is left
 * for TurboJPEG to report. */
static bool has_own_tables(const jpeg_frame *f)
{
    return !f->sos || (f->dqt && (f->dht || f->arith));
}

/* Bytes of the whole-image coefficient buffers libjpeg allocates for a frame that is decoded
 * scan by scan (progressive, or sequential with a first scan that does not hold every
 * component): per component, its blocks rounded up to its sampling factors, 64 coefficients of
 * 2 bytes each (jdcoefct.c). 0 for a single-scan frame, which is decoded a row of blocks at a
 * time, or when the header is not one libjpeg would accept anyway. */
static uint64_t coef_buffer_bytes(const jpeg_frame *f)
{
    if (!f->sof || !f->sos || f->n_comp < 1 || f->n_comp > 4)
        return 0;
    if (!f->progressive && f->scan_comp >= f->n_comp)
        return 0;
    int hmax = 0, vmax = 0;
    for (int c = 0; c < f->n_comp; c++) {
        if (f->hs[c] < 1 || f->hs[c] > 4 || f->vs[c] < 1 || f->vs[c] > 4)
            return 0;
        hmax = f->hs[c] > hmax ? f->hs[c] : hmax;
        vmax = f->vs[c] > vmax ? f->vs[c] : vmax;
    }
    uint64_t total = 0;
    for (int c = 0; c < f->n_comp; c++) {
        uint64_t bw = ((uint64_t)f->width * f->hs[c] + 8u * hmax - 1) / (8u * hmax);
        uint64_t bh = ((uint64_t)f->height * f->vs[c] + 8u * vmax - 1) / (8u * vmax);
        bw = (bw + f->hs[c] - 1) / f->hs[c] * f->hs[c];
        bh = (bh + f->vs[c] - 1) / f->vs[c] * f->vs[c];
        total += bw * bh * IMG_BLOCK_COEF_BYTES;
    }
    return total;
}

os_status os_decoder_decode(os_decoder *d, const void *buf, size_t len, size_t max_pixels,
                            int min_w, int min_h, os_rgb_image *out)
{
    assert(d && out && (buf || len == 0));
    memset(out, 0, sizeof *out);

    os_image_format f = os_image_sniff(buf, len);
    if (f == OS_IMG_EMPTY)
        return os_fail(OS_EEMPTY, "empty image (0 bytes), expected JPEG");
    if (f == OS_IMG_UNKNOWN) {
        const uint8_t *b = buf;
        return os_fail(OS_EUNSUPPORTED,
                       "unrecognised image data (%zu bytes, starting %02X %02X), expected JPEG",
                       len, b[0], len > 1 ? b[1] : 0);
    }
    if (f != OS_IMG_JPEG)
        return os_fail(OS_EUNSUPPORTED, "%s image, expected JPEG", os_image_format_name(f));
#if SIZE_MAX > ULONG_MAX
    if (len > ULONG_MAX) /* TurboJPEG 2.x takes the size as unsigned long */
        return os_fail(OS_ETOOBIG, "JPEG of %zu bytes is larger than TurboJPEG accepts", len);
#endif

    if (!d->tj && !(d->tj = tjInitDecompress()))
        return os_fail(OS_ENOMEM, "JPEG decoder: %s", tjGetErrorStr2(NULL));
    os_status st = OS_OK;
    int w = 0, h = 0, subsamp = 0, cs = 0;
    if (tjDecompressHeader3(d->tj, buf, (unsigned long)len, &w, &h, &subsamp, &cs) != 0) {
        st = os_fail(OS_ECORRUPT, "JPEG header: %s", tjGetErrorStr2(d->tj));
        goto tj_failed;
    }
    if (w <= 0 || h <= 0) {
        /* A tables-only stream: 2.1 reports success, leaves the size unset and keeps the tables
         * in the handle to prime the next image; a fresh handle drops them. (libjpeg also keeps
         * the tables of every decoded image, so a later stream without DQT decodes with them:
         * test_decode_tables_only.) */
        st = os_fail(OS_ECORRUPT, "JPEG holds no image (tables only)");
        goto tj_failed;
    }
    jpeg_frame fr;
    scan_markers(buf, len, &fr);
    if (!has_own_tables(&fr))
        return os_fail(OS_ECORRUPT, "JPEG without its own quantisation/Huffman tables "
                                    "(abbreviated stream), refused");
    uint64_t npix = (uint64_t)w * (uint64_t)h;
    if (max_pixels > 0 && npix > max_pixels)
        return os_fail(OS_ETOOBIG, "JPEG %dx%d (%llu pixels) exceeds the limit of %zu pixels", w, h,
                       (unsigned long long)npix, max_pixels);
    uint64_t coef = coef_buffer_bytes(&fr);
    if (coef > OS_JPEG_MAX_COEF_BYTES)
        return os_fail(OS_ETOOBIG,
                       "%s JPEG %dx%d needs %llu MB of coefficient buffers to decode, over the "
                       "budget of %llu MB (the same image as baseline JPEG would need none)",
                       fr.progressive ? "progressive" : "multi-scan", w, h,
                       (unsigned long long)(coef >> 20),
                       (unsigned long long)(OS_JPEG_MAX_COEF_BYTES >> 20));
    int scans = coef ? count_scans(buf, len, &fr) : 0;
    if (coef && (uint64_t)scans * coef > OS_JPEG_MAX_SCAN_BYTES)
        return os_fail(OS_ETOOBIG,
                       "%s JPEG %dx%d has %d scans over %llu MB of coefficients: %llu MB of "
                       "passes to decode, over the budget of %llu MB (a usual progressive JPEG "
                       "has about 10 scans; re-encode it as baseline or with fewer)",
                       fr.progressive ? "progressive" : "multi-scan", w, h, scans,
                       (unsigned long long)(coef >> 20),
                       (unsigned long long)(((uint64_t)scans * coef) >> 20),
                       (unsigned long long)(OS_JPEG_MAX_SCAN_BYTES >> 20));
    if (cs == TJCS_CMYK || cs == TJCS_YCCK)
        return os_fail(OS_EUNSUPPORTED, "%s JPEG, expected RGB/YCbCr or grayscale",
                       colorspace_name(cs));

    tjscalingfactor sf = pick_scale(w, h, min_w, min_h);
    int sw = TJSCALED(w, sf), sh = TJSCALED(h, sf);
    /* Both sides are < 2^16 by the JPEG format, so this fits 64 bits; size_t may be 32. */
    uint64_t need = (uint64_t)sw * (uint64_t)sh * IMG_CHANNELS;
    if (need > SIZE_MAX)
        return os_fail(OS_ETOOBIG, "JPEG %dx%d does not fit in memory", sw, sh);
    if (need > d->cap) {
        uint8_t *grown = realloc(d->pixels, (size_t)need);
        if (!grown)
            return os_fail(OS_ENOMEM, "JPEG %dx%d: cannot allocate %llu bytes of pixels", sw, sh,
                           (unsigned long long)need);
        d->pixels = grown;
        d->cap = (size_t)need;
    }

    int stride = sw * IMG_CHANNELS;
    /* Asking for exactly TJSCALED(w, sf) x TJSCALED(h, sf) makes TurboJPEG use factor sf. */
    if (tjDecompress2(d->tj, buf, (unsigned long)len, d->pixels, sw, stride, sh, TJPF_RGB,
                      IMG_DECODE_FLAGS) != 0) {
        st = os_fail(OS_ECORRUPT, "JPEG %dx%d: %s", w, h, tjGetErrorStr2(d->tj));
        goto tj_failed;
    }

    *out = (os_rgb_image){.pixels = d->pixels,
                          .width = sw,
                          .height = sh,
                          .stride = stride,
                          .src_width = w,
                          .src_height = h};
    return OS_OK;

tj_failed:
    decoder_reset(d);
    return st;
}

/* ---- resize policy ---- */

int os_resize_policy_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcmp(s, "stretch") == 0)
        return OS_RESIZE_STRETCH;
    if (strcmp(s, "center_crop") == 0)
        return OS_RESIZE_CENTER_CROP;
    return -1;
}

const char *os_resize_policy_name(os_resize_policy p)
{
    switch (p) {
    case OS_RESIZE_STRETCH: return "stretch";
    case OS_RESIZE_CENTER_CROP: return "center_crop";
    }
    return "unknown";
}

/* ---- resampling ---- */

/* One axis of the mapping output -> source: output index i covers the source interval
 * [origin + i*step, origin + (i+1)*step) of an axis with n source pixels. */
typedef struct {
    double origin, step;
    int n;
} axis_map;

/* The source taps of one output index on one axis: pixels first..last, each weighted by
 * tap_weight(). Area mode weights a pixel by how much of it the interval [lo, hi) covers;
 * bilinear mode splits 1 - frac / frac between first and last. */
typedef struct {
    int first, last;
    bool area;
    double lo, hi, inv_len; /* area */
    double frac;            /* bilinear */
} axis_taps;

static axis_taps taps_at(const axis_map *m, int i)
{
    axis_taps t = {0};
    if (m->step > 1.0) {
        /* Shrinking: exact box filter, so no source pixel is skipped (no aliasing). */
        t.area = true;
        t.lo = fmax(0.0, m->origin + i * m->step);
        t.hi = fmin((double)m->n, m->origin + (i + 1) * m->step);
        t.inv_len = 1.0 / (t.hi - t.lo);
        t.first = (int)floor(t.lo);
        t.last = (int)ceil(t.hi) - 1;
        if (t.last > m->n - 1)
            t.last = m->n - 1;
        if (t.last < t.first)
            t.last = t.first;
        return t;
    }
    /* Growing (or 1:1): bilinear with pixel centres at +0.5, which at step 1 reproduces the
     * source exactly and at a half-pixel offset agrees with the box filter. */
    double s = m->origin + (i + 0.5) * m->step - 0.5;
    s = fmin(fmax(s, 0.0), (double)(m->n - 1));
    t.first = (int)floor(s);
    t.last = t.first < m->n - 1 ? t.first + 1 : t.first;
    t.frac = s - t.first;
    return t;
}

static double tap_weight(const axis_taps *t, int p)
{
    if (t->area)
        return (fmin(p + 1.0, t->hi) - fmax((double)p, t->lo)) * t->inv_len;
    if (t->first == t->last)
        return 1.0;
    return p == t->first ? 1.0 - t->frac : t->frac;
}

/* The source rectangle the output maps onto: the whole image when stretching; for a centre
 * crop, the largest centred rectangle of the output's aspect ratio (fractional bounds allowed,
 * so a 257x256 crop to square stays centred to the half pixel). */
static void source_rect(const os_rgb_image *img, int out_w, int out_h, os_resize_policy policy,
                        double *x0, double *y0, double *rw, double *rh)
{
    double w = img->width, h = img->height;
    *x0 = 0, *y0 = 0, *rw = w, *rh = h;
    if (policy != OS_RESIZE_CENTER_CROP)
        return;
    /* Compare aspect ratios in integers so the side that fills stays exactly the image side. */
    if ((int64_t)out_w * img->height >= (int64_t)out_h * img->width)
        *rh = w * out_h / out_w; /* output relatively wider: width fills, crop rows */
    else
        *rw = h * out_w / out_h; /* output relatively taller: height fills, crop columns */
    *x0 = (w - *rw) / 2;
    *y0 = (h - *rh) / 2;
}

void os_image_to_tensor(const os_rgb_image *img, int out_w, int out_h, os_resize_policy policy,
                        const float mean[3], const float std[3], float *out)
{
    assert(img && img->pixels && img->width > 0 && img->height > 0);
    assert(img->stride >= img->width * IMG_CHANNELS);
    assert(out_w > 0 && out_h > 0 && mean && std && out);

    double x0, y0, rw, rh;
    source_rect(img, out_w, out_h, policy, &x0, &y0, &rw, &rh);
    axis_map mx = {x0, rw / out_w, img->width};
    axis_map my = {y0, rh / out_h, img->height};
    size_t plane = (size_t)out_w * (size_t)out_h;

    if (x0 == 0.0 && y0 == 0.0 && rw == out_w && rh == out_h) {
        /* Same size (the decoder's scaled IDCT often lands exactly on the model's input): each
         * output is its pixel, which is what the taps below would sum to (weights 1 and 0). */
        for (int oy = 0; oy < out_h; oy++) {
            const uint8_t *row = img->pixels + (size_t)oy * (size_t)img->stride;
            for (int ox = 0; ox < out_w; ox++)
                for (int c = 0; c < IMG_CHANNELS; c++)
                    out[(size_t)c * plane + (size_t)oy * (size_t)out_w + (size_t)ox] =
                        (float)(((double)row[ox * IMG_CHANNELS + c] / IMG_MAX_LEVEL - mean[c]) /
                                std[c]);
        }
        return;
    }

    for (int oy = 0; oy < out_h; oy++) {
        axis_taps ty = taps_at(&my, oy);
        for (int ox = 0; ox < out_w; ox++) {
            axis_taps tx = taps_at(&mx, ox);
            double acc[IMG_CHANNELS] = {0};
            for (int sy = ty.first; sy <= ty.last; sy++) {
                double wy = tap_weight(&ty, sy);
                const uint8_t *row = img->pixels + (size_t)sy * (size_t)img->stride;
                double racc[IMG_CHANNELS] = {0};
                for (int sx = tx.first; sx <= tx.last; sx++) {
                    double wx = tap_weight(&tx, sx);
                    const uint8_t *px = row + (size_t)sx * IMG_CHANNELS;
                    for (int c = 0; c < IMG_CHANNELS; c++)
                        racc[c] += wx * px[c];
                }
                for (int c = 0; c < IMG_CHANNELS; c++)
                    acc[c] += wy * racc[c];
            }
            size_t at = (size_t)oy * (size_t)out_w + (size_t)ox;
            for (int c = 0; c < IMG_CHANNELS; c++)
                out[(size_t)c * plane + at] = (float)((acc[c] / IMG_MAX_LEVEL - mean[c]) / std[c]);
        }
    }
}
