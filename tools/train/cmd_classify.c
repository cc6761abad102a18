/* classify: offline classification of image files (JPEG, TIFF, GeoTIFF, PNG, JPEG 2000), one
 * result per image; a bad image is reported and the rest still run. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "cli.h"
#include "onespike/session.h"

/* CLASSIFY_BATCH: images per pass through the network (os_session_run_batch). */
enum { DEFAULT_TOP_K = 3, MAX_IMAGE_BYTES = 256 * 1024 * 1024, CLASSIFY_BATCH = 8 };

static const char help[] =
    "usage: " CLI_PROG " classify --model MODEL [--top-k K] [--json] [--tta N] [--timesteps T]\n"
    "       [--dense] [--isa scalar|avx2|avx512|auto] [--weights fp32|fp16|int8] [--bands R,G,B]\n"
    "       [--scale S] IMAGE...\n"
    "\n"
    "Classify image files (JPEG; TIFF, GeoTIFF, PNG, JPEG 2000 through GDAL) with MODEL:\n"
    "decode, pick the bands and scale the values, resize and normalise as the model says, run the\n"
    "network, print the K most probable classes per image. An image that cannot be read or\n"
    "decoded is reported (on stderr, or as {\"image\",\"error\"} with --json) and the others go\n"
    "on; the exit status is then 1.\n"
    "\n"
    "  --model MODEL     model file (required)\n"
    "  --top-k K         classes per image (default 3; capped at the number of classes)\n"
    "  --json            one JSON object per line: "
    "{\"image\",\"predictions\":[{\"label\",\"index\",\"probability\"}]}\n"
    "  --tta N           test-time augmentation: average the answers of N views of each image\n"
    "                    (1, 2, 4 or 8: turned by 90 degrees and mirrored; N/2 to N times the\n"
    "                    compute; default 1)\n"
    "  --timesteps T     run the same weights for T time steps (default: the model's)\n"
    "  --dense           dense float kernels for every layer (the reference path), not the\n"
    "                    event-driven convolutions of spikes\n"
    "  --isa SET         instruction set of the event-driven kernels (default: ONESPIKE_ISA,\n"
    "                    else the widest this CPU runs); a set it lacks is refused\n"
    "  --weights FMT     weight rows of the event-driven convolutions: fp32 (exact, default:\n"
    "                    ONESPIKE_WEIGHTS, else fp32), fp16 (binary16, 1/2 the bytes of the\n"
    "                    layers beyond half the L2) or int8 (per-channel scale, 1/4 the bytes)\n"
    "  --max-pixels N    refuse images with more pixels than this (default 50000000), checked\n"
    "                    from the header before decoding\n"
    "  --bands R,G,B     raster bands read as R, G, B (default: the model's, else 1,2,3)\n"
    "  --scale S         how raster values become 0..255 (default: the model's, else none):\n"
    "                    none (8-bit only), range:LO,HI, range:LO1,HI1,LO2,HI2,LO3,HI3, or\n"
    "                    percentile:LO,HI (per image, from the pixels read)\n"
    "  --help            this text\n";

static void print_result(const os_model *m, const char *path, const float *p, const int *idx,
                         int k, bool json)
{
    if (!json) {
        printf("%s:", path);
        for (int j = 0; j < k; j++)
            printf("%s %s %.4f", j ? "," : "", os_model_label(m, idx[j]), p[idx[j]]);
        printf("\n");
        return;
    }
    json_t *preds = json_array();
    for (int j = 0; j < k; j++)
        json_array_append_new(preds, json_pack("{s:s, s:i, s:f}", "label", os_model_label(m, idx[j]),
                                               "index", idx[j], "probability", (double)p[idx[j]]));
    json_t *o = json_pack("{s:s, s:o}", "image", path, "predictions", preds);
    json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    putchar('\n');
    json_decref(o);
}

static void print_error(const char *path, const char *msg, bool json)
{
    if (!json) {
        fprintf(stderr, "%s: %s: %s\n", CLI_PROG, path, msg);
        return;
    }
    json_t *o = json_pack("{s:s, s:s}", "image", path, "error", msg);
    json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(o);
}

int cmd_classify(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"top-k", required_argument, NULL, 'k'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"timesteps", required_argument, NULL, 't'},
                                         {"max-pixels", required_argument, NULL, 'p'},
                                         {"dense", no_argument, NULL, 'D'},
                                         {"isa", required_argument, NULL, 'I'},
                                         {"weights", required_argument, NULL, 'W'},
                                         {"bands", required_argument, NULL, 'b'},
                                         {"scale", required_argument, NULL, 's'},
                                         {"tta", required_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *model_path = NULL, *isa = NULL, *weights = NULL, *bands = NULL, *scale = NULL;
    long top_k = DEFAULT_TOP_K, T = 0, max_pixels = 0;
    bool json = false, dense = false;
    int ch, views = 1;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model_path = optarg; break;
        case 'k':
            if (!cli_long("classify", "--top-k", optarg, 1, 100000, &top_k))
                return CLI_USAGE;
            break;
        case 't':
            if (!cli_long("classify", "--timesteps", optarg, 1, OS_MODEL_MAX_TIMESTEPS, &T))
                return CLI_USAGE;
            break;
        case 'p':
            if (!cli_long("classify", "--max-pixels", optarg, 1, 1L << 40, &max_pixels))
                return CLI_USAGE;
            break;
        case 'j': json = true; break;
        case 'D': dense = true; break;
        case 'I': isa = optarg; break;
        case 'W': weights = optarg; break;
        case 'b': bands = optarg; break;
        case 's': scale = optarg; break;
        case 'v':
            if (cli_views("classify", optarg, &views) != CLI_OK)
                return CLI_USAGE;
            break;
        case 'h': fputs(help, stdout); return CLI_OK;
        default: return cli_usage_error("classify", "unknown option");
        }
    }
    if (!model_path)
        return cli_usage_error("classify", "--model MODEL is required");
    if (optind >= argc)
        return cli_usage_error("classify", "no IMAGE given");

    int rc = CLI_OK;
    os_model *m = NULL;
    os_session *s = NULL;
    float *p = NULL;
    int *idx = NULL;
    os_raster_input in;
    if ((rc = cli_load_model("classify", model_path, weights, bands, scale, &m, &in)) != CLI_OK)
        return rc;
    os_status st;
    /* a pass: CLASSIFY_BATCH images, or one image in its views */
    const int per_pass = views > 1 ? 1 : CLASSIFY_BATCH, room = views > 1 ? views : CLASSIFY_BATCH;
    os_session_opts so = {.timesteps = (int)T, .max_pixels = (size_t)max_pixels, .dense = dense,
                          .isa = isa, .max_batch = room};
    if ((st = os_session_create(m, &so, &s))) {
        cli_report("cannot create a session", st);
        rc = CLI_FAIL;
        goto out;
    }
    int n = os_model_classes(m), k = top_k < n ? (int)top_k : n;
    p = malloc((size_t)room * n * sizeof *p);
    idx = malloc((size_t)n * sizeof *idx);
    if (!p || !idx) {
        cli_report("classify", os_fail(OS_ENOMEM, "no memory"));
        rc = CLI_FAIL;
        goto out;
    }
    /* Images go through the network a batch at a time; answers and errors are printed in the
     * order the images were given. */
    for (int first = optind; first < argc;) {
        int arg[CLASSIFY_BATCH * 2], slot[CLASSIFY_BATCH * 2], n_args = 0, loaded = 0;
        char err[CLASSIFY_BATCH * 2][256];
        for (; first < argc && loaded < per_pass && n_args < CLASSIFY_BATCH * 2; first++) {
            void *buf = NULL;
            size_t len = 0;
            os_errclear();
            st = os_read_file(argv[first], MAX_IMAGE_BYTES, &buf, &len);
            if (!st)
                st = os_session_load_image_at(s, loaded, buf, len, &in);
            free(buf);
            arg[n_args] = first;
            slot[n_args] = st ? -1 : loaded++;
            if (st)
                snprintf(err[n_args], sizeof err[n_args], "%s",
                         *os_errdetail() ? os_errdetail() : os_strerror(st));
            n_args++;
        }
        if (loaded && views > 1 && (st = os_session_run_views(s, views, p))) {
            cli_report("classify", st);
            rc = CLI_FAIL;
            goto out;
        }
        if (loaded && views == 1)
            os_session_run_batch(s, loaded, p, NULL);
        for (int a = 0; a < n_args; a++) {
            if (slot[a] < 0) {
                print_error(argv[arg[a]], err[a], json);
                rc = CLI_FAIL;
                continue;
            }
            const float *pa = p + (size_t)slot[a] * n;
            os_topk(pa, n, k, idx);
            print_result(m, argv[arg[a]], pa, idx, k, json);
        }
    }
out:
    free(idx);
    free(p);
    os_session_destroy(s);
    os_model_destroy(m);
    return rc;
}
