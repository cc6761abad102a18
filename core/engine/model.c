/* model.c - model file = safetensors container + onespike metadata; see model.h. */
#include "onespike/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onespike/sha256.h"
#include "spikeconv.h"

#define KEY_FORMAT "onespike.format"
#define KEY_MODEL "onespike.model"
#define KEY_SHA "onespike.sha256"

enum { MODEL_MAX_LABELS = 100000, MODEL_MAX_LABEL_LEN = 256 };

struct os_model {
    char *label;       /* path or caller's label, for messages */
    void *buf;         /* the whole file */
    os_st_file *st;
    json_t *doc;
    os_net *net;
    os_spike_plan *plan; /* event-driven weights for convs of spikes */
    os_spike_format weights; /* the plan's format, chosen at load */
    char sha[65];
    const char *name, *version;
    int timesteps, in_c, in_h, in_w;
    float mean[3], std[3];
    os_resize_policy resize;
    os_raster_input raster; /* input.bands / input.scale, defaults when absent */
    const char **labels;
    int n_labels;
};

static os_status check_checksum(os_model *m)
{
    const char *fmt = os_st_meta_get(m->st, KEY_FORMAT);
    if (!fmt)
        return os_fail(OS_EFORMAT, "%s: no \"%s\" in __metadata__: not a onespike model file",
                       m->label, KEY_FORMAT);
    if (strcmp(fmt, OS_MODEL_FORMAT) != 0)
        return os_fail(OS_EFORMAT, "%s: %s is \"%s\", this build reads \"%s\"", m->label,
                       KEY_FORMAT, fmt, OS_MODEL_FORMAT);
    const char *want = os_st_meta_get(m->st, KEY_SHA);
    if (!want)
        return os_fail(OS_EFORMAT, "%s: no \"%s\" in __metadata__", m->label, KEY_SHA);
    size_t len;
    const void *data = os_st_data(m->st, &len);
    os_sha256_hex(data, len, m->sha);
    if (strcmp(want, m->sha) != 0)
        return os_fail(OS_ECHECKSUM, "%s: tensor data SHA-256 is %s, file says %s (damaged file?)",
                       m->label, m->sha, want);
    return OS_OK;
}

static os_status get_floats3(const os_model *m, const json_t *input, const char *key, float out[3])
{
    const json_t *a = json_object_get(input, key);
    if (!json_is_array(a) || json_array_size(a) != 3)
        return os_fail(OS_EFORMAT, "%s: input.%s must be an array of 3 numbers", m->label, key);
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return os_fail(OS_EFORMAT, "%s: input.%s[%d] is not a finite number", m->label, key, i);
        out[i] = (float)json_number_value(v);
    }
    return OS_OK;
}

static os_status get_dim(const os_model *m, const json_t *obj, const char *where, const char *key,
                         int lo, int hi, int *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return os_fail(OS_EFORMAT, "%s: %s%s must be an integer", m->label, where, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return os_fail(OS_EFORMAT, "%s: %s%s = %lld, expected %d..%d", m->label, where, key,
                       (long long)x, lo, hi);
    *out = (int)x;
    return OS_OK;
}

/* input.bands ([R, G, B] raster band numbers) and input.scale (raster.h's text form): how a
 * raster's values become the model's 8-bit RGB. Absent: bands 1,2,3, scale "none", which is
 * what every model trained on JPEGs or 8-bit RGB TIFFs reads. */
static os_status parse_raster_input(os_model *m, const json_t *in)
{
    m->raster = os_raster_input_default();
    const json_t *bands = json_object_get(in, "bands");
    if (bands) {
        char text[OS_RASTER_TEXT_MAX] = "";
        bool ok = json_is_array(bands) && json_array_size(bands) == 3;
        for (size_t i = 0; ok && i < 3; i++) {
            const json_t *b = json_array_get(bands, i);
            ok = json_is_integer(b);
            size_t at = strlen(text);
            if (ok)
                snprintf(text + at, sizeof text - at, "%s%lld", i ? "," : "",
                         (long long)json_integer_value(b));
        }
        if (!ok || os_raster_bands_parse(text, &m->raster))
            return os_fail(OS_EFORMAT, "%s: input.bands must be 3 band numbers 1..%d (R, G, B)",
                           m->label, OS_RASTER_MAX_BANDS);
    }
    const json_t *scale = json_object_get(in, "scale");
    if (scale && (!json_is_string(scale) ||
                  os_raster_scale_parse(json_string_value(scale), &m->raster))) {
        char why[OS_RASTER_TEXT_MAX * 2];
        snprintf(why, sizeof why, "%s", json_is_string(scale) ? os_errdetail() : "not a string");
        return os_fail(OS_EFORMAT, "%s: input.scale: %s", m->label, why);
    }
    return OS_OK;
}

static os_status parse_input(os_model *m)
{
    const json_t *in = json_object_get(m->doc, "input");
    if (!json_is_object(in))
        return os_fail(OS_EFORMAT, "%s: model document has no \"input\" object", m->label);
    os_status st;
    if ((st = get_dim(m, in, "input.", "channels", 3, 3, &m->in_c)) ||
        (st = get_dim(m, in, "input.", "height", 1, OS_MODEL_MAX_INPUT, &m->in_h)) ||
        (st = get_dim(m, in, "input.", "width", 1, OS_MODEL_MAX_INPUT, &m->in_w)) ||
        (st = get_floats3(m, in, "mean", m->mean)) || (st = get_floats3(m, in, "std", m->std)))
        return st;
    for (int i = 0; i < 3; i++)
        if (!(m->std[i] > 0))
            return os_fail(OS_EFORMAT, "%s: input.std[%d] = %g must be > 0", m->label, i, m->std[i]);
    const json_t *rz = json_object_get(in, "resize");
    m->resize = OS_RESIZE_STRETCH;
    if (rz) {
        int p = json_is_string(rz) ? os_resize_policy_parse(json_string_value(rz)) : -1;
        if (p < 0)
            return os_fail(OS_EFORMAT, "%s: input.resize must be \"stretch\" or \"center_crop\"",
                           m->label);
        m->resize = (os_resize_policy)p;
    }
    return parse_raster_input(m, in);
}

static os_status parse_labels(os_model *m)
{
    const json_t *a = json_object_get(m->doc, "labels");
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > MODEL_MAX_LABELS)
        return os_fail(OS_EFORMAT, "%s: \"labels\" must be an array of 1..%d strings", m->label,
                       MODEL_MAX_LABELS);
    m->n_labels = (int)json_array_size(a);
    m->labels = calloc((size_t)m->n_labels, sizeof *m->labels);
    if (!m->labels)
        return os_fail(OS_ENOMEM, "%s: no memory for labels", m->label);
    for (int i = 0; i < m->n_labels; i++) {
        const char *s = json_string_value(json_array_get(a, (size_t)i));
        if (!s || !*s || strlen(s) > MODEL_MAX_LABEL_LEN)
            return os_fail(OS_EFORMAT, "%s: labels[%d] must be a string of 1..%d characters",
                           m->label, i, MODEL_MAX_LABEL_LEN);
        m->labels[i] = s;
    }
    return OS_OK;
}

static os_status parse_doc(os_model *m)
{
    const char *text = os_st_meta_get(m->st, KEY_MODEL);
    if (!text)
        return os_fail(OS_EFORMAT, "%s: no \"%s\" in __metadata__", m->label, KEY_MODEL);
    json_error_t err;
    m->doc = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!m->doc)
        return os_fail(OS_EFORMAT, "%s: %s is not valid JSON (line %d column %d: %s)", m->label,
                       KEY_MODEL, err.line, err.column, err.text);
    if (!json_is_object(m->doc))
        return os_fail(OS_EFORMAT, "%s: %s must be a JSON object", m->label, KEY_MODEL);
    m->name = json_string_value(json_object_get(m->doc, "name"));
    m->version = json_string_value(json_object_get(m->doc, "version"));
    if (!m->name || !*m->name)
        return os_fail(OS_EFORMAT, "%s: model \"name\" must be a non-empty string", m->label);
    if (!m->version || !*m->version)
        return os_fail(OS_EFORMAT, "%s: model \"version\" must be a non-empty string", m->label);
    os_status st;
    if ((st = get_dim(m, m->doc, "", "timesteps", 1, OS_MODEL_MAX_TIMESTEPS, &m->timesteps)) ||
        (st = parse_input(m)) || (st = parse_labels(m)))
        return st;
    if ((st = os_net_build(json_object_get(m->doc, "layers"), m->in_c, m->in_h, m->in_w,
                           m->n_labels, m->st, m->label, &m->net)))
        return st;
    return os_spike_plan_create(m->net, m->weights, &m->plan);
}

/* The weight format opts or the environment name; checked before the file is read, so a
 * mistyped name is reported as such and not as a damaged model. */
static os_status weights_format(const os_model_opts *opts, const char *label, os_spike_format *f)
{
    const char *name = opts && opts->weights ? opts->weights : getenv(OS_MODEL_WEIGHTS_ENV);
    const char *from = opts && opts->weights ? "weight format" : OS_MODEL_WEIGHTS_ENV;
    *f = OS_SPIKE_FP32;
    if (!name || !*name || os_spike_format_parse(name, f))
        return OS_OK;
    return os_fail(OS_EINVAL, "%s: %s \"%s\" is not one of fp32, fp16, int8", label, from, name);
}

os_status os_model_load_buffer(void *buf, size_t len, const char *label, os_model **out)
{
    return os_model_load_buffer_ex(buf, len, label, NULL, out);
}

os_status os_model_load_buffer_ex(void *buf, size_t len, const char *label,
                                  const os_model_opts *opts, os_model **out)
{
    *out = NULL;
    os_spike_format format;
    os_status st = weights_format(opts, label, &format);
    if (st) {
        free(buf);
        return st;
    }
    os_model *m = calloc(1, sizeof *m);
    if (!m || !(m->label = strdup(label))) {
        free(buf);
        free(m);
        return os_fail(OS_ENOMEM, "%s: no memory", label);
    }
    m->buf = buf;
    m->weights = format;
    if ((st = os_st_parse(buf, len, label, &m->st)) || (st = check_checksum(m)) ||
        (st = parse_doc(m)))
        goto out;
out:
    if (st) {
        os_model_destroy(m);
        return st;
    }
    *out = m;
    return OS_OK;
}

os_status os_model_load(const char *path, os_model **out)
{
    return os_model_load_ex(path, NULL, out);
}

os_status os_model_load_ex(const char *path, const os_model_opts *opts, os_model **out)
{
    void *buf;
    size_t len;
    os_spike_format format;
    *out = NULL;
    os_status st = weights_format(opts, path, &format);
    if (st)
        return st;
    if ((st = os_read_file(path, OS_MODEL_MAX_BYTES, &buf, &len)))
        return st;
    return os_model_load_buffer_ex(buf, len, path, opts, out);
}

void os_model_destroy(os_model *m)
{
    if (!m)
        return;
    os_spike_plan_destroy(m->plan);
    os_net_destroy(m->net);
    free(m->labels);
    json_decref(m->doc);
    os_st_free(m->st);
    free(m->buf);
    free(m->label);
    free(m);
}

os_status os_model_write(const char *path, const json_t *doc, const os_tensor_view *tensors,
                         size_t n_tensors)
{
    os_status st = OS_OK;
    char *text = NULL;
    void *file = NULL, *copy = NULL;
    size_t len = 0;
    os_sha256 h;
    uint8_t digest[32];
    char hex[65];

    text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) {
        st = os_fail(OS_EINVAL, "%s: model document cannot be serialised", path);
        goto out;
    }
    os_sha256_init(&h);
    for (size_t i = 0; i < n_tensors; i++)
        os_sha256_update(&h, tensors[i].data, tensors[i].count * sizeof(float));
    os_sha256_final(&h, digest);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    const os_st_meta meta[] = {
        {KEY_FORMAT, OS_MODEL_FORMAT}, {KEY_MODEL, text}, {KEY_SHA, hex}};
    if ((st = os_st_serialize(tensors, n_tensors, meta, sizeof meta / sizeof *meta, &file, &len)))
        goto out;
    /* Prove the bytes load before they replace anything on disk. */
    copy = aligned_alloc(64, (len + 63) / 64 * 64);
    if (!copy) {
        st = os_fail(OS_ENOMEM, "%s: no memory to verify the model", path);
        goto out;
    }
    memcpy(copy, file, len);
    os_model *check = NULL;
    st = os_model_load_buffer(copy, len, path, &check);
    copy = NULL; /* taken by os_model_load_buffer */
    os_model_destroy(check);
    if (st)
        goto out;
    st = os_write_file_atomic(path, file, len);
out:
    free(copy);
    free(file);
    free(text);
    return st;
}

const char *os_model_path(const os_model *m) { return m->label; }
const char *os_model_name(const os_model *m) { return m->name; }
const char *os_model_version(const os_model *m) { return m->version; }
int os_model_timesteps(const os_model *m) { return m->timesteps; }
const float *os_model_mean(const os_model *m) { return m->mean; }
const float *os_model_std(const os_model *m) { return m->std; }
os_resize_policy os_model_resize(const os_model *m) { return m->resize; }
const os_raster_input *os_model_raster_input(const os_model *m) { return &m->raster; }
int os_model_classes(const os_model *m) { return m->n_labels; }
const char *os_model_label(const os_model *m, int i) { return m->labels[i]; }
const char *os_model_sha256(const os_model *m) { return m->sha; }
const json_t *os_model_doc(const os_model *m) { return m->doc; }
const os_net *os_model_net(const os_model *m) { return m->net; }
const os_spike_plan *os_model_spike_plan(const os_model *m) { return m->plan; }
const char *os_model_weights(const os_model *m)
{
    return os_spike_format_name(m->weights);
}
size_t os_model_plan_bytes(const os_model *m)
{
    return os_spike_plan_bytes(m->plan);
}
const os_st_file *os_model_tensors(const os_model *m) { return m->st; }

void os_model_input(const os_model *m, int *channels, int *height, int *width)
{
    *channels = m->in_c, *height = m->in_h, *width = m->in_w;
}
