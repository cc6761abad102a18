/* dconv: training convolutions on oneDNN (core/train/dconv.c) against ours (grad.c) on the same
 * buffers: the forward, the weights' and bias's gradients added to what is there, the input's
 * gradient (also when another input's forward came between x's forward and its backward, as
 * over time steps, and in the next step with new values in the same buffers), the data's pass
 * alone; strides 1 and 2, 3x3 and 1x1 kernels, 3 input channels (the stem), channel counts
 * oneDNN's blocks do not divide, 1 and 3 images, with a bias and without; and the choice
 * (AVX-512 + oneDNN: oneDNN; otherwise ours). Skipped, and said so, where the build has no
 * oneDNN. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dconv.h"
#include "grad.h"
#include "isa.h"
#include "testutil.h"

/* |a - b| within rel of the larger magnitude of the two arrays. */
static void close_to(const char *what, const float *a, const float *b, size_t n, double rel)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fmax(fabs((double)a[i]), fabs((double)b[i])));
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)a[i] - b[i]) <= rel * m + 1e-7))
            fail_msg("%s[%zu]: oneDNN %g, ours %g (largest %g)", what, i, a[i], b[i], m);
}

static void one_shape(const os_conv_shape *s, int n, bool bias)
{
    const int oh = os_conv_out_h(s), ow = os_conv_out_w(s);
    const size_t nx = (size_t)n * s->in_c * s->in_h * s->in_w, ny = (size_t)n * s->out_c * oh * ow;
    const size_t nw = (size_t)s->out_c * s->in_c * s->kh * s->kw, nb = (size_t)s->out_c;
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc(nb * sizeof *b);
    float *dy = malloc(ny * sizeof *dy), *y1 = malloc(ny * sizeof *y1),
          *y2 = malloc(ny * sizeof *y2);
    float *dw1 = malloc(nw * sizeof *dw1), *dw2 = malloc(nw * sizeof *dw2);
    float *db1 = malloc(nb * sizeof *db1), *db2 = malloc(nb * sizeof *db2);
    float *dx1 = malloc(nx * sizeof *dx1), *dx2 = malloc(nx * sizeof *dx2);
    float *col = malloc(os_conv_batch_floats(s, n) * sizeof *col);
    float *tmp = malloc((nx > ny ? nx : ny) * sizeof *tmp);
    tu_fill(x, nx, 1, 1.0f), tu_fill(w, nw, 2, 0.5f), tu_fill(b, nb, 3, 0.5f);
    tu_fill(dy, ny, 4, 1.0f);
    tu_fill(dw1, nw, 5, 0.25f), memcpy(dw2, dw1, nw * sizeof *dw1); /* added to, not replaced */
    tu_fill(db1, nb, 6, 0.25f), memcpy(db2, db1, nb * sizeof *db1);
    for (size_t i = 0; i < nx; i++)
        dx1[i] = NAN; /* overwritten */
    os_dconv *d = NULL;
    os_status st = os_dconv_create(s, n, bias, &d);
    if (st != OS_OK)
        fail_msg("%dx%dx%d -> %d k%d s%d, %d images: %s", s->in_c, s->in_h, s->in_w, s->out_c,
                 s->kh, s->stride, n, os_errdetail());
    assert_int_equal(os_dconv_batch(d), n);
    for (int rep = 0; rep < 2; rep++) { /* a second call on the same object gives the same */
        os_dconv_forward(d, x, w, bias ? b : NULL, y1, false);
        os_conv2d_batch(s, n, x, w, bias ? b : NULL, y2, col, tmp);
        close_to("y", y1, y2, ny, 1e-5);
    }
    /* another input's forward after x's, the weights as they were (a later time step): its
     * output is x2's, and the backward of x reads x, not the last input oneDNN saw */
    float *x2 = malloc(nx * sizeof *x2);
    tu_fill(x2, nx, 7, 1.0f);
    os_dconv_forward(d, x2, w, bias ? b : NULL, y1, true);
    os_conv2d_batch(s, n, x2, w, bias ? b : NULL, y2, col, tmp);
    close_to("y of a later step", y1, y2, ny, 1e-5);
    free(x2);
    for (int step = 0; step < 2; step++) {
        if (step) { /* the next training step: new values in the same buffers */
            tu_fill(x, nx, 11, 1.0f), tu_fill(w, nw, 12, 0.5f), tu_fill(dy, ny, 13, 1.0f);
            os_dconv_forward(d, x, w, bias ? b : NULL, y1, false);
            os_conv2d_batch(s, n, x, w, bias ? b : NULL, y2, col, tmp);
            close_to("y", y1, y2, ny, 1e-5);
        }
        os_dconv_backward(d, x, w, dy, dw1, bias ? db1 : NULL, dx1);
        os_conv2d_backward_batch(s, n, x, w, dy, dw2, bias ? db2 : NULL, dx2, col, tmp);
        close_to("dw", dw1, dw2, nw, 1e-5);
        close_to("db", db1, db2, nb, 1e-5);
        close_to("dx", dx1, dx2, nx, 1e-5);
    }
    /* the data's pass alone leaves the weights' and bias's gradients as they were */
    memcpy(dw2, dw1, nw * sizeof *dw1), memcpy(db2, db1, nb * sizeof *db1);
    for (size_t i = 0; i < nx; i++)
        dx1[i] = NAN;
    os_dconv_backward(d, x, w, dy, NULL, NULL, dx1);
    close_to("dx alone", dx1, dx2, nx, 1e-5);
    assert_memory_equal(dw1, dw2, nw * sizeof *dw1);
    assert_memory_equal(db1, db2, nb * sizeof *db1);
    os_dconv_destroy(d);
    free(x), free(w), free(b), free(dy), free(y1), free(y2), free(dw1), free(dw2);
    free(db1), free(db2), free(dx1), free(dx2), free(col), free(tmp);
}

static void test_as_ours(void **state)
{
    (void)state;
    if (!os_dconv_built()) {
        print_message("skipped: this build has no oneDNN\n");
        skip();
    }
    const os_conv_shape shapes[] = {
        {3, 13, 11, 8, 3, 3, 2, 1},   /* the stem: 3 channels, stride 2, odd sizes */
        {16, 9, 9, 16, 3, 3, 1, 1},   /* stride 1 */
        {24, 10, 10, 40, 1, 1, 2, 0}, /* a 1x1 shortcut, channels no block divides */
        {32, 4, 4, 64, 3, 3, 1, 1},   /* a late stage */
        {5, 7, 7, 6, 3, 3, 2, 1},     /* few channels everywhere */
    };
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
        for (int n = 1; n <= 3; n += 2)
            for (int bias = 0; bias < 2; bias++)
                one_shape(&shapes[k], n, bias);
}

/* Without an override, oneDNN exactly where the build has it and the CPU runs AVX-512. */
static void test_the_default_choice(void **state)
{
    (void)state;
    if (getenv("ONESPIKE_TRAIN_CONV")) {
        print_message("skipped: ONESPIKE_TRAIN_CONV is set\n");
        skip();
    }
    assert_int_equal(os_dconv_enabled(), os_dconv_built() && os_isa_supported(OS_ISA_AVX512));
    assert_false(os_dconv_force(false) && os_dconv_enabled());
    assert_int_equal(os_dconv_force(true), os_dconv_built());
    assert_int_equal(os_dconv_enabled(), os_dconv_built());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_as_ours),
        cmocka_unit_test(test_the_default_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
