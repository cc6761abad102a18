/* image.h - image bytes in, normalised model input out.
 *
 * Decoding is JPEG only (TurboJPEG). Other formats are recognised by their magic bytes so the
 * caller can say what was sent ("PNG image, expected JPEG"). The decoder reads the header first
 * and refuses an image whose pixel count exceeds the caller's limit before decoding anything;
 * corrupt or truncated data stops decoding (TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) and is an
 * error, never a half-grey image. When the image is much larger than needed, TurboJPEG's scaled
 * IDCT decodes it directly at a reduced size (the smallest scale that keeps both sides >= the
 * requested minimum).
 */
#ifndef ONESPIKE_IMAGE_H
#define ONESPIKE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "onespike/status.h"

typedef enum {
    OS_IMG_EMPTY = 0, /* zero bytes */
    OS_IMG_UNKNOWN,
    OS_IMG_JPEG,
    OS_IMG_PNG,
    OS_IMG_GIF,
    OS_IMG_TIFF,
    OS_IMG_WEBP,
    OS_IMG_BMP,
    OS_IMG_JP2, /* JPEG 2000: a JP2 file or a bare codestream */
} os_image_format;

/* Recognise a format by its leading magic bytes. buf may be NULL when len == 0. */
os_image_format os_image_sniff(const void *buf, size_t len);

/* "JPEG", "PNG", ..., "empty", "unknown"; static string. */
const char *os_image_format_name(os_image_format f);

/* A decoded 8-bit RGB image, rows of `stride` bytes, pixels interleaved R,G,B. */
typedef struct {
    const uint8_t *pixels; /* borrowed from the decoder; valid until its next decode */
    int width, height, stride;
    int src_width, src_height; /* size stated in the JPEG header (before scaling) */
} os_rgb_image;

typedef struct os_decoder os_decoder;

/* Create a decoder: one TurboJPEG handle plus a pixel buffer that grows to the largest decoded
 * image seen and is then reused (so steady-state decoding allocates no buffer of ours). */
os_status os_decoder_create(os_decoder **out);
void os_decoder_destroy(os_decoder *d); /* NULL is fine */

/* The most memory libjpeg may take for the whole-image DCT coefficient buffers that a
 * progressive (or multi-scan sequential) JPEG needs: about 2 bytes per pixel per component
 * whatever the scale it is decoded at, so ~300 MB for a 7000x7000 4:4:4 image. 64 MB admits a
 * progressive 4:2:0 photo of ~22 megapixels (4:4:4: ~11). A baseline JPEG is decoded a row of
 * blocks at a time and needs no such buffer. */
#define OS_JPEG_MAX_COEF_BYTES ((uint64_t)64 << 20)

/* The most scans x coefficient-buffer bytes a progressive JPEG may take: each scan passes over
 * its components' whole buffer, so this bounds the decode (a 16.7 Mpx progressive JPEG of 50 MB
 * took 0.3 s with its 10 scans, 2 s with 99; libjpeg-turbo's own limit is 500 scans). 1 GiB
 * admits any usual progressive JPEG within OS_JPEG_MAX_COEF_BYTES (about 10 scans) and bounds
 * the rest to about 0.4 s of decoding at that rate. */
#define OS_JPEG_MAX_SCAN_BYTES ((uint64_t)1 << 30)

/* The bytes of those coefficient buffers for the JPEG in buf (read from its markers, nothing
 * decoded): 0 for a baseline (single-scan) JPEG or a header libjpeg would refuse. What decoding
 * costs beyond a baseline JPEG's grows with it (every scan passes over the whole buffer). */
uint64_t os_jpeg_coef_bytes(const void *buf, size_t len);

/* Decode JPEG bytes (borrowed) into *out.
 * - len == 0 -> OS_EEMPTY; another format -> OS_EUNSUPPORTED naming it.
 * - header width*height > max_pixels (0 = no limit) -> OS_ETOOBIG, before any decoding.
 * - a progressive or multi-scan JPEG whose coefficient buffers would exceed
 *   OS_JPEG_MAX_COEF_BYTES, or whose scans times those bytes exceed OS_JPEG_MAX_SCAN_BYTES
 *   -> OS_ETOOBIG, before any decoding (the server answers 422).
 * - corrupt/truncated data -> OS_ECORRUPT with TurboJPEG's message.
 * - min_w/min_h > 0: decode at the smallest TurboJPEG scale whose result is at least
 *   min_w x min_h (never upscales in the decoder); 0 means full size.
 * Grayscale JPEGs come out as RGB; CMYK JPEGs are refused (OS_EUNSUPPORTED). */
os_status os_decoder_decode(os_decoder *d, const void *buf, size_t len, size_t max_pixels,
                            int min_w, int min_h, os_rgb_image *out);

typedef enum {
    OS_RESIZE_STRETCH = 0, /* scale each axis to the target, ignoring aspect */
    OS_RESIZE_CENTER_CROP, /* scale the shorter side to the target, crop the centre */
} os_resize_policy;

/* Parse "stretch" / "center_crop"; returns -1 for anything else. */
int os_resize_policy_parse(const char *s);
const char *os_resize_policy_name(os_resize_policy p);

/* Resize img to out_w x out_h and write planar float CHW (3 x out_h x out_w) into out:
 * out[c][y][x] = (v/255 - mean[c]) / std[c]. Area averaging on an axis that shrinks, bilinear
 * (half-pixel centres, clamped edges) on an axis that grows. Allocates nothing. */
void os_image_to_tensor(const os_rgb_image *img, int out_w, int out_h, os_resize_policy policy,
                        const float mean[3], const float std[3], float *out);

#endif
