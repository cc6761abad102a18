/* The one scoring rule (core/train/score.c): ranks are os_topk's (ties to the lower index), so
 * top-1, top-5 and the confusion matrix agree with what the server answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "onespike/session.h"
#include "score.h"
#include "testutil.h"

enum { K = 7, IMAGES = 400 };

static void test_ties_go_to_the_lower_index(void **state)
{
    (void)state;
    os_score s;
    assert_int_equal(os_score_init(&s, K), OS_OK);
    const float flat[K] = {0}; /* every class tied: class 0 ranks first, 0..4 are the top 5 */
    os_score_add(&s, flat, 0);
    os_score_add(&s, flat, 4);
    os_score_add(&s, flat, 5);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.top1, 1);
    assert_int_equal(s.top5, 2);
    assert_int_equal(s.confusion[0 * K + 0], 1);
    assert_int_equal(s.confusion[4 * K + 0], 1);
    assert_int_equal(s.confusion[5 * K + 0], 1);
    const float pair[K] = {0, 2, 3, 3, 1, 0, 0}; /* 2 and 3 tie for first: 2 wins */
    os_score_add(&s, pair, 3);
    assert_int_equal(s.top1, 1);
    assert_int_equal(s.confusion[3 * K + 2], 1);
    os_score_add(&s, pair, 2);
    assert_int_equal(s.top1, 2);
    assert_true(os_score_top1(&s) == 2.0 / 5);
    os_score_free(&s);
    assert_null(s.confusion);
}

/* On random scores with many ties, the tally is exactly what os_topk's lists give. */
static void test_agrees_with_os_topk(void **state)
{
    (void)state;
    os_score s;
    assert_int_equal(os_score_init(&s, K), OS_OK);
    uint32_t seed = 12345;
    size_t top1 = 0, top5 = 0;
    for (int i = 0; i < IMAGES; i++) {
        float z[K];
        for (int k = 0; k < K; k++)
            z[k] = (float)(int)(3 * tu_rand(&seed)); /* -2..2: ties in most images */
        int label = (int)((tu_rand(&seed) + 1) * 0.5f * K) % K, top[5];
        os_topk(z, K, 5, top);
        top1 += top[0] == label;
        for (int j = 0; j < 5; j++)
            top5 += top[j] == label;
        os_score_add(&s, z, label);
    }
    assert_int_equal(s.top1, top1);
    assert_int_equal(s.top5, top5);
    long diag = 0, all = 0;
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++)
            all += s.confusion[a * K + b], diag += a == b ? s.confusion[a * K + b] : 0;
    assert_int_equal(all, IMAGES);
    assert_int_equal(diag, (long)top1); /* the confusion's diagonal is top-1 */
    os_score_free(&s);
}

static void test_few_classes_and_empty(void **state)
{
    (void)state;
    os_score s;
    assert_int_equal(os_score_init(&s, 3), OS_OK);
    assert_true(os_score_top1(&s) == 0 && os_score_top5(&s) == 0);
    const float z[3] = {0.1f, 0.7f, 0.2f};
    os_score_add(&s, z, 0);
    os_score_add(&s, z, 1);
    assert_true(os_score_top5(&s) == 1.0); /* 3 classes: all in the top 5 */
    assert_true(os_score_top1(&s) == 0.5);
    double acc = -1;
    assert_true(os_score_class_accuracy(&s, 1, &acc) && acc == 1.0);
    assert_true(os_score_class_accuracy(&s, 0, &acc) && acc == 0.0);
    assert_false(os_score_class_accuracy(&s, 2, &acc)); /* no image of class 2 */
    assert_true(acc == 0.0);
    os_score_free(&s);
    assert_int_equal(os_score_init(&s, 0), OS_EINVAL);
    os_score_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ties_go_to_the_lower_index),
        cmocka_unit_test(test_agrees_with_os_topk),
        cmocka_unit_test(test_few_classes_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
