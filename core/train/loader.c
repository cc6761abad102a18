/* loader.c - augmentation and the batch thread; see loader.h. */
#include "loader.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "onespike/rng.h"

enum { LOADER_BUFFERS = 2 };

#define ASPECT_MIN (3.0 / 4.0)
#define ASPECT_MAX (4.0 / 3.0)

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t s = a ^ (b * 0xD6E8FEB86659FD93ull);
    return os_rng_next(&s);
}

void os_shuffle(size_t *order, size_t n, uint64_t seed)
{
    uint64_t rng = seed;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(os_rng_next(&rng) % i);
        size_t t = order[i - 1];
        order[i - 1] = order[j], order[j] = t;
    }
}

static double rng_gamma(uint64_t *s, double a)
{
    if (a < 1) { /* Gamma(a) = Gamma(a + 1) U^(1/a) */
        double u = os_rng_uniform(s);
        return rng_gamma(s, a + 1) * pow(u > 0 ? u : 0x1p-53, 1 / a);
    }
    const double d = a - 1.0 / 3.0, c = 1 / sqrt(9 * d);
    for (;;) {
        double x = os_rng_normal(s), v = 1 + c * x;
        if (v <= 0)
            continue;
        v = v * v * v;
        double u = os_rng_uniform(s);
        if (u < 1 - 0.0331 * x * x * x * x || (u > 0 && log(u) < 0.5 * x * x + d * (1 - v + log(v))))
            return d * v;
    }
}

double os_rng_beta(uint64_t *s, double a)
{
    double x = rng_gamma(s, a), y = rng_gamma(s, a);
    return x + y > 0 ? x / (x + y) : 0.5;
}

float os_mix_batch(float *x, const int *labels, int *labels_b, int count, int side,
                   const os_aug_config *c, uint64_t seed, float *tmp)
{
    bool mixup = c->mixup > 0, cutmix = c->cutmix > 0;
    uint64_t rng = seed;
    if (count < 2 || (!mixup && !cutmix) || os_rng_uniform(&rng) >= c->mix_prob)
        return 1.0f;
    if (mixup && cutmix) /* one of the two, evenly */
        mixup = os_rng_next(&rng) & 1, cutmix = !mixup;
    double lam = os_rng_beta(&rng, mixup ? c->mixup : c->cutmix);
    const size_t hw = (size_t)side * side, per = 3 * hw;
    int bx0 = 0, bx1 = 0, by0 = 0, by1 = 0;
    if (cutmix) { /* a box of area (1 - lam), centred anywhere, clipped; lam is what is left */
        double cut = sqrt(1 - lam);
        int w = (int)(side * cut), h = w;
        int cx = (int)(os_rng_uniform(&rng) * side), cy = (int)(os_rng_uniform(&rng) * side);
        bx0 = cx - w / 2 < 0 ? 0 : cx - w / 2, bx1 = cx + w / 2 > side ? side : cx + w / 2;
        by0 = cy - h / 2 < 0 ? 0 : cy - h / 2, by1 = cy + h / 2 > side ? side : cy + h / 2;
        lam = 1 - (double)(bx1 - bx0) * (by1 - by0) / (double)hw;
    }
    const float l = (float)lam;
    memcpy(tmp, x, per * sizeof *x); /* the first image, which the last one is paired with */
    for (int k = 0; k < count; k++) {
        float *a = x + (size_t)k * per;
        const float *b = k + 1 < count ? a + per : tmp;
        labels_b[k] = labels[(k + 1) % count];
        if (mixup) {
            for (size_t j = 0; j < per; j++)
                a[j] = l * a[j] + (1 - l) * b[j];
            continue;
        }
        for (int ch = 0; ch < 3; ch++)
            for (int y = by0; y < by1; y++)
                memcpy(a + ch * hw + (size_t)y * side + bx0, b + ch * hw + (size_t)y * side + bx0,
                       (size_t)(bx1 - bx0) * sizeof *a);
    }
    return l;
}

static float sample_bilinear(const float *p, int side, double x, double y)
{
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    if (x > side - 1) x = side - 1;
    if (y > side - 1) y = side - 1;
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < side ? x0 + 1 : x0, y1 = y0 + 1 < side ? y0 + 1 : y0;
    float fx = (float)(x - x0), fy = (float)(y - y0);
    float a = p[y0 * side + x0], b = p[y0 * side + x1];
    float c = p[y1 * side + x0], d = p[y1 * side + x1];
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy;
}

void os_augment(const os_imageset *s, size_t i, const os_aug_config *c, uint64_t seed,
                float *out)
{
    int S = s->side;
    size_t hw = (size_t)S * S;
    const float *src = s->pix + i * 3 * hw;
    if (!c->augment) {
        for (int ch = 0; ch < 3; ch++)
            for (size_t j = 0; j < hw; j++)
                out[ch * hw + j] = (src[ch * hw + j] - c->mean[ch]) / c->std[ch];
        return;
    }
    uint64_t rng = seed;
    /* Random resized crop: area fraction and log-uniform aspect ratio. */
    double area = c->crop_min_area + (1.0 - c->crop_min_area) * os_rng_uniform(&rng);
    double logr = log(ASPECT_MIN) + (log(ASPECT_MAX) - log(ASPECT_MIN)) * os_rng_uniform(&rng);
    double r = exp(logr);
    double cw = fmin(S, sqrt(area * S * S * r)), chh = fmin(S, sqrt(area * S * S / r));
    double x0 = (S - cw) * os_rng_uniform(&rng), y0 = (S - chh) * os_rng_uniform(&rng);
    int rot = (int)(os_rng_next(&rng) % 4);
    bool fh = os_rng_next(&rng) & 1, fv = os_rng_next(&rng) & 1;
    float bright = 1 + c->jitter * (float)(2 * os_rng_uniform(&rng) - 1);
    float contrast = 1 + c->jitter * (float)(2 * os_rng_uniform(&rng) - 1);
    float satur = 1 + c->jitter * (float)(2 * os_rng_uniform(&rng) - 1);

    double sx = cw / S, sy = chh / S;
    double gray_mean = 0;
    for (int oy = 0; oy < S; oy++)
        for (int ox = 0; ox < S; ox++) {
            /* Geometric transform of the output grid: flips, then a 90-degree rotation. */
            int u = fh ? S - 1 - ox : ox, v = fv ? S - 1 - oy : oy, t;
            for (int k = 0; k < rot; k++)
                t = u, u = S - 1 - v, v = t;
            double x = x0 + (u + 0.5) * sx - 0.5, y = y0 + (v + 0.5) * sy - 0.5;
            float rgb[3];
            for (int ch = 0; ch < 3; ch++)
                rgb[ch] = sample_bilinear(src + ch * hw, S, x, y) * bright;
            float g = 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2];
            gray_mean += g;
            for (int ch = 0; ch < 3; ch++)
                out[ch * hw + (size_t)oy * S + ox] = g + (rgb[ch] - g) * satur;
        }
    float gm = (float)(gray_mean / (double)hw);
    for (int ch = 0; ch < 3; ch++)
        for (size_t j = 0; j < hw; j++) {
            float v = (out[ch * hw + j] - gm) * contrast + gm;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            out[ch * hw + j] = (v - c->mean[ch]) / c->std[ch];
        }
}

struct os_loader {
    const os_imageset *s;
    const size_t *order;
    size_t n, next_make, next_take, batches;
    int batch;
    os_aug_config c;
    uint64_t seed;
    float *x[LOADER_BUFFERS], *tmp; /* tmp: one image, for mixing */
    int *labels[LOADER_BUFFERS], *labels_b[LOADER_BUFFERS], count[LOADER_BUFFERS];
    float lam[LOADER_BUFFERS];
    bool ready[LOADER_BUFFERS], stop, started;
    int held; /* buffer the trainer is reading, or -1 */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void make_batch(os_loader *l, size_t b, int slot)
{
    size_t per = (size_t)3 * l->s->side * l->s->side;
    size_t start = b * (size_t)l->batch;
    int count = (int)(l->n - start < (size_t)l->batch ? l->n - start : (size_t)l->batch);
    for (int k = 0; k < count; k++) {
        size_t i = l->order[start + (size_t)k];
        os_augment(l->s, i, &l->c, mix(l->seed, start + (size_t)k), l->x[slot] + (size_t)k * per);
        l->labels[slot][k] = l->s->labels[i];
    }
    l->count[slot] = count;
    /* the mixing decision of batch b: a stream of its own, apart from every image's */
    l->lam[slot] = os_mix_batch(l->x[slot], l->labels[slot], l->labels_b[slot], count,
                                l->s->side, &l->c, mix(l->seed ^ 0x6D6978ull, b), l->tmp);
}

static void *loader_main(void *arg)
{
    os_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop && l->next_make < l->batches) {
        int slot = (int)(l->next_make % LOADER_BUFFERS);
        if (l->ready[slot]) { /* both buffers full: wait for the trainer */
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        size_t b = l->next_make;
        pthread_mutex_unlock(&l->mu);
        make_batch(l, b, slot);
        pthread_mutex_lock(&l->mu);
        l->ready[slot] = true;
        l->next_make++;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

os_status os_loader_start(const os_imageset *s, const size_t *order, size_t n, int batch,
                          size_t first, const os_aug_config *c, uint64_t seed, os_loader **out)
{
    *out = NULL;
    os_loader *l = calloc(1, sizeof *l);
    if (!l)
        return os_fail(OS_ENOMEM, "no memory for the loader");
    l->s = s, l->order = order, l->n = n, l->batch = batch, l->c = *c, l->seed = seed;
    l->held = -1;
    l->batches = (n + (size_t)batch - 1) / (size_t)batch;
    l->next_make = l->next_take = first < l->batches ? first : l->batches;
    size_t per = (size_t)3 * s->side * s->side;
    bool ok = (l->tmp = malloc(per * sizeof(float))) != NULL;
    for (int k = 0; ok && k < LOADER_BUFFERS; k++) {
        l->x[k] = malloc((size_t)batch * per * sizeof(float));
        l->labels[k] = malloc((size_t)batch * sizeof(int));
        l->labels_b[k] = malloc((size_t)batch * sizeof(int));
        ok = l->x[k] && l->labels[k] && l->labels_b[k];
    }
    if (!ok) {
        for (int j = 0; j < LOADER_BUFFERS; j++)
            free(l->x[j]), free(l->labels[j]), free(l->labels_b[j]);
        free(l->tmp);
        free(l);
        return os_fail(OS_ENOMEM, "no memory for batches");
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->started = pthread_create(&l->thread, NULL, loader_main, l) == 0;
    if (!l->started) {
        os_loader_stop(l); /* thread never started: stop only frees */
        return os_fail(OS_ENOMEM, "cannot start the loader thread");
    }
    *out = l;
    return OS_OK;
}

bool os_loader_next(os_loader *l, os_batch *b)
{
    pthread_mutex_lock(&l->mu);
    if (l->held >= 0) { /* the previous batch is consumed: free its buffer */
        l->ready[l->held] = false;
        l->held = -1;
        pthread_cond_broadcast(&l->cv);
    }
    if (l->next_take >= l->batches) {
        pthread_mutex_unlock(&l->mu);
        return false;
    }
    int slot = (int)(l->next_take % LOADER_BUFFERS);
    while (!l->ready[slot])
        pthread_cond_wait(&l->cv, &l->mu);
    l->next_take++;
    l->held = slot;
    pthread_mutex_unlock(&l->mu);
    *b = (os_batch){.x = l->x[slot], .labels = l->labels[slot], .lam = l->lam[slot],
                    .labels_b = l->lam[slot] < 1.0f ? l->labels_b[slot] : NULL,
                    .count = l->count[slot]};
    return true;
}

void os_loader_stop(os_loader *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (l->started)
        pthread_join(l->thread, NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    for (int k = 0; k < LOADER_BUFFERS; k++)
        free(l->x[k]), free(l->labels[k]), free(l->labels_b[k]);
    free(l->tmp);
    free(l);
}
