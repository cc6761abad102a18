/* gemm: training's matrix products, on each library this build has, against a double-precision
 * reference: every transpose, beta 0 (C never read: it starts as NaN) and 1, row strides wider
 * than the matrices; and the choice of library (AVX-512 + oneDNN: oneDNN; otherwise OpenBLAS). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gemm.h"
#include "isa.h"
#include "testutil.h"

static void products_match(os_gemm_lib lib)
{
    if (!os_gemm_force(lib)) {
        print_message("skipped: this build has no %s\n", os_gemm_name(lib));
        skip();
    }
    const size_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {64, 130, 27}, {33, 257, 129}, {256, 9, 300}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
        for (int t = 0; t < 4; t++)
            for (int b1 = 0; b1 < 2; b1++) {
                const size_t m = shapes[k][0], n = shapes[k][1], kk = shapes[k][2];
                const bool ta = t & 1, tb = t & 2;
                /* stored shapes: A is m x k (or k x m), B k x n (or n x k), with slack columns */
                const size_t ar = ta ? kk : m, ac = ta ? m : kk, br = tb ? n : kk, bc = tb ? kk : n;
                const size_t lda = ac + 3, ldb = bc + 1, ldc = n + 2;
                float *a = malloc(sizeof *a * ar * lda), *b = malloc(sizeof *b * br * ldb);
                float *c = malloc(sizeof *c * m * ldc), *c0 = malloc(sizeof *c0 * m * ldc);
                tu_fill(a, ar * lda, 10 + (uint32_t)k, 1.0f);
                tu_fill(b, br * ldb, 20 + (uint32_t)k, 1.0f);
                tu_fill(c0, m * ldc, 30 + (uint32_t)k, 1.0f);
                for (size_t i = 0; i < m * ldc; i++)
                    c[i] = b1 ? c0[i] : NAN;
                const float alpha = 0.75f, beta = b1 ? 1.0f : 0.0f;
                os_gemm(ta, tb, m, n, kk, alpha, a, lda, b, ldb, beta, c, ldc);
                for (size_t i = 0; i < m; i++)
                    for (size_t j = 0; j < n; j++) {
                        double want = b1 ? c0[i * ldc + j] : 0.0, mag = fabs(want);
                        for (size_t q = 0; q < kk; q++) {
                            const double x = ta ? a[q * lda + i] : a[i * lda + q];
                            const double y = tb ? b[j * ldb + q] : b[q * ldb + j];
                            want += alpha * x * y;
                            mag += fabs(alpha * x * y);
                        }
                        const double got = c[i * ldc + j];
                        if (!(fabs(got - want) <= 1e-5 * mag + 1e-6))
                            fail_msg("%s: %zux%zux%zu ta %d tb %d beta %g: C[%zu][%zu] = %g, want %g",
                                     os_gemm_name(lib), m, n, kk, ta, tb, beta, i, j, got, want);
                    }
                free(a), free(b), free(c), free(c0);
            }
}

static void test_openblas(void **state)
{
    (void)state;
    products_match(OS_GEMM_OPENBLAS);
}

static void test_onednn(void **state)
{
    (void)state;
    products_match(OS_GEMM_ONEDNN);
}

/* Without an override, oneDNN exactly where the build has it and the CPU runs AVX-512. */
static void test_the_default_choice(void **state)
{
    (void)state;
    if (getenv("ONESPIKE_TRAIN_GEMM")) {
        print_message("skipped: ONESPIKE_TRAIN_GEMM is set\n");
        skip();
    }
    const os_gemm_lib want = os_gemm_have(OS_GEMM_ONEDNN) && os_isa_supported(OS_ISA_AVX512)
                                 ? OS_GEMM_ONEDNN
                                 : OS_GEMM_OPENBLAS;
    assert_int_equal(os_gemm_library(), want); /* first: before a test forces one */
    assert_string_equal(os_gemm_name(OS_GEMM_ONEDNN), "onednn");
    assert_string_equal(os_gemm_name(OS_GEMM_OPENBLAS), "openblas");
    assert_true(os_gemm_have(OS_GEMM_OPENBLAS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_default_choice),
        cmocka_unit_test(test_openblas),
        cmocka_unit_test(test_onednn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
