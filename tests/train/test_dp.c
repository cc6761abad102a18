/* test_dp.c - core/train/dp.c: a training step split over replicas computes what one network
 * computes on the whole batch (BatchNorm statistics over the whole batch, summed gradients,
 * running averages), for an ANN with BatchNorm and for a spiking network over time steps; with
 * one replica the step is bit-identical to the single network's, and with two reproducible bit
 * for bit; a batch smaller than the
 * replica count runs on the first replica alone; evaluation over replicas equals one network's. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cmocka.h>

#include "dp.h"
#include "onespike/arch.h"
#include "testutil.h"
#include "train.h"

enum { SIDE = 16, CLASSES = 4, NIMG = 12 };

typedef struct {
    os_arch *arch;
    os_params *p;
    os_graph *g;
} net;

static net make(bool spiking)
{
    os_arch_opts o = {.name = "resnet20", .width_mult = 0.5, .input = SIDE, .classes = CLASSES,
                      .spiking = spiking, .batchnorm = !spiking, .threshold = 0.3f, .leak = 0.9f,
                      .seed = 7};
    net n = {0};
    assert_int_equal(os_arch_build(&o, &n.arch), OS_OK);
    assert_int_equal(os_params_create(&n.p), OS_OK);
    size_t k;
    const os_tensor_view *t = os_arch_tensors(n.arch, &k);
    for (size_t i = 0; i < k; i++)
        assert_int_equal(os_params_add(n.p, &t[i]), OS_OK);
    assert_int_equal(os_graph_from_json(os_arch_layers(n.arch), "recipe", &n.g), OS_OK);
    int bn = 0;
    for (int i = 0; i < os_graph_count(n.g); i++)
        bn += os_graph_layer(n.g, i)->op == OS_OP_BN;
    assert_true(spiking ? bn == 0 : bn > 10); /* the ANN's statistics are what must be shared */
    return n;
}

static void drop(net *n)
{
    os_graph_destroy(n->g);
    os_params_destroy(n->p);
    os_arch_destroy(n->arch);
}

static void images(os_imageset *s, size_t n)
{
    s->side = SIDE, s->n = n;
    s->pix = malloc(n * 3 * SIDE * SIDE * sizeof(float));
    s->labels = calloc(n, sizeof(int));
    s->source = calloc(n, sizeof(size_t));
    tu_fill(s->pix, n * 3 * SIDE * SIDE, 5, 0.5f);
    for (size_t i = 0; i < n * 3 * SIDE * SIDE; i++)
        s->pix[i] += 0.5f;
    for (size_t i = 0; i < n; i++)
        s->labels[i] = (int)(i % CLASSES);
}

/* One epoch (one step of `batch` images) with `replicas`; the parameters after it. */
static net step(bool spiking, int T, int replicas, int batch, const os_imageset *s,
                os_epoch_stats *es)
{
    net n = make(spiking);
    os_dp *dp = NULL;
    assert_int_equal(os_dp_create(n.g, 3, SIDE, SIDE, CLASSES, n.p, batch, T, replicas, &dp),
                     OS_OK);
    assert_int_equal(os_dp_replicas(dp), replicas);
    os_epoch_config c = {
        .batch = batch, .label_smoothing = 0.1f, .seed = 3, .surrogate_gamma = 1.0f,
        .aug = {.augment = true, .crop_min_area = 0.5f, .jitter = 0.1f,
                .mean = {0.5f, 0.5f, 0.5f}, .std = {0.25f, 0.25f, 0.25f}},
        .opt = {.kind = OS_OPT_SGD, .lr = 0.5f, .momentum = 0.9f, .total_steps = 1},
    };
    assert_int_equal(os_train_epoch(dp, s, &c, es), OS_OK);
    assert_int_equal(es->steps, s->n >= (size_t)batch ? (long)(s->n / (size_t)batch) : 1L);
    os_dp_destroy(dp);
    return n;
}

/* Largest |a - b| over every parameter and buffer, relative to the largest step |a - start|. */
static void compare(const char *what, net *a, net *b, net *start, bool exact)
{
    double diff = 0, moved = 0;
    int n = os_params_count(a->p);
    assert_int_equal(n, os_params_count(b->p));
    for (int i = 0; i < n; i++) {
        const os_param *x = os_params_at(a->p, i), *y = os_params_at(b->p, i);
        const os_param *z = os_params_find(start->p, x->view.name);
        assert_string_equal(x->view.name, y->view.name);
        for (size_t k = 0; k < x->view.count; k++) {
            diff = fmax(diff, fabs((double)x->data[k] - y->data[k]));
            if (z)
                moved = fmax(moved, fabs((double)x->data[k] - z->data[k]));
        }
    }
    printf("%s: max |difference| %.3g, largest step %.3g\n", what, diff, moved);
    assert_true(moved > 1e-3); /* the step did something */
    if (exact)
        assert_true(diff == 0);
    else
        assert_true(diff <= 1e-4 * moved);
}

static void check(bool spiking, int T)
{
    os_imageset s;
    images(&s, NIMG);
    os_epoch_stats e1, e1b, e2, e3;
    net start = make(spiking);
    if (spiking) { /* the LIF scalars a tnet adds, so that every name has a start value */
        os_dp *dp = NULL;
        assert_int_equal(os_dp_create(start.g, 3, SIDE, SIDE, CLASSES, start.p, NIMG, T, 1, &dp),
                         OS_OK);
        os_dp_destroy(dp);
    }
    net one = step(spiking, T, 1, NIMG, &s, &e1);
    net again = step(spiking, T, 1, NIMG, &s, &e1b);
    net two = step(spiking, T, 2, NIMG, &s, &e2);
    net two_again = step(spiking, T, 2, NIMG, &s, &e1b);
    net three = step(spiking, T, 3, NIMG, &s, &e3);
    compare(spiking ? "snn, 1 replica twice" : "ann, 1 replica twice", &one, &again, &start, true);
    compare(spiking ? "snn, 2 replicas vs 1" : "ann, 2 replicas vs 1", &one, &two, &start, false);
    /* replicas add in a fixed order: a run with 2 is reproducible bit for bit */
    compare(spiking ? "snn, 2 replicas twice" : "ann, 2 replicas twice", &two, &two_again, &start,
            true);
    compare(spiking ? "snn, 3 replicas vs 1" : "ann, 3 replicas vs 1", &one, &three, &start, false);
    assert_true(fabs(e1.loss - e2.loss) <= 1e-5 * fabs(e1.loss));
    assert_true(fabs(e1.loss - e3.loss) <= 1e-5 * fabs(e1.loss));
    assert_true(e1.acc == e2.acc && e1.acc == e3.acc);
    drop(&start), drop(&one), drop(&again), drop(&two), drop(&two_again), drop(&three);
    os_imageset_free(&s);
}

static void test_ann_with_batchnorm(void **state)
{
    (void)state;
    check(false, 1);
}

static void test_snn_over_time_steps(void **state)
{
    (void)state;
    check(true, 2);
}

/* A data set smaller than the batch is one short batch; with fewer images than replicas it
 * runs on replica 0 alone, and gives what one replica gives. */
static void test_short_batch_runs_alone(void **state)
{
    (void)state;
    os_imageset s;
    images(&s, 1);
    os_epoch_stats e1, e2;
    net start = make(false);
    net one = step(false, 1, 1, 4, &s, &e1);
    net two = step(false, 1, 2, 4, &s, &e2);
    compare("ann, 1 image, 2 replicas vs 1", &one, &two, &start, true);
    drop(&start), drop(&one), drop(&two);
    os_imageset_free(&s);
}

/* Evaluation over replicas (whole batches each) gives exactly what one network gives: the same
 * top-1, top-5, confusion matrix and spike counts. */
static void test_evaluate_over_replicas(void **state)
{
    (void)state;
    os_imageset s;
    images(&s, 23); /* batches of 4: 6 batches, the last short */
    net n = make(true);
    const os_aug_config aug = {.mean = {0.5f, 0.5f, 0.5f}, .std = {0.25f, 0.25f, 0.25f}};
    os_eval_result want, got;
    os_dp *one = NULL;
    assert_int_equal(os_dp_create(n.g, 3, SIDE, SIDE, CLASSES, n.p, 4, 2, 1, &one), OS_OK);
    assert_int_equal(os_evaluate(os_dp_tnet(one, 0), &s, &aug, CLASSES, &want), OS_OK);
    assert_int_equal(want.n, 23);
    for (int R = 2; R <= 3; R++) {
        os_dp *dp = NULL;
        /* max batch 4 * R: each replica's batch is 4, as the single network's */
        assert_int_equal(os_dp_create(n.g, 3, SIDE, SIDE, CLASSES, n.p, 4 * R, 2, R, &dp), OS_OK);
        assert_int_equal(os_dp_evaluate(dp, &s, &aug, CLASSES, &got), OS_OK);
        assert_true(got.top1 == want.top1 && got.top5 == want.top5 && got.n == want.n);
        assert_memory_equal(got.confusion, want.confusion,
                            (size_t)CLASSES * CLASSES * sizeof *got.confusion);
        assert_int_equal(got.n_lif, want.n_lif);
        assert_memory_equal(got.spikes, want.spikes, (size_t)got.n_lif * sizeof *got.spikes);
        assert_memory_equal(got.neuron_steps, want.neuron_steps,
                            (size_t)got.n_lif * sizeof *got.neuron_steps);
        os_eval_result_free(&got);
        os_dp_destroy(dp);
    }
    uint64_t spikes = 0;
    for (int k = 0; k < want.n_lif; k++)
        spikes += want.spikes[k];
    assert_true(spikes > 0); /* the counts compared are not all zero */
    os_eval_result_free(&want);
    os_dp_destroy(one);
    drop(&n);
    os_imageset_free(&s);
}

static void test_bad_replica_counts(void **state)
{
    (void)state;
    net n = make(false);
    os_dp *dp = NULL;
    assert_int_equal(os_dp_create(n.g, 3, SIDE, SIDE, CLASSES, n.p, 4, 1, 0, &dp), OS_EINVAL);
    assert_int_equal(os_dp_create(n.g, 3, SIDE, SIDE, CLASSES, n.p, 4, 1, 5, &dp), OS_EINVAL);
    assert_null(dp);
    int lo, hi, covered = 0;
    for (int r = 0; r < 3; r++) {
        os_dp_slice(10, 3, r, &lo, &hi);
        assert_int_equal(lo, covered);
        assert_true(hi - lo == 3 || hi - lo == 4);
        covered = hi;
    }
    assert_int_equal(covered, 10);
    drop(&n);
}

int main(void)
{
    openblas_set_num_threads(1); /* as fit does while replicas run (dp.h) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ann_with_batchnorm),
        cmocka_unit_test(test_snn_over_time_steps),
        cmocka_unit_test(test_short_batch_runs_alone),
        cmocka_unit_test(test_evaluate_over_replicas),
        cmocka_unit_test(test_bad_replica_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
