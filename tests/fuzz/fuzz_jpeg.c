/* fuzz_jpeg.c - libFuzzer harness: untrusted JPEG bytes through the serving path, decode
 * (os_decoder_decode, with its header checks, scale choice and coefficient budget) then resize
 * and normalise (os_image_to_tensor), both policies, to a shrinking and a growing size. One
 * decoder lives for the whole run, as a server worker's does, so state left behind by one input
 * (libjpeg's tables, a handle after an error) meets the next. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "onespike/image.h"

enum {
    FUZZ_MAX_PIXELS = 4 * 1000 * 1000, /* keeps a run's memory small; the check is what counts */
    FUZZ_MIN_SIDE = 24,                /* exercises the scaled IDCT choice */
    FUZZ_OUT_W = 17,
    FUZZ_OUT_H = 23,    /* odd, non-square: crop and area paths */
    FUZZ_BIG_SIDE = 61, /* larger than most seeds: the bilinear path */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static os_decoder *dec;
    static float out[3 * FUZZ_BIG_SIDE * FUZZ_BIG_SIDE];
    static const float mean[3] = {0.5f, 0.5f, 0.5f}, sd[3] = {0.25f, 0.25f, 0.25f};
    if (!dec && os_decoder_create(&dec))
        abort();
    os_rgb_image img;
    os_errclear();
    int min = size && (data[size - 1] & 1) ? FUZZ_MIN_SIDE : 0;
    if (os_decoder_decode(dec, data, size, FUZZ_MAX_PIXELS, min, min, &img) != OS_OK)
        return 0;
    if (img.width <= 0 || img.height <= 0 || img.stride < 3 * img.width)
        abort(); /* a decoded image must be usable */
    os_image_to_tensor(&img, FUZZ_OUT_W, FUZZ_OUT_H, OS_RESIZE_STRETCH, mean, sd, out);
    os_image_to_tensor(&img, FUZZ_OUT_W, FUZZ_OUT_H, OS_RESIZE_CENTER_CROP, mean, sd, out);
    os_image_to_tensor(&img, FUZZ_BIG_SIDE, FUZZ_BIG_SIDE, OS_RESIZE_CENTER_CROP, mean, sd, out);
    return 0;
}
