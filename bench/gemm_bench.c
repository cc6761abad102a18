/* gemm_bench - training's matrix products (core/train/gemm.h) on OpenBLAS and on oneDNN, one
 * thread, on the shapes of train_bench's network (ResNet-18 x0.5, 64 px, batch 32): the forward
 * im2col product of a conv at each stage, a data gradient's, a weight gradient's.
 *
 *   gemm_bench [REPS]     (default 7; best time of REPS per shape and library)
 *
 * The question gemm.h's choice answers: which library is faster on this CPU. Run it on an idle
 * machine (ONEDNN_MAX_CPU_ISA=AVX2 shows oneDNN as an AVX2-only CPU would run it). One JSON
 * line per shape on stdout, then the geometric means.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "gemm.h"
#include "onespike/clock.h"

void openblas_set_num_threads(int num_threads);

int main(int argc, char **argv)
{
    const int reps = argc > 1 ? atoi(argv[1]) : 7;
    if (reps < 1 || argc > 2) {
        fprintf(stderr, "usage: gemm_bench [REPS]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    /* M, N, K, transposes: forward products of stages 1-4 (out_c x batch*hw x in_c*9), a data
     * gradient (in_c*9 x batch*hw x out_c, A transposed) and a weight gradient (out_c x
     * in_c*9 x batch*hw, B transposed) */
    const struct {
        size_t m, n, k;
        bool ta, tb;
        const char *what;
    } shapes[] = {
        {32, 32 * 32 * 32, 288, false, false, "stage 1 forward"},
        {64, 32 * 16 * 16, 576, false, false, "stage 2 forward"},
        {128, 32 * 8 * 8, 1152, false, false, "stage 3 forward"},
        {256, 32 * 4 * 4, 2304, false, false, "stage 4 forward"},
        {576, 32 * 16 * 16, 64, true, false, "stage 2 data gradient"},
        {64, 576, 32 * 16 * 16, false, true, "stage 2 weight gradient"},
    };
    if (!os_gemm_have(OS_GEMM_ONEDNN)) {
        fprintf(stderr, "gemm_bench: this build has no oneDNN (apt-get install libdnnl-dev)\n");
        return 2;
    }
    double log_ratio = 0;
    const size_t n_shapes = sizeof shapes / sizeof *shapes;
    for (size_t s = 0; s < n_shapes; s++) {
        const size_t m = shapes[s].m, n = shapes[s].n, k = shapes[s].k;
        const size_t lda = shapes[s].ta ? m : k, ldb = shapes[s].tb ? k : n;
        float *a = malloc(sizeof *a * m * k), *b = malloc(sizeof *b * k * n);
        float *c = malloc(sizeof *c * m * n);
        if (!a || !b || !c)
            return 1;
        for (size_t i = 0; i < m * k; i++)
            a[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < k * n; i++)
            b[i] = (float)(i % 5) * 0.1f;
        double best[OS_GEMM_COUNT];
        for (int lib = 0; lib < OS_GEMM_COUNT; lib++) {
            os_gemm_force((os_gemm_lib)lib);
            best[lib] = 1e30;
            for (int r = 0; r <= reps; r++) { /* the first call warms up */
                const double t0 = os_clock_s();
                os_gemm(shapes[s].ta, shapes[s].tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
                const double t = os_clock_s() - t0;
                if (r > 0 && t < best[lib])
                    best[lib] = t;
            }
        }
        const double flop = 2.0 * (double)m * (double)n * (double)k;
        printf("{\"shape\":\"%s\",\"m\":%zu,\"n\":%zu,\"k\":%zu,\"openblas_ms\":%.3f,"
               "\"openblas_gflops\":%.1f,\"onednn_ms\":%.3f,\"onednn_gflops\":%.1f,"
               "\"onednn_speedup\":%.2f}\n",
               shapes[s].what, m, n, k, best[OS_GEMM_OPENBLAS] * 1e3,
               flop / best[OS_GEMM_OPENBLAS] * 1e-9, best[OS_GEMM_ONEDNN] * 1e3,
               flop / best[OS_GEMM_ONEDNN] * 1e-9, best[OS_GEMM_OPENBLAS] / best[OS_GEMM_ONEDNN]);
        log_ratio += log(best[OS_GEMM_OPENBLAS] / best[OS_GEMM_ONEDNN]);
        free(a), free(b), free(c);
    }
    printf("{\"geomean_onednn_speedup\":%.2f}\n", exp(log_ratio / (double)n_shapes));
    return 0;
}
