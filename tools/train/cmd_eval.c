/* eval: accuracy of a model file on a labelled image folder, through the inference engine. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "cli.h"
#include "onespike/dataset.h"
#include "onespike/fit_report.h"
#include "onespike/model.h"
#include "onespike/session.h"

static const char help[] =
    "usage: " CLI_PROG " eval --model MODEL --data DIR [--list FILE] [--json] [--dense] [--tta N]\n"
    "       [--isa scalar|avx2|avx512|auto] [--weights fp32|fp16|int8] [--bands R,G,B] [--scale S]\n"
    "\n"
    "Classify every image (.jpg .jpeg .tif .tiff .png .jp2) of DIR (one subfolder per class, named as the model's labels) or only\n"
    "those named in FILE (paths relative to DIR, one per line), exactly as the server would, and\n"
    "report top-1 and top-5 accuracy, per-class accuracy and the confusion matrix.\n"
    "\n"
    "  --json   {\"top1\",\"top5\" "
    "(fractions),\"per_class\",\"confusion\",\"images\",\"failed\",...,\"answers\"}\n"
    "           answers: per image {\"image\",\"class\",\"top1\",\"probability\"} or "
    "{\"image\",\"error\"}\n"
    "  --dense  dense float kernels for every layer (the reference path), not the event-driven\n"
    "           convolutions of spikes\n"
    "  --tta N  test-time augmentation: average the answers of N views of each image (1, 2, 4\n"
    "           or 8: the image turned by 90 degrees and mirrored; N/2 to N times the compute;\n"
    "           default 1)\n"
    "  --isa SET    instruction set of the event-driven kernels (as ONESPIKE_ISA; default: the\n"
    "               widest this CPU runs); a set it lacks is refused\n"
    "  --weights F  weight rows of the event-driven convolutions, fp32 (default), fp16 or int8\n"
    "               (as ONESPIKE_WEIGHTS)\n"
    "  --bands R,G,B    raster bands read as R, G, B (default: the model's, else 1,2,3)\n"
    "  --scale S        how raster values become 0..255: none, range:LO,HI,\n"
    "                   range:LO1,HI1,LO2,HI2,LO3,HI3 or percentile:LO,HI (per image)\n";

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", 1, 0, 'm'},   {"data", 1, 0, 'd'},  {"list", 1, 0, 'l'},
        {"json", 0, 0, 'j'},    {"dense", 0, 0, 'D'}, {"isa", 1, 0, 'I'},
        {"weights", 1, 0, 'W'}, {"bands", 1, 0, 'b'}, {"scale", 1, 0, 's'},
        {"tta", 1, 0, 't'},     {"help", 0, 0, 'h'},  {0}};
    const char *model = NULL, *data = NULL, *list = NULL;
    const char *bands = NULL, *scale = NULL;
    bool json = false, dense = false;
    int ch, views = 1;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 'l': list = optarg; break;
        case 'j': json = true; break;
        case 'D': dense = true; break;
        /* The evaluation loads the model and creates its session itself (fit_eval_files, the
         * same routine fit's report uses), so the choices reach it the way they reach every
         * session: through the environment, set before anything else runs. */
        case 'I': setenv(OS_SESSION_ISA_ENV, optarg, 1); break;
        case 'W': setenv(OS_MODEL_WEIGHTS_ENV, optarg, 1); break;
        case 'b': bands = optarg; break;
        case 's': scale = optarg; break;
        case 't':
            if (cli_views("eval", optarg, &views) != CLI_OK)
                return CLI_USAGE;
            break;
        case 'h': fputs(help, stdout); return CLI_OK;
        default: return cli_usage_error("eval", "unknown option");
        }
    }
    if (!model || !data || optind != argc)
        return cli_usage_error("eval", "--model and --data are required");
    os_raster_input in;
    const bool have_in = bands || scale;
    if (have_in) { /* the overrides apply over the model's own description */
        os_model *mm = NULL;
        os_status ms = os_model_load(model, &mm);
        if (ms) {
            cli_report("eval", ms);
            return CLI_FAIL;
        }
        int urc = cli_raster_input("eval", mm, bands, scale, &in);
        os_model_destroy(mm);
        if (urc != CLI_OK)
            return urc;
    }
    os_dataset *ds = NULL;
    size_t *idx = NULL, n = 0;
    json_t *r = NULL;
    os_status st = os_dataset_scan(data, &ds);
    if (!st && list)
        st = os_dataset_select(ds, list, &idx, &n);
    else if (!st)
        n = os_dataset_size(ds);
    if (!st)
        st = fit_eval_files(model, ds, idx, n, dense, have_in ? &in : NULL, views, &r);
    if (st) {
        cli_report("eval", st);
        free(idx);
        os_dataset_destroy(ds);
        return CLI_FAIL;
    }
    if (json) {
        json_dumpf(r, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else {
        char tag[24] = "";
        if (views > 1)
            snprintf(tag, sizeof tag, " (%d views)", views);
        printf("%s on %s%s: top-1 %.2f %%, top-5 %.2f %% (%lld images, %lld failed)\n", model,
               data, tag,
               100 * json_number_value(json_object_get(r, "top1")),
               100 * json_number_value(json_object_get(r, "top5")),
               json_integer_value(json_object_get(r, "images")),
               json_integer_value(json_object_get(r, "failed")));
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(r, "per_class"), k, v) {
            printf("  %-24s %6.1f %%\n", k, 100 * json_number_value(v));
        }
    }
    json_decref(r);
    free(idx);
    os_dataset_destroy(ds);
    return CLI_OK;
}
