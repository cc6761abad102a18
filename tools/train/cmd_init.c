/* init: write an untrained model of one of the architecture recipes. Training (fit) starts from
 * the same recipes; init exists so the serving side, tests and demos have real model files
 * written by our own code without a training run. Its predictions are meaningless. */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "onespike/arch.h"
#include "cli.h"
#include "onespike/model.h"

enum { INIT_MAX_CLASSES = 10000, INIT_MAX_INPUT = 1024 };

static const char help[] =
    "usage: " CLI_PROG " init --arch A --out FILE (--labels L1,L2,... | --data DIR) [options]\n"
    "\n"
    "Write an UNTRAINED model (random weights) of a recipe: for tests, demos and benchmarks.\n"
    "\n"
    "  --arch A          vgg11, vgg16, resnet18, resnet20,\n"
    "                    msresnet18, msresnet20 (required)\n"
    "  --out FILE        model file to write, atomically (required)\n"
    "  --labels LIST     comma-separated class names, or\n"
    "  --data DIR        take the class names from DIR's subfolders (sorted)\n"
    "  --width-mult W    channel multiplier (default 0.25)\n"
    "  --input PX        square input side (default 64)\n"
    "  --units M         Units to insert (default 0)\n"
    "  --unit-at AS      stage that gets the Units (default 2)\n"
    "  --ann             ReLU + BatchNorm network (default: LIF spiking network, BN folded away)\n"
    "  --timesteps T     time steps stored in the model (default 1)\n"
    "  --threshold V     initial LIF threshold (default 1.0)\n"
    "  --leak V          initial LIF leak (default 1.0)\n"
    "  --name NAME       model name (default: the arch)\n"
    "  --seed N          weight initialisation seed (default 1)\n"
    "  --help            this text\n";

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Labels from LIST or DIR's subfolders, into a JSON array. */
static json_t *collect_labels(const char *list, const char *dir)
{
    json_t *arr = json_array();
    if (list) {
        char *copy = strdup(list), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (*t)
                json_array_append_new(arr, json_string(t));
        free(copy);
        return arr;
    }
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return arr;
    }
    char *names[INIT_MAX_CLASSES];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < INIT_MAX_CLASSES) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, json_string(names[i]));
        free(names[i]);
    }
    return arr;
}

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"arch", required_argument, NULL, 'a'},      {"out", required_argument, NULL, 'o'},
        {"labels", required_argument, NULL, 'l'},    {"data", required_argument, NULL, 'd'},
        {"width-mult", required_argument, NULL, 'w'}, {"input", required_argument, NULL, 'i'},
        {"units", required_argument, NULL, 'u'},     {"unit-at", required_argument, NULL, 'U'},
        {"ann", no_argument, NULL, 'A'},             {"timesteps", required_argument, NULL, 't'},
        {"threshold", required_argument, NULL, 'T'}, {"leak", required_argument, NULL, 'L'},
        {"name", required_argument, NULL, 'n'},      {"seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},            {0}};
    os_arch_opts ao = {.width_mult = 0.25, .input = 64, .unit_at = 2, .spiking = true,
                       .threshold = 1.0f, .leak = 1.0f, .seed = 1};
    const char *out = NULL, *labels = NULL, *data = NULL, *name = NULL;
    long v, T = 1;
    double d;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'a': ao.name = optarg; break;
        case 'o': out = optarg; break;
        case 'l': labels = optarg; break;
        case 'd': data = optarg; break;
        case 'n': name = optarg; break;
        case 'A': ao.spiking = false; break;
        case 'w':
            if (!os_parse_double(optarg, 0.01, 16, &ao.width_mult))
                return cli_usage_error("init", "--width-mult \"%s\": expected 0.01..16", optarg);
            break;
        case 'i':
            if (!cli_long("init", "--input", optarg, 8, INIT_MAX_INPUT, &v))
                return CLI_USAGE;
            ao.input = (int)v;
            break;
        case 'u':
            if (!cli_long("init", "--units", optarg, 0, 64, &v))
                return CLI_USAGE;
            ao.units = (int)v;
            break;
        case 'U':
            if (!cli_long("init", "--unit-at", optarg, 1, 16, &v))
                return CLI_USAGE;
            ao.unit_at = (int)v;
            break;
        case 't':
            if (!cli_long("init", "--timesteps", optarg, 1, OS_MODEL_MAX_TIMESTEPS, &T))
                return CLI_USAGE;
            break;
        case 'T':
            if (!os_parse_double(optarg, 1e-6, 1e6, &d))
                return cli_usage_error("init", "--threshold \"%s\": expected > 0", optarg);
            ao.threshold = (float)d;
            break;
        case 'L':
            if (!os_parse_double(optarg, 1e-6, 1, &d))
                return cli_usage_error("init", "--leak \"%s\": expected (0, 1]", optarg);
            ao.leak = (float)d;
            break;
        case 's':
            if (!cli_long("init", "--seed", optarg, 0, 1L << 62, &v))
                return CLI_USAGE;
            ao.seed = (uint64_t)v;
            break;
        case 'h': fputs(help, stdout); return CLI_OK;
        default: return cli_usage_error("init", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error("init", "unexpected argument \"%s\"", argv[optind]);
    if (!ao.name || !out)
        return cli_usage_error("init", "--arch and --out are required");
    if (!labels == !data)
        return cli_usage_error("init", "give exactly one of --labels and --data");
    ao.batchnorm = !ao.spiking;

    int rc = CLI_FAIL;
    os_arch *arch = NULL;
    json_t *doc = NULL, *labs = collect_labels(labels, data);
    ao.classes = (int)json_array_size(labs);
    if (ao.classes < 1) {
        fprintf(stderr, "%s init: no class labels found\n", CLI_PROG);
        goto out;
    }
    os_status st = os_arch_build(&ao, &arch);
    if (st) {
        cli_report("init", st);
        goto out;
    }
    doc = json_pack(
        "{s:s, s:s, s:s, s:i, s:{s:i, s:i, s:i, s:[f,f,f], s:[f,f,f], s:s}, s:O, s:O,"
        " s:{s:s, s:f, s:i, s:i, s:b}, s:{s:s, s:I}}",
        "name", name ? name : ao.name, "version", "1", "description",
        "untrained: random weights from onespike-train init", "timesteps", (int)T, "input",
        "channels", 3, "height", ao.input, "width", ao.input, "mean", 0.5, 0.5, 0.5, "std", 0.25,
        0.25, 0.25, "resize", "stretch", "labels", labs, "layers", os_arch_layers(arch), "arch",
        "name", ao.name, "width_mult", ao.width_mult, "units", ao.units, "unit_at", ao.unit_at,
        "spiking", ao.spiking, "training", "stage", "untrained", "seed", (json_int_t)ao.seed);
    size_t nt;
    const os_tensor_view *t = os_arch_tensors(arch, &nt);
    if ((st = os_model_write(out, doc, t, nt))) {
        cli_report("cannot write model", st);
        goto out;
    }
    printf("%s: untrained %s, %zu tensors, written\n", out, ao.name, nt);
    rc = CLI_OK;
out:
    json_decref(doc);
    json_decref(labs);
    os_arch_destroy(arch);
    return rc;
}
