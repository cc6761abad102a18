/* stac: the model's input and output described as a STAC Item with the Machine Learning Model
 * extension (https://github.com/stac-extensions/mlm, v1.4.0), written beside the model file so
 * that catalogues and other tools know which raster bands it reads, how their values are
 * scaled, its input shape and its classes. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "onespike/model.h"
#include "onespike/safetensors.h"
#include "onespike/session.h"

#define STAC_VERSION          "1.0.0"
#define MLM_SCHEMA            "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"
#define CLASSIFICATION_SCHEMA "https://stac-extensions.github.io/classification/v2.0.0/schema.json"
#define STAC_SUFFIX           ".stac.json"
#define MODEL_SUFFIX          ".safetensors"
#define LEVELS                255.0 /* raster values are scaled to 0..255 before the model's normalisation */

enum { STAC_BATCH_SUGGESTION = 8, STAC_PATH_MAX = 4096 };

static const char help[] =
    "usage: " CLI_PROG " stac --model MODEL [--out FILE]\n"
    "\n"
    "Write MODEL's description as a STAC Item with the Machine Learning Model extension (MLM):\n"
    "mlm:input (the raster bands read as R,G,B, input shape, value_scaling from the raw band\n"
    "values to the model's input, resize), mlm:output (class probabilities with\n"
    "classification:classes), architecture, framework, parameters, and an asset for the model\n"
    "file. Default FILE: MODEL with .safetensors replaced by .stac.json.\n"
    "\n"
    "  --model MODEL   model file (required)\n"
    "  --out FILE      where to write the JSON\n"
    "  --help          this text\n";

/* value_scaling from raw band values to the model input, one object per channel. With scale
 * none or range the whole chain ((v - lo) * 255 / (hi - lo), then (x/255 - mean) / std) is one
 * z-score on the raw value: mean' = lo + mean * (hi - lo), stddev' = std * (hi - lo) (the
 * rounding to 8 bits and the clamp to lo..hi in between are said in the description). A
 * percentile stretch depends on each image: no static scaling, a processing expression. */
static json_t *value_scaling(const os_model *m, const os_raster_input *ri)
{
    if (ri->scale == OS_SCALE_PERCENTILE)
        return json_null();
    const float *mean = os_model_mean(m), *std = os_model_std(m);
    json_t *a = json_array();
    for (int c = 0; c < 3; c++) {
        double lo = ri->scale == OS_SCALE_RANGE ? ri->lo[c] : 0.0;
        double hi = ri->scale == OS_SCALE_RANGE ? ri->hi[c] : LEVELS;
        json_array_append_new(a, json_pack("{s:s, s:f, s:f}", "type", "z-score", "mean",
                                           lo + mean[c] * (hi - lo), "stddev", std[c] * (hi - lo)));
    }
    return a;
}

static json_t *pre_processing(const os_raster_input *ri, const char *scale)
{
    char expr[2 * OS_RASTER_TEXT_MAX];
    snprintf(expr, sizeof expr, "bands=%d,%d,%d scale=%s", ri->bands[0], ri->bands[1], ri->bands[2],
             scale);
    return json_pack("{s:s, s:s}", "format", "onespike-raster", "expression", expr);
}

static json_t *mlm_input(const os_model *m)
{
    const os_raster_input *ri = os_model_raster_input(m);
    char scale[OS_RASTER_TEXT_MAX], desc[4 * OS_RASTER_TEXT_MAX];
    os_raster_scale_format(ri, scale, sizeof scale);
    int c, h, w;
    os_model_input(m, &c, &h, &w);
    snprintf(desc, sizeof desc,
             "Raster bands %d,%d,%d read as red, green, blue; values scaled to 0..255 (%s: %s), "
             "rounded to 8 bits, then resized to %dx%d (%s: area average when shrinking, "
             "bilinear when growing) and normalised per channel ((v/255 - mean) / std). "
             "value_scaling gives the whole chain from raw band values as one z-score per "
             "channel, without the 8-bit rounding.",
             ri->bands[0], ri->bands[1], ri->bands[2], scale,
             ri->scale == OS_SCALE_NONE    ? "8-bit values as they are"
             : ri->scale == OS_SCALE_RANGE ? "fixed range, clamped"
                                           : "percentiles of each band of each image read",
             w, h, os_resize_policy_name(os_model_resize(m)));
    json_t *bands = json_array();
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "band%d", ri->bands[k]);
        json_array_append_new(bands, json_string(name));
    }
    json_t *in = json_pack(
        "{s:s, s:o, s:{s:[i,i,i,i], s:[s,s,s,s], s:s}, s:s, s:o, s:s, s:o}", "name", "RGB scene",
        "bands", bands, "input", "shape", -1, c, h, w, "dim_order", "batch", "channel", "height",
        "width", "data_type", "float32", "description", desc, "value_scaling", value_scaling(m, ri),
        "resize_type", "interpolation-area", "pre_processing_function", pre_processing(ri, scale));
    return json_pack("[o]", in);
}

static json_t *mlm_output(const os_model *m)
{
    json_t *classes = json_array();
    for (int k = 0; k < os_model_classes(m); k++)
        json_array_append_new(classes,
                              json_pack("{s:i, s:s}", "value", k, "name", os_model_label(m, k)));
    json_t *out =
        json_pack("{s:s, s:[s, s], s:{s:[i,i], s:[s,s], s:s}, s:s, s:o, s:o}", "name",
                  "classification", "tasks", "scene-classification", "classification", "result",
                  "shape", -1, os_model_classes(m), "dim_order", "batch", "class", "data_type",
                  "float32", "description", "class probabilities: softmax of the logits",
                  "classification:classes", classes, "post_processing_function", json_null());
    return json_pack("[o]", out);
}

/* The STAC Item of m; model_href is the model file's name as the asset points to it. */
static json_t *stac_item(const os_model *m, const char *model_href)
{
    const json_t *doc = os_model_doc(m);
    const char *arch = json_string_value(json_object_get(json_object_get(doc, "arch"), "name"));
    const char *desc = json_string_value(json_object_get(doc, "description"));
    char runs[OS_RASTER_TEXT_MAX];
    if (os_session_describe(m, NULL, runs, sizeof runs))
        snprintf(runs, sizeof runs, "dense");
    json_t *props = json_pack(
        "{s:n, s:s, s:s, s:s, s:s, s:[s,s], s:s, s:s, s:s, s:I, s:b, s:s, s:b, s:i, s:o, s:o}",
        "datetime", "start_datetime", "1900-01-01T00:00:00Z", "end_datetime",
        "9999-12-31T23:59:59Z", "description",
        desc ? desc : "onespike one-time-step spiking neural network, scene classification",
        "mlm:name", os_model_name(m), "mlm:tasks", "scene-classification", "classification",
        "mlm:architecture", arch ? arch : "unknown", "mlm:framework", "onespike",
        "mlm:framework_version", CLI_VERSION, "mlm:total_parameters",
        (json_int_t)os_net_params(os_model_net(m)), "mlm:pretrained", 0, "mlm:accelerator", "amd64",
        "mlm:accelerator_constrained", 1, "mlm:batch_size_suggestion", STAC_BATCH_SUGGESTION,
        "mlm:input", mlm_input(m), "mlm:output", mlm_output(m));
    json_object_set_new(props, "mlm:pretrained_source", json_null());
    json_object_set_new(props, "onespike:timesteps", json_integer(os_model_timesteps(m)));
    json_object_set_new(props, "onespike:sha256", json_string(os_model_sha256(m)));
    json_object_set_new(props, "onespike:runs", json_string(runs));
    json_t *asset = json_pack("{s:s, s:s, s:s, s:[s,s], s:s}", "href", model_href, "type",
                              "application/octet-stream; application=safetensors", "title",
                              "onespike model file (safetensors)", "roles", "mlm:model",
                              "mlm:weights", "mlm:artifact_type", "onespike.safetensors");
    return json_pack("{s:s, s:s, s:[s,s], s:s, s:n, s:o, s:[], s:{s:o}}", "type", "Feature",
                     "stac_version", STAC_VERSION, "stac_extensions", MLM_SCHEMA,
                     CLASSIFICATION_SCHEMA, "id", os_model_name(m), "geometry", "properties", props,
                     "links", "assets", "model", asset);
}

/* MODEL with .safetensors replaced by .stac.json (appended if it has no such suffix). */
static bool default_out(const char *model_path, char *buf, size_t n)
{
    size_t len = strlen(model_path), sl = strlen(MODEL_SUFFIX);
    size_t base = len > sl && !strcmp(model_path + len - sl, MODEL_SUFFIX) ? len - sl : len;
    if (base + sizeof STAC_SUFFIX > n)
        return false;
    snprintf(buf, n, "%.*s%s", (int)base, model_path, STAC_SUFFIX);
    return true;
}

os_status cli_write_stac(const os_model *m, const char *model_path, const char *out_path,
                         char *written, size_t n)
{
    char def[STAC_PATH_MAX];
    if (!out_path) {
        if (!default_out(model_path, def, sizeof def))
            return os_fail(OS_EINVAL, "%s: path too long for the STAC file beside it", model_path);
        out_path = def;
    }
    const char *slash = strrchr(model_path, '/');
    json_t *item = stac_item(m, slash ? slash + 1 : model_path);
    char *text = item ? json_dumps(item, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(item);
    if (!text)
        return os_fail(OS_ENOMEM, "%s: cannot build the STAC item", out_path);
    size_t len = strlen(text);
    os_status st = os_write_file_atomic(out_path, text, len);
    free(text);
    if (!st && written)
        snprintf(written, n, "%s", out_path);
    return st;
}

int cmd_stac(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *model_path = NULL, *out_path = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'h': fputs(help, stdout); return CLI_OK;
        default: return cli_usage_error("stac", "unknown option");
        }
    }
    if (!model_path || optind != argc)
        return cli_usage_error("stac", "--model MODEL is required (and nothing else)");
    char def[STAC_PATH_MAX];
    if (!out_path && !default_out(model_path, def, sizeof def))
        return cli_usage_error("stac", "model path too long for a default --out");
    os_model *m = NULL;
    os_status st = os_model_load(model_path, &m);
    if (st) {
        cli_report("cannot load model", st);
        return CLI_FAIL;
    }
    char written[STAC_PATH_MAX];
    st = cli_write_stac(m, model_path, out_path, written, sizeof written);
    os_model_destroy(m);
    if (st) {
        cli_report("stac", st);
        return CLI_FAIL;
    }
    printf("%s\n", written);
    return CLI_OK;
}
