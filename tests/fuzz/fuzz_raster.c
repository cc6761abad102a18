/* fuzz_raster.c - libFuzzer harness: untrusted raster bytes through the GDAL reader
 * (raster.c): open from memory (a /vsimem/ file, header limits), band and type checks, a whole
 * read through the default input or a scaled one, a window resampled by GDAL, then the model's
 * resize and normalisation. Scope: bytes that sniff as TIFF or PNG only (GTiff, PNG drivers).
 * JPEG has its own harness (fuzz_jpeg, TurboJPEG); JPEG 2000 is left out because OpenJPEG's
 * decoder is slow per input and its own bugs would drown ours. What this harness holds us to:
 * whatever GDAL does with the bytes, our wrapper neither crashes, leaks nor leaves a /vsimem/
 * file behind, and a decoded image is usable. GDAL's own defects found here are reported
 * upstream, not fixed in this tree. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cpl_string.h>
#include <cpl_vsi.h>

#include "onespike/raster.h"

enum {
    FUZZ_MAX_PIXELS = 1000 * 1000, /* keeps a run's memory small; the check is what counts */
    FUZZ_OUT_W = 17,
    FUZZ_OUT_H = 23, /* odd, non-square */
    FUZZ_WIN_OUT = 5,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Scales chosen by the input's last byte: none, a fixed range, a percentile stretch; bands
 * 1,2,3 or 1,1,1 (what a 1-band raster can give). */
static void pick_input(const uint8_t *data, size_t size, os_raster_input *in)
{
    static const char *const scales[] = {"none", "range:0,4095", "percentile:2,98"};
    uint8_t k = size ? data[size - 1] : 0;
    *in = os_raster_input_default();
    os_raster_scale_parse(scales[k % 3], in);
    if (k & 4)
        os_raster_bands_parse("1,1,1", in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static os_decoder *dec;
    static os_raster_buf *buf;
    static float out[3 * FUZZ_OUT_W * FUZZ_OUT_H];
    static const float mean[3] = {0.5f, 0.5f, 0.5f}, sd[3] = {0.25f, 0.25f, 0.25f};
    os_image_format f = os_image_sniff(data, size);
    if (f != OS_IMG_TIFF && f != OS_IMG_PNG)
        return 0;
    if ((!dec && os_decoder_create(&dec)) || (!buf && os_raster_buf_create(&buf)))
        abort();
    os_raster_input in;
    pick_input(data, size, &in);
    os_rgb_image img;
    os_errclear();
    if (os_raster_decode_any(dec, buf, data, size, FUZZ_MAX_PIXELS, 0, 0, &in, &img) == OS_OK) {
        if (img.width <= 0 || img.height <= 0 || img.stride < 3 * img.width)
            abort(); /* a decoded image must be usable */
        os_image_to_tensor(&img, FUZZ_OUT_W, FUZZ_OUT_H, OS_RESIZE_CENTER_CROP, mean, sd, out);
    }
    /* A window of the lower right quarter, resampled by GDAL to a few pixels. */
    os_raster *r = NULL;
    const os_raster_limits lim = {.max_pixels = FUZZ_MAX_PIXELS};
    if (os_raster_open_bytes(data, size, &lim, &r) == OS_OK) {
        int w = os_raster_width(r), h = os_raster_height(r);
        os_raster_read(r, w / 2, h / 2, w - w / 2, h - h / 2, &in, FUZZ_WIN_OUT, FUZZ_WIN_OUT, buf,
                       &img);
        os_raster_close(r);
    }
    char **left = VSIReadDir("/vsimem/onespike");
    if (CSLCount(left) != 0)
        abort(); /* every memory file is removed when its raster closes */
    CSLDestroy(left);
    return 0;
}
