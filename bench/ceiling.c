/* ceiling - the machine's rate for the event-driven convolution's own kernels: sums of weight
 * rows of out_c floats selected by a spike index (bench/run.sh's "ceiling" line).
 *
 *   ceiling [--ms MS] [--layers FILE] [--isa scalar|avx2|avx512]
 *
 * It runs os_spike_conv (core/engine/spikeconv.c, a private header: the kernels themselves, not a
 * copy) with the instruction set a session would pick (or --isa), on synthetic layers of random
 * spikes: the row list of each output position, then its rows summed by the blocks. What the
 * engine does around a conv (spike indexing, LIF, the dense stem, pooling) is left out: this is
 * the ceiling of the part that is the point of the engine, on windows that never touch a border.
 *
 * A synthetic layer: a conv of out_c x in_c x kh x kw, stride 1, no padding, over an input of
 * random spikes whose rate gives rows_per_position active inputs per window on average, with
 * positions output positions (a square map where positions is a square); the weights laid out
 * as the engine lays them out (os_spike_layout) in one block aligned to 2 MiB, advised for
 * transparent huge pages; outputs channels-last.
 *
 * Without --layers: a sweep over the shapes (out_c 32, 64 and 256) and weight sizes (16 KiB: L1;
 * 256 KiB: L2; 2.25 MiB: one 3x3 256->256 conv; 11 MiB: all the fp32 weights of the shipped
 * model's event-driven convs), 9 taps, 16 active inputs per tap (fewer if in_c is smaller).
 * With --layers FILE (lines: name out_c in_c kh kw stride positions rows_per_position, as
 * bench/accumulates.py writes them from the measured spikes): the network's own layers run in
 * sequence, as one image's pass runs them (so each layer's weights come from wherever the
 * previous layers left them), best of the passes, and the per-layer and whole rates.
 * Every rate is accumulates (one float add of a weight into an output) per second, counted from
 * the drawn spikes; each result is a JSON line on stdout. Single-threaded. Best of several timed
 * repetitions of at least MS ms (default 40) each.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>

#include "isa.h"
#include "spikeconv.h"

#define REPS          5
#define MAX_LAYERS    256

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng_state = 0x6f6e657370696b65ull;
static uint64_t rng(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- a synthetic layer -------------------------------------------------------------------- */

typedef struct {
    char name[64];
    os_conv_shape shape;      /* in_h, in_w from positions (stride 1, no padding) */
    int positions;
    double rows_per_position; /* asked */
    float *wt, *bias, *out;
    uint16_t *idx, *cnt;      /* the spike index of the input */
    uint16_t *rows;           /* os_spike_conv's scratch */
    uint64_t rows_total;      /* drawn: the accumulates are rows_total * out_c per pass */
    double best_s;            /* best pass time (sequence mode: within the best whole pass) */
} layer;

static const os_spike_kernels *kernels;

/* Weights as the engine keeps them (core/engine/spikeconv.c): in one block aligned to 2 MiB and
 * advised for transparent huge pages, layer after layer, each from a cache line. The sweep
 * measures one layer at a time, so the block is reused from its start once no layer holds it. */
#define ARENA_BYTES ((size_t)64 << 20)
static char *arena;
static size_t arena_used;
static int arena_layers;

static float *weights_alloc(size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    if (!arena) {
        void *a = NULL;
        if (posix_memalign(&a, (size_t)2 << 20, ARENA_BYTES) != 0)
            return NULL;
#ifdef MADV_HUGEPAGE
        (void)madvise(a, ARENA_BYTES, MADV_HUGEPAGE);
#endif
        arena = a;
    }
    if (arena_used + bytes > ARENA_BYTES)
        return NULL;
    float *w = (float *)(arena + arena_used);
    arena_used += bytes, arena_layers++;
    return w;
}

static void weights_free(const float *w)
{
    if (w && --arena_layers == 0)
        arena_used = 0;
}

/* The shape from out_c, in_c, taps (1 or k*k), stride 1 and positions; weights, a spike map
 * with the asked rows per position, its index. */
static int layer_init(layer *L, int out_c, int in_c, int kh, int kw)
{
    int oh = 1, ow = L->positions;
    for (int r = 1; r * r <= L->positions; r++)
        if (r * r == L->positions)
            oh = ow = r;
    L->shape = (os_conv_shape){in_c, oh - 1 + kh, ow - 1 + kw, out_c, kh, kw, 1, 0};
    const os_conv_shape *s = &L->shape;
    const size_t hw = (size_t)s->in_h * (size_t)s->in_w, nin = hw * (size_t)in_c;
    const size_t nw = (size_t)out_c * (size_t)in_c * (size_t)kh * (size_t)kw;
    float *w = malloc(nw * sizeof *w), *x = malloc(nin * sizeof *x);
    L->wt = weights_alloc(os_spike_layout_rows(s) * (size_t)out_c * sizeof(float));
    L->bias = calloc((size_t)out_c, sizeof(float));
    L->out = aligned_alloc(64, ((size_t)L->positions * (size_t)out_c * sizeof(float) + 63) / 64 * 64);
    L->idx = calloc(nin + OS_SPIKE_INDEX_SLACK, sizeof(uint16_t));
    L->cnt = calloc(hw, sizeof(uint16_t));
    L->rows = malloc(os_spike_rows_scratch(s) * sizeof(uint16_t));
    if (!w || !x || !L->wt || !L->bias || !L->out || !L->idx || !L->cnt || !L->rows) {
        free(w), free(x);
        return -1;
    }
    for (size_t i = 0; i < nw; i++)
        w[i] = (float)(rng() >> 40) * 0x1p-24f - 0.5f;
    os_spike_layout(s, w, L->wt);
    const double rate = L->rows_per_position / ((double)kh * kw * in_c);
    for (size_t i = 0; i < nin; i++)
        x[i] = (double)(rng() >> 11) * 0x1p-53 < rate ? 1.0f : 0.0f;
    os_spike_index(x, in_c, (int)hw, L->idx, L->cnt);
    L->rows_total = 0; /* every window lies inside: each sums its taps' counts */
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++)
                    L->rows_total += L->cnt[(size_t)(oy + ky) * (size_t)s->in_w + (size_t)(ox + kx)];
    free(w), free(x);
    L->best_s = 1e30;
    return 0;
}

static void layer_free(layer *L)
{
    weights_free(L->wt);
    free(L->bias), free(L->out), free(L->idx), free(L->cnt), free(L->rows);
}

/* One pass: every output position of the layer. */
static void layer_pass(layer *L)
{
    os_spike_conv(kernels, &L->shape, L->idx, L->cnt, L->wt, L->bias, L->out, L->rows);
}

static double acc_per_pass(const layer *L)
{
    return (double)L->rows_total * L->shape.out_c;
}

static size_t layer_weight_bytes(const layer *L)
{
    const os_conv_shape *s = &L->shape;
    return (size_t)s->kh * s->kw * s->in_c * s->out_c * sizeof(float);
}

static void print_layer(const char *kind, const layer *L)
{
    const os_conv_shape *s = &L->shape;
    printf("{\"kind\":\"%s\",\"name\":\"%s\",\"kernel\":\"%s\",\"out_c\":%d,\"in_c\":%d,"
           "\"taps\":%d,\"positions\":%d,\"weight_bytes\":%zu,\"rows_per_position\":%.2f,"
           "\"accumulates\":%.0f,\"us\":%.3f,\"gacc_per_s\":%.2f}\n",
           kind, L->name, os_isa_name(os_spike_kernels_isa(kernels)), s->out_c, s->in_c,
           s->kh * s->kw, L->positions, layer_weight_bytes(L),
           (double)L->rows_total / L->positions, acc_per_pass(L), L->best_s * 1e6,
           acc_per_pass(L) / L->best_s * 1e-9);
}

/* Sweep: one layer alone, passes repeated for at least ms each repetition, best of REPS. */
static int sweep(double ms)
{
    const struct {
        int out_c;
        size_t bytes;
        const char *what;
    } shapes[] = {
        {32, 16 << 10, "L1"},   {64, 16 << 10, "L1"},   {256, 16 << 10, "L1"},
        {32, 256 << 10, "L2"},  {64, 256 << 10, "L2"},  {256, 256 << 10, "L2"},
        {64, 2304 << 10, "2.25MiB"}, {256, 2304 << 10, "2.25MiB"},
        {64, 11 << 20, "11MiB"}, {256, 11 << 20, "11MiB"},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        layer L = {0};
        const int oc = shapes[s].out_c, taps = 9;
        int ic = (int)(shapes[s].bytes / ((size_t)taps * oc * sizeof(float)));
        ic = ic < 1 ? 1 : ic;
        L.positions = 64;
        L.rows_per_position = taps * (ic < 16 ? ic : 16);
        snprintf(L.name, sizeof L.name, "%s oc%d", shapes[s].what, oc);
        if (layer_init(&L, oc, ic, 3, 3)) {
            layer_free(&L);
            return 1;
        }
        layer_pass(&L); /* warm */
        for (int r = 0; r < REPS; r++) {
            long n = 0;
            double t0 = now_s(), t;
            do {
                layer_pass(&L);
                n++;
            } while ((t = now_s() - t0) < ms * 1e-3);
            if (t / n < L.best_s)
                L.best_s = t / n;
        }
        print_layer("sweep", &L);
        layer_free(&L);
    }
    return 0;
}

/* The network's layers in sequence, as one image's pass; best pass of many. */
static int model(const char *file, double ms)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        perror(file);
        return 1;
    }
    static layer Ls[MAX_LAYERS];
    int n = 0, oc, ic, kh, kw, stride, rc = 1;
    /* the stride changes only which inputs a window covers: synthetic spikes are alike anywhere */
    while (n < MAX_LAYERS &&
           fscanf(f, "%63s %d %d %d %d %d %d %lf", Ls[n].name, &oc, &ic, &kh, &kw, &stride,
                  &Ls[n].positions, &Ls[n].rows_per_position) == 8) {
        if (oc < 1 || ic < 1 || ic > OS_SPIKE_MAX_CHANNELS || kh < 1 || kw < 1 || kh > 16 ||
            kw > 16 || Ls[n].positions < 1 || Ls[n].positions > (1 << 20) ||
            layer_init(&Ls[n], oc, ic, kh, kw)) {
            fprintf(stderr, "ceiling: %s: bad layer %s\n", file, Ls[n].name);
            goto out;
        }
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "ceiling: %s: no layers\n", file);
        goto out;
    }
    double best = 1e30, *t = calloc((size_t)n, sizeof *t);
    if (!t)
        goto out;
    for (int r = 0; r < REPS; r++) {
        double t0 = now_s();
        do {
            double whole = 0;
            for (int i = 0; i < n; i++) {
                double a = now_s();
                layer_pass(&Ls[i]);
                t[i] = now_s() - a;
                whole += t[i];
            }
            if (whole < best) {
                best = whole;
                for (int i = 0; i < n; i++)
                    Ls[i].best_s = t[i];
            }
        } while (now_s() - t0 < ms * 1e-3);
    }
    free(t);
    double acc = 0;
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        print_layer("layer", &Ls[i]);
        acc += acc_per_pass(&Ls[i]);
        bytes += layer_weight_bytes(&Ls[i]);
    }
    printf("{\"kind\":\"model\",\"layers\":%d,\"weight_bytes\":%zu,\"accumulates\":%.0f,"
           "\"us\":%.3f,\"gacc_per_s\":%.2f}\n",
           n, bytes, acc, best * 1e6, acc / best * 1e-9);
    rc = 0;
out:
    fclose(f);
    for (int i = 0; i < n; i++)
        layer_free(&Ls[i]);
    return rc;
}

int main(int argc, char **argv)
{
    double ms = 40;
    const char *layers = NULL, *isa_name = getenv("ONESPIKE_ISA");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc && (ms = atof(argv[++i])) > 0)
            continue;
        if (strcmp(argv[i], "--layers") == 0 && i + 1 < argc) {
            layers = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            isa_name = argv[++i];
            continue;
        }
        fprintf(stderr, "usage: ceiling [--ms MS] [--layers FILE] [--isa scalar|avx2|avx512]\n");
        return 2;
    }
    /* as a session picks: the widest set, or the one ONESPIKE_ISA / --isa names */
    os_isa isa = os_isa_best();
    if (isa_name && *isa_name && !os_isa_parse(isa_name, &isa)) {
        fprintf(stderr, "ceiling: no instruction set %s\n", isa_name);
        return 2;
    }
    if (!(kernels = os_spike_kernels_for(isa))) {
        fprintf(stderr, "ceiling: this CPU or build has no %s kernels\n", os_isa_name(isa));
        return 2;
    }
    return layers ? model(layers, ms) : sweep(ms);
}
