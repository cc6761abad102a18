/* gemm.h - the matrix products of training (the convolutions' im2col products, the linear
 * layers), on the library that is faster on this CPU. Private to the training layer.
 *
 * Training's time is mostly these products. OpenBLAS runs them with the kernel of the core type
 * the environment names (pinned to Haswell's AVX2 kernel on the machines this project runs on);
 * oneDNN's sgemm (Debian's libdnnl, when the build found it) picks its own kernel from the CPU
 * and on an AVX-512 machine was 1.5-2.3x faster on train_bench's shapes, while on AVX2 alone it
 * was 0.53-1.15x OpenBLAS's (bench/results/2026-12-02-train-gemm.md). So: oneDNN where the CPU
 * runs AVX-512 and the build has it, OpenBLAS elsewhere; ONESPIKE_TRAIN_GEMM=openblas|onednn
 * (read once) picks one for comparisons (onednn where it is not built: refused, OpenBLAS used).
 * Either runs single-threaded in the calling thread: training's parallelism is its replicas.
 * The two sum in different orders, so results agree to float rounding, not bit for bit; a run
 * is reproducible on one machine with one choice.
 */
#ifndef ONESPIKE_TRAIN_GEMM_H
#define ONESPIKE_TRAIN_GEMM_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { OS_GEMM_OPENBLAS = 0, OS_GEMM_ONEDNN, OS_GEMM_COUNT } os_gemm_lib;

/* C[M][N] = alpha * op(A) * op(B) + beta * C, row-major, op(X) = X or X^T (ta, tb); lda, ldb,
 * ldc as CBLAS's row-major ones. With beta = 0, C is not read. */
void os_gemm(bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, const float *a,
             size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc);

/* The library os_gemm uses in this process (chosen on first use), its name ("openblas",
 * "onednn"), and whether this build has oneDNN. */
os_gemm_lib os_gemm_library(void);
const char *os_gemm_name(os_gemm_lib lib);
bool os_gemm_have(os_gemm_lib lib);

/* Set oneDNN's OpenMP to one thread in the calling thread (once per thread; nothing without
 * oneDNN): training's parallelism is its replicas. gemm.c and dconv.c call it before oneDNN. */
void os_dnnl_one_thread(void);

/* For the tests: use lib from now on if this build has it (false, nothing changed, if not). */
bool os_gemm_force(os_gemm_lib lib);

#endif
