/* gemm.c - training's matrix products on OpenBLAS or oneDNN (see gemm.h). */
#include "gemm.h"

#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isa.h"

#ifdef ONESPIKE_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#endif

static atomic_int chosen = -1; /* os_gemm_lib, or -1 before the first use */
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

bool os_gemm_have(os_gemm_lib lib)
{
#ifdef ONESPIKE_HAVE_DNNL
    return lib == OS_GEMM_OPENBLAS || lib == OS_GEMM_ONEDNN;
#else
    return lib == OS_GEMM_OPENBLAS;
#endif
}

const char *os_gemm_name(os_gemm_lib lib)
{
    return lib == OS_GEMM_ONEDNN ? "onednn" : "openblas";
}

static void choose(void)
{
    os_gemm_lib lib = os_gemm_have(OS_GEMM_ONEDNN) && os_isa_supported(OS_ISA_AVX512)
                          ? OS_GEMM_ONEDNN
                          : OS_GEMM_OPENBLAS;
    const char *env = getenv("ONESPIKE_TRAIN_GEMM");
    if (env && *env) {
        if (strcmp(env, "openblas") == 0)
            lib = OS_GEMM_OPENBLAS;
        else if (strcmp(env, "onednn") == 0 && os_gemm_have(OS_GEMM_ONEDNN))
            lib = OS_GEMM_ONEDNN;
        else
            fprintf(stderr, "onespike: ONESPIKE_TRAIN_GEMM=%s: not one of openblas%s; using %s\n",
                    env, os_gemm_have(OS_GEMM_ONEDNN) ? ", onednn" : " (no oneDNN in this build)",
                    os_gemm_name(lib));
    }
    atomic_store(&chosen, (int)lib); /* os_gemm_force runs this first, then its own store */
}

os_gemm_lib os_gemm_library(void)
{
    pthread_once(&choose_once, choose);
    return (os_gemm_lib)atomic_load(&chosen);
}

bool os_gemm_force(os_gemm_lib lib)
{
    if (!os_gemm_have(lib))
        return false;
    pthread_once(&choose_once, choose);
    atomic_store(&chosen, (int)lib);
    return true;
}

/* Shapes that reach CBLAS must fit its int arguments. */
static int blas_int(size_t v)
{
    assert(v <= (size_t)INT_MAX);
    return (int)v;
}

void os_dnnl_one_thread(void)
{
#ifdef ONESPIKE_HAVE_DNNL
    /* Debian's oneDNN parallelises with OpenMP: one thread in this (replica) thread. The
     * setting is the calling thread's own, so it is made once per thread. */
    static _Thread_local bool done;
    if (!done) {
        omp_set_num_threads(1);
        done = true;
    }
#endif
}

void os_gemm(bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, const float *a,
             size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
#ifdef ONESPIKE_HAVE_DNNL
    if (os_gemm_library() == OS_GEMM_ONEDNN) {
        os_dnnl_one_thread();
        const dnnl_status_t st =
            dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', (dnnl_dim_t)m, (dnnl_dim_t)n,
                       (dnnl_dim_t)k, alpha, a, (dnnl_dim_t)lda, b, (dnnl_dim_t)ldb, beta, c,
                       (dnnl_dim_t)ldc);
        if (st == dnnl_success)
            return;
        /* only on arguments CBLAS would reject as well, or no memory for its packing: fall
         * through to OpenBLAS, which needs none */
    }
#endif
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                blas_int(m), blas_int(n), blas_int(k), alpha, a, blas_int(lda), b, blas_int(ldb),
                beta, c, blas_int(ldc));
}
