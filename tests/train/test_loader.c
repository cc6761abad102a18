/* test_loader.c - core/train/loader.c is deterministic: the same seed gives the same
 * permutation, the same augmented sample bit for bit, and the same batches whether an epoch is
 * run whole, twice, or resumed from a later batch (what --resume relies on); evaluation samples
 * are exactly the normalised image. */
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
static float *run_epoch(const os_imageset *s, const size_t *order, size_t first, int **labels,
                        size_t *count)
{
    os_loader *l = NULL;
    assert_int_equal(os_loader_start(s, order, N, BATCH, first, &AUG, SEED, &l), OS_OK);
    float *all = malloc(N * PER * sizeof *all);
    *labels = malloc(N * sizeof **labels);
    assert_true(all && *labels);
    *count = 0;
    const float *x;
    const int *lab;
    int n;
    while (os_loader_next(l, &x, &lab, &n)) {
        assert_true(n >= 1 && n <= BATCH && *count + (size_t)n <= N);
        memcpy(all + *count * PER, x, (size_t)n * PER * sizeof *x);
        memcpy(*labels + *count, lab, (size_t)n * sizeof *lab);
        *count += (size_t)n;
    }
    os_loader_stop(l);
    return all;
}

static void test_batches_repeat_and_resume(void **state)
{
    (void)state;
    os_imageset s = make_set();
    size_t order[N];
    for (size_t i = 0; i < N; i++)
        order[i] = i;
    os_shuffle(order, N, SEED);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shuffle_is_a_seeded_permutation),
        cmocka_unit_test(test_augment_depends_on_seed_only),
        cmocka_unit_test(test_batches_repeat_and_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
