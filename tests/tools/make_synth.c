/* make_synth - write a small synthetic image-folder dataset of real JPEGs for training tests:
 *   make_synth DIR CLASSES PER_CLASS SIDE SEED [CORRUPT]
 * Class k is a noisy texture: stripes at angle k*180/CLASSES degrees over a class-specific
 * tint. Learnable, but not by a single pixel. With CORRUPT = 1, one extra file per class 0 is
 * garbage with a .jpg name (the trainer must warn, skip it and go on). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <turbojpeg.h>

static double uniform(unsigned long long *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: make_synth DIR CLASSES PER_CLASS SIDE SEED [CORRUPT]\n");
        return 2;
    }
    const char *dir = argv[1];
    int classes = atoi(argv[2]), per = atoi(argv[3]), side = atoi(argv[4]);
    unsigned long long rng = strtoull(argv[5], NULL, 10) * 2654435761ull + 1;
    int corrupt = argc > 6 && atoi(argv[6]);
    mkdir(dir, 0755);
    unsigned char *rgb = malloc((size_t)side * side * 3);
    tjhandle tj = tjInitCompress();
    if (!rgb || !tj)
        return 1;
    for (int k = 0; k < classes; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/class%02d", dir, k);
        mkdir(path, 0755);
        double ang = M_PI * k / classes, ca = cos(ang), sa = sin(ang);
        double tint[3] = {0.5 + 0.3 * cos(2 * M_PI * k / classes),
                          0.5 + 0.3 * cos(2 * M_PI * k / classes + 2.1),
                          0.5 + 0.3 * cos(2 * M_PI * k / classes + 4.2)};
        for (int i = 0; i < per; i++) {
            double phase = 2 * M_PI * uniform(&rng), freq = 0.5 + 0.3 * uniform(&rng);
            for (int y = 0; y < side; y++)
                for (int x = 0; x < side; x++) {
                    double s = sin(freq * (x * ca + y * sa) + phase);
                    for (int c = 0; c < 3; c++) {
                        double v = tint[c] + 0.25 * s + 0.15 * (uniform(&rng) - 0.5);
                        v = v < 0 ? 0 : v > 1 ? 1 : v;
                        rgb[((size_t)y * side + x) * 3 + c] = (unsigned char)(v * 255 + 0.5);
                    }
                }
            unsigned char *jpeg = NULL;
            unsigned long len = 0;
            if (tjCompress2(tj, rgb, side, 0, side, TJPF_RGB, &jpeg, &len, TJSAMP_420, 90, 0))
                return 1;
            snprintf(path, sizeof path, "%s/class%02d/img%03d.jpg", dir, k, i);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(jpeg, 1, len, f) != len)
                return 1;
            fclose(f);
            tjFree(jpeg);
        }
        if (corrupt && k == 0) {
            snprintf(path, sizeof path, "%s/class%02d/broken.jpg", dir, k);
            FILE *f = fopen(path, "wb");
            fputs("\xff\xd8\xff\xe0 this is not really a JPEG", f);
            fclose(f);
        }
    }
    tjDestroy(tj);
    free(rgb);
    return 0;
}
