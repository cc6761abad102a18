/* raster_dump - what the raster reader gives, as raw bytes, for tests to compare with GDAL's
 * Python bindings and with the JPEG path.
 *
 *   raster_dump rgb FILE OUT [BANDS [SCALE [X,Y,W,H [OUT_W,OUT_H]]]]
 *       os_raster_open + os_raster_read: interleaved RGB bytes (height x width x 3) to OUT;
 *       prints "WIDTH HEIGHT BANDS DTYPE DRIVER GEOTRANSFORM? CRS?" on stdout.
 *   raster_dump tensor MODEL FILE OUT
 *       os_session_load_image_at: the model's input tensor (float32, CHW) to OUT.
 *   raster_dump jpeg2tiff JPEG OUT.tif
 *       the JPEG decoded by TurboJPEG at full size (os_decoder_decode), written as an
 *       uncompressed 8-bit RGB GeoTIFF through GDAL: the same pixels in another container.
 * BANDS "-" and SCALE "-" mean the defaults. Exit 1 with the status detail on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gdal.h>

#include "onespike/raster.h"
#include "onespike/session.h"

static int fail(const char *what, os_status st)
{
    fprintf(stderr, "raster_dump: %s: %s\n", what,
            *os_errdetail() ? os_errdetail() : os_strerror(st));
    return 1;
}

static int write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "raster_dump: cannot write %s\n", path);
        if (f)
            fclose(f);
        return 1;
    }
    return fclose(f) ? 1 : 0;
}

static int cmd_rgb(int argc, char **argv)
{
    os_raster_input in = os_raster_input_default();
    os_status st;
    if (argc > 4 && strcmp(argv[4], "-") && (st = os_raster_bands_parse(argv[4], &in)))
        return fail("bands", st);
    if (argc > 5 && strcmp(argv[5], "-") && (st = os_raster_scale_parse(argv[5], &in)))
        return fail("scale", st);
    os_raster *r = NULL;
    if ((st = os_raster_open(argv[2], NULL, &r)))
        return fail(argv[2], st);
    int x = 0, y = 0, w = os_raster_width(r), h = os_raster_height(r), ow = 0, oh = 0;
    if (argc > 6 && sscanf(argv[6], "%d,%d,%d,%d", &x, &y, &w, &h) != 4)
        return fprintf(stderr, "raster_dump: window X,Y,W,H\n"), 1;
    if (argc > 7 && sscanf(argv[7], "%d,%d", &ow, &oh) != 2)
        return fprintf(stderr, "raster_dump: output size W,H\n"), 1;
    os_raster_buf *b = NULL;
    os_rgb_image img;
    int rc = 1;
    if ((st = os_raster_buf_create(&b)) ||
        (st = os_raster_read(r, x, y, w, h, &in, ow, oh, b, &img))) {
        rc = fail(argv[2], st);
        goto out;
    }
    double gt[6];
    bool geo = os_raster_geotransform(r, gt);
    printf("%d %d %d %s %s %s %s\n", os_raster_width(r), os_raster_height(r), os_raster_bands(r),
           os_raster_dtype(r), os_raster_driver(r), geo ? "geo" : "nogeo",
           *os_raster_crs_wkt(r) ? "crs" : "nocrs");
    if (geo)
        printf("%.17g %.17g %.17g %.17g %.17g %.17g\n", gt[0], gt[1], gt[2], gt[3], gt[4], gt[5]);
    rc = write_all(argv[3], img.pixels, (size_t)img.stride * (size_t)img.height);
out:
    os_raster_buf_destroy(b);
    os_raster_close(r);
    return rc;
}

static int cmd_tensor(char **argv)
{
    os_model *m = NULL;
    os_session *s = NULL;
    void *buf = NULL;
    size_t len = 0;
    int rc = 1;
    os_status st = os_model_load(argv[2], &m);
    if (!st)
        st = os_session_create(m, NULL, &s);
    if (!st)
        st = os_read_file(argv[3], (size_t)1 << 30, &buf, &len);
    if (!st)
        st = os_session_load_image_at(s, 0, buf, len, NULL);
    if (st)
        rc = fail(argv[3], st);
    else
        rc = write_all(argv[4], os_session_input(s), os_session_input_floats(s) * sizeof(float));
    free(buf);
    os_session_destroy(s);
    os_model_destroy(m);
    return rc;
}

static int cmd_jpeg2tiff(char **argv)
{
    void *buf = NULL;
    size_t len = 0;
    os_decoder *d = NULL;
    os_rgb_image img;
    int rc = 1;
    os_status st = os_read_file(argv[2], (size_t)1 << 30, &buf, &len);
    if (!st)
        st = os_decoder_create(&d);
    if (!st)
        st = os_decoder_decode(d, buf, len, 0, 0, 0, &img); /* full size: no scaled IDCT */
    if (st) {
        rc = fail(argv[2], st);
        goto out;
    }
    /* Opening any raster first registers GDAL's GTiff driver (raster.c's set-up). */
    os_raster *probe = NULL;
    os_raster_open(argv[2], NULL, &probe);
    os_raster_close(probe);
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    GDALDatasetH ds =
        drv ? GDALCreate(drv, argv[3], img.width, img.height, 3, GDT_Byte, NULL) : NULL;
    if (!ds) {
        fprintf(stderr, "raster_dump: cannot create %s\n", argv[3]);
        goto out;
    }
    int bands[3] = {1, 2, 3};
    CPLErr e = GDALDatasetRasterIO(ds, GF_Write, 0, 0, img.width, img.height, (void *)img.pixels,
                                   img.width, img.height, GDT_Byte, 3, bands, 3, img.stride, 1);
    GDALClose(ds);
    rc = e == CE_None ? 0 : 1;
out:
    os_decoder_destroy(d);
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "rgb"))
        return cmd_rgb(argc, argv);
    if (argc == 5 && !strcmp(argv[1], "tensor"))
        return cmd_tensor(argv);
    if (argc == 4 && !strcmp(argv[1], "jpeg2tiff"))
        return cmd_jpeg2tiff(argv);
    fprintf(stderr, "usage: raster_dump rgb FILE OUT [BANDS [SCALE [X,Y,W,H [OW,OH]]]] | "
                    "tensor MODEL FILE OUT | jpeg2tiff JPEG OUT.tif\n");
    return 2;
}
