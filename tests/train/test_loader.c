/* test_loader.c - core/train/loader.c is deterministic: the same seed gives the same
 * permutation, the same augmented sample bit for bit, and the same batches whether an epoch is
 * run whole, twice, or resumed from a later batch (what --resume relies on), mixed or not;
 * evaluation samples are exactly the normalised image. Mixup blends each image with the next by
 * one lam, CutMix pastes one box of the next image whose share is exactly 1 - lam, and the Beta
 * deviates behind lam have Beta's mean and variance. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "loader.h"

enum { N = 11, SIDE = 12, BATCH = 4, SEED = 1234 };
#define PER ((size_t)3 * SIDE * SIDE)

static os_imageset make_set(void)
{
    os_imageset s = {.n = N, .side = SIDE};
    s.pix = malloc(N * PER * sizeof *s.pix);
    s.labels = malloc(N * sizeof *s.labels);
    assert_non_null(s.pix);
    assert_non_null(s.labels);
    uint32_t r = 7;
    for (size_t i = 0; i < N * PER; i++) {
        r ^= r << 13, r ^= r >> 17, r ^= r << 5;
        s.pix[i] = (float)(r % 1000) / 1000.0f;
    }
    for (int i = 0; i < N; i++)
        s.labels[i] = i % 3;
    return s;
}

static const os_aug_config AUG = {.augment = true,
                                  .crop_min_area = 0.3f,
                                  .jitter = 0.2f,
                                  .mean = {0.5f, 0.4f, 0.3f},
                                  .std = {0.2f, 0.25f, 0.3f}};

static void test_shuffle_is_a_seeded_permutation(void **state)
{
    (void)state;
    size_t a[N], b[N], c[N];
    for (size_t i = 0; i < N; i++)
        a[i] = b[i] = c[i] = i;
    os_shuffle(a, N, SEED);
    os_shuffle(b, N, SEED);
    os_shuffle(c, N, SEED + 1);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    int seen[N] = {0};
    for (size_t i = 0; i < N; i++)
        seen[a[i]]++;
    for (size_t i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
}

static void test_augment_depends_on_seed_only(void **state)
{
    (void)state;
    os_imageset s = make_set();
    float *x = malloc(PER * sizeof *x), *y = malloc(PER * sizeof *y), *z = malloc(PER * sizeof *z);
    assert_true(x && y && z);
    os_augment(&s, 3, &AUG, 99, x);
    os_augment(&s, 5, &AUG, 12, z); /* another sample in between changes nothing */
    os_augment(&s, 3, &AUG, 99, y);
    assert_memory_equal(x, y, PER * sizeof *x);
    os_augment(&s, 3, &AUG, 100, z);
    assert_memory_not_equal(x, z, PER * sizeof *x);
    for (size_t i = 0; i < PER; i++)
        assert_true(isfinite(x[i]));
    /* evaluation: exactly (v - mean) / std */
    os_aug_config eval = AUG;
    eval.augment = false;
    os_augment(&s, 2, &eval, 5, x);
    for (size_t i = 0; i < PER; i++) {
        int ch = (int)(i / (SIDE * SIDE));
        assert_true(x[i] == (s.pix[2 * PER + i] - eval.mean[ch]) / eval.std[ch]);
    }
    free(x), free(y), free(z);
    os_imageset_free(&s);
}

/* All batches of an epoch starting at batch `first`, concatenated; *count gets the samples. */
/* All batches of an epoch starting at batch `first`, concatenated; *count gets the samples,
 * labels_b the second labels (-1 where a batch is not mixed). */
static float *run_epoch_with(const os_imageset *s, const size_t *order, size_t first,
                             const os_aug_config *aug, int **labels, int **labels_b,
                             size_t *count)
{
    os_loader *l = NULL;
    assert_int_equal(os_loader_start(s, order, N, BATCH, first, aug, SEED, &l), OS_OK);
    float *all = malloc(N * PER * sizeof *all);
    *labels = malloc(N * sizeof **labels);
    *labels_b = malloc(N * sizeof **labels_b);
    assert_true(all && *labels && *labels_b);
    *count = 0;
    os_batch b;
    while (os_loader_next(l, &b)) {
        int n = b.count;
        assert_true(n >= 1 && n <= BATCH && *count + (size_t)n <= N);
        assert_true((b.labels_b != NULL) == (b.lam < 1.0f));
        memcpy(all + *count * PER, b.x, (size_t)n * PER * sizeof *b.x);
        memcpy(*labels + *count, b.labels, (size_t)n * sizeof *b.labels);
        for (int k = 0; k < n; k++)
            (*labels_b)[*count + (size_t)k] = b.labels_b ? b.labels_b[k] : -1;
        *count += (size_t)n;
    }
    os_loader_stop(l);
    return all;
}

static float *run_epoch(const os_imageset *s, const size_t *order, size_t first, int **labels,
                        size_t *count)
{
    int *lb;
    float *all = run_epoch_with(s, order, first, &AUG, labels, &lb, count);
    for (size_t i = 0; i < *count; i++)
        assert_int_equal(lb[i], -1); /* no mixing asked: none done */
    free(lb);
    return all;
}

static void shuffled(size_t order[N])
{
    for (size_t i = 0; i < N; i++)
        order[i] = i;
    os_shuffle(order, N, SEED);
}

static void test_batches_repeat_and_resume(void **state)
{
    (void)state;
    os_imageset s = make_set();
    size_t order[N];
    shuffled(order);
    int *la, *lb, *lc;
    size_t na, nb, nc;
    float *a = run_epoch(&s, order, 0, &la, &na);
    float *b = run_epoch(&s, order, 0, &lb, &nb);
    float *c = run_epoch(&s, order, 2, &lc, &nc); /* resumed at the third batch */
    assert_int_equal(na, N);
    assert_int_equal(nb, N);
    assert_int_equal(nc, N - 2 * BATCH);
    assert_memory_equal(a, b, N * PER * sizeof *a);
    assert_memory_equal(la, lb, N * sizeof *la);
    assert_memory_equal(c, a + 2 * BATCH * PER, nc * PER * sizeof *a);
    assert_memory_equal(lc, la + 2 * BATCH, nc * sizeof *la);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(la[i], s.labels[order[i]]);
    free(a), free(b), free(c), free(la), free(lb), free(lc);
    os_imageset_free(&s);
}

static void test_mixed_batches_repeat_and_resume(void **state)
{
    (void)state;
    os_imageset s = make_set();
    size_t order[N];
    shuffled(order);
    os_aug_config mixed = AUG;
    mixed.mixup = 0.4f, mixed.cutmix = 1.0f, mixed.mix_prob = 1.0f;
    int *la, *lb, *lc, *ba, *bb, *bc;
    size_t na, nb, nc;
    float *a = run_epoch_with(&s, order, 0, &mixed, &la, &ba, &na);
    float *b = run_epoch_with(&s, order, 0, &mixed, &lb, &bb, &nb);
    float *c = run_epoch_with(&s, order, 1, &mixed, &lc, &bc, &nc);
    assert_int_equal(na, N);
    assert_memory_equal(a, b, N * PER * sizeof *a);
    assert_memory_equal(ba, bb, N * sizeof *ba);
    assert_memory_equal(c, a + BATCH * PER, nc * PER * sizeof *a);
    assert_memory_equal(bc, ba + BATCH, nc * sizeof *ba);
    /* every batch of two or more images is mixed (the last has N % BATCH = 3): labels_b is the
     * next image's label in the batch */
    for (size_t i = 0; i < N; i++) {
        size_t start = i / BATCH * BATCH, n = N - start < BATCH ? N - start : BATCH;
        assert_int_equal(ba[i], la[start + (i - start + 1) % n]);
    }
    /* and the plain epoch differs: the mixing did something */
    int *lp;
    size_t np;
    float *plain = run_epoch(&s, order, 0, &lp, &np);
    assert_memory_not_equal(plain, a, N * PER * sizeof *a);
    assert_memory_equal(lp, la, N * sizeof *la);
    free(a), free(b), free(c), free(plain);
    free(la), free(lb), free(lc), free(ba), free(bb), free(bc), free(lp);
    os_imageset_free(&s);
}

/* A batch of 5 images whose every value is distinct (image k, value j: 1000 k + j). */
enum { MB = 5 };
static void distinct_batch(float *x, int *labels)
{
    for (int k = 0; k < MB; k++) {
        labels[k] = 10 + k;
        for (size_t j = 0; j < PER; j++)
            x[(size_t)k * PER + j] = (float)(1000 * k) + (float)j;
    }
}

static void test_mixup_blends_each_image_with_the_next(void **state)
{
    (void)state;
    float x[MB * PER], x0[MB * PER], tmp[PER];
    int labels[MB], lb[MB];
    os_aug_config c = {.mixup = 0.4f, .mix_prob = 1.0f};
    for (uint64_t seed = 1; seed <= 20; seed++) {
        distinct_batch(x, labels);
        memcpy(x0, x, sizeof x);
        float lam = os_mix_batch(x, labels, lb, MB, SIDE, &c, seed, tmp);
        assert_true(lam >= 0.0f && lam <= 1.0f);
        for (int k = 0; k < MB; k++) {
            int p = (k + 1) % MB;
            assert_int_equal(lb[k], labels[p]);
            for (size_t j = 0; j < PER; j++)
                assert_true(x[(size_t)k * PER + j] ==
                            lam * x0[(size_t)k * PER + j] + (1 - lam) * x0[(size_t)p * PER + j]);
        }
    }
    /* mix_prob 0, or a batch of one: untouched */
    c.mix_prob = 0.0f;
    distinct_batch(x, labels);
    memcpy(x0, x, sizeof x);
    assert_true(os_mix_batch(x, labels, lb, MB, SIDE, &c, 3, tmp) == 1.0f);
    c.mix_prob = 1.0f;
    assert_true(os_mix_batch(x, labels, lb, 1, SIDE, &c, 3, tmp) == 1.0f);
    assert_memory_equal(x, x0, sizeof x);
}

static void test_cutmix_pastes_one_box_of_share_one_minus_lam(void **state)
{
    (void)state;
    float x[MB * PER], x0[MB * PER], tmp[PER];
    int labels[MB], lb[MB];
    const size_t hw = (size_t)SIDE * SIDE;
    os_aug_config c = {.cutmix = 1.0f, .mix_prob = 1.0f};
    int boxes = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        distinct_batch(x, labels);
        memcpy(x0, x, sizeof x);
        float lam = os_mix_batch(x, labels, lb, MB, SIDE, &c, seed, tmp);
        int x_lo = SIDE, x_hi = -1, y_lo = SIDE, y_hi = -1;
        size_t pasted = 0;
        for (int k = 0; k < MB; k++) {
            int p = (k + 1) % MB;
            size_t here = 0;
            for (size_t j = 0; j < PER; j++) {
                float v = x[(size_t)k * PER + j];
                bool own = v == x0[(size_t)k * PER + j], next = v == x0[(size_t)p * PER + j];
                assert_true(own != next); /* every value is one image's or the other's */
                if (next) {
                    int px = (int)(j % hw % SIDE), py = (int)(j % hw / SIDE);
                    x_lo = px < x_lo ? px : x_lo, x_hi = px > x_hi ? px : x_hi;
                    y_lo = py < y_lo ? py : y_lo, y_hi = py > y_hi ? py : y_hi;
                    here++;
                }
            }
            if (k == 0)
                pasted = here;
            assert_int_equal(here, pasted); /* the same box in every image */
        }
        /* one rectangle, the same in the three channels, of area (1 - lam) * hw */
        if (pasted) {
            boxes++;
            assert_int_equal(pasted, (size_t)3 * (size_t)(x_hi - x_lo + 1) * (size_t)(y_hi - y_lo + 1));
        }
        assert_true(fabs((double)lam - (1.0 - (double)pasted / 3.0 / (double)hw)) < 1e-6);
    }
    assert_true(boxes > 30); /* Beta(1, 1): an empty box is rare */
}

static void test_beta_has_its_mean_and_variance(void **state)
{
    (void)state;
    const double as[] = {0.2, 0.4, 1.0, 2.0};
    enum { DRAWS = 40000 };
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) {
        uint64_t rng = 77 + i;
        double sum = 0, sq = 0;
        for (int k = 0; k < DRAWS; k++) {
            double v = os_rng_beta(&rng, as[i]);
            assert_true(v >= 0.0 && v <= 1.0);
            sum += v, sq += v * v;
        }
        double mean = sum / DRAWS, var = sq / DRAWS - mean * mean;
        double want = 1.0 / (4.0 * (2.0 * as[i] + 1.0)); /* Beta(a, a): 1 / (4 (2a + 1)) */
        assert_true(fabs(mean - 0.5) < 0.01);
        assert_true(fabs(var / want - 1.0) < 0.05);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shuffle_is_a_seeded_permutation),
        cmocka_unit_test(test_augment_depends_on_seed_only),
        cmocka_unit_test(test_batches_repeat_and_resume),
        cmocka_unit_test(test_mixed_batches_repeat_and_resume),
        cmocka_unit_test(test_mixup_blends_each_image_with_the_next),
        cmocka_unit_test(test_cutmix_pastes_one_box_of_share_one_minus_lam),
        cmocka_unit_test(test_beta_has_its_mean_and_variance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
