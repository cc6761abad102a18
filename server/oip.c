/* oip.c - Open Inference Protocol documents (see oip.h). */
#include "oip.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "onespike/session.h"
#include "onespike/shape.h"

#define OIP_MAX_DEPTH 8 /* nesting of an FP32 "data" array, at most */
#define OIP_PLATFORM  "onespike"
#define OIP_SHAPE_TEXT 96                   /* bytes of a shape quoted in a message */
#define OIP_SHAPE_DIMS (OIP_SHAPE_TEXT / 2) /* more dimensions than fit in that text */

typedef enum { WALK_OK = 0, WALK_NOT_NUMBER, WALK_TOO_DEEP, WALK_RANGE } walk_result;

/* Walk a (possibly nested) number array in row-major order. Counts numbers into *count; when dst
 * is set, copies those with index in [from, from + n) to dst. Stops at something other than an
 * array or a number, at nesting deeper than OIP_MAX_DEPTH, and at a number a float cannot hold
 * (converting it would be undefined behaviour); *count is then the index of the culprit. */
static walk_result walk_numbers(const json_t *a, int depth, size_t *count, float *dst, size_t from,
                                size_t n)
{
    if (depth > OIP_MAX_DEPTH)
        return WALK_TOO_DEEP;
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
    {
        if (json_is_array(v)) {
            walk_result r = walk_numbers(v, depth + 1, count, dst, from, n);
            if (r)
                return r;
        } else if (json_is_number(v)) {
            double x = json_number_value(v);
            if (!(fabs(x) <= FLT_MAX))
                return WALK_RANGE;
            if (dst && *count >= from && *count < from + n)
                dst[*count - from] = (float)x;
            (*count)++;
        } else {
            return WALK_NOT_NUMBER;
        }
    }
    return WALK_OK;
}

/* The shape of a request as text for its error messages. The array can be as long as the client
 * likes; every dimension takes two characters or more ("1,"), so dimensions past the first
 * OIP_SHAPE_DIMS are cut from the text anyway. Entries are known to be integers here. */
static void shape_text(const json_t *shape, char out[OIP_SHAPE_TEXT])
{
    int64_t dims[OIP_SHAPE_DIMS];
    size_t n = json_array_size(shape);
    if (n > OIP_SHAPE_DIMS)
        n = OIP_SHAPE_DIMS;
    for (size_t i = 0; i < n; i++)
        dims[i] = (int64_t)json_integer_value(json_array_get(shape, i));
    os_shape_format(out, OIP_SHAPE_TEXT, dims, (int)n);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static bool
fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return false;
}

static bool check_outputs(const json_t *outputs, char *err, size_t cap)
{
    if (!outputs)
        return true;
    if (!json_is_array(outputs))
        return fail(err, cap, "\"outputs\" must be an array");
    size_t i;
    const json_t *o;
    json_array_foreach(outputs, i, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!name)
            return fail(err, cap, "outputs[%zu].name missing or not a string", i);
        if (strcmp(name, SRV_OIP_OUTPUT))
            return fail(err, cap, "outputs[%zu].name \"%.64s\": the model has one output, \"%s\"",
                        i, name, SRV_OIP_OUTPUT);
    }
    return true;
}

/* Values (containers, strings, numbers, literals; keys included) in a JSON text, counted without
 * building anything: a linear scan that only needs to be right for valid JSON and never read
 * out of bounds on anything else (jansson reports what is malformed afterwards). Stops counting
 * once past limit. */
static size_t count_values(const char *b, size_t len, size_t limit)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n <= limit; i++) {
        char ch = b[i];
        if (ch == '"') {
            for (i++; i < len && b[i] != '"'; i++)
                if (b[i] == '\\')
                    i++;
            n++;
        } else if (ch == '[' || ch == '{') {
            n++;
        } else if (ch == '-' || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z')) {
            while (i + 1 < len &&
                   (b[i + 1] == '-' || b[i + 1] == '+' || b[i + 1] == '.' ||
                    (b[i + 1] >= '0' && b[i + 1] <= '9') || (b[i + 1] >= 'a' && b[i + 1] <= 'z') ||
                    (b[i + 1] >= 'A' && b[i + 1] <= 'Z')))
                i++;
            n++;
        }
    }
    return n;
}

size_t srv_oip_max_values(const os_model *m)
{
    int c, h, w;
    os_model_input(m, &c, &h, &w);
    return (size_t)SRV_OIP_MAX_BATCH * (size_t)c * (size_t)h * (size_t)w + SRV_OIP_EXTRA_VALUES;
}

os_status srv_oip_load(const void *body, size_t len, const os_model *m, json_t **root, char *err,
                       size_t cap)
{
    *root = NULL;
    size_t limit = srv_oip_max_values(m), n = count_values(body, len, limit);
    if (n > limit) {
        snprintf(err, cap,
                 "request holds more than %zu JSON values, more than any request to this model "
                 "needs (%d inputs of its size)",
                 limit, SRV_OIP_MAX_BATCH);
        return OS_ETOOBIG;
    }
    json_error_t je;
    /* Duplicate keys are refused: with last-wins, a proxy or logger that reads the first
     * "datatype" or "shape" would see another request than the one we run. */
    *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!*root) {
        snprintf(err, cap, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return OS_EFORMAT;
    }
    return OS_OK;
}

bool srv_oip_parse(json_t *root, const os_model *m, srv_oip_request *out, char *err, size_t cap)
{
    char shape_buf[OIP_SHAPE_TEXT];
    memset(out, 0, sizeof *out);
    if (!json_is_object(root))
        return fail(err, cap, "request body must be a JSON object");
    const json_t *id = json_object_get(root, "id");
    if (id && !json_is_string(id))
        return fail(err, cap, "\"id\" must be a string");
    out->id = json_string_value(id);
    if (!check_outputs(json_object_get(root, "outputs"), err, cap))
        return false;
    const json_t *params = json_object_get(root, "parameters");
    if (params && !json_is_object(params) && !json_is_null(params))
        return fail(err, cap, "\"parameters\" must be an object");
    const json_t *tta = json_object_get(params, "tta");
    if (tta) {
        const json_int_t v = json_integer_value(tta);
        if (!json_is_integer(tta) || v < 1 || v > OS_SESSION_MAX_VIEWS ||
            !os_session_views_valid((int)v))
            return fail(err, cap, "parameters.tta must be 1, 2, 4 or 8 (test-time views)");
        if (os_session_views_check(m, (int)v))
            return fail(err, cap, "parameters.tta: %s", os_errdetail());
        out->views = (int)v;
    }
    const json_t *inputs = json_object_get(root, "inputs");
    if (!json_is_array(inputs))
        return fail(err, cap, "\"inputs\" missing or not an array");
    if (json_array_size(inputs) != 1)
        return fail(err, cap, "\"inputs\" has %zu entries; the model takes exactly one",
                    json_array_size(inputs));
    const json_t *in = json_array_get(inputs, 0);
    if (!json_is_object(in))
        return fail(err, cap, "inputs[0] must be an object");
    if (!json_is_string(json_object_get(in, "name")))
        return fail(err, cap, "inputs[0].name missing or not a string");
    const char *dt = json_string_value(json_object_get(in, "datatype"));
    if (!dt)
        return fail(err, cap, "inputs[0].datatype missing or not a string");
    const json_t *shape = json_object_get(in, "shape");
    if (!json_is_array(shape) || json_array_size(shape) == 0)
        return fail(err, cap, "inputs[0].shape missing or not a non-empty array");
    size_t i;
    const json_t *d;
    json_array_foreach(shape, i, d)
    {
        if (!json_is_integer(d) || json_integer_value(d) < 1)
            return fail(err, cap, "inputs[0].shape[%zu] must be a positive integer", i);
    }
    json_t *data = json_object_get(in, "data");
    if (!json_is_array(data))
        return fail(err, cap, "inputs[0].data missing or not an array");
    shape_text(shape, shape_buf);
    out->data = data;

    if (!strcmp(dt, "BYTES")) {
        if (json_array_size(shape) != 1)
            return fail(err, cap, "inputs[0].shape %s: BYTES input must have shape [N]", shape_buf);
        json_int_t n = json_integer_value(json_array_get(shape, 0));
        if (n > SRV_OIP_MAX_BATCH)
            return fail(err, cap, "inputs[0].shape %s: batch of at most %d images", shape_buf,
                        SRV_OIP_MAX_BATCH);
        if (json_array_size(data) != (size_t)n)
            return fail(err, cap, "inputs[0].data has %zu elements, shape %s says %lld",
                        json_array_size(data), shape_buf, (long long)n);
        json_array_foreach(data, i, d)
        {
            if (!json_is_string(d))
                return fail(err, cap, "inputs[0].data[%zu] must be a base64 string", i);
        }
        out->kind = SRV_OIP_BYTES;
        out->batch = (int)n;
        return true;
    }
    if (strcmp(dt, "FP32"))
        return fail(err, cap,
                    "inputs[0].datatype \"%.32s\" not supported: use BYTES (base64 JPEG) or FP32",
                    dt);
    int c, h, w;
    os_model_input(m, &c, &h, &w);
    size_t rank = json_array_size(shape);
    json_int_t n = rank == 4 ? json_integer_value(json_array_get(shape, 0)) : 1;
    size_t off = rank == 4 ? 1 : 0;
    if ((rank != 3 && rank != 4) || json_integer_value(json_array_get(shape, off)) != c ||
        json_integer_value(json_array_get(shape, off + 1)) != h ||
        json_integer_value(json_array_get(shape, off + 2)) != w)
        return fail(err, cap, "inputs[0].shape %s: the model input is [N,%d,%d,%d]", shape_buf, c,
                    h, w);
    if (n > SRV_OIP_MAX_BATCH)
        return fail(err, cap, "inputs[0].shape %s: batch of at most %d", shape_buf,
                    SRV_OIP_MAX_BATCH);
    size_t count = 0, want = (size_t)n * (size_t)c * (size_t)h * (size_t)w;
    switch (walk_numbers(data, 1, &count, NULL, 0, 0)) {
    case WALK_OK: break;
    case WALK_RANGE:
        return fail(err, cap, "inputs[0].data: number %zu is outside the range of FP32 (+-%g)",
                    count, (double)FLT_MAX);
    case WALK_NOT_NUMBER:
    case WALK_TOO_DEEP:
        return fail(err, cap, "inputs[0].data must hold only numbers (nested at most %d deep)",
                    OIP_MAX_DEPTH);
    }
    if (count != want)
        return fail(err, cap, "inputs[0].data has %zu numbers, shape %s needs %zu", count,
                    shape_buf, want);
    out->kind = SRV_OIP_FP32;
    out->batch = (int)n;
    out->item_floats = (size_t)c * (size_t)h * (size_t)w;
    return true;
}

void srv_oip_bytes_item(const srv_oip_request *rq, int i, const char **text, size_t *len)
{
    const json_t *s = json_array_get(rq->data, (size_t)i);
    *text = json_string_value(s);
    *len = json_string_length(s);
}

void srv_oip_fp32_item(const srv_oip_request *rq, int i, float *dst)
{
    size_t count = 0;
    /* Validated by srv_oip_parse: every element is a number in range and the count matches. */
    (void)walk_numbers(rq->data, 1, &count, dst, (size_t)i * rq->item_floats, rq->item_floats);
}

json_t *srv_oip_response(const char *model, const char *version, const char *id, int batch,
                         int classes, json_t *probs)
{
    return json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:[i,i], s:o}]}", "model_name", model,
                     "model_version", version, "id", id, "outputs", "name", SRV_OIP_OUTPUT,
                     "datatype", "FP32", "shape", batch, classes, "data", probs);
}

json_t *srv_oip_server_meta(const char *const *names, int n_models)
{
    json_t *models = json_array();
    for (int i = 0; i < n_models; i++)
        json_array_append_new(models, json_string(names[i]));
    return json_pack("{s:s, s:s, s:[s,s,s], s:o}", "name", "onespike-serve", "version", SRV_VERSION,
                     "extensions", "classify", "health", "metrics", "models", models);
}

json_t *srv_oip_model_meta(const char *name, const os_model *m, int tta)
{
    int c, h, w;
    os_model_input(m, &c, &h, &w);
    int k = os_model_classes(m);
    json_t *labels = json_array();
    for (int i = 0; i < k; i++)
        json_array_append_new(labels, json_string(os_model_label(m, i)));
    const float *mean = os_model_mean(m), *std = os_model_std(m);
    const json_t *doc = os_model_doc(m);
    json_t *arch = json_object_get(doc, "arch");
    /* "runs": the workers' path ("event, avx2, fp32"): their sessions take default options */
    char runs[64] = "unknown";
    (void)os_session_describe(m, NULL, runs, sizeof runs);
    return json_pack("{s:s, s:[s], s:s, s:[{s:s, s:s, s:[i]}, {s:s, s:s, s:[i,i,i,i]}],"
                     " s:[{s:s, s:s, s:[i,i]}], s:o, s:{s:i, s:i, s:i}, s:i,"
                     " s:{s:s, s:[f,f,f], s:[f,f,f], s:s, s:I, s:i, s:O?, s:s, s:i}}",
                     "name", name, "versions", os_model_version(m), "platform", OIP_PLATFORM,
                     "inputs", "name", "image", "datatype", "BYTES", "shape", -1, "name", "input",
                     "datatype", "FP32", "shape", -1, c, h, w, "outputs", "name", SRV_OIP_OUTPUT,
                     "datatype", "FP32", "shape", -1, k, "labels", labels, "input_size", "channels",
                     c, "height", h, "width", w, "timesteps", os_model_timesteps(m), "parameters",
                     "resize", os_resize_policy_name(os_model_resize(m)), "mean", (double)mean[0],
                     (double)mean[1], (double)mean[2], "std", (double)std[0], (double)std[1],
                     (double)std[2], "sha256", os_model_sha256(m), "params",
                     (json_int_t)os_net_params(os_model_net(m)), "layers",
                     os_net_count(os_model_net(m)), "arch", arch, "runs", runs, "tta", tta);
}
