/* testutil.h - helpers shared by the cmocka tests: deterministic data, temp folders, and
 * model files assembled from a JSON layer list (optionally bypassing os_model_write's checks,
 * to produce the broken files loaders must refuse). */
#ifndef ONESPIKE_TESTUTIL_H
#define ONESPIKE_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "onespike/arch.h"
#include "onespike/model.h"
#include "onespike/safetensors.h"
#include "onespike/sha256.h"

static inline float tu_rand(uint32_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 17, *s ^= *s << 5;
    return (float)((*s >> 8) / 16777216.0 * 2.0 - 1.0);
}

static inline void tu_fill(float *x, size_t n, uint32_t seed, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tu_rand(&seed) * scale;
}

/* A fresh temp folder (caller removes it with tu_rmdir). */
static inline char *tu_tmpdir(void)
{
    char *d = strdup("/tmp/onespike-test-XXXXXX");
    if (!mkdtemp(d)) {
        perror("mkdtemp");
        abort();
    }
    return d;
}

static inline void tu_rmdir(char *d)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", d);
    free(d);
}

/* Model document around a layer list given as JSON text: 3 x h x w input, `classes` labels
 * named c0.., mean 0.5, std 0.25. */
static inline json_t *tu_doc(const char *layers_json, int h, int w, int classes, int timesteps)
{
    json_error_t err;
    json_t *layers = json_loads(layers_json, 0, &err);
    if (!layers) {
        fprintf(stderr, "bad test JSON: %s\n", err.text);
        abort();
    }
    json_t *labels = json_array();
    for (int i = 0; i < classes; i++) {
        char n[16];
        snprintf(n, sizeof n, "c%d", i);
        json_array_append_new(labels, json_string(n));
    }
    return json_pack("{s:s, s:s, s:i, s:{s:i, s:i, s:i, s:[f,f,f], s:[f,f,f]}, s:o, s:o}", "name",
                     "test", "version", "7", "timesteps", timesteps, "input", "channels", 3,
                     "height", h, "width", w, "mean", 0.5, 0.5, 0.5, "std", 0.25, 0.25, 0.25,
                     "labels", labels, "layers", layers);
}

/* Write a model file without os_model_write's validation: the metadata is exactly what is
 * given (doc_text may be invalid JSON; sha256 NULL means compute the right one). */
static inline void tu_write_raw(const char *path, const char *format, const char *doc_text,
                                const char *sha256, const os_tensor_view *t, size_t n)
{
    char hex[65];
    if (!sha256) {
        os_sha256 h;
        uint8_t d[32];
        os_sha256_init(&h);
        for (size_t i = 0; i < n; i++)
            os_sha256_update(&h, t[i].data, t[i].count * sizeof(float));
        os_sha256_final(&h, d);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        sha256 = hex;
    }
    os_st_meta meta[3];
    size_t nm = 0;
    if (format)
        meta[nm++] = (os_st_meta){"onespike.format", format};
    meta[nm++] = (os_st_meta){"onespike.model", doc_text};
    meta[nm++] = (os_st_meta){"onespike.sha256", sha256};
    void *buf;
    size_t len;
    if (os_st_serialize(t, n, meta, nm, &buf, &len) || os_write_file_atomic(path, buf, len)) {
        fprintf(stderr, "tu_write_raw: %s\n", os_errdetail());
        abort();
    }
    free(buf);
}

/* os_model_write then os_model_load; a failure prints the detail and aborts the test. */
static inline os_model *tu_write_load(const char *path, const json_t *doc,
                                      const os_tensor_view *t, size_t n)
{
    os_model *m = NULL;
    if (os_model_write(path, doc, t, n) || os_model_load(path, &m)) {
        fprintf(stderr, "tu_write_load: %s\n", os_errdetail());
        abort();
    }
    return m;
}

/* Read a whole file (caller frees). */
static inline unsigned char *tu_slurp(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static inline void tu_spit(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, len, f) != len)
        abort();
    fclose(f);
}

/* A model file of recipe o (random weights, 1 time step) written in dir as NAME.safetensors and
 * loaded; aborts on failure. */
static inline os_model *tu_arch_model(const os_arch_opts *o, const char *dir)
{
    os_arch *a = NULL;
    if (os_arch_build(o, &a) != OS_OK) {
        fprintf(stderr, "tu_arch_model: %s\n", os_errdetail());
        abort();
    }
    json_t *doc = tu_doc("[]", o->input, o->input, o->classes, 1);
    json_object_set(doc, "layers", (json_t *)os_arch_layers(a));
    char path[300];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, o->name);
    size_t n;
    const os_tensor_view *t = os_arch_tensors(a, &n);
    os_model *m = tu_write_load(path, doc, t, n);
    json_decref(doc);
    os_arch_destroy(a);
    return m;
}

#endif
