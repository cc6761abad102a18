/* arch.c - VGG / ResNet recipes with Units; see arch.h. */
#include "onespike/arch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onespike/net.h"
#include "onespike/rng.h"

enum {
    ARCH_MIN_CHANNELS = 4,
    ARCH_POOL = 2,
    ARCH_LARGE_INPUT = 64, /* from here the ResNet-18 stem downsamples by 4, as torchvision's */
    ARCH_MAX_TENSORS = 1024,
};

#define ARCH_VGG_HIDDEN 512

struct os_arch {
    os_arch_opts o;
    json_t *layers;
    os_tensor_view t[ARCH_MAX_TENSORS];
    size_t nt;
    char *names[ARCH_MAX_TENSORS];
    float *data[ARCH_MAX_TENSORS];
    uint64_t rng;     /* rng.h state for the initial weights */
    const char *prev; /* name of the last layer added */
    char prev_buf[OS_NET_NAME_MAX];
    os_status err;
};

static const int vgg11[] = {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0, -1};
static const int vgg16[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0,
                            512, 512, 512, 0, -1};

int os_arch_stages(const char *name)
{
    if (!strcmp(name, "vgg11") || !strcmp(name, "vgg16"))
        return 5;
    if (!strcmp(name, "resnet18") || !strcmp(name, "msresnet18"))
        return 4;
    if (!strcmp(name, "resnet20") || !strcmp(name, "msresnet20"))
        return 3;
    return 0;
}

static int channels(const os_arch *a, int base)
{
    int c = (int)lround(base * a->o.width_mult);
    return c < ARCH_MIN_CHANNELS ? ARCH_MIN_CHANNELS : c;
}

/* Add a tensor "<layer>.<suffix>"; fills it per `init`: 'n' normal(0,std), 'u' uniform(+-std),
 * '1' ones, '0' zeros. Returns its name (owned by a) or NULL after recording an error. */
static const char *tensor(os_arch *a, const char *layer, const char *suffix, int ndim,
                          const int64_t *shape, char init, double std)
{
    if (a->err)
        return NULL;
    if (a->nt == ARCH_MAX_TENSORS) {
        a->err = os_fail(OS_EARCH, "architecture needs more than %d tensors", ARCH_MAX_TENSORS);
        return NULL;
    }
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (size_t)shape[i];
    size_t k = a->nt;
    size_t len = strlen(layer) + strlen(suffix) + 2;
    a->names[k] = malloc(len);
    a->data[k] = malloc(count * sizeof(float));
    if (!a->names[k] || !a->data[k]) {
        a->err = os_fail(OS_ENOMEM, "no memory for tensor %s.%s", layer, suffix);
        free(a->names[k]), free(a->data[k]);
        return NULL;
    }
    snprintf(a->names[k], len, "%s.%s", layer, suffix);
    for (size_t i = 0; i < count; i++)
        a->data[k][i] = init == 'n'   ? (float)(os_rng_normal(&a->rng) * std)
                        : init == 'u' ? (float)((2 * os_rng_uniform(&a->rng) - 1) * std)
                        : init == '1' ? 1.0f
                                      : 0.0f;
    os_tensor_view *t = &a->t[k];
    t->name = a->names[k], t->ndim = ndim, t->data = a->data[k], t->count = count;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    a->nt++;
    return a->names[k];
}

/* out = a + b, the name of a layer; a name too long for the file format is an error. */
static void join(os_arch *a, char out[OS_NET_NAME_MAX], const char *x, const char *y)
{
    if (snprintf(out, OS_NET_NAME_MAX, "%s%s", x, y) >= OS_NET_NAME_MAX && !a->err)
        a->err = os_fail(OS_EARCH, "layer name %s%s longer than %d", x, y, OS_NET_NAME_MAX - 1);
}

/* Append a layer object; "from" is added when it is not simply the previous layer. */
static json_t *layer(os_arch *a, const char *name, const char *op, const char *from, int unit)
{
    json_t *l = json_object();
    json_object_set_new(l, "name", json_string(name));
    json_object_set_new(l, "op", json_string(op));
    if (from && strcmp(from, a->prev ? a->prev : "input") != 0)
        json_object_set_new(l, "from", json_string(from));
    if (unit)
        json_object_set_new(l, "unit", json_integer(unit));
    json_array_append_new(a->layers, l);
    snprintf(a->prev_buf, sizeof a->prev_buf, "%s", name);
    a->prev = a->prev_buf;
    return l;
}

static void conv(os_arch *a, const char *name, const char *from, int in, int out, int k,
                 int stride, int unit)
{
    json_t *l = layer(a, name, "conv", from, unit);
    json_object_set_new(l, "out", json_integer(out));
    json_object_set_new(l, "kernel", json_integer(k));
    json_object_set_new(l, "stride", json_integer(stride));
    json_object_set_new(l, "pad", json_integer(k / 2));
    int64_t ws[4] = {out, in, k, k}, bs[1] = {out};
    const char *w = tensor(a, name, "weight", 4, ws, 'n', sqrt(2.0 / (in * k * k)));
    if (w)
        json_object_set_new(l, "weight", json_string(w));
    if (!a->o.batchnorm) {
        const char *b = tensor(a, name, "bias", 1, bs, '0', 0);
        if (b)
            json_object_set_new(l, "bias", json_string(b));
    }
}

static void bn(os_arch *a, const char *name, int c, int unit)
{
    if (!a->o.batchnorm)
        return;
    json_t *l = layer(a, name, "bn", NULL, unit);
    int64_t s[1] = {c};
    static const char *const keys[4] = {"weight", "bias", "mean", "var"};
    static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    static const char init[4] = {'1', '0', '0', '1'};
    for (int i = 0; i < 4; i++) {
        const char *t = tensor(a, name, suffix[i], 1, s, init[i], 0);
        if (t)
            json_object_set_new(l, keys[i], json_string(t));
    }
}

static void act(os_arch *a, const char *name, const char *from, int unit)
{
    json_t *l = layer(a, name, a->o.spiking ? "lif" : "relu", from, unit);
    if (a->o.spiking) {
        json_object_set_new(l, "threshold", json_real(a->o.threshold));
        json_object_set_new(l, "leak", json_real(a->o.leak));
    }
}

static void pool(os_arch *a, const char *name, const char *op, int k)
{
    json_t *l = layer(a, name, op, NULL, 0);
    json_object_set_new(l, "kernel", json_integer(k));
}

static void linear(os_arch *a, const char *name, int in, int out)
{
    json_t *l = layer(a, name, "linear", NULL, 0);
    json_object_set_new(l, "out", json_integer(out));
    int64_t ws[2] = {out, in}, bs[1] = {out};
    double bound = 1.0 / sqrt(in);
    const char *w = tensor(a, name, "weight", 2, ws, 'u', bound);
    const char *b = tensor(a, name, "bias", 1, bs, 'u', bound);
    if (w && b) {
        json_object_set_new(l, "weight", json_string(w));
        json_object_set_new(l, "bias", json_string(b));
    }
}

/* conv-BN-act; returns nothing, a->prev is the activation. */
static void cba(os_arch *a, const char *base, int in, int out, int stride, int unit)
{
    char n[OS_NET_NAME_MAX];
    join(a, n, base, ".conv");
    conv(a, n, a->prev, in, out, 3, stride, unit);
    join(a, n, base, ".bn");
    bn(a, n, out, unit);
    join(a, n, base, ".act");
    act(a, n, NULL, unit);
}

static void build_vgg(os_arch *a, const int *cfg)
{
    int in = 3, side = a->o.input, stage = 1, k = 0;
    char n[OS_NET_NAME_MAX];
    for (const int *p = cfg; *p >= 0; p++) {
        if (*p > 0) {
            int out = channels(a, *p);
            snprintf(n, sizeof n, "s%d.c%d", stage, k++);
            cba(a, n, in, out, 1, 0);
            in = out;
            continue;
        }
        if (stage == a->o.unit_at)
            for (int u = 1; u <= a->o.units; u++) {
                snprintf(n, sizeof n, "s%d.unit%d", stage, u);
                cba(a, n, in, in, 1, u);
            }
        snprintf(n, sizeof n, "s%d.pool", stage);
        if (side >= ARCH_POOL) {
            pool(a, n, "maxpool", ARCH_POOL);
            side /= ARCH_POOL;
        }
        stage++, k = 0;
    }
    int hidden = channels(a, ARCH_VGG_HIDDEN);
    linear(a, "fc1", in * side * side, hidden);
    act(a, "fc1.act", NULL, 0);
    linear(a, "fc2", hidden, a->o.classes);
}

static void basic_block(os_arch *a, const char *base, int in, int out, int stride, int unit)
{
    char n[OS_NET_NAME_MAX], x[OS_NET_NAME_MAX], body[OS_NET_NAME_MAX], sc[OS_NET_NAME_MAX];
    snprintf(x, sizeof x, "%s", a->prev);
    join(a, n, base, ".1");
    cba(a, n, in, out, stride, unit);
    join(a, n, base, ".2.conv");
    conv(a, n, a->prev, out, out, 3, 1, unit);
    join(a, n, base, ".2.bn");
    bn(a, n, out, unit);
    snprintf(body, sizeof body, "%s", a->prev);
    snprintf(sc, sizeof sc, "%s", x);
    if (stride != 1 || in != out) {
        join(a, n, base, ".short.conv");
        conv(a, n, x, in, out, 1, stride, unit);
        join(a, n, base, ".short.bn");
        bn(a, n, out, unit);
        snprintf(sc, sizeof sc, "%s", a->prev);
    }
    join(a, n, base, ".add");
    json_t *l = layer(a, n, "add", NULL, unit);
    json_t *from = json_array();
    json_array_append_new(from, json_string(body));
    json_array_append_new(from, json_string(sc));
    json_object_set_new(l, "from", from);
    join(a, n, base, ".act");
    act(a, n, NULL, unit);
}

/* conv-BN reading `from`; a->prev is the BN (or the conv without BN). */
static void conv_bn(os_arch *a, const char *base, const char *from, int in, int out, int k,
                    int stride, int unit)
{
    char n[OS_NET_NAME_MAX];
    join(a, n, base, ".conv");
    conv(a, n, from, in, out, k, stride, unit);
    join(a, n, base, ".bn");
    bn(a, n, out, unit);
}

/* Membrane-shortcut block: x + BN(conv(act(BN(conv(act(x)))))); see arch.h. */
static void ms_block(os_arch *a, const char *base, int in, int out, int stride, int unit)
{
    char n[OS_NET_NAME_MAX], x[OS_NET_NAME_MAX], s[OS_NET_NAME_MAX], body[OS_NET_NAME_MAX];
    char sc[OS_NET_NAME_MAX];
    snprintf(x, sizeof x, "%s", a->prev);
    join(a, s, base, ".act");
    act(a, s, x, unit);
    join(a, n, base, ".1");
    conv_bn(a, n, s, in, out, 3, stride, unit);
    join(a, n, base, ".1.act");
    act(a, n, NULL, unit);
    join(a, n, base, ".2");
    conv_bn(a, n, a->prev, out, out, 3, 1, unit);
    snprintf(body, sizeof body, "%s", a->prev);
    snprintf(sc, sizeof sc, "%s", x);
    if (stride != 1 || in != out) {
        join(a, n, base, ".short");
        conv_bn(a, n, s, in, out, 1, stride, unit);
        snprintf(sc, sizeof sc, "%s", a->prev);
    }
    join(a, n, base, ".add");
    json_t *l = layer(a, n, "add", NULL, unit);
    json_object_set_new(l, "from", json_pack("[s, s]", body, sc));
}

static void build_resnet(os_arch *a, const int *widths, const int *blocks, int stages, bool ms)
{
    bool large = stages == 4 && a->o.input >= ARCH_LARGE_INPUT;
    int in = channels(a, widths[0]);
    char n[OS_NET_NAME_MAX];
    void (*block)(os_arch *, const char *, int, int, int, int) = ms ? ms_block : basic_block;
    conv(a, "stem.conv", "input", 3, in, 3, large ? 2 : 1, 0);
    bn(a, "stem.bn", in, 0);
    if (!ms)
        act(a, "stem.act", NULL, 0);
    if (large)
        pool(a, "stem.pool", "maxpool", ARCH_POOL);
    for (int s = 0; s < stages; s++) {
        int out = channels(a, widths[s]);
        for (int b = 0; b < blocks[s]; b++) {
            snprintf(n, sizeof n, "s%d.b%d", s + 1, b);
            block(a, n, in, out, b == 0 && s > 0 ? 2 : 1, 0);
            in = out;
        }
        if (s + 1 == a->o.unit_at)
            for (int u = 1; u <= a->o.units; u++) {
                snprintf(n, sizeof n, "s%d.unit%d", s + 1, u);
                block(a, n, in, in, 1, u);
            }
    }
    layer(a, "gap", "gap", NULL, 0);
    linear(a, "fc", in, a->o.classes);
}

os_status os_arch_build(const os_arch_opts *o, os_arch **out)
{
    *out = NULL;
    int stages = os_arch_stages(o->name ? o->name : "");
    if (!stages)
        return os_fail(OS_EINVAL, "unknown architecture \"%s\" (vgg11, vgg16, resnet18, resnet20, msresnet18, msresnet20)",
                       o->name ? o->name : "");
    if (!(o->width_mult > 0) || o->input < 8 || o->classes < 1 || o->units < 0)
        return os_fail(OS_EINVAL, "architecture %s: width %g, input %d, classes %d, units %d out of range",
                       o->name, o->width_mult, o->input, o->classes, o->units);
    if (o->units > 0 && (o->unit_at < 1 || o->unit_at > stages))
        return os_fail(OS_EINVAL, "%s has stages 1..%d, Units asked at %d", o->name, stages,
                       o->unit_at);
    if (o->spiking && !(o->threshold > 0 && o->leak > 0 && o->leak <= 1))
        return os_fail(OS_EINVAL, "LIF threshold %g / leak %g out of range", o->threshold, o->leak);
    os_arch *a = calloc(1, sizeof *a);
    if (!a || !(a->layers = json_array())) {
        free(a);
        return os_fail(OS_ENOMEM, "no memory for architecture %s", o->name);
    }
    a->o = *o;
    /* Derived, not the seed itself: the split and the data order draw from the plain seed. */
    a->rng = o->seed * 0x9E3779B97F4A7C15ull + 1;
    if (!strcmp(o->name, "vgg11"))
        build_vgg(a, vgg11);
    else if (!strcmp(o->name, "vgg16"))
        build_vgg(a, vgg16);
    else if (strstr(o->name, "resnet18"))
        build_resnet(a, (const int[]){64, 128, 256, 512}, (const int[]){2, 2, 2, 2}, 4,
                     o->name[0] == 'm');
    else
        build_resnet(a, (const int[]){16, 32, 64}, (const int[]){3, 3, 3}, 3, o->name[0] == 'm');
    if (a->err) {
        os_status st = a->err;
        os_arch_destroy(a);
        return st;
    }
    *out = a;
    return OS_OK;
}

void os_arch_destroy(os_arch *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nt; i++)
        free(a->names[i]), free(a->data[i]);
    json_decref(a->layers);
    free(a);
}

const json_t *os_arch_layers(const os_arch *a)
{
    return a->layers;
}

const os_tensor_view *os_arch_tensors(const os_arch *a, size_t *n)
{
    *n = a->nt;
    return a->t;
}
