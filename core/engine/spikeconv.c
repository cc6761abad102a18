/* spikeconv.c - event-driven convolution of binary inputs (see spikeconv.h). */
#include "spikeconv.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <sys/mman.h>
#include <unistd.h>

#include "im2col.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define SPIKE_AVX2 1
#endif

/* Output channels one pass of the generic loop accumulates; wider layers take several. */
#define BLOCK_MAX 64

/* int8 rows: the widest block of output channels any kernel set sums in one pass (AVX-512:
 * 8 registers of 32 int16 lanes), the size of the int32 sums the caller keeps on its stack. */
#define QBLOCK_MAX 256

/* int8 rows are summed in int16 lanes and widened into int32 every this many rows: |q| <= 127,
 * so 256 rows reach at most 32512 and the int16 partial sums cannot overflow. Integer sums are
 * exact, so every kernel set gives the same sums in any order. */
#define Q8_FLUSH_ROWS 256
#define Q8_MAX        127

struct os_spike_plan {
    int n;
    os_spike_format format;
    bool *binary;   /* per layer: output is 0/1 */
    float **wt;     /* per layer, fp32 or fp16 widened: re-laid-out conv weights, or NULL */
    int8_t **wq;    /* per layer, int8: the same layout quantized, or NULL */
    float **scale;  /* per layer, int8: out_c scales (weight = scale[oc] * q) */
    uint16_t **wh;  /* per layer, fp16: the same layout as binary16, or NULL */
    float **image;  /* per layer: a conv on the image, its weights for os_spike_image_conv */
    bool *event;    /* per layer: a conv os_spike_conv runs */
    size_t bytes;
    bool complete;  /* every layer has a channels-last kernel */
    void *arena;    /* wt[i], wq[i] and wh[i] point into it (one block: see arena_alloc) */
};

/* The re-laid-out rows, all layers in one block aligned to 2 MiB and advised for transparent
 * huge pages where it is that large: the event-driven kernels read rows scattered over
 * megabytes of weights, and on 4 KiB pages almost every row costs a TLB miss. Huge pages took
 * 11 % off the shipped model's batch-1 latency on the AVX2 EPYC (fp32 rows, 1.80 -> 1.60 ms
 * median of 8 interleaved runs; int8 rows 1.39 -> 1.24 ms). Without THP (or on another
 * system) madvise fails harmlessly and the block is an ordinary one. */
#define HUGE_PAGE   ((size_t)2 << 20)
#define ROW_ALIGN   64 /* each layer's rows start on a cache line */

static void *arena_alloc(size_t n)
{
    if (n < HUGE_PAGE) {
        void *a = NULL;
        return posix_memalign(&a, ROW_ALIGN, n ? n : 1) == 0 ? a : NULL;
    }
    const size_t cap = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *a = NULL;
    if (posix_memalign(&a, HUGE_PAGE, cap) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(a, cap, MADV_HUGEPAGE);
#endif
    return a;
}

static os_status plan_fail(os_spike_plan *p)
{
    os_spike_plan_destroy(p);
    return os_fail(OS_ENOMEM, "no memory for the spike-conv weights");
}

static const char *const format_names[OS_SPIKE_FORMAT_COUNT] = {"fp32", "int8", "fp16"};

const char *os_spike_format_name(os_spike_format f)
{
    return f >= 0 && f < OS_SPIKE_FORMAT_COUNT ? format_names[f] : "unknown";
}

bool os_spike_format_parse(const char *name, os_spike_format *out)
{
    for (int i = 0; i < OS_SPIKE_FORMAT_COUNT; i++)
        if (strcmp(name, format_names[i]) == 0) {
            *out = (os_spike_format)i;
            return true;
        }
    return false;
}

/* -128 is never used, which keeps Q8_FLUSH_ROWS exact. */
void os_spike_quantize(const float *wt, size_t rows, size_t oc, int8_t *q, float *scale)
{
    for (size_t o = 0; o < oc; o++) {
        float m = 0.0f;
        for (size_t r = 0; r < rows; r++)
            m = fmaxf(m, fabsf(wt[r * oc + o]));
        scale[o] = m / Q8_MAX;
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < oc; o++) {
            const float v = scale[o] > 0.0f ? rintf(wt[r * oc + o] / scale[o]) : 0.0f;
            q[r * oc + o] = (int8_t)fminf(fmaxf(v, -Q8_MAX), Q8_MAX);
        }
}

uint16_t os_f16_from_f32(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* infinity, or a NaN (kept quiet) */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
    if (ax >= 0x38800000u) { /* a normal binary16 (2^-14 and up); a carry may reach infinity */
        const uint32_t rem = ax & 0x1fffu;
        uint32_t h = ((ax >> 23) - 112u) << 10 | ((ax >> 13) & 0x3ffu);
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
            h++;
        return (uint16_t)(sign | (h > 0x7c00u ? 0x7c00u : h));
    }
    if (ax < 0x33000000u) /* below 2^-25: rounds to zero */
        return (uint16_t)sign;
    /* a subnormal binary16: units of 2^-24 */
    const uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, shift = 126u - e;
    const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    uint32_t h = m >> shift;
    if (rem > half || (rem == half && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

float os_f32_from_f16(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu, x;
    if (e == 0x1fu)
        x = sign | 0x7f800000u | m << 13;
    else if (e)
        x = sign | (e + 112u) << 23 | m << 13;
    else if (!m)
        x = sign;
    else { /* subnormal: normalize */
        uint32_t k = 0;
        while (!(m & 0x400u))
            m <<= 1, k++;
        x = sign | (113u - k) << 23 | (m & 0x3ffu) << 13;
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* False for a binary16 infinity or NaN (all exponent bits set). */
static bool f16_finite(uint16_t h)
{
    return (h & 0x7c00u) != 0x7c00u;
}

bool os_spike_to_f16(const float *w, size_t n, uint16_t *h)
{
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        h[i] = os_f16_from_f32(w[i]);
        ok = ok && f16_finite(h[i]);
    }
    return ok;
}

size_t os_spike_layout_rows(const os_conv_shape *s)
{
    return (size_t)s->kh * (size_t)s->kw * (size_t)s->in_c + 1;
}

size_t os_spike_rows_scratch(const os_conv_shape *s)
{
    /* a row list's stores run up to a register's lanes past its end, as the index's loads do */
    return (size_t)s->kh * (size_t)s->kw * (size_t)s->in_c + OS_SPIKE_INDEX_SLACK;
}

void os_spike_layout(const os_conv_shape *s, const float *w, float *wt)
{
    const size_t taps = (size_t)s->kh * (size_t)s->kw, ic = (size_t)s->in_c, oc = (size_t)s->out_c;
    /* [oc][ic][ky][kx] -> [ky][kx][ic][oc]: one active input selects contiguous rows. */
    for (size_t o = 0; o < oc; o++)
        for (size_t c = 0; c < ic; c++)
            for (size_t t = 0; t < taps; t++)
                wt[(t * ic + c) * oc + o] = w[(o * ic + c) * taps + t];
    memset(wt + taps * ic * oc, 0, oc * sizeof *wt);
}

/* Layer i's conv shape, for the layout of its rows. */
static os_conv_shape layer_shape(const os_layer *L, const os_layer *in)
{
    return (os_conv_shape){in->c, in->h, in->w, L->out, L->kh, L->kw, L->stride, L->pad};
}

/* Bytes of layer i's rows in format f, rounded up to ROW_ALIGN. */
static size_t rows_bytes(const os_layer *L, const os_layer *in, os_spike_format f)
{
    const os_conv_shape cs = layer_shape(L, in);
    const size_t n = os_spike_layout_rows(&cs) * (size_t)L->out;
    const size_t unit = f == OS_SPIKE_INT8   ? 1
                        : f == OS_SPIKE_FP16 ? sizeof(uint16_t)
                                             : sizeof(float);
    const size_t b = n * unit;
    return (b + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
}

static os_status f16_range_fail(int i, const os_layer *L)
{
    return os_fail(OS_EINVAL, "layer %d (%s): a weight beyond fp16's range (|w| >= 65520): load "
                              "it as fp32 or int8",
                   i, L->name);
}

/* How a plan of format f holds layer L's rows: fp16 rows whose fp32 rows take at most widen
 * bytes are held widened (os_spike_plan_create_widen). */
static os_spike_format stored_format(const os_layer *L, const os_layer *in, os_spike_format f,
                                     size_t widen)
{
    return f == OS_SPIKE_FP16 && rows_bytes(L, in, OS_SPIKE_FP32) <= widen ? OS_SPIKE_FP32 : f;
}

os_status os_spike_f16_widen_default(size_t *widen)
{
    const char *env = getenv(OS_SPIKE_F16_WIDEN_ENV);
    if (env && *env) {
        errno = 0; /* digits only (strtoull alone would take "-1" and " 5") */
        const unsigned long long v = strtoull(env, NULL, 10);
        if (env[strspn(env, "0123456789")] != '\0' || errno)
            return os_fail(OS_EINVAL, "%s \"%s\": expected a byte count (0 or more)",
                           OS_SPIKE_F16_WIDEN_ENV, env);
        *widen = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
        return OS_OK;
    }
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    *widen = l2 > 0 ? (size_t)l2 / 2 : OS_SPIKE_F16_WIDEN_FALLBACK;
    return OS_OK;
}

os_status os_spike_plan_create(const os_net *net, os_spike_format format, os_spike_plan **out)
{
    size_t widen = 0;
    *out = NULL;
    os_status st = format == OS_SPIKE_FP16 ? os_spike_f16_widen_default(&widen) : OS_OK;
    return st ? st : os_spike_plan_create_widen(net, format, widen, out);
}

os_status os_spike_plan_create_widen(const os_net *net, os_spike_format format, size_t widen,
                                     os_spike_plan **out)
{
    *out = NULL;
    os_spike_plan *p = calloc(1, sizeof *p);
    if (!p)
        return plan_fail(p);
    p->n = os_net_count(net);
    p->format = format;
    p->binary = calloc((size_t)p->n, sizeof *p->binary);
    p->event = calloc((size_t)p->n, sizeof *p->event);
    p->wt = calloc((size_t)p->n, sizeof *p->wt);
    p->wq = calloc((size_t)p->n, sizeof *p->wq);
    p->scale = calloc((size_t)p->n, sizeof *p->scale);
    p->wh = calloc((size_t)p->n, sizeof *p->wh);
    p->image = calloc((size_t)p->n, sizeof *p->image);
    if (!p->binary || !p->event || !p->wt || !p->wq || !p->scale || !p->wh || !p->image)
        return plan_fail(p);
    /* Which layers are binary and which convs run event-driven, and the rows' total size. */
    p->complete = true;
    size_t total = 0;
    for (int i = 0; i < p->n; i++) {
        const os_layer *L = os_net_layer(net, i);
        const int from = L->from[0];
        const bool bin_in = from != OS_NET_INPUT && p->binary[from];
        p->binary[i] = L->op == OS_OP_LIF || (L->op == OS_OP_MAXPOOL && bin_in);
        if ((L->op == OS_OP_BN && !L->folded) || L->op == OS_OP_AVGPOOL)
            p->complete = false;
        /* Only a conv or a linear layer may read the (planar) image on the channels-last path. */
        for (int k = 0; k < L->n_from; k++)
            if (L->from[k] == OS_NET_INPUT && L->op != OS_OP_CONV && L->op != OS_OP_LINEAR)
                p->complete = false;
        if (L->op != OS_OP_CONV || from == OS_NET_INPUT)
            continue;
        if (!bin_in) {
            p->complete = false;
            continue;
        }
        const os_layer *in = os_net_layer(net, from);
        const size_t taps = (size_t)L->kh * (size_t)L->kw, ic = (size_t)in->c, oc = (size_t)L->out;
        if (in->c > OS_SPIKE_MAX_CHANNELS || taps * ic + 1 > OS_SPIKE_MAX_ROWS ||
            (taps * ic + 1) * oc > SIZE_MAX / sizeof(float)) {
            p->complete = false; /* beyond the index's or the row numbers' range */
            continue;
        }
        p->event[i] = true;
        total += rows_bytes(L, in, stored_format(L, in, format, widen));
    }
    if (!p->complete) { /* sessions run such a net dense: the copies would only take memory */
        memset(p->event, 0, (size_t)p->n * sizeof *p->event);
        *out = p;
        return OS_OK;
    }
    char *at = p->arena = arena_alloc(total);
    if (!p->arena)
        return plan_fail(p);
    for (int i = 0; i < p->n; i++) {
        const os_layer *L = os_net_layer(net, i);
        if (L->op == OS_OP_CONV && L->from[0] == OS_NET_INPUT) {
            const size_t k = (size_t)L->fan_in; /* in_c * kh * kw */
            if (k <= OS_IMAGE_MAX_K) { /* 3.4 KB for the stem; made here, not per image */
                if (!(p->image[i] = malloc(k * (size_t)L->out * sizeof(float))))
                    return plan_fail(p);
                os_spike_image_weights(k, L->out, L->weight, p->image[i]);
            }
        }
        if (!p->event[i])
            continue;
        const os_layer *in = os_net_layer(net, L->from[0]);
        const os_conv_shape cs = layer_shape(L, in);
        const size_t nrows = os_spike_layout_rows(&cs), oc = (size_t)L->out;
        const os_spike_format stored = stored_format(L, in, format, widen);
        float *wt = stored != OS_SPIKE_FP32 ? malloc(nrows * oc * sizeof *wt) : (float *)at;
        if (!wt)
            return plan_fail(p);
        os_spike_layout(&cs, L->weight, wt);
        if (format == OS_SPIKE_FP16 && stored == OS_SPIKE_FP32) /* binary16's values as fp32 */
            for (size_t j = 0; j < nrows * oc; j++) {
                const uint16_t h = os_f16_from_f32(wt[j]);
                if (!f16_finite(h)) {
                    os_spike_plan_destroy(p);
                    return f16_range_fail(i, L);
                }
                wt[j] = os_f32_from_f16(h);
            }
        if (stored == OS_SPIKE_INT8) {
            p->wq[i] = (int8_t *)at;
            p->scale[i] = malloc(oc * sizeof **p->scale);
            if (!p->scale[i]) {
                free(wt);
                return plan_fail(p);
            }
            os_spike_quantize(wt, nrows, oc, p->wq[i], p->scale[i]);
            free(wt);
            p->bytes += nrows * oc + oc * sizeof **p->scale;
        } else if (stored == OS_SPIKE_FP16) {
            p->wh[i] = (uint16_t *)at;
            const bool fits = os_spike_to_f16(wt, nrows * oc, p->wh[i]);
            free(wt);
            if (!fits) {
                os_spike_plan_destroy(p);
                return f16_range_fail(i, L);
            }
            p->bytes += nrows * oc * sizeof **p->wh;
        } else {
            p->wt[i] = wt;
            p->bytes += nrows * oc * sizeof *wt;
        }
        at += rows_bytes(L, in, stored);
    }
    *out = p;
    return OS_OK;
}

void os_spike_plan_destroy(os_spike_plan *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++) {
        if (p->scale)
            free(p->scale[i]);
        if (p->image)
            free(p->image[i]);
    }
    free(p->arena); /* wt[i], wq[i] */
    free(p->image);
    free(p->wt);
    free(p->wq);
    free(p->wh);
    free(p->scale);
    free(p->event);
    free(p->binary);
    free(p);
}

bool os_spike_plan_complete(const os_spike_plan *p)
{
    return p->complete;
}

bool os_spike_plan_binary(const os_spike_plan *p, int i)
{
    return i >= 0 && i < p->n && p->binary[i];
}

bool os_spike_plan_event(const os_spike_plan *p, int i)
{
    return i >= 0 && i < p->n && p->event[i];
}

os_spike_format os_spike_plan_format(const os_spike_plan *p)
{
    return p->format;
}

bool os_spike_plan_dense_at(const os_spike_plan *p, size_t active, size_t inputs)
{
    return p->format == OS_SPIKE_FP32 && (double)active > OS_SPIKE_DENSE_RATE * (double)inputs;
}

const float *os_spike_plan_weights(const os_spike_plan *p, int i)
{
    return i >= 0 && i < p->n ? p->wt[i] : NULL;
}

const int8_t *os_spike_plan_weights_q8(const os_spike_plan *p, int i, const float **scale)
{
    if (i < 0 || i >= p->n || !p->wq[i])
        return NULL;
    *scale = p->scale[i];
    return p->wq[i];
}

const uint16_t *os_spike_plan_weights_f16(const os_spike_plan *p, int i)
{
    return i >= 0 && i < p->n ? p->wh[i] : NULL;
}

const float *os_spike_plan_image_weights(const os_spike_plan *p, int i)
{
    return i >= 0 && i < p->n ? p->image[i] : NULL;
}

size_t os_spike_plan_bytes(const os_spike_plan *p)
{
    return p->bytes;
}

void os_spike_unindex(const uint16_t *idx, const uint16_t *cnt, int c, int hw, float *x)
{
    memset(x, 0, (size_t)c * (size_t)hw * sizeof *x);
    for (int p = 0; p < hw; p++)
        for (int j = 0; j < cnt[p]; j++)
            x[(size_t)p * (size_t)c + idx[(size_t)p * (size_t)c + (size_t)j]] = 1.0f;
}

size_t os_spike_index(const float *x, int c, int hw, uint16_t *idx, uint16_t *cnt)
{
    size_t total = 0;
    assert(c >= 0 && c <= OS_SPIKE_MAX_CHANNELS);
    /* Branch-free: the slot past the list is written either way and kept only if x fired, since
     * at 10-25 % firing a branch would mispredict often. */
    for (int p = 0; p < hw; p++) {
        const float *xp = x + (size_t)p * (size_t)c;
        uint16_t *ip = idx + (size_t)p * (size_t)c;
        int n = 0;
        for (int ch = 0; ch < c; ch++) {
            ip[n] = (uint16_t)ch;
            n += xp[ch] != 0.0f;
        }
        cnt[p] = (uint16_t)n;
        total += (size_t)n;
    }
    return total;
}

/* out[0..n) = b[0..n) (or 0) + the n weights at w0 + rows[r] * oc (rows of oc values of type T,
 * each widened by WIDEN), for each of the nrows rows, in row order. */
#define SPIKE_BLOCK_GENERIC(NAME, T, WIDEN)                                                        \
    static void NAME(const T *w0, size_t oc, const uint16_t *rows, int nrows, const float *b,     \
                     int n, float *out)                                                            \
    {                                                                                              \
        for (int j = 0; j < n; j++)                                                                \
            out[j] = b ? b[j] : 0.0f;                                                              \
        for (int r = 0; r < nrows; r++) {                                                          \
            const T *w = w0 + rows[r] * oc;                                                        \
            for (int j = 0; j < n; j++)                                                            \
                out[j] += WIDEN(w[j]);                                                             \
        }                                                                                          \
    }
#define AS_FLOAT(v) (v)
SPIKE_BLOCK_GENERIC(block_generic, float, AS_FLOAT)
SPIKE_BLOCK_GENERIC(hblock_generic, uint16_t, os_f32_from_f16)

/* sum[0..n) = the n int8 values at w0 + rows[r] * oc, summed over the nrows rows, exactly. */
static void qblock_generic(const int8_t *w0, size_t oc, const uint16_t *rows, int nrows, int n,
                           int32_t *sum)
{
    for (int j = 0; j < n; j++)
        sum[j] = 0;
    for (int r = 0; r < nrows; r++) {
        const int8_t *w = w0 + rows[r] * oc;
        for (int j = 0; j < n; j++)
            sum[j] += w[j];
    }
}

/* The kernel taps of output (oy, ox) whose input cell lies inside the input: ky in [*ky0, *ky1),
 * kx in [*kx0, *kx1). Padding cells are zeros, which add nothing. */
static inline void window(const os_conv_shape *s, int oy, int ox, int *ky0, int *ky1, int *kx0,
                          int *kx1)
{
    const int y = oy * s->stride - s->pad, x = ox * s->stride - s->pad;
    *ky0 = y < 0 ? -y : 0;
    *ky1 = s->in_h - y < s->kh ? s->in_h - y : s->kh;
    *kx0 = x < 0 ? -x : 0;
    *kx1 = s->in_w - x < s->kw ? s->in_w - x : s->kw;
}

/* The rows output (oy, ox) sums: one row number (tap * in_c + channel, os_spike_layout's
 * order) per (tap, active input channel), then the zero row up to a multiple of 4 entries;
 * returns that count. */
static int row_list(const os_conv_shape *s, int oy, int ox, const uint16_t *idx,
                    const uint16_t *cnt, uint16_t *rows)
{
    const int ic = s->in_c;
    int nrows = 0, ky0, ky1, kx0, kx1;
    window(s, oy, ox, &ky0, &ky1, &kx0, &kx1);
    for (int ky = ky0; ky < ky1; ky++) {
        const int iy = oy * s->stride - s->pad + ky;
        for (int kx = kx0; kx < kx1; kx++) {
            const int ix = ox * s->stride - s->pad + kx;
            const size_t p = (size_t)iy * (size_t)s->in_w + (size_t)ix;
            const uint16_t *act = idx + p * (size_t)ic;
            const int tap = (ky * s->kw + kx) * ic;
            for (int j = 0; j < cnt[p]; j++)
                rows[nrows++] = (uint16_t)(tap + act[j]);
        }
    }
    const uint16_t zero = (uint16_t)(s->kh * s->kw * ic);
    while (nrows & 3)
        rows[nrows++] = zero;
    return nrows;
}

#ifdef SPIKE_AVX2
/* The row list and block kernels are also inlined into the whole-layer kernels (SPIKE_LAYER). */
#define INLINED __attribute__((always_inline)) inline

/* Rows ahead whose cache lines are requested: the rows are scattered over weights larger than
 * L2, and their addresses are known in advance, which no hardware prefetcher can guess. */
#define PREFETCH_ROWS 8

/* Accumulator sets a block kernel of NV registers per set uses: at least 8 independent add
 * chains whatever the width, so that the adds of consecutive rows do not wait on each other's
 * latency (a narrow layer has few registers per row). */
#define BLOCK_SETS(NV) ((NV) >= 8 ? 1 : (NV) >= 4 ? 2 : 4)

/* The same for n = 8*NV floats: rows taken 4 at a time (nrows is a multiple of 4, a row list
 * padded with the zero row: os_spike_layout), row u into set u % SETS, the sets added at the
 * end in a fixed order; far rows (weights past FAR_BYTES) are prefetched. NV = 16 fills AVX2's
 * 16 registers with accumulators (each add takes its row from memory): one pass over the row
 * list for 128 channels where two passes of 64 took 0.90-0.94x the time (the whole pass, batch
 * 1, the Zen 4 EPYC). */
#define SPIKE_BLOCK_ISA(NAME, TARGET, T, VEC, W, ZERO, WLOAD, LOAD, ADD, STORE, NV)             \
    TARGET INLINED static void NAME(const T *w0, size_t oc, const uint16_t *rows, int nrows,      \
                            bool far, const float *b, float *out)                                \
    {                                                                                            \
        enum { SETS = BLOCK_SETS(NV) };                                                          \
        VEC a[SETS][NV];                                                                         \
        for (int u = 0; u < SETS; u++)                                                           \
            for (int v = 0; v < NV; v++)                                                         \
                a[u][v] = ZERO();                                                                \
        for (int r = 0; r < nrows; r += 4) {                                                     \
            if (NV >= 4 && far && r + PREFETCH_ROWS < nrows) /* one request per 64-byte line */  \
                for (int u = 0; u < 4; u++)                                                      \
                    for (int f = 0; f < (W) * NV; f += 64 / (int)sizeof(T))                      \
                        _mm_prefetch((const char *)(w0 + rows[r + PREFETCH_ROWS + u] * oc + f), \
                                     _MM_HINT_T0);                                               \
            for (int u = 0; u < 4; u++) {                                                        \
                const T *w = w0 + rows[r + u] * oc;                                              \
                for (int v = 0; v < NV; v++)                                                     \
                    a[u % SETS][v] = ADD(a[u % SETS][v], WLOAD(w + (W) * v));                    \
            }                                                                                    \
        }                                                                                        \
        for (int v = 0; v < NV; v++) {                                                           \
            VEC t = a[0][v];                                                                     \
            if (SETS == 4)                                                                       \
                t = ADD(ADD(t, a[1 % SETS][v]), ADD(a[2 % SETS][v], a[3 % SETS][v]));            \
            else if (SETS == 2)                                                                  \
                t = ADD(t, a[1 % SETS][v]);                                                      \
            STORE(out + (W) * v, b ? ADD(LOAD(b + (W) * v), t) : t);                             \
        }                                                                                        \
    }
#define SPIKE_BLOCK(NV)                                                                          \
    SPIKE_BLOCK_ISA(block_avx2_##NV, __attribute__((target("avx2"))), float, __m256, 8,          \
                    _mm256_setzero_ps, _mm256_loadu_ps, _mm256_loadu_ps, _mm256_add_ps,          \
                    _mm256_storeu_ps, NV)
/* M(NV) for every block width. */
#define SPIKE_WIDTHS(M) M(16) M(8) M(4) M(2) M(1)
SPIKE_WIDTHS(SPIKE_BLOCK)

/* fp16 rows: each 8 halves widened by vcvtph2ps as they are loaded, then the fp32 kernel's adds
 * in its order, every width of the fp32 set. A widened row needs a register of its own (the
 * fp32 kernel adds from memory), so at 16 accumulators GCC keeps 15 in registers and one on the
 * stack; still one pass over the row list for 128 channels: 0.91x fp32's time on the whole pass
 * (batch 1, the Zen 3 EPYC, 15 interleaved rounds), where at most 8 (two passes) took 1.07x. */
#define TARGET_F16 __attribute__((target("avx2,f16c")))
#define F16LOAD256(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define SPIKE_HBLOCK(NV)                                                                         \
    SPIKE_BLOCK_ISA(hblock_avx2_##NV, TARGET_F16, uint16_t, __m256, 8, _mm256_setzero_ps,        \
                    F16LOAD256, _mm256_loadu_ps, _mm256_add_ps, _mm256_storeu_ps, NV)
SPIKE_WIDTHS(SPIKE_HBLOCK)

/* The taps of the window, for inputs of at most LANES channels (WIDE 0), at most 2*LANES
 * (WIDE 1) or more (WIDE 2): one loop each, so no test of the width runs per tap. */
#define SPIKE_ROWLIST_TAPS(WIDE, LANES, VEC, LOAD, SET1, ADD, STORE)                             \
    for (int ky = ky0; ky < ky1; ky++) {                                                         \
        const size_t p0 =                                                                        \
            (size_t)(oy * s->stride - s->pad + ky) * (size_t)s->in_w + (size_t)ix0;              \
        const uint16_t *act = idx + p0 * (size_t)ic, *c = cnt + p0;                              \
        VEC tap = SET1((short)((ky * s->kw + kx0) * ic));                                        \
        for (int kx = kx0; kx < kx1; kx++, act += ic, c++, tap = ADD(tap, vic)) {                \
            STORE(rows + n, ADD(LOAD(act), tap));                                                \
            if (WIDE == 1)                                                                       \
                STORE(rows + n + (LANES), ADD(LOAD(act + (LANES)), tap));                        \
            if (WIDE == 2)                                                                       \
                for (int j = LANES; j < *c; j += LANES)                                          \
                    STORE(rows + n + j, ADD(LOAD(act + j), tap));                                \
            n += *c;                                                                             \
        }                                                                                        \
    }
/* The row list of output (oy, ox) (row_list's), LANES row numbers at a time: a tap's channel
 * numbers plus the tap's first row number in one 16-bit vector add, stored from the list's end;
 * the list then advances by the tap's count, so lanes past it are overwritten by the next tap or
 * lie past the end. An input of at most 2*LANES channels is stored whole (a fixed trip count: no
 * branch to mispredict per tap); a wider one up to its count. The taps of a window row are
 * walked by pointer and the tap's row number by a vector add. Reads up to LANES entries past a
 * position's list (OS_SPIKE_INDEX_SLACK) and writes up to os_spike_rows_scratch entries; pads
 * the list with the zero row to a multiple of 4. Row numbers fit 16 bits: os_spike_plan_create
 * runs no larger conv event-driven. */
#define SPIKE_ROWLIST(NAME, TARGET, LANES, VEC, LOAD, SET1, ADD, STORE)                          \
    TARGET INLINED static int NAME(const os_conv_shape *s, int oy, int ox, const uint16_t *idx, \
                           const uint16_t *cnt, uint16_t *rows)                                 \
    {                                                                                            \
        const int ic = s->in_c;                                                                  \
        const VEC vic = SET1((short)ic);                                                         \
        int n = 0, ky0, ky1, kx0, kx1;                                                           \
        window(s, oy, ox, &ky0, &ky1, &kx0, &kx1);                                               \
        const int ix0 = ox * s->stride - s->pad + kx0;                                           \
        if (ic <= (LANES)) {                                                                     \
            SPIKE_ROWLIST_TAPS(0, LANES, VEC, LOAD, SET1, ADD, STORE)                            \
        } else if (ic <= 2 * (LANES)) {                                                          \
            SPIKE_ROWLIST_TAPS(1, LANES, VEC, LOAD, SET1, ADD, STORE)                            \
        } else {                                                                                 \
            SPIKE_ROWLIST_TAPS(2, LANES, VEC, LOAD, SET1, ADD, STORE)                            \
        }                                                                                        \
        const uint16_t zero = (uint16_t)(s->kh * s->kw * ic);                                    \
        rows[n] = rows[n + 1] = rows[n + 2] = zero;                                              \
        return (n + 3) & ~3;                                                                     \
    }
/* The row list of a window wholly inside the input (NAME's list, the same entries): every tap,
 * its input position pc + toff[t] (pc the window's corner; toff made once per layer by
 * inside_taps), so that per position nothing but the list's end is carried from tap to tap,
 * where NAME walks the window's rows and columns. */
/* Every tap of an inside window, for inputs of at most LANES channels (WIDE 0), at most 2*LANES
 * (WIDE 1) or more (WIDE 2), as SPIKE_ROWLIST_TAPS. */
#define SPIKE_INSIDE_TAPS(WIDE, LANES, LOAD, ADD, STORE)                                         \
    for (int t = 0; t < taps; t++, tap = ADD(tap, vic)) {                                        \
        const size_t p = pc + (size_t)toff[t];                                                   \
        const uint16_t *act = idx + p * (size_t)ic;                                              \
        if (WIDE == 2) { /* the count read once, before the stores that may alias it */          \
            const int c = cnt[p];                                                                \
            STORE(rows + n, ADD(LOAD(act), tap));                                                \
            for (int j = LANES; j < c; j += LANES)                                               \
                STORE(rows + n + j, ADD(LOAD(act + j), tap));                                    \
            n += c;                                                                              \
            continue;                                                                            \
        }                                                                                        \
        STORE(rows + n, ADD(LOAD(act), tap));                                                    \
        if (WIDE == 1)                                                                           \
            STORE(rows + n + (LANES), ADD(LOAD(act + (LANES)), tap));                            \
        n += cnt[p];                                                                             \
    }
#define SPIKE_ROWLIST_INSIDE(NAME, TARGET, LANES, VEC, LOAD, SET1, ADD, STORE)                   \
    TARGET INLINED static int NAME(const uint16_t *idx, const uint16_t *cnt, size_t pc, int ic,  \
                                   int taps, const int *toff, uint16_t *rows)                    \
    {                                                                                            \
        const VEC vic = SET1((short)ic);                                                         \
        VEC tap = SET1(0);                                                                       \
        int n = 0;                                                                               \
        if (ic <= (LANES)) {                                                                     \
            SPIKE_INSIDE_TAPS(0, LANES, LOAD, ADD, STORE)                                        \
        } else if (ic <= 2 * (LANES)) {                                                          \
            SPIKE_INSIDE_TAPS(1, LANES, LOAD, ADD, STORE)                                        \
        } else {                                                                                 \
            SPIKE_INSIDE_TAPS(2, LANES, LOAD, ADD, STORE)                                        \
        }                                                                                        \
        const uint16_t zero = (uint16_t)(taps * ic);                                             \
        rows[n] = rows[n + 1] = rows[n + 2] = zero;                                              \
        return (n + 3) & ~3;                                                                     \
    }
_Static_assert(16 <= OS_SPIKE_INDEX_SLACK,
               "the AVX2 row list reads and writes 16 lanes past a list");
#define LOAD256(a)     _mm256_loadu_si256((const __m256i *)(a))
#define STORE256(a, v) _mm256_storeu_si256((__m256i *)(a), v)
SPIKE_ROWLIST(rowlist_avx2, __attribute__((target("avx2"))), 16, __m256i, LOAD256,
              _mm256_set1_epi16, _mm256_add_epi16, STORE256)
SPIKE_ROWLIST_INSIDE(rowlist_inside_avx2, __attribute__((target("avx2"))), 16, __m256i, LOAD256,
                     _mm256_set1_epi16, _mm256_add_epi16, STORE256)
#undef LOAD256
#undef STORE256

/* Two sets of nv accumulators: a from the bias (or 0), z from 0. */
__attribute__((target("avx2"), always_inline)) static inline void acc_init(__m256 *a, __m256 *z,
                                                                           int nv, const float *b)
{
    for (int v = 0; v < nv; v++) {
        a[v] = b ? _mm256_loadu_ps(b + 8 * v) : _mm256_setzero_ps();
        z[v] = _mm256_setzero_ps();
    }
}

/* The first layer's taps as offsets from a window's corner in the planar input (plane values a
 * channel), in the order of its weights' rows (ic, ky, kx). */
static inline void image_taps(const os_conv_shape *s, size_t plane, size_t *off)
{
    for (int ic = 0, k = 0; ic < s->in_c; ic++)
        for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++)
                off[k++] = (size_t)ic * plane + (size_t)ky * (size_t)s->in_w + (size_t)kx;
}

/* The first layer on the image (planar input, any values): out_c = 8*NV sums per output
 * position in registers, one broadcast input value times a row of wt [k][out_c] per tap. Where
 * the window lies inside the image (all but a border row or column), the taps are one list of
 * input offsets from the window's corner, worked out once, and two neighbouring positions are
 * done together, each weight row loaded once for both (a lone inside position takes its taps
 * two at a time into two accumulator sets, so the multiply-adds do not wait on each other); at
 * the border, the taps inside the image. */
#define SPIKE_IMAGE(NV)                                                                          \
    __attribute__((target("avx2,fma"))) static void image_avx2_##NV(                             \
        const os_conv_shape *s, const float *x, const float *wt, const float *b, float *y)       \
    {                                                                                            \
        const int oh = os_conv_out_h(s), ow = os_conv_out_w(s), oc = 8 * NV;                     \
        const int kk = s->in_c * s->kh * s->kw;                                                  \
        const size_t plane = (size_t)s->in_h * (size_t)s->in_w;                                  \
        size_t off[OS_IMAGE_MAX_K];                                                              \
        image_taps(s, plane, off);                                                               \
        for (int oy = 0; oy < oh; oy++)                                                          \
            for (int ox = 0; ox < ow; ox++) {                                                    \
                __m256 a[NV], z[NV];                                                             \
                acc_init(a, z, NV, b);                                                           \
                int ky0, ky1, kx0, kx1;                                                          \
                window(s, oy, ox, &ky0, &ky1, &kx0, &kx1);                                       \
                const int y0 = oy * s->stride - s->pad, x0 = ox * s->stride - s->pad;            \
                const bool inside = ky0 == 0 && kx0 == 0 && ky1 == s->kh && kx1 == s->kw;        \
                if (inside && ox + 1 < ow && x0 + s->stride + s->kw <= s->in_w) {                \
                    /* this position and the next: each weight row loaded once for both; the    \
                     * second's sums start at 0 and take the bias at the end */                 \
                    const float *xc = x + (size_t)y0 * (size_t)s->in_w + (size_t)x0;             \
                    const size_t step = (size_t)s->stride;                                       \
                    for (int k = 0; k < kk; k++) {                                               \
                        const __m256 xa = _mm256_broadcast_ss(xc + off[k]);                      \
                        const __m256 xb = _mm256_broadcast_ss(xc + off[k] + step);               \
                        const float *wa = wt + (size_t)k * (size_t)oc;                           \
                        for (int v = 0; v < NV; v++) {                                           \
                            const __m256 wv = _mm256_loadu_ps(wa + 8 * v);                       \
                            a[v] = _mm256_fmadd_ps(xa, wv, a[v]);                                \
                            z[v] = _mm256_fmadd_ps(xb, wv, z[v]);                                \
                        }                                                                        \
                    }                                                                            \
                    float *yq = y + ((size_t)oy * (size_t)ow + (size_t)ox) * (size_t)oc;         \
                    for (int v = 0; v < NV; v++) {                                               \
                        const __m256 bv = b ? _mm256_loadu_ps(b + 8 * v) : _mm256_setzero_ps(); \
                        _mm256_storeu_ps(yq + 8 * v, a[v]);                                      \
                        _mm256_storeu_ps(yq + oc + 8 * v, _mm256_add_ps(z[v], bv));              \
                    }                                                                            \
                    ox++;                                                                        \
                    continue;                                                                    \
                }                                                                                \
                if (inside) {                                                                    \
                    const float *xc = x + (size_t)y0 * (size_t)s->in_w + (size_t)x0;             \
                    int k = 0;                                                                   \
                    for (; k + 1 < kk; k += 2) {                                                 \
                        const __m256 xa = _mm256_broadcast_ss(xc + off[k]);                      \
                        const __m256 xb = _mm256_broadcast_ss(xc + off[k + 1]);                  \
                        const float *wa = wt + (size_t)k * (size_t)oc;                           \
                        for (int v = 0; v < NV; v++) {                                           \
                            a[v] = _mm256_fmadd_ps(xa, _mm256_loadu_ps(wa + 8 * v), a[v]);       \
                            z[v] = _mm256_fmadd_ps(xb, _mm256_loadu_ps(wa + oc + 8 * v), z[v]);  \
                        }                                                                        \
                    }                                                                            \
                    if (k < kk) {                                                                \
                        const __m256 xa = _mm256_broadcast_ss(xc + off[k]);                      \
                        for (int v = 0; v < NV; v++)                                             \
                            a[v] = _mm256_fmadd_ps(                                              \
                                xa, _mm256_loadu_ps(wt + (size_t)k * (size_t)oc + 8 * v), a[v]); \
                    }                                                                            \
                } else {                                                                         \
                    for (int ic = 0; ic < s->in_c; ic++)                                         \
                        for (int ky = ky0; ky < ky1; ky++) {                                     \
                            const float *xr = x + (size_t)ic * plane +                           \
                                              (size_t)(y0 + ky) * (size_t)s->in_w;               \
                            for (int kx = kx0; kx < kx1; kx++) {                                 \
                                const __m256 xv = _mm256_set1_ps(xr[x0 + kx]);                   \
                                const float *w = wt + ((size_t)(ic * s->kh + ky) *               \
                                                           (size_t)s->kw +                       \
                                                       (size_t)kx) *                             \
                                                          (size_t)oc;                            \
                                for (int v = 0; v < NV; v++)                                     \
                                    a[v] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w + 8 * v), a[v]); \
                            }                                                                    \
                        }                                                                        \
                }                                                                                \
                float *yq = y + ((size_t)oy * (size_t)ow + (size_t)ox) * (size_t)oc;             \
                for (int v = 0; v < NV; v++)                                                     \
                    _mm256_storeu_ps(yq + 8 * v, _mm256_add_ps(a[v], z[v]));                     \
            }                                                                                    \
    }
SPIKE_IMAGE(8)
SPIKE_IMAGE(4)
SPIKE_IMAGE(2)
SPIKE_IMAGE(1)

/* lut[m]: the positions of the set bits of m, in order (the rest 0): the lane permutation that
 * packs the channels that fired to the front of a group of 8. Filled once. */
static uint8_t pack_lut[256][8];
static pthread_once_t pack_lut_once = PTHREAD_ONCE_INIT;

static void pack_lut_fill(void)
{
    for (int m = 0; m < 256; m++)
        for (int b = 0, n = 0; b < 8; b++)
            if (m >> b & 1)
                pack_lut[m][n++] = (uint8_t)b;
}

/* The channels from ch on of one position (the wide index kernels' tail), as the scalar loop;
 * returns the position's count, n of them listed before ch. */
static inline int index_tail(const float *xp, uint16_t *ip, int ch, int c, int n)
{
    for (; ch < c; ch++) {
        ip[n] = (uint16_t)ch;
        n += xp[ch] != 0.0f;
    }
    return n;
}

/* The same for a LIF layer's first step on the input xp (os_lif_first's rule, to the bit): the
 * spikes written to sp unless it is NULL. */
static inline int lif_tail(const float *xp, float threshold, float *sp, uint16_t *ip, int ch,
                           int c, int n)
{
    for (; ch < c; ch++) {
        const int fired = isgreater(xp[ch] + 0.0f, threshold);
        if (sp)
            sp[ch] = (float)fired;
        ip[n] = (uint16_t)ch;
        n += fired;
    }
    return n;
}

/* os_spike_index, 8 channels at a time: compare, move the mask out, and store the channel
 * numbers that fired packed to the front with one permutation (no branch per channel). Each
 * store writes 8 slots from the current end of the list; the list never runs past its
 * position's c slots, because a group starting at channel ch leaves at most ch entries before
 * it. With lif, x is a LIF layer's input at its first step (os_lif_first, no membrane kept):
 * the compare with the threshold makes the spikes, written to spike, and the mask at once, and
 * the index is of those spikes. Inlined into each form with lif known. */
__attribute__((target("avx2"), always_inline)) static inline size_t
index_body_avx2(const float *x, int c, int hw, bool lif, float threshold, float *spike,
                uint16_t *idx, uint16_t *cnt)
{
    size_t total = 0;
    const __m256 zero = _mm256_setzero_ps(), t = _mm256_set1_ps(threshold),
                 one = _mm256_set1_ps(1.0f);
    for (int p = 0; p < hw; p++) {
        const float *xp = x + (size_t)p * (size_t)c;
        float *sp = lif && spike ? spike + (size_t)p * (size_t)c : NULL;
        uint16_t *ip = idx + (size_t)p * (size_t)c;
        int n = 0, ch = 0;
        for (; ch + 8 <= c; ch += 8) {
            __m256 fired;
            if (lif) {
                fired = _mm256_cmp_ps(_mm256_add_ps(_mm256_loadu_ps(xp + ch), zero), t,
                                      _CMP_GT_OQ);
                if (sp)
                    _mm256_storeu_ps(sp + ch, _mm256_and_ps(fired, one));
            } else {
                fired = _mm256_cmp_ps(_mm256_loadu_ps(xp + ch), zero, _CMP_NEQ_UQ);
            }
            const int m = _mm256_movemask_ps(fired);
            const __m256i lanes = _mm256_add_epi32(
                _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)pack_lut[m])),
                _mm256_set1_epi32(ch));
            /* 8 x int32 -> 8 x uint16 in the low half: pack, then join the two 64-bit halves */
            const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lanes, lanes),
                                                            0x08);
            _mm_storeu_si128((__m128i *)(ip + n), _mm256_castsi256_si128(packed));
            n += __builtin_popcount((unsigned)m);
        }
        cnt[p] = (uint16_t)(lif ? lif_tail(xp, threshold, sp, ip, ch, c, n)
                                : index_tail(xp, ip, ch, c, n));
        total += cnt[p];
    }
    return total;
}

__attribute__((target("avx2"))) static size_t index_avx2(const float *x, int c, int hw,
                                                         uint16_t *idx, uint16_t *cnt)
{
    return index_body_avx2(x, c, hw, false, 0.0f, NULL, idx, cnt);
}

__attribute__((target("avx2"))) static size_t lif_index_avx2(const float *in, int c, int hw,
                                                             float threshold, float *spike,
                                                             uint16_t *idx, uint16_t *cnt)
{
    return index_body_avx2(in, c, hw, true, threshold, spike, idx, cnt);
}

/* int8 rows, n = 16*NV channels: each row's bytes sign-extended to int16 lanes (vpmovsxbw) and
 * added in NV registers, half the instructions of int32 lanes; every Q8_FLUSH_ROWS rows the
 * int16 sums are widened and added to the int32 sums in memory (rare: at most once per layer
 * position for the shipped nets). */
__attribute__((target("avx2"))) static inline void q8_flush_avx2(__m256i a, int32_t *sum)
{
    const __m256i lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(a));
    const __m256i hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(a, 1));
    _mm256_storeu_si256((__m256i *)sum, _mm256_add_epi32(_mm256_loadu_si256((__m256i *)sum), lo));
    _mm256_storeu_si256((__m256i *)(sum + 8),
                        _mm256_add_epi32(_mm256_loadu_si256((__m256i *)(sum + 8)), hi));
}

#define Q8_ROW_AVX2(a, w, NV)                                                                      \
    for (int v = 0; v < NV; v++)                                                                   \
    a[v] = _mm256_add_epi16(                                                                       \
        a[v], _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)((w) + 16 * v))))

/* out = b (or 0) + scale * sum, n channels (a multiple of 8), a multiply then an add, each
 * rounded: the floats of q8_finish, whichever set computes them. */
__attribute__((target("avx2"))) static inline void q8_finish_avx2(const int32_t *sum,
                                                                  const float *scale,
                                                                  const float *b, int n,
                                                                  float *out)
{
    for (int j = 0; j < n; j += 8) {
        const __m256 q = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(sum + j)));
        const __m256 bv = b ? _mm256_loadu_ps(b + j) : _mm256_setzero_ps();
        _mm256_storeu_ps(out + j, _mm256_add_ps(bv, _mm256_mul_ps(_mm256_loadu_ps(scale + j), q)));
    }
}

/* int8 rows, n = LANES*NV channels (LANES int16 lanes a register): sums of up to Q8_FLUSH_ROWS
 * rows in int16 registers, widened into int32 sums in memory, then finished (q8_finish's floats);
 * rows 4 at a time, far rows prefetched. */
#define SPIKE_QBLOCK_ISA(NAME, TARGET, VEC, LANES, ZERO, ROW, FLUSH, FINISH, NV)                     \
    TARGET INLINED static void NAME(const int8_t *w0, size_t oc, const uint16_t *rows, int nrows,  \
                            bool far, const float *scale, const float *b, float *out)              \
    {                                                                                              \
        VEC a[NV];                                                                                 \
        int32_t sum[(LANES) * NV];                                                                 \
        memset(sum, 0, sizeof sum);                                                                \
        for (int r0 = 0; r0 < nrows; r0 += Q8_FLUSH_ROWS) {                                        \
            const int r1 = nrows - r0 < Q8_FLUSH_ROWS ? nrows : r0 + Q8_FLUSH_ROWS;                \
            for (int v = 0; v < NV; v++)                                                           \
                a[v] = ZERO();                                                                     \
            for (int r = r0; r < r1; r += 4) {                                                     \
                if (NV >= 4 && far && r + PREFETCH_ROWS < nrows) /* a request per 64 bytes */    \
                    for (int u = 0; u < 4; u++)                                                    \
                        for (int f = 0; f < (LANES) * NV; f += 64)                                 \
                            _mm_prefetch(                                                          \
                                (const char *)(w0 + rows[r + PREFETCH_ROWS + u] * oc + f),         \
                                _MM_HINT_T0);                                                      \
                for (int u = 0; u < 4; u++)                                                        \
                    ROW(a, w0 + rows[r + u] * oc, NV);                                             \
            }                                                                                      \
            for (int v = 0; v < NV; v++)                                                           \
                FLUSH(a[v], sum + (LANES) * v);                                                    \
        }                                                                                          \
        FINISH(sum, scale, b, (LANES) * NV, out);                                                  \
    }
#define SPIKE_QBLOCK(NV)                                                                           \
    SPIKE_QBLOCK_ISA(qblock_avx2_##NV, __attribute__((target("avx2"))), __m256i, 16,               \
                     _mm256_setzero_si256, Q8_ROW_AVX2, q8_flush_avx2, q8_finish_avx2, NV)
SPIKE_QBLOCK(8)
SPIKE_QBLOCK(4)
SPIKE_QBLOCK(2)
SPIKE_QBLOCK(1)


/* ---- AVX-512 (F + BW + VL): the same kernels on 16-float (32-int16) registers ---------------
 * 32 registers: twice the lanes of AVX2, so one pass covers up to 256 fp32 or int8 channels
 * (16 accumulators, half the registers). Widths below 16 fall to the AVX2 set (every AVX-512
 * CPU has it). */
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

#define SPIKE_BLOCK512(NV)                                                                       \
    SPIKE_BLOCK_ISA(block_avx512_##NV, TARGET_AVX512, float, __m512, 16, _mm512_setzero_ps,      \
                    _mm512_loadu_ps, _mm512_loadu_ps, _mm512_add_ps, _mm512_storeu_ps, NV)
SPIKE_WIDTHS(SPIKE_BLOCK512)
/* fp16 rows (vcvtph2ps on 16 halves is AVX-512F): 16 accumulators and their widened rows fit in
 * the 32 registers, so every width of the fp32 set. */
#define F16LOAD512(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define SPIKE_HBLOCK512(NV)                                                                      \
    SPIKE_BLOCK_ISA(hblock_avx512_##NV, TARGET_AVX512, uint16_t, __m512, 16, _mm512_setzero_ps,  \
                    F16LOAD512, _mm512_loadu_ps, _mm512_add_ps, _mm512_storeu_ps, NV)
SPIKE_WIDTHS(SPIKE_HBLOCK512)

_Static_assert(32 <= OS_SPIKE_INDEX_SLACK,
               "the AVX-512 row list reads and writes 32 lanes past a list");
#define LOAD512(a)     _mm512_loadu_si512((const void *)(a))
#define STORE512(a, v) _mm512_storeu_si512((void *)(a), v)
SPIKE_ROWLIST(rowlist_avx512, TARGET_AVX512, 32, __m512i, LOAD512, _mm512_set1_epi16,
              _mm512_add_epi16, STORE512)
SPIKE_ROWLIST_INSIDE(rowlist_inside_avx512, TARGET_AVX512, 32, __m512i, LOAD512,
                     _mm512_set1_epi16, _mm512_add_epi16, STORE512)
#undef LOAD512
#undef STORE512

/* index_body_avx2, 16 channels at a time: the mask from one compare, the channel numbers
 * that fired compressed to the front (AVX-512 F: as 32-bit lanes, then narrowed to 16 bits) and
 * all 16 stored from the list's end. */
TARGET_AVX512 __attribute__((always_inline)) static inline size_t
index_body_avx512(const float *x, int c, int hw, bool lif, float threshold, float *spike,
                  uint16_t *idx, uint16_t *cnt)
{
    size_t total = 0;
    const __m512 zero = _mm512_setzero_ps(), t = _mm512_set1_ps(threshold),
                 one = _mm512_set1_ps(1.0f);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int p = 0; p < hw; p++) {
        const float *xp = x + (size_t)p * (size_t)c;
        float *sp = lif && spike ? spike + (size_t)p * (size_t)c : NULL;
        uint16_t *ip = idx + (size_t)p * (size_t)c;
        int n = 0, ch = 0;
        for (; ch + 16 <= c; ch += 16) {
            __mmask16 m;
            if (lif) {
                m = _mm512_cmp_ps_mask(_mm512_add_ps(_mm512_loadu_ps(xp + ch), zero), t,
                                       _CMP_GT_OQ);
                if (sp)
                    _mm512_storeu_ps(sp + ch, _mm512_maskz_mov_ps(m, one));
            } else {
                m = _mm512_cmp_ps_mask(_mm512_loadu_ps(xp + ch), zero, _CMP_NEQ_UQ);
            }
            const __m512i lanes =
                _mm512_maskz_compress_epi32(m, _mm512_add_epi32(iota, _mm512_set1_epi32(ch)));
            _mm256_storeu_si256((__m256i *)(ip + n), _mm512_cvtepi32_epi16(lanes));
            n += __builtin_popcount((unsigned)m);
        }
        cnt[p] = (uint16_t)(lif ? lif_tail(xp, threshold, sp, ip, ch, c, n)
                                : index_tail(xp, ip, ch, c, n));
        total += cnt[p];
    }
    return total;
}

TARGET_AVX512 static size_t index_avx512(const float *x, int c, int hw, uint16_t *idx,
                                         uint16_t *cnt)
{
    return index_body_avx512(x, c, hw, false, 0.0f, NULL, idx, cnt);
}

TARGET_AVX512 static size_t lif_index_avx512(const float *in, int c, int hw, float threshold,
                                             float *spike, uint16_t *idx, uint16_t *cnt)
{
    return index_body_avx512(in, c, hw, true, threshold, spike, idx, cnt);
}

/* The first layer on the image, out_c = 16*NV: as the AVX2 kernel, but P neighbouring positions
 * (8 for 16 or 32 channels, 4 for 64, 2 for 128: at most 16 accumulators) at a time wherever
 * their windows lie inside the image, each weight row loaded once for all P and P*NV
 * independent multiply-add chains; the bias is added at the end. (P = 4 for 32 channels, the
 * shipped stem, was 2.6 % slower on the whole pass.)
 * Elsewhere (the border, a row's last few positions) one position at a time over the taps
 * inside the image. */
#define SPIKE_IMAGE512(NV)                                                                         \
    TARGET_AVX512 static void image_avx512_##NV(const os_conv_shape *s, const float *x,            \
                                                const float *wt, const float *b, float *y)         \
    {                                                                                              \
        enum { P = NV >= 8 ? 2 : NV >= 4 ? 4 : 8 };                                                \
        const int oh = os_conv_out_h(s), ow = os_conv_out_w(s), oc = 16 * NV;                      \
        const int kk = s->in_c * s->kh * s->kw, st = s->stride;                                    \
        const size_t plane = (size_t)s->in_h * (size_t)s->in_w;                                    \
        size_t off[OS_IMAGE_MAX_K];                                                                \
        image_taps(s, plane, off);                                                                 \
        __m512 bv[NV];                                                                             \
        for (int v = 0; v < NV; v++)                                                               \
            bv[v] = b ? _mm512_loadu_ps(b + 16 * v) : _mm512_setzero_ps();                         \
        for (int oy = 0; oy < oh; oy++)                                                            \
            for (int ox = 0; ox < ow;) {                                                           \
                int ky0, ky1, kx0, kx1;                                                            \
                window(s, oy, ox, &ky0, &ky1, &kx0, &kx1);                                         \
                const int y0 = oy * st - s->pad, x0 = ox * st - s->pad;                            \
                float *yq = y + ((size_t)oy * (size_t)ow + (size_t)ox) * (size_t)oc;               \
                if (ky0 == 0 && ky1 == s->kh && x0 >= 0 && ox + P <= ow &&                         \
                    x0 + (P - 1) * st + s->kw <= s->in_w) {                                        \
                    const float *xc = x + (size_t)y0 * (size_t)s->in_w + (size_t)x0;               \
                    __m512 a[P][NV];                                                               \
                    for (int q = 0; q < P; q++)                                                    \
                        for (int v = 0; v < NV; v++)                                               \
                            a[q][v] = _mm512_setzero_ps();                                         \
                    for (int k = 0; k < kk; k++) {                                                 \
                        const float *wa = wt + (size_t)k * (size_t)oc;                             \
                        __m512 wv[NV];                                                             \
                        for (int v = 0; v < NV; v++)                                               \
                            wv[v] = _mm512_loadu_ps(wa + 16 * v);                                  \
                        for (int q = 0; q < P; q++) {                                              \
                            const __m512 xv = _mm512_set1_ps(xc[off[k] + (size_t)(q * st)]);       \
                            for (int v = 0; v < NV; v++)                                           \
                                a[q][v] = _mm512_fmadd_ps(xv, wv[v], a[q][v]);                     \
                        }                                                                          \
                    }                                                                              \
                    for (int q = 0; q < P; q++)                                                    \
                        for (int v = 0; v < NV; v++)                                               \
                            _mm512_storeu_ps(yq + (size_t)q * (size_t)oc + 16 * v,                 \
                                             _mm512_add_ps(a[q][v], bv[v]));                       \
                    ox += P;                                                                       \
                    continue;                                                                      \
                }                                                                                  \
                __m512 a[NV];                                                                      \
                for (int v = 0; v < NV; v++)                                                       \
                    a[v] = _mm512_setzero_ps();                                                    \
                for (int ic = 0; ic < s->in_c; ic++)                                               \
                    for (int ky = ky0; ky < ky1; ky++) {                                           \
                        const float *xr =                                                          \
                            x + (size_t)ic * plane + (size_t)(y0 + ky) * (size_t)s->in_w;          \
                        for (int kx = kx0; kx < kx1; kx++) {                                       \
                            const __m512 xv = _mm512_set1_ps(xr[x0 + kx]);                         \
                            const float *w =                                                       \
                                wt + ((size_t)(ic * s->kh + ky) * (size_t)s->kw + (size_t)kx) *    \
                                         (size_t)oc;                                               \
                            for (int v = 0; v < NV; v++)                                           \
                                a[v] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + 16 * v), a[v]);     \
                        }                                                                          \
                    }                                                                              \
                for (int v = 0; v < NV; v++)                                                       \
                    _mm512_storeu_ps(yq + 16 * v, _mm512_add_ps(a[v], bv[v]));                     \
                ox++;                                                                              \
            }                                                                                      \
    }
SPIKE_IMAGE512(8)
SPIKE_IMAGE512(4)
SPIKE_IMAGE512(2)
SPIKE_IMAGE512(1)

TARGET_AVX512 static inline void q8_flush_avx512(__m512i a, int32_t *sum)
{
    const __m512i lo = _mm512_cvtepi16_epi32(_mm512_castsi512_si256(a));
    const __m512i hi = _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(a, 1));
    _mm512_storeu_si512(sum, _mm512_add_epi32(_mm512_loadu_si512(sum), lo));
    _mm512_storeu_si512(sum + 16, _mm512_add_epi32(_mm512_loadu_si512(sum + 16), hi));
}

#define Q8_ROW_AVX512(a, w, NV)                                                                    \
    for (int v = 0; v < NV; v++)                                                                   \
    a[v] = _mm512_add_epi16(                                                                       \
        a[v], _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)((w) + 32 * v))))

/* q8_finish_avx2 on 16 lanes. */
TARGET_AVX512 static inline void q8_finish_avx512(const int32_t *sum, const float *scale,
                                                  const float *b, int n, float *out)
{
    for (int j = 0; j < n; j += 16) {
        const __m512 q = _mm512_cvtepi32_ps(_mm512_loadu_si512(sum + j));
        const __m512 bv = b ? _mm512_loadu_ps(b + j) : _mm512_setzero_ps();
        _mm512_storeu_ps(out + j, _mm512_add_ps(bv, _mm512_mul_ps(_mm512_loadu_ps(scale + j), q)));
    }
}

#define SPIKE_QBLOCK512(NV)                                                                        \
    SPIKE_QBLOCK_ISA(qblock_avx512_##NV, TARGET_AVX512, __m512i, 32, _mm512_setzero_si512,         \
                     Q8_ROW_AVX512, q8_flush_avx512, q8_finish_avx512, NV)
SPIKE_QBLOCK512(8)
SPIKE_QBLOCK512(4)
SPIKE_QBLOCK512(2)
SPIKE_QBLOCK512(1)

/* Taps of a window up to which a whole-layer kernel lists the rows of an inside window from a
 * table (inside_taps); a larger kernel takes the general row list everywhere. */
#define INSIDE_MAX_TAPS 49

/* toff[t]: tap t's input position from the window's corner (t = ky * kw + kx, row-major as the
 * weight rows); false if the kernel has more than INSIDE_MAX_TAPS taps. */
static inline bool inside_taps(const os_conv_shape *s, int *toff)
{
    if (s->kh * s->kw > INSIDE_MAX_TAPS)
        return false;
    for (int ky = 0; ky < s->kh; ky++)
        for (int kx = 0; kx < s->kw; kx++)
            toff[ky * s->kw + kx] = ky * s->in_w + kx;
    return true;
}

/* Output (oy, ox)'s row list: from the tap table where the window lies inside the input. Used
 * in the whole-layer kernels below; reads their s, idx, cnt, rows, table, toff, oy, ox and the
 * window's corner y0, x0. */
#define LAYER_ROWS(ISA)                                                                            \
    (table && y0 >= 0 && x0 >= 0 && y0 + s->kh <= s->in_h && x0 + s->kw <= s->in_w                 \
         ? rowlist_inside_##ISA(idx, cnt, (size_t)y0 * (size_t)s->in_w + (size_t)x0, s->in_c, \
                                s->kh * s->kw, toff, rows)                                         \
         : rowlist_##ISA(s, oy, ox, idx, cnt, rows))

/* A whole conv whose out_c is exactly one block kernel's width OC (every conv of the shipped
 * nets): per position the row list and that block, inlined, where os_spike_conv calls both
 * through the tables and searches for the block at every position; OC a constant, so a row's
 * address is a shift. fp32 rows (SPIKE_LAYER) and int8 (SPIKE_QLAYER, with the scales). */
#define SPIKE_LAYER(NAME, TARGET, ISA, T, BLOCK, OC)                                               \
    TARGET static void NAME(const os_conv_shape *s, const uint16_t *idx, const uint16_t *cnt,      \
                            const T *wt, bool far, const float *b, float *y, uint16_t *rows)       \
    {                                                                                              \
        const int oh = os_conv_out_h(s), ow = os_conv_out_w(s);                                    \
        int toff[INSIDE_MAX_TAPS];                                                                 \
        const bool table = inside_taps(s, toff);                                                   \
        for (int oy = 0; oy < oh; oy++)                                                            \
            for (int ox = 0; ox < ow; ox++) {                                                      \
                const int y0 = oy * s->stride - s->pad, x0 = ox * s->stride - s->pad;              \
                BLOCK(wt, (OC), rows, LAYER_ROWS(ISA), far, b,                                     \
                      y + ((size_t)oy * (size_t)ow + (size_t)ox) * (OC));                          \
            }                                                                                      \
    }
#define SPIKE_QLAYER(NAME, TARGET, ISA, QBLOCK, OC)                                                \
    TARGET static void NAME(const os_conv_shape *s, const uint16_t *idx, const uint16_t *cnt,      \
                            const int8_t *wq, bool far, const float *scale, const float *b,        \
                            float *y, uint16_t *rows)                                              \
    {                                                                                              \
        const int oh = os_conv_out_h(s), ow = os_conv_out_w(s);                                    \
        int toff[INSIDE_MAX_TAPS];                                                                 \
        const bool table = inside_taps(s, toff);                                                   \
        for (int oy = 0; oy < oh; oy++)                                                            \
            for (int ox = 0; ox < ow; ox++) {                                                      \
                const int y0 = oy * s->stride - s->pad, x0 = ox * s->stride - s->pad;              \
                QBLOCK(wq, (OC), rows, LAYER_ROWS(ISA), far, scale, b,                             \
                       y + ((size_t)oy * (size_t)ow + (size_t)ox) * (OC));                         \
            }                                                                                      \
    }
/* Every width of one instruction set of LANES floats a register: layer_ISA_NV for block_ISA_NV
 * (LANES * NV channels), qlayer_ISA_NV for qblock_ISA_NV (2 * LANES * NV: int16 lanes). */
#define SPIKE_LAYERS(ISA, TARGET, LANES)                                                           \
    SPIKE_LAYER(layer_##ISA##_1, TARGET, ISA, float, block_##ISA##_1, (LANES))                     \
    SPIKE_LAYER(layer_##ISA##_2, TARGET, ISA, float, block_##ISA##_2, 2 * (LANES))                 \
    SPIKE_LAYER(layer_##ISA##_4, TARGET, ISA, float, block_##ISA##_4, 4 * (LANES))                 \
    SPIKE_LAYER(layer_##ISA##_8, TARGET, ISA, float, block_##ISA##_8, 8 * (LANES))                 \
    SPIKE_LAYER(layer_##ISA##_16, TARGET, ISA, float, block_##ISA##_16, 16 * (LANES))              \
    SPIKE_QLAYER(qlayer_##ISA##_1, TARGET, ISA, qblock_##ISA##_1, 2 * (LANES))                     \
    SPIKE_QLAYER(qlayer_##ISA##_2, TARGET, ISA, qblock_##ISA##_2, 4 * (LANES))                     \
    SPIKE_QLAYER(qlayer_##ISA##_4, TARGET, ISA, qblock_##ISA##_4, 8 * (LANES))                     \
    SPIKE_QLAYER(qlayer_##ISA##_8, TARGET, ISA, qblock_##ISA##_8, 16 * (LANES))
SPIKE_LAYERS(avx2, __attribute__((target("avx2"))), 8)
SPIKE_LAYERS(avx512, TARGET_AVX512, 16)
/* fp16 rows: hlayer_ISA_NV for hblock_ISA_NV. */
#define SPIKE_HLAYER(ISA, TARGET, LANES, NV)                                                       \
    SPIKE_LAYER(hlayer_##ISA##_##NV, TARGET, ISA, uint16_t, hblock_##ISA##_##NV, (NV) * (LANES))
#define SPIKE_HLAYER_AVX2(NV)   SPIKE_HLAYER(avx2, TARGET_F16, 8, NV)
#define SPIKE_HLAYER_AVX512(NV) SPIKE_HLAYER(avx512, TARGET_AVX512, 16, NV)
SPIKE_WIDTHS(SPIKE_HLAYER_AVX2)
SPIKE_WIDTHS(SPIKE_HLAYER_AVX512)


#endif

/* Weights of more bytes than this are "far": their rows come from beyond L2, so the block
 * kernels prefetch them (PREFETCH_ROWS ahead). From a layer that stays in cache the requests
 * only take load slots: without them the whole pass took 0.90-0.93x the time at batch 1 on the
 * Zen 4 EPYC (fp32 rows; 0.88x with the AVX2 kernels). */
#define FAR_BYTES ((size_t)1 << 20)

/* A block kernel sums the rows into n = width << v output channels (v in [0..4]). */
typedef void (*block_fn)(const float *w0, size_t oc, const uint16_t *rows, int nrows, bool far,
                         const float *b, float *out);
typedef void (*hblock_fn)(const uint16_t *w0, size_t oc, const uint16_t *rows, int nrows, bool far,
                          const float *b, float *out);
typedef int (*rowlist_fn)(const os_conv_shape *, int, int, const uint16_t *, const uint16_t *,
                          uint16_t *);
typedef void (*qblock_fn)(const int8_t *w0, size_t oc, const uint16_t *rows, int nrows, bool far,
                          const float *scale, const float *b, float *out);

typedef size_t (*index_fn)(const float *x, int c, int hw, uint16_t *idx, uint16_t *cnt);
typedef size_t (*lif_index_fn)(const float *in, int c, int hw, float threshold, float *spike,
                               uint16_t *idx, uint16_t *cnt);
typedef void (*image_fn)(const os_conv_shape *, const float *, const float *, const float *,
                         float *);
typedef void (*layer_fn)(const os_conv_shape *s, const uint16_t *idx, const uint16_t *cnt,
                         const float *wt, bool far, const float *b, float *y, uint16_t *rows);
typedef void (*hlayer_fn)(const os_conv_shape *s, const uint16_t *idx, const uint16_t *cnt,
                          const uint16_t *wh, bool far, const float *b, float *y, uint16_t *rows);
typedef void (*qlayer_fn)(const os_conv_shape *s, const uint16_t *idx, const uint16_t *cnt,
                          const int8_t *wq, bool far, const float *scale, const float *b, float *y,
                          uint16_t *rows);

struct os_spike_kernels {
    os_isa isa;
    index_fn index;
    lif_index_fn lif_index; /* NULL: os_lif_first, then index */
    rowlist_fn rowlist;  /* the row list of one output position, padded to a multiple of 4 */
    int width;           /* fp32: block[v] covers width << v channels */
    block_fn block[5];   /* NULL: the generic loop */
    int qwidth;          /* int8 rows: the same for qblock */
    qblock_fn qblock[4];
    image_fn image[4]; /* the first layer, for width << v channels; NULL: os_conv2d_hwc */
    layer_fn layer[5];   /* a whole conv of exactly width << v channels (block[v]'s); or NULL */
    qlayer_fn qlayer[4]; /* the same for qblock[v] */
    hblock_fn hblock[5]; /* fp16 rows, block[v]'s widths; NULL: a narrower one or the generic */
    hlayer_fn hlayer[5]; /* the same for hblock[v] */
    const os_spike_kernels *narrow; /* for channels below width: a narrower set, or NULL */
};

static const os_spike_kernels kernels_scalar = {
    OS_ISA_SCALAR, os_spike_index, NULL, row_list, 8, {NULL}, 16, {NULL}, {NULL}, {NULL}, {NULL},
    {NULL}, {NULL}, NULL,
};
#ifdef SPIKE_AVX2
static const os_spike_kernels kernels_avx2 = {
    OS_ISA_AVX2,
    index_avx2,
    lif_index_avx2,
    rowlist_avx2,
    8,
    {block_avx2_1, block_avx2_2, block_avx2_4, block_avx2_8, block_avx2_16},
    16,
    {qblock_avx2_1, qblock_avx2_2, qblock_avx2_4, qblock_avx2_8},
    {image_avx2_1, image_avx2_2, image_avx2_4, image_avx2_8},
    {layer_avx2_1, layer_avx2_2, layer_avx2_4, layer_avx2_8, layer_avx2_16},
    {qlayer_avx2_1, qlayer_avx2_2, qlayer_avx2_4, qlayer_avx2_8},
    {hblock_avx2_1, hblock_avx2_2, hblock_avx2_4, hblock_avx2_8, hblock_avx2_16},
    {hlayer_avx2_1, hlayer_avx2_2, hlayer_avx2_4, hlayer_avx2_8, hlayer_avx2_16},
    NULL,
};
static const os_spike_kernels kernels_avx512 = {
    OS_ISA_AVX512,
    index_avx512,
    lif_index_avx512,
    rowlist_avx512,
    16,
    {block_avx512_1, block_avx512_2, block_avx512_4, block_avx512_8, block_avx512_16},
    32,
    {qblock_avx512_1, qblock_avx512_2, qblock_avx512_4, qblock_avx512_8},
    {image_avx512_1, image_avx512_2, image_avx512_4, image_avx512_8},
    {layer_avx512_1, layer_avx512_2, layer_avx512_4, layer_avx512_8, layer_avx512_16},
    {qlayer_avx512_1, qlayer_avx512_2, qlayer_avx512_4, qlayer_avx512_8},
    {hblock_avx512_1, hblock_avx512_2, hblock_avx512_4, hblock_avx512_8, hblock_avx512_16},
    {hlayer_avx512_1, hlayer_avx512_2, hlayer_avx512_4, hlayer_avx512_8, hlayer_avx512_16},
    &kernels_avx2,
};
#endif

const os_spike_kernels *os_spike_kernels_for(os_isa isa)
{
    if (!os_isa_supported(isa))
        return NULL;
    switch (isa) {
    case OS_ISA_SCALAR: return &kernels_scalar;
#ifdef SPIKE_AVX2
    case OS_ISA_AVX2:
        pthread_once(&pack_lut_once, pack_lut_fill);
        return &kernels_avx2;
    case OS_ISA_AVX512:
        pthread_once(&pack_lut_once, pack_lut_fill);
        return &kernels_avx512;
#endif
    default: return NULL;
    }
}

os_isa os_spike_kernels_isa(const os_spike_kernels *k)
{
    return k->isa;
}

size_t os_spike_kernels_index(const os_spike_kernels *k, const float *x, int c, int hw,
                              uint16_t *idx, uint16_t *cnt)
{
    assert(c >= 0 && c <= OS_SPIKE_MAX_CHANNELS);
    return k->index(x, c, hw, idx, cnt);
}

size_t os_spike_kernels_lif_index(const os_spike_kernels *k, const float *in, int c, int hw,
                                  float threshold, float *spike, uint16_t *idx, uint16_t *cnt)
{
    assert(c >= 0 && c <= OS_SPIKE_MAX_CHANNELS);
    if (k->lif_index)
        return k->lif_index(in, c, hw, threshold, spike, idx, cnt);
    if (!spike) { /* the index alone */
        size_t total = 0;
        for (int p = 0; p < hw; p++) {
            const size_t at = (size_t)p * (size_t)c;
            cnt[p] = (uint16_t)lif_tail(in + at, threshold, NULL, idx + at, 0, c, 0);
            total += cnt[p];
        }
        return total;
    }
    os_lif_first(NULL, in, (size_t)c * (size_t)hw, threshold, spike);
    return k->index(spike, c, hw, idx, cnt);
}

/* NAME: accumulate out channels [c0, oc) of one output position, or the first of them, from
 * rows of type T; returns the count done (the widest kernel of table FIELD in k or its narrower
 * sets that fits, else GENERIC on up to BLOCK_MAX). fp32 rows (block) and fp16 (hblock). */
#define SPIKE_BLOCK_PICK(NAME, T, FIELD, GENERIC)                                                  \
    static int NAME(const os_spike_kernels *k, const T *wt, int oc, const uint16_t *rows,         \
                    int nrows, bool far, const float *b, int c0, float *out)                       \
    {                                                                                              \
        const T *w0 = wt + c0;                                                                     \
        const float *bc = b ? b + c0 : NULL;                                                       \
        int n = oc - c0;                                                                           \
        for (const os_spike_kernels *q = k; q; q = q->narrow)                                      \
            for (int v = (int)(sizeof q->FIELD / sizeof *q->FIELD) - 1; v >= 0; v--) {             \
                const int width = q->width << v;                                                   \
                if (q->FIELD[v] && n >= width) {                                                   \
                    q->FIELD[v](w0, (size_t)oc, rows, nrows, far, bc, out);                        \
                    return width;                                                                  \
                }                                                                                  \
            }                                                                                      \
        n = n < BLOCK_MAX ? n : BLOCK_MAX;                                                         \
        GENERIC(w0, (size_t)oc, rows, nrows, bc, n, out);                                          \
        return n;                                                                                  \
    }
SPIKE_BLOCK_PICK(block, float, block, block_generic)
SPIKE_BLOCK_PICK(hblock, uint16_t, hblock, hblock_generic)

/* NAME(k, oc): the kernel of table FIELD (one per width << v) for exactly oc channels, from k
 * or the narrower sets it falls back on; NULL if none. */
#define KERNEL_FOR(NAME, TYPE, FIELD, WIDTH)                                                     \
    static TYPE NAME(const os_spike_kernels *k, int oc)                                          \
    {                                                                                            \
        for (const os_spike_kernels *q = k; q; q = q->narrow)                                    \
            for (int v = 0; v < (int)(sizeof q->FIELD / sizeof *q->FIELD); v++)                  \
                if (q->FIELD[v] && oc == q->WIDTH << v)                                          \
                    return q->FIELD[v];                                                          \
        return NULL;                                                                             \
    }
KERNEL_FOR(image_lookup, image_fn, image, width)
KERNEL_FOR(layer_lookup, layer_fn, layer, width)
KERNEL_FOR(qlayer_lookup, qlayer_fn, qlayer, qwidth)
KERNEL_FOR(hlayer_lookup, hlayer_fn, hlayer, width)

/* The body of os_spike_conv for rows of type T: the whole-layer kernel LOOKUP finds for out_c,
 * else per position the row list and PICK's blocks. */
#define SPIKE_CONV_BODY(T, LOOKUP, PICK)                                                           \
    const int oh = os_conv_out_h(s), ow = os_conv_out_w(s), oc = s->out_c;                         \
    const bool far = os_spike_layout_rows(s) * (size_t)oc * sizeof(T) > FAR_BYTES;                \
    assert(k != NULL && idx != NULL && cnt != NULL && wt != NULL && y != NULL && rows != NULL);    \
    const __typeof__(LOOKUP(k, oc)) layer = LOOKUP(k, oc);                                         \
    if (layer) {                                                                                   \
        layer(s, idx, cnt, wt, far, b, y, rows);                                                   \
        return;                                                                                    \
    }                                                                                              \
    for (int oy = 0; oy < oh; oy++)                                                                \
        for (int ox = 0; ox < ow; ox++) {                                                          \
            const int nrows = k->rowlist(s, oy, ox, idx, cnt, rows);                               \
            float *yq = y + ((size_t)oy * (size_t)ow + (size_t)ox) * (size_t)oc;                   \
            for (int c0 = 0; c0 < oc;)                                                             \
                c0 += PICK(k, wt, oc, rows, nrows, far, b, c0, yq + c0);                           \
        }

void os_spike_conv(const os_spike_kernels *k, const os_conv_shape *s, const uint16_t *idx,
                   const uint16_t *cnt, const float *wt, const float *b, float *y, uint16_t *rows)
{
    SPIKE_CONV_BODY(float, layer_lookup, block)
}

void os_spike_conv_f16(const os_spike_kernels *k, const os_conv_shape *s, const uint16_t *idx,
                       const uint16_t *cnt, const uint16_t *wt, const float *b, float *y,
                       uint16_t *rows)
{
    SPIKE_CONV_BODY(uint16_t, hlayer_lookup, hblock)
}

/* y = b + scale * sum for n channels: one routine for every kernel set, compiled without the
 * wide targets, so no set contracts it into a fused multiply-add and all give equal floats. */
static void q8_finish(const int32_t *sum, const float *scale, const float *b, int n, float *y)
{
    for (int j = 0; j < n; j++)
        y[j] = (b ? b[j] : 0.0f) + scale[j] * (float)sum[j];
}

/* Output channels [c0, oc) of one position, or the first of them, int8 rows: out = b + scale *
 * the exact sums; returns the count done (the widest block of k or its narrower sets that
 * fits). */
static int qblock(const os_spike_kernels *k, const int8_t *wq, int oc, const uint16_t *rows,
                  int nrows, bool far, const float *scale, const float *b, int c0, float *out)
{
    const int8_t *w0 = wq + c0;
    const float *bc = b ? b + c0 : NULL;
    int n = oc - c0;
    for (const os_spike_kernels *q = k; q; q = q->narrow)
        for (int v = (int)(sizeof q->qblock / sizeof *q->qblock) - 1; v >= 0; v--) {
            const int width = q->qwidth << v;
            if (q->qblock[v] && n >= width) {
                q->qblock[v](w0, (size_t)oc, rows, nrows, far, scale + c0, bc, out);
                return width;
            }
        }
    int32_t sum[QBLOCK_MAX];
    n = n < QBLOCK_MAX ? n : QBLOCK_MAX;
    qblock_generic(w0, (size_t)oc, rows, nrows, n, sum);
    q8_finish(sum, scale + c0, bc, n, out);
    return n;
}

void os_spike_conv_q8(const os_spike_kernels *k, const os_conv_shape *s, const uint16_t *idx,
                      const uint16_t *cnt, const int8_t *wq, const float *scale, const float *b,
                      float *y, uint16_t *rows)
{
    const int oh = os_conv_out_h(s), ow = os_conv_out_w(s), oc = s->out_c;
    const bool far = os_spike_layout_rows(s) * (size_t)oc * sizeof *wq > FAR_BYTES;
    assert(k != NULL && idx != NULL && cnt != NULL && wq != NULL && scale != NULL && y != NULL &&
           rows != NULL);
    const qlayer_fn qlayer = qlayer_lookup(k, oc);
    if (qlayer) {
        qlayer(s, idx, cnt, wq, far, scale, b, y, rows);
        return;
    }
    for (int oy = 0; oy < oh; oy++) {
        for (int ox = 0; ox < ow; ox++) {
            float *yq = y + ((size_t)oy * (size_t)ow + (size_t)ox) * (size_t)oc;
            const int nrows = k->rowlist(s, oy, ox, idx, cnt, rows);
            for (int c0 = 0; c0 < oc;)
                c0 += qblock(k, wq, oc, rows, nrows, far, scale, b, c0, yq + c0);
        }
    }
}

/* y rows (one per output position) start as the bias, so SGEMM adds to them; beta for it. */
static float bias_rows(const float *b, size_t n, int oc, float *y)
{
    if (b == NULL)
        return 0.0f;
    for (size_t q = 0; q < n; q++) /* one pass, not a memcpy call per position */
        for (int c = 0; c < oc; c++)
            y[q * (size_t)oc + (size_t)c] = b[c];
    return 1.0f;
}

void os_conv2d_hwc_wt(const os_conv_shape *s, const float *x, const float *wt, const float *b,
                      float *y, float *col)
{
    const int oh = os_conv_out_h(s), ow = os_conv_out_w(s), ic = s->in_c;
    const size_t n = (size_t)oh * (size_t)ow, k = (size_t)s->kh * (size_t)s->kw * (size_t)ic;
    const float *patches = x; /* a 1x1, stride-1, unpadded conv reads the input as it is */
    if (!os_conv_is_direct(s)) {
        memset(col, 0, n * k * sizeof *col);
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float *row = col + ((size_t)oy * (size_t)ow + (size_t)ox) * k;
                int ky0, ky1, kx0, kx1;
                window(s, oy, ox, &ky0, &ky1, &kx0, &kx1);
                for (int ky = ky0; ky < ky1; ky++)
                    for (int kx = kx0; kx < kx1; kx++) {
                        const int iy = oy * s->stride - s->pad + ky;
                        const int ix = ox * s->stride - s->pad + kx;
                        memcpy(row + (size_t)(ky * s->kw + kx) * (size_t)ic,
                               x + ((size_t)iy * (size_t)s->in_w + (size_t)ix) * (size_t)ic,
                               (size_t)ic * sizeof *x);
                    }
            }
        patches = col;
    }
    const float beta = bias_rows(b, n, s->out_c, y);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, s->out_c, (int)k, 1.0f, patches,
                (int)k, wt, s->out_c, beta, y, s->out_c);
}

void os_conv2d_hwc(const os_conv_shape *s, const float *x, const float *w, const float *b,
                   float *y, float *col)
{
    const int oh = os_conv_out_h(s), ow = os_conv_out_w(s);
    const size_t n = (size_t)oh * (size_t)ow;
    const size_t k = (size_t)s->in_c * (size_t)s->kh * (size_t)s->kw;
    const float *patches = x;
    if (!os_conv_is_direct(s)) {
        os_im2col(s, oh, ow, x, col, n);
        patches = col;
    }
    const float beta = bias_rows(b, n, s->out_c, y);
    /* y [n][out_c] = patches^T [n][k] * w^T [k][out_c] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)n, s->out_c, (int)k, 1.0f, patches,
                (int)n, w, (int)k, beta, y, s->out_c);
}

void os_spike_image_weights(size_t k, int oc, const float *w, float *wt)
{
    for (size_t r = 0; r < k; r++)
        for (int o = 0; o < oc; o++)
            wt[r * (size_t)oc + (size_t)o] = w[(size_t)o * k + r];
}

void os_spike_image_conv(const os_spike_kernels *k, const os_conv_shape *s, const float *x,
                         const float *wt, const float *w, const float *b, float *y, float *col)
{
    const size_t kk = (size_t)s->in_c * (size_t)s->kh * (size_t)s->kw;
    const image_fn f = k && wt && kk <= OS_IMAGE_MAX_K ? image_lookup(k, s->out_c) : NULL;
    if (f)
        f(s, x, wt, b, y);
    else
        os_conv2d_hwc(s, x, w, b, y, col);
}

void os_maxpool2d_hwc(const float *x, int c, int h, int w, int k, int stride, int pad, float *y)
{
    const int oh = os_pool_out(h, k, stride, pad), ow = os_pool_out(w, k, stride, pad);
    for (int oy = 0; oy < oh; oy++) {
        for (int ox = 0; ox < ow; ox++) {
            int y0, y1, x0, x1;
            os_pool_window(oy, ox, h, w, k, stride, pad, &y0, &y1, &x0, &x1);
            float *yq = y + ((size_t)oy * (size_t)ow + (size_t)ox) * (size_t)c;
            /* As os_maxpool2d: an all-padding window (impossible for pad < k) yields 0. */
            const float init = y0 < y1 && x0 < x1 ? -INFINITY : 0.0f;
            for (int ch = 0; ch < c; ch++)
                yq[ch] = init;
            for (int iy = y0; iy < y1; iy++)
                for (int ix = x0; ix < x1; ix++) {
                    const float *xp = x + ((size_t)iy * (size_t)w + (size_t)ix) * (size_t)c;
                    for (int ch = 0; ch < c; ch++)
                        yq[ch] = xp[ch] > yq[ch] ? xp[ch] : yq[ch];
                }
        }
    }
}

void os_global_avgpool_hwc(const float *x, int c, size_t hw, float *y)
{
    assert(hw >= 1);
    /* The same double sums over positions in the same order as os_global_avgpool. */
    for (int ch = 0; ch < c; ch++) {
        double sum = 0.0;
        for (size_t p = 0; p < hw; p++)
            sum += x[p * (size_t)c + (size_t)ch];
        y[ch] = (float)(sum / (double)hw);
    }
}

void os_hwc_to_chw(const float *x, int c, size_t hw, float *y)
{
    for (size_t p = 0; p < hw; p++)
        for (int ch = 0; ch < c; ch++)
            y[(size_t)ch * hw + p] = x[p * (size_t)c + (size_t)ch];
}
