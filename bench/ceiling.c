/* ceiling - the machine's rate for the event-driven convolution's inner work: sums of weight rows
 * of out_c floats selected by an index (bench/run.sh's "ceiling" line).
 *
 *   ceiling [--ms MS] [--layers FILE]
 *
 * The kernels are those of core/engine/spikeconv.c's AVX2 set, copied in code shape: the
 * "direct" kernel (out_c = 8, 16, 32, 64: the accumulators in out_c / 8 registers, two sets
 * taking alternate rows, one tap's active-channel list at a time) and, for wider layers, the
 * row list built per output position then summed 64 channels at a time by the "block" kernel
 * (8 registers, prefetching 8 rows ahead). What the engine does around them (spike indexing, LIF,
 * the dense stem) is left out: this is the ceiling of the part that is the point of the engine.
 *
 * A synthetic layer: weights [taps][in_c][out_c] floats (kept as the engine keeps them: one
 * block aligned to 2 MiB, advised for transparent huge pages), positions output positions, each
 * summing for every tap a random sorted set of active input channels (rows_per_position / taps
 * on average, drawn once); outputs written like the engine's (positions x out_c floats).
 *
 * Without --layers: a sweep over the kernel shapes (out_c 32 and 64 direct, 256 by blocks) and
 * weight sizes (16 KiB: L1; 256 KiB: L2; 2.25 MiB: one 3x3 256->256 conv; 11 MiB: all the fp32
 * weights of the shipped model's event-driven convs), 9 taps, 16 active inputs per tap (fewer if
 * in_c is smaller).
 * With --layers FILE (lines: name out_c in_c kh kw stride positions rows_per_position, as
 * bench/accumulates.py writes them from the measured spikes): the network's own layers run in
 * sequence, as one image's pass runs them (so each layer's weights come from wherever the
 * previous layers left them), best of the passes, and the per-layer and whole rates.
 * Every rate is accumulates (one float add of a weight into an output) per second; each result is
 * a JSON line on stdout. Single-threaded. Best of several timed repetitions of at least MS ms
 * (default 40) each.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>

#if !(defined(__GNUC__) && defined(__x86_64__))
int main(void)
{
    fprintf(stderr, "ceiling: x86-64 with GCC or Clang only (the AVX2 kernels)\n");
    return 2;
}
#else
#include <cpuid.h>
#include <immintrin.h>

#define PREFETCH_ROWS 8
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

/* ---- the kernels (core/engine/spikeconv.c's code shape) ---------------------------------- */

#define BLOCK(NV)                                                                                \
    __attribute__((target("avx2"))) static void block_##NV(const float *w0, const uint32_t *rows, \
                                                           int nrows, const float *b, float *out) \
    {                                                                                            \
        __m256 a[NV];                                                                            \
        for (int v = 0; v < NV; v++)                                                             \
            a[v] = b ? _mm256_loadu_ps(b + 8 * v) : _mm256_setzero_ps();                         \
        for (int r = 0; r < nrows; r++) {                                                        \
            const float *w = w0 + rows[r];                                                       \
            if (r + PREFETCH_ROWS < nrows)                                                       \
                for (int v = 0; v < NV; v += 2)                                                  \
                    _mm_prefetch((const char *)(w0 + rows[r + PREFETCH_ROWS] + 8 * v),          \
                                 _MM_HINT_T0);                                                   \
            for (int v = 0; v < NV; v++)                                                         \
                a[v] = _mm256_add_ps(a[v], _mm256_loadu_ps(w + 8 * v));                          \
        }                                                                                        \
        for (int v = 0; v < NV; v++)                                                             \
            _mm256_storeu_ps(out + 8 * v, a[v]);                                                 \
    }
BLOCK(8)

/* One output position: for each tap t, the cnt[t] channels act[t][..] select rows of w0(t). */
#define DIRECT(NV)                                                                               \
    __attribute__((target("avx2"))) static void direct_##NV(                                    \
        int taps, int ic, const uint16_t *act, const uint16_t *cnt, const float *wt,            \
        const float *b, float *out)                                                              \
    {                                                                                            \
        __m256 a[NV], z[NV];                                                                     \
        for (int v = 0; v < NV; v++) {                                                           \
            a[v] = b ? _mm256_loadu_ps(b + 8 * v) : _mm256_setzero_ps();                         \
            z[v] = _mm256_setzero_ps();                                                          \
        }                                                                                        \
        for (int t = 0; t < taps; t++, act += ic) {                                              \
            const float *w0 = wt + (size_t)t * (size_t)ic * (8 * NV);                            \
            int k = 0;                                                                           \
            for (; k + 1 < cnt[t]; k += 2) {                                                     \
                const float *w = w0 + (size_t)act[k] * (8 * NV);                                 \
                const float *u = w0 + (size_t)act[k + 1] * (8 * NV);                             \
                for (int v = 0; v < NV; v++) {                                                   \
                    a[v] = _mm256_add_ps(a[v], _mm256_loadu_ps(w + 8 * v));                      \
                    z[v] = _mm256_add_ps(z[v], _mm256_loadu_ps(u + 8 * v));                      \
                }                                                                                \
            }                                                                                    \
            if (k < cnt[t]) {                                                                    \
                const float *w = w0 + (size_t)act[k] * (8 * NV);                                 \
                for (int v = 0; v < NV; v++)                                                     \
                    a[v] = _mm256_add_ps(a[v], _mm256_loadu_ps(w + 8 * v));                      \
            }                                                                                    \
        }                                                                                        \
        for (int v = 0; v < NV; v++)                                                             \
            _mm256_storeu_ps(out + 8 * v, _mm256_add_ps(a[v], z[v]));                            \
    }
DIRECT(8)
DIRECT(4)
DIRECT(2)
DIRECT(1)

typedef void (*direct_fn)(int, int, const uint16_t *, const uint16_t *, const float *,
                          const float *, float *);

/* ---- a synthetic layer -------------------------------------------------------------------- */

typedef struct {
    char name[64];
    int out_c, in_c, taps, positions;
    double rows_per_position; /* asked */
    float *wt, *bias, *out;
    uint16_t *act, *cnt;      /* [positions][taps][in_c], [positions][taps] */
    uint32_t *rows;           /* the row list of one position (block path) */
    uint64_t rows_total;      /* drawn: the accumulates are rows_total * out_c per pass */
    direct_fn direct;
    double best_s;            /* best pass time (sequence mode: within the best whole pass) */
} layer;

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

static int layer_init(layer *L)
{
    const size_t w = (size_t)L->taps * (size_t)L->in_c * (size_t)L->out_c;
    L->wt = weights_alloc(w * sizeof(float));
    L->bias = calloc((size_t)L->out_c, sizeof(float));
    L->out = aligned_alloc(64, ((size_t)L->positions * (size_t)L->out_c * sizeof(float) + 63) / 64 * 64);
    L->act = malloc((size_t)L->positions * (size_t)L->taps * (size_t)L->in_c * sizeof(uint16_t));
    L->cnt = malloc((size_t)L->positions * (size_t)L->taps * sizeof(uint16_t));
    L->rows = malloc((size_t)L->taps * (size_t)L->in_c * sizeof(uint32_t));
    if (!L->wt || !L->bias || !L->out || !L->act || !L->cnt || !L->rows)
        return -1;
    for (size_t i = 0; i < w; i++)
        L->wt[i] = (float)(rng() >> 40) * 0x1p-24f - 0.5f;
    /* per tap: floor or ceil of the mean, at random, so the mean is what was asked */
    const double per_tap = L->rows_per_position / L->taps;
    L->rows_total = 0;
    for (int q = 0; q < L->positions; q++)
        for (int t = 0; t < L->taps; t++) {
            int a = (int)per_tap;
            if ((double)(rng() >> 11) * 0x1p-53 < per_tap - a)
                a++;
            a = a > L->in_c ? L->in_c : a;
            /* a sorted random a-subset of [0, in_c): selection sampling */
            uint16_t *act = L->act + ((size_t)q * (size_t)L->taps + (size_t)t) * (size_t)L->in_c;
            int got = 0;
            for (int c = 0; c < L->in_c && got < a; c++)
                if ((rng() % (uint64_t)(L->in_c - c)) < (uint64_t)(a - got))
                    act[got++] = (uint16_t)c;
            L->cnt[(size_t)q * (size_t)L->taps + (size_t)t] = (uint16_t)got;
            L->rows_total += (uint64_t)got;
        }
    switch (L->out_c) {
    case 64: L->direct = direct_8; break;
    case 32: L->direct = direct_4; break;
    case 16: L->direct = direct_2; break;
    case 8: L->direct = direct_1; break;
    default: L->direct = NULL;
    }
    if (!L->direct && L->out_c % 64) {
        fprintf(stderr, "ceiling: %s: out_c %d is neither 8/16/32/64 nor a multiple of 64\n",
                L->name, L->out_c);
        return -1;
    }
    L->best_s = 1e30;
    return 0;
}

static void layer_free(layer *L)
{
    weights_free(L->wt);
    free(L->bias), free(L->out), free(L->act), free(L->cnt), free(L->rows);
}

/* One pass: every output position of the layer. */
static void layer_pass(layer *L)
{
    const int taps = L->taps, ic = L->in_c, oc = L->out_c;
    for (int q = 0; q < L->positions; q++) {
        const uint16_t *act = L->act + (size_t)q * (size_t)taps * (size_t)ic;
        const uint16_t *cnt = L->cnt + (size_t)q * (size_t)taps;
        float *y = L->out + (size_t)q * (size_t)oc;
        if (L->direct) {
            L->direct(taps, ic, act, cnt, L->wt, L->bias, y);
            continue;
        }
        int nrows = 0;
        for (int t = 0; t < taps; t++)
            for (int j = 0; j < cnt[t]; j++)
                L->rows[nrows++] = ((uint32_t)(t * ic) + act[(size_t)t * (size_t)ic + j]) * (uint32_t)oc;
        for (int c0 = 0; c0 < oc; c0 += 64)
            block_8(L->wt + c0, L->rows, nrows, L->bias + c0, y + c0);
    }
}

static double acc_per_pass(const layer *L)
{
    return (double)L->rows_total * L->out_c;
}

static void print_layer(const char *kind, const layer *L)
{
    printf("{\"kind\":\"%s\",\"name\":\"%s\",\"kernel\":\"%s\",\"out_c\":%d,\"in_c\":%d,"
           "\"taps\":%d,\"positions\":%d,\"weight_bytes\":%zu,\"rows_per_position\":%.2f,"
           "\"accumulates\":%.0f,\"us\":%.3f,\"gacc_per_s\":%.2f}\n",
           kind, L->name, L->direct ? "direct" : "block64", L->out_c, L->in_c, L->taps,
           L->positions, (size_t)L->taps * L->in_c * L->out_c * sizeof(float),
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
        L.out_c = shapes[s].out_c;
        L.taps = 9;
        L.in_c = (int)(shapes[s].bytes / ((size_t)L.taps * L.out_c * sizeof(float)));
        L.in_c = L.in_c < 1 ? 1 : L.in_c;
        L.positions = 64;
        L.rows_per_position = L.taps * (L.in_c < 16 ? L.in_c : 16);
        snprintf(L.name, sizeof L.name, "%s oc%d", shapes[s].what, L.out_c);
        if (layer_init(&L)) {
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
    int n = 0, kh, kw, stride, rc = 1;
    while (n < MAX_LAYERS &&
           fscanf(f, "%63s %d %d %d %d %d %d %lf", Ls[n].name, &Ls[n].out_c, &Ls[n].in_c, &kh, &kw,
                  &stride, &Ls[n].positions, &Ls[n].rows_per_position) == 8) {
        Ls[n].taps = kh * kw;
        if (Ls[n].out_c < 1 || Ls[n].in_c < 1 || Ls[n].in_c > 65535 || Ls[n].taps < 1 ||
            Ls[n].positions < 1 || layer_init(&Ls[n])) {
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
        bytes += (size_t)Ls[i].taps * Ls[i].in_c * Ls[i].out_c * sizeof(float);
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
    const char *layers = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc && (ms = atof(argv[++i])) > 0)
            continue;
        if (strcmp(argv[i], "--layers") == 0 && i + 1 < argc) {
            layers = argv[++i];
            continue;
        }
        fprintf(stderr, "usage: ceiling [--ms MS] [--layers FILE]\n");
        return 2;
    }
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) {
        fprintf(stderr, "ceiling: this CPU has no AVX2 (the kernels measured are AVX2)\n");
        return 2;
    }
    return layers ? model(layers, ms) : sweep(ms);
}
#endif
