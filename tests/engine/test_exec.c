/* test_exec.c - the layer interpreter of core/engine/exec.c and the backend tables (the
 * engine's and the training layer's): every op has a kernel in every backend; the interpreter
 * visits layers in list order at every step, static layers at step 0 only, hands each kernel
 * its inputs' and its own buffers, and sums the last layer into the logits after each step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backend.h"
#include "exec.h"
#include "testutil.h"
#include "tnet.h" /* the train backend, core/train/tnet.c */

enum { MAX_CALLS = 512, T = 3 };

typedef struct {
    const os_net *net;
    float *buf;   /* one float per (layer, step); the input is buf[0] */
    int n_layers;
    int calls, layer[MAX_CALLS], step[MAX_CALLS];
    const float *x[MAX_CALLS], *x2[MAX_CALLS];
    float *y[MAX_CALLS];
} trace;

static float *trace_slot(void *ctx, int i, int step)
{
    trace *tr = ctx;
    return i == OS_NET_INPUT ? tr->buf : tr->buf + 1 + (size_t)step * tr->n_layers + i;
}

/* Records the call; the layer's output is its index + 1 plus 100 * step, so the logits sum is
 * predictable. */
static void record(void *ctx, int i, const os_layer *L, const os_exec_io *io)
{
    (void)L;
    trace *tr = ctx;
    assert_true(tr->calls < MAX_CALLS);
    tr->layer[tr->calls] = i, tr->step[tr->calls] = io->step;
    tr->x[tr->calls] = io->x, tr->x2[tr->calls] = io->x2, tr->y[tr->calls] = io->y;
    tr->calls++;
    io->y[0] = (float)(i + 1) + 100.0f * (float)io->step;
}

static os_backend recording_backend(void)
{
    os_backend be = {.name = "trace"};
    for (int op = 0; op < OS_OP_COUNT; op++)
        be.op[op] = record;
    return be;
}

static void test_backend_tables_complete(void **state)
{
    (void)state;
    const os_backend *all[] = {&os_backend_dense, &os_backend_event, &os_backend_train};
    for (size_t b = 0; b < sizeof all / sizeof *all; b++)
        for (int op = 0; op < OS_OP_COUNT; op++)
            if (!all[b]->op[op])
                fail_msg("backend %s has no kernel for op %s", all[b]->name,
                         os_op_name((os_op)op));
    assert_null(os_backend_dense.after);  /* nothing to do between layers */
    assert_non_null(os_backend_event.after); /* indexes the spikes the next conv reads */
}

/* resnet20 (a residual add, a static stem) at T = 3 through the recording backend. */
static void test_interpreter_order(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    os_arch_opts o = {.name = "resnet20", .width_mult = 0.25, .input = 16, .classes = 2,
                      .spiking = true, .batchnorm = true, .threshold = 1.0f, .leak = 1.0f,
                      .seed = 3};
    os_model *m = tu_arch_model(&o, dir);
    const os_net *net = os_model_net(m);
    const int n = os_net_count(net);
    static trace tr;
    memset(&tr, 0, sizeof tr);
    tr.net = net, tr.n_layers = n;
    tr.buf = calloc((size_t)(1 + T * n), sizeof *tr.buf);
    const os_backend be = recording_backend();
    float logits = 0.0f;
    os_exec_forward(net, T, &be, &tr, trace_slot, &logits, 1);

    int statics = 0, adds = 0;
    for (int i = 0; i < n; i++) {
        statics += os_net_layer(net, i)->is_static;
        adds += os_net_layer(net, i)->op == OS_OP_ADD;
    }
    assert_true(statics >= 1 && adds >= 1); /* the net exercises both */
    assert_int_equal(tr.calls, statics + T * (n - statics));
    int k = 0;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++) {
            const os_layer *L = os_net_layer(net, i);
            if (t > 0 && L->is_static)
                continue;
            assert_int_equal(tr.layer[k], i);
            assert_int_equal(tr.step[k], t);
            assert_ptr_equal(tr.x[k], trace_slot(&tr, L->from[0], t));
            assert_ptr_equal(tr.x2[k], L->n_from > 1 ? trace_slot(&tr, L->from[1], t) : NULL);
            assert_ptr_equal(tr.y[k], trace_slot(&tr, i, t));
            k++;
        }
    /* the last layer (not static) wrote n + 100 t at step t */
    assert_false(os_net_layer(net, n - 1)->is_static);
    assert_float_equal(logits, (float)(T * n + 100 * (0 + 1 + 2)), 0.0f);
    free(tr.buf);
    os_model_destroy(m);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backend_tables_complete),
        cmocka_unit_test(test_interpreter_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
