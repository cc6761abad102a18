/* onespike-train - the offline tool: build, inspect and (later) train one-step SNN models. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

void openblas_set_num_threads(int num_threads);

static const char usage[] =
    "usage: " CLI_PROG " COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  inspect MODEL [--json]        architecture, shapes, parameters, labels, checksum\n"
    "  classify --model MODEL [--top-k K] [--json] [--timesteps T] IMAGE...\n"
    "                                classify images offline (JPEG, TIFF, GeoTIFF, PNG, JPEG 2000)\n"
    "  fit --data DIR --out MODEL    train a one-time-step SNN (ANN+Units -> SNN T0..1 -> prune Units)\n"
    "  eval --model M --data DIR     top-1/top-5, per-class accuracy, confusion matrix\n"
    "  init --arch A --out FILE ...  write an untrained model of a recipe (for tests and demos)\n"
    "  stac --model M [--out FILE]   the model's input/output as a STAC MLM Item (JSON)\n"
    "  map --model M --in SCENE --out MAP.geojson [--raster MAP.tif]\n"
    "                                classify a whole scene window by window: GeoJSON, COG\n"
    "\n"
    "'" CLI_PROG " COMMAND --help' describes each command's options.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    /* The engine's sessions are single-threaded (its convolutions on the image call SGEMM);
     * classify, eval and map run one session per thread of their own. OpenBLAS's own threads
     * would only spin beside them (a third of map's time went to their sched_yield). fit
     * chooses its BLAS threads itself (--threads). */
    openblas_set_num_threads(1);
    if (!strcmp(cmd, "inspect"))
        return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "classify"))
        return cmd_classify(argc - 1, argv + 1);
    if (!strcmp(cmd, "fit"))
        return cmd_fit(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "stac"))
        return cmd_stac(argc - 1, argv + 1);
    if (!strcmp(cmd, "map"))
        return cmd_map(argc - 1, argv + 1);
    if (!strcmp(cmd, "init"))
        return cmd_init(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command \"%s\"\n\n%s", CLI_PROG, cmd, usage);
    return CLI_USAGE;
}
