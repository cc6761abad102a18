/* map: a classification map of a whole scene (scenemap.h), as GeoJSON and optionally a COG. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "onespike/clock.h"
#include "onespike/scenemap.h"
#include "onespike/session.h"

#define MAP_PROGRESS_EVERY_S 1.0 /* progress lines on stderr at most this often */
#define MAP_MAX_WINDOW_M 1e7

static const char help[] =
    "usage: " CLI_PROG " map --model MODEL --in SCENE --out MAP.geojson [--raster MAP.tif]\n"
    "       [--window PX | --window-m METRES] [--stride PX] [--top-k K] [--bands R,G,B]\n"
    "       [--scale S] [--tta N] [--threads N] [--batch N] [--isa SET] [--weights fp32|fp16|int8]\n"
    "       [--dense] [--quiet]\n"
    "\n"
    "Classify a whole scene (GeoTIFF, TIFF, PNG, JPEG 2000) window by window and write the map:\n"
    "windows at every STRIDE pixels, the last of each row and column moved back to end at the\n"
    "edge so every pixel is covered (a side shorter than the window is one window). Each window\n"
    "is read through the bands and scale, resized to the model's input and classified.\n"
    "\n"
    "  --model MODEL     model file (required)\n"
    "  --in SCENE        the scene (required); read a batch of windows at a time, never whole\n"
    "  --out FILE        GeoJSON FeatureCollection (required): one Polygon per window with its\n"
    "                    class, class_index, probability, top_k, window [x,y,w,h], col, row;\n"
    "                    lon/lat (WGS 84) when the scene is georeferenced, else pixel\n"
    "                    coordinates (the collection's \"onespike\" member says which)\n"
    "  --raster FILE     also a Cloud-Optimized GeoTIFF in the scene's CRS: band 1 the class\n"
    "                    index (colour table, labels, nodata 255), band 2 the probability\n"
    "                    (0..255, scale 1/255); one pixel per window, stride x stride scene\n"
    "                    pixels centred on the window's centre\n"
    "  --window PX       window side in pixels (default 256: the UC Merced chip the shipped\n"
    "                    model was trained on)\n"
    "  --window-m M      window side in metres on the ground (needs a geotransform and a\n"
    "                    projected CRS in metres)\n"
    "  --stride PX       pixels between windows (default: the window, no overlap; at most the\n"
    "                    window)\n"
    "  --top-k K         classes per window in top_k (default 3)\n"
    "  --bands R,G,B     raster bands read as R, G, B (default: the model's, else 1,2,3)\n"
    "  --scale S         none, range:LO,HI, range:LO1,HI1,LO2,HI2,LO3,HI3 or percentile:LO,HI\n"
    "                    (per window) (default: the model's, else none)\n"
    "  --tta N           test-time views of each window (1, 2, 4 or 8: turned by 90 degrees\n"
    "                    and mirrored, answers averaged; N/2 to N times the compute; default 1)\n"
    "  --threads N       threads, each with its own session (default: every core)\n"
    "  --batch N         windows per pass through the network (default 8)\n"
    "  --isa SET         scalar, avx2, avx512 or auto (as classify)\n"
    "  --weights FMT     fp32, fp16 or int8 (as classify)\n"
    "  --dense           dense float kernels for every layer (the reference path)\n"
    "  --quiet           no progress on stderr\n"
    "\n"
    "The output is the same for any --threads and --batch. On stdout, one JSON line:\n"
    "{\"windows\",\"grid\":[cols,rows],\"seconds\",\"windows_per_s\",\"classes\":{label:count}}.\n";

typedef struct {
    double t0, last;
    bool tty;
} progress;

static void show_progress(void *ctx, int done, int total)
{
    progress *p = ctx;
    const double now = os_clock_s();
    if (done < total && now - p->last < MAP_PROGRESS_EVERY_S)
        return;
    p->last = now;
    const double secs = now - p->t0;
    fprintf(stderr, "%s map: %d/%d windows, %.1f windows/s%s", CLI_PROG, done, total,
            secs > 0 ? done / secs : 0.0, p->tty && done < total ? "\r" : "\n");
}

int cmd_map(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", 1, 0, 'm'},   {"in", 1, 0, 'i'},      {"out", 1, 0, 'o'},
        {"raster", 1, 0, 'r'},  {"window", 1, 0, 'w'},  {"window-m", 1, 0, 'M'},
        {"stride", 1, 0, 'S'},  {"top-k", 1, 0, 'k'},   {"bands", 1, 0, 'b'},
        {"scale", 1, 0, 's'},   {"threads", 1, 0, 't'}, {"batch", 1, 0, 'B'},
        {"isa", 1, 0, 'I'},     {"weights", 1, 0, 'W'}, {"dense", 0, 0, 'D'},
        {"quiet", 0, 0, 'q'},   {"tta", 1, 0, 'v'},     {"help", 0, 0, 'h'},
        {0}};
    const char *model_path = NULL, *in_path = NULL, *out_path = NULL, *raster_path = NULL;
    const char *isa = NULL, *weights = NULL, *bands = NULL, *scale = NULL;
    long window = 0, stride = 0, top_k = 0, threads = 0, batch = 0;
    double window_m = 0;
    bool dense = false, quiet = false;
    int ch, views = 1;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model_path = optarg; break;
        case 'i': in_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'r': raster_path = optarg; break;
        case 'w':
            if (!cli_long("map", "--window", optarg, 1, OS_RASTER_MAX_SIDE, &window))
                return CLI_USAGE;
            break;
        case 'M': {
            char *end;
            window_m = strtod(optarg, &end);
            if (end == optarg || *end || !(window_m > 0) || window_m > MAP_MAX_WINDOW_M)
                return cli_usage_error("map", "--window-m \"%s\": expected metres > 0", optarg);
            break;
        }
        case 'S':
            if (!cli_long("map", "--stride", optarg, 1, OS_RASTER_MAX_SIDE, &stride))
                return CLI_USAGE;
            break;
        case 'k':
            if (!cli_long("map", "--top-k", optarg, 1, 100000, &top_k))
                return CLI_USAGE;
            break;
        case 't':
            if (!cli_long("map", "--threads", optarg, 1, OS_MAP_MAX_THREADS, &threads))
                return CLI_USAGE;
            break;
        case 'B':
            if (!cli_long("map", "--batch", optarg, 1, OS_SESSION_MAX_BATCH, &batch))
                return CLI_USAGE;
            break;
        case 'b': bands = optarg; break;
        case 's': scale = optarg; break;
        case 'I': isa = optarg; break;
        case 'W': weights = optarg; break;
        case 'D': dense = true; break;
        case 'q': quiet = true; break;
        case 'v':
            if (cli_views("map", optarg, &views) != CLI_OK)
                return CLI_USAGE;
            break;
        case 'h': fputs(help, stdout); return CLI_OK;
        default: return cli_usage_error("map", "unknown option");
        }
    }
    if (!model_path || !in_path || !out_path)
        return cli_usage_error("map", "--model, --in and --out are required");
    if (optind != argc)
        return cli_usage_error("map", "unexpected argument \"%s\"", argv[optind]);
    if (window && window_m > 0)
        return cli_usage_error("map", "give --window or --window-m, not both");

    int rc = CLI_OK;
    os_model *m = NULL;
    os_map *map = NULL;
    long *hist = NULL;
    os_raster_input in;
    if ((rc = cli_load_model("map", model_path, weights, bands, scale, &m, &in)) != CLI_OK)
        return rc;
    os_status st;
    const os_session_opts so = {.dense = dense, .isa = isa};
    progress prog = {.t0 = os_clock_s(), .tty = isatty(STDERR_FILENO)};
    const os_map_opts o = {.window = (int)window,
                           .window_m = window_m,
                           .stride = (int)stride,
                           .top_k = (int)top_k,
                           .batch = (int)batch,
                           .views = views,
                           .threads = (int)threads,
                           .input = &in,
                           .session = &so,
                           .progress = quiet ? NULL : show_progress,
                           .progress_ctx = &prog};
    const os_map_source src = {.path = in_path};
    if ((st = os_map_run(m, &src, &o, &map))) {
        cli_report(in_path, st);
        rc = CLI_FAIL;
        goto out;
    }
    const double secs = os_clock_s() - prog.t0;
    if ((st = os_map_write_geojson(map, out_path))) {
        cli_report(out_path, st);
        rc = CLI_FAIL;
        goto out;
    }
    if (raster_path && (st = os_map_write_cog(map, raster_path))) {
        cli_report(raster_path, st);
        rc = CLI_FAIL;
        goto out;
    }
    const os_map_grid *g = os_map_get_grid(map);
    const int cells = g->cols * g->rows, nclass = os_model_classes(m);
    if (!(hist = calloc((size_t)nclass, sizeof *hist))) {
        cli_report("map", os_fail(OS_ENOMEM, "no memory"));
        rc = CLI_FAIL;
        goto out;
    }
    for (int i = 0; i < cells; i++)
        hist[os_map_classes(map, i)[0]]++;
    json_t *classes = json_object();
    for (int c = 0; c < nclass; c++)
        if (hist[c])
            json_object_set_new(classes, os_model_label(m, c), json_integer(hist[c]));
    json_t *sum = json_pack("{s:i,s:[i,i],s:[i,i],s:[i,i],s:f,s:f,s:o}", "windows", cells, "grid",
                            g->cols, g->rows, "window", g->win_w, g->win_h, "stride", g->stride_x,
                            g->stride_y, "seconds", secs, "windows_per_s",
                            secs > 0 ? cells / secs : 0.0, "classes", classes);
    json_dumpf(sum, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    putchar('\n');
    json_decref(sum);
out:
    free(hist);
    os_map_destroy(map);
    os_model_destroy(m);
    return rc;
}
