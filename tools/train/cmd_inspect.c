/* inspect: everything a user needs to know about a model file before deploying it. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "onespike/model.h"
#include "onespike/session.h"

static const char help[] =
    "usage: " CLI_PROG " inspect MODEL [--json] [--isa SET] [--weights FMT]\n"
    "\n"
    "Load MODEL with full validation (container, SHA-256 of the tensors, architecture against\n"
    "tensor shapes) and describe it: name, version, input and preprocessing, time steps, labels,\n"
    "layer by layer with output shapes, parameters, LIF threshold/leak and Unit membership.\n"
    "A damaged or invalid file is refused with the reason and exit status 1.\n"
    "\n"
    "The \"runs\" line names the path a session on this machine takes: backend, instruction set\n"
    "and weight format of the event-driven convolutions (\"event, avx2, fp32\"), or \"dense\".\n"
    "\n"
    "  --json         one JSON object instead of text\n"
    "  --isa SET      as classify's: scalar, avx2, avx512 or auto (default: ONESPIKE_ISA)\n"
    "  --weights FMT  as classify's: fp32, fp16 or int8 (default: ONESPIKE_WEIGHTS, else fp32)\n"
    "  --help         this text\n";

static void from_names(const os_net *net, const os_layer *L, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int k = 0; k < L->n_from && o < n; k++) {
        const char *nm = L->from[k] == OS_NET_INPUT ? "input" : os_net_layer(net, L->from[k])->name;
        o += (size_t)snprintf(buf + o, n - o, "%s%s", k ? "," : "", nm);
    }
}

static json_t *layer_json(const os_net *net, const os_layer *L)
{
    char from[2 * OS_NET_NAME_MAX + 2];
    from_names(net, L, from, sizeof from);
    json_t *o = json_pack("{s:s, s:s, s:s, s:[i,i,i], s:I}", "name", L->name, "op",
                          os_op_name(L->op), "from", from, "shape", L->c, L->h, L->w, "params",
                          (json_int_t)L->params);
    if (L->op == OS_OP_CONV || L->op == OS_OP_MAXPOOL || L->op == OS_OP_AVGPOOL) {
        json_object_set_new(o, "kernel", json_pack("[i,i]", L->kh, L->kw));
        json_object_set_new(o, "stride", json_integer(L->stride));
        json_object_set_new(o, "pad", json_integer(L->pad));
    }
    if (L->op == OS_OP_LIF) {
        json_object_set_new(o, "threshold", json_real(L->threshold));
        json_object_set_new(o, "leak", json_real(L->leak));
    }
    if (L->op == OS_OP_BN)
        json_object_set_new(o, "folded", json_boolean(L->folded));
    if (L->unit)
        json_object_set_new(o, "unit", json_integer(L->unit));
    return o;
}

static int print_json(const os_model *m, const char *runs)
{
    const os_net *net = os_model_net(m);
    int c, h, w;
    os_model_input(m, &c, &h, &w);
    const float *mean = os_model_mean(m), *std = os_model_std(m);
    json_t *labels = json_array(), *layers = json_array();
    for (int i = 0; i < os_model_classes(m); i++)
        json_array_append_new(labels, json_string(os_model_label(m, i)));
    for (int i = 0; i < os_net_count(net); i++)
        json_array_append_new(layers, layer_json(net, os_net_layer(net, i)));
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:i, s:{s:i, s:i, s:i, s:[f,f,f], s:[f,f,f], s:s}, s:o, s:i, s:s, s:s,"
        " s:I, s:i, s:i, s:o}",
        "path", os_model_path(m), "name", os_model_name(m), "version", os_model_version(m),
        "timesteps", os_model_timesteps(m), "input", "channels", c, "height", h, "width", w,
        "mean", mean[0], mean[1], mean[2], "std", std[0], std[1], std[2], "resize",
        os_resize_policy_name(os_model_resize(m)), "labels", labels, "classes",
        os_model_classes(m), "sha256", os_model_sha256(m), "checksum", "verified", "parameters",
        (json_int_t)os_net_params(net), "units", os_net_units(net), "lif_layers",
        os_net_lif_count(net), "layers", layers);
    const os_raster_input *ri = os_model_raster_input(m);
    char scale[OS_RASTER_TEXT_MAX];
    os_raster_scale_format(ri, scale, sizeof scale);
    json_t *in = json_object_get(o, "input");
    json_object_set_new(in, "bands", json_pack("[i,i,i]", ri->bands[0], ri->bands[1], ri->bands[2]));
    json_object_set_new(in, "scale", json_string(scale));
    json_object_set_new(o, "runs", json_string(runs));
    json_object_set_new(o, "plan_bytes", json_integer((json_int_t)os_model_plan_bytes(m)));
    const json_t *doc = os_model_doc(m);
    const char *extra[] = {"arch", "training", "metrics", "description"};
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) {
        json_t *v = json_object_get(doc, extra[i]);
        if (v)
            json_object_set(o, extra[i], v);
    }
    int rc = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) ? CLI_FAIL : CLI_OK;
    putchar('\n');
    json_decref(o);
    return rc;
}

static void print_text(const os_model *m, const char *runs)
{
    const os_net *net = os_model_net(m);
    int c, h, w;
    os_model_input(m, &c, &h, &w);
    const float *mean = os_model_mean(m), *std = os_model_std(m);
    printf("%s\n", os_model_path(m));
    printf("  name        %s (version %s)\n", os_model_name(m), os_model_version(m));
    printf("  checksum    sha256 %s (verified)\n", os_model_sha256(m));
    printf("  input       %dx%dx%d, resize %s, mean [%.4f %.4f %.4f], std [%.4f %.4f %.4f]\n", c,
           h, w, os_resize_policy_name(os_model_resize(m)), mean[0], mean[1], mean[2], std[0],
           std[1], std[2]);
    const os_raster_input *ri = os_model_raster_input(m);
    char scale[OS_RASTER_TEXT_MAX];
    os_raster_scale_format(ri, scale, sizeof scale);
    printf("  rasters     bands %d,%d,%d as R,G,B, scale %s%s\n", ri->bands[0], ri->bands[1],
           ri->bands[2], scale, os_raster_input_is_default(ri) ? " (default)" : "");
    printf("  timesteps   %d%s\n", os_model_timesteps(m),
           os_net_lif_count(net) ? "" : " (no LIF layers: an ANN)");
    printf("  parameters  %zu in %d layers (%d LIF, %d Units)\n", os_net_params(net),
           os_net_count(net), os_net_lif_count(net), os_net_units(net));
    printf("  runs        %s (event-driven weight copies: %.2f MB)\n", runs,
           (double)os_model_plan_bytes(m) / 1e6);
    printf("  labels      %d:", os_model_classes(m));
    for (int i = 0; i < os_model_classes(m); i++)
        printf("%s %s", i ? "," : "", os_model_label(m, i));
    printf("\n\n  %-3s %-22s %-8s %-22s %-14s %10s  %s\n", "#", "layer", "op", "from", "output",
           "params", "details");
    for (int i = 0; i < os_net_count(net); i++) {
        const os_layer *L = os_net_layer(net, i);
        char from[2 * OS_NET_NAME_MAX + 2], shape[48], det[96] = "";
        from_names(net, L, from, sizeof from);
        snprintf(shape, sizeof shape, "%dx%dx%d", L->c, L->h, L->w);
        if (L->op == OS_OP_CONV || L->op == OS_OP_MAXPOOL || L->op == OS_OP_AVGPOOL)
            snprintf(det, sizeof det, "k%dx%d s%d p%d", L->kh, L->kw, L->stride, L->pad);
        else if (L->op == OS_OP_LIF)
            snprintf(det, sizeof det, "threshold %.4g leak %.4g", L->threshold, L->leak);
        else if (L->op == OS_OP_BN)
            snprintf(det, sizeof det, "%s", L->folded ? "folded into conv" : "affine");
        if (L->unit)
            snprintf(det + strlen(det), sizeof det - strlen(det), " [unit %d]", L->unit);
        printf("  %-3d %-22s %-8s %-22s %-14s %10zu  %s\n", i, L->name, os_op_name(L->op), from,
               shape, L->params, det);
    }
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"isa", required_argument, NULL, 'I'},
                                         {"weights", required_argument, NULL, 'W'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    bool json = false;
    const char *isa = NULL, *weights = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'j': json = true; break;
        case 'I': isa = optarg; break;
        case 'W': weights = optarg; break;
        case 'h': fputs(help, stdout); return CLI_OK;
        default: return cli_usage_error("inspect", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("inspect", "expected exactly one MODEL file");
    os_model *m = NULL;
    const os_model_opts mo = {.weights = weights};
    os_status st = os_model_load_ex(argv[optind], &mo, &m);
    if (st) {
        cli_report("cannot load model", st);
        return CLI_FAIL;
    }
    char runs[64];
    const os_session_opts so = {.isa = isa};
    if ((st = os_session_describe(m, &so, runs, sizeof runs))) {
        cli_report("inspect", st);
        os_model_destroy(m);
        return CLI_FAIL;
    }
    int rc = CLI_OK;
    if (json)
        rc = print_json(m, runs);
    else
        print_text(m, runs);
    os_model_destroy(m);
    return rc;
}
