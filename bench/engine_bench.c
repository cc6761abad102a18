/* engine_bench - the engine alone on one image: decode + resize + network + softmax, as one
 * onespike-serve worker runs it, without HTTP. The baseline for the server's overhead.
 *
 *   engine_bench MODEL IMAGE [N] [THREADS] [VIEWS]
 *
 * Each of THREADS threads (default 1) owns a session and classifies IMAGE WARMUP times, then,
 * timed from when all are warm, N times (default 200); OpenBLAS is single-threaded, as in the
 * server's workers. VIEWS (1, 2, 4 or 8; default 1): each image in that many test-time views
 * (os_session_run_views, as classify --tta / the server's ?tta=). Prints images/s over all
 * threads and the mean time per image.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onespike/clock.h"
#include "onespike/model.h"
#include "onespike/safetensors.h"
#include "onespike/session.h"

void openblas_set_num_threads(int num_threads);

#define DEFAULT_N       200
#define WARMUP          5
#define MAX_THREADS     64
#define MAX_IMAGE_BYTES (64 << 20)

static pthread_barrier_t warm; /* threads + main: timing starts when all are warm */

typedef struct {
    const os_model *m;
    const void *img;
    size_t len;
    int n, views;
    os_status st;
    float *probs;
} job;

static os_status classify(os_session *s, const job *j)
{
    if (j->views == 1)
        return os_session_classify(s, j->img, j->len, j->probs);
    os_status st = os_session_load_jpeg(s, j->img, j->len);
    return st ? st : os_session_run_views(s, j->views, j->probs);
}

static void *run(void *arg)
{
    job *j = arg;
    os_session *s = NULL;
    j->st = os_session_create(j->m, &(os_session_opts){.max_batch = j->views}, &s);
    for (int i = 0; i < WARMUP && !j->st; i++)
        j->st = classify(s, j);
    pthread_barrier_wait(&warm);
    for (int i = 0; i < j->n && !j->st; i++)
        j->st = classify(s, j);
    os_session_destroy(s);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: engine_bench MODEL IMAGE [N] [THREADS] [VIEWS]\n");
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : DEFAULT_N;
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    int views = argc > 5 ? atoi(argv[5]) : 1;
    if (n < 1 || threads < 1 || threads > MAX_THREADS || !os_session_views_valid(views)) {
        fprintf(stderr, "engine_bench: N >= 1, 1 <= THREADS <= %d, VIEWS 1, 2, 4 or 8\n",
                MAX_THREADS);
        return 2;
    }
    openblas_set_num_threads(1);
    int rc = 1;
    os_model *m = NULL;
    void *img = NULL;
    size_t len = 0;
    job jobs[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    memset(jobs, 0, sizeof jobs);
    os_status st = os_model_load(argv[1], &m);
    if (!st)
        st = os_read_file(argv[2], MAX_IMAGE_BYTES, &img, &len);
    if (st) {
        fprintf(stderr, "engine_bench: %s\n", *os_errdetail() ? os_errdetail() : os_strerror(st));
        goto out;
    }
    for (int t = 0; t < threads; t++) {
        jobs[t] = (job){m, img, len, n, views, OS_OK,
                        calloc((size_t)os_model_classes(m) * views, sizeof(float))};
        if (!jobs[t].probs)
            goto out;
    }
    pthread_barrier_init(&warm, NULL, (unsigned)threads + 1);
    for (int t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, run, &jobs[t]);
    pthread_barrier_wait(&warm);
    double t0 = os_clock_s();
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    double secs = os_clock_s() - t0;
    pthread_barrier_destroy(&warm);
    for (int t = 0; t < threads; t++)
        if (jobs[t].st) {
            fprintf(stderr, "engine_bench: %s\n", os_strerror(jobs[t].st));
            goto out;
        }
    double images = (double)threads * n;
    printf("{\"threads\":%d,\"views\":%d,\"images\":%.0f,\"seconds\":%.3f,"
           "\"images_per_s\":%.1f,\"ms_per_image\":%.3f}\n",
           threads, views, images, secs, images / secs, secs * 1e3 / (images / threads));
    rc = 0;
out:
    for (int t = 0; t < threads; t++)
        free(jobs[t].probs);
    free(img);
    os_model_destroy(m);
    return rc;
}
