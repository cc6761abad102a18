/* engine_tensors - the network alone, on preprocessed tensors, for the side-by-side benchmark
 * against ONNX Runtime and PyTorch (bench/run.sh).
 *
 *   engine_tensors dump MODEL OUTDIR IMAGE...
 *       Decode and preprocess each JPEG with onespike's own code (os_session_load_jpeg) and write
 *       OUTDIR/input.f32 (N x C x H x W float32, the bytes every engine then reads) and the
 *       logits (N x classes float32) of a T = 1 run on exactly those tensors, once per path:
 *       OUTDIR/onespike.logits.f32 (dense = false, the default) and
 *       OUTDIR/onespike-dense.logits.f32 (dense = true, the reference float kernels).
 *       The JSON line on stdout carries the default path's spike counts over all the images, per
 *       LIF layer in file order ("spikes": [[spikes, neurons], ...]), which bench/accumulates.py
 *       checks its own count of the engine's work against.
 *
 *   engine_tensors time MODEL INPUT.f32 [--threads N] [--batch B] [--iters N] [--warmup N]
 *                       [--timesteps T] [--dense]
 *       Each of N threads (default 1) owns a session, as onespike-serve's workers do. A call
 *       copies one preloaded tensor into os_session_input() and runs os_session_run; with
 *       --batch B a call runs B images as one batch (os_session_run_batch, layer by layer).
 *       Calls cycle through the images of INPUT.f32. After WARMUP calls per thread, ITERS calls
 *       per thread are timed one by one and as a whole from when all threads are warm. Time
 *       steps default to 1 (the T = 1 network, whatever the file stores).
 *
 * OpenBLAS runs single-threaded, as in the server. Every result is one JSON line on stdout,
 * with the OpenBLAS core name for the machine description.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "onespike/clock.h"
#include "onespike/model.h"
#include "onespike/parse.h"
#include "onespike/safetensors.h"
#include "onespike/session.h"

void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);

#define DEFAULT_ITERS   300
#define DEFAULT_WARMUP  20
#define MAX_THREADS     64
#define MAX_BATCH       1024
#define MAX_ITERS       10000000L
#define MAX_IMAGE_BYTES (64 << 20)
#define MAX_INPUT_BYTES ((size_t)1 << 31)
#define DUMP_TIMESTEPS  1 /* the exported peers are the T = 1 network */

/* "what: detail", where the library's detail does not start with `what` already. */
static int fail(const char *what, os_status st)
{
    const char *d = *os_errdetail() ? os_errdetail() : os_strerror(st);
    if (strncmp(d, what, strlen(what)) == 0)
        fprintf(stderr, "engine_tensors: %s\n", d);
    else
        fprintf(stderr, "engine_tensors: %s: %s\n", what, d);
    return 1;
}

static int write_floats(const char *dir, const char *name, const float *x, size_t n)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        fprintf(stderr, "engine_tensors: path too long: %s/%s\n", dir, name);
        return 1;
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof *x, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "engine_tensors: cannot write %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return 1;
    }
    return 0;
}

#define MAX_LIF 256

/* Logits of every tensor in `in` (n images of `per` floats) through one session; the spike
 * counts of its LIF layers into spikes[2 * k], spikes[2 * k + 1] (spikes, neurons), *n_lif. */
static os_status run_all(const os_model *m, bool dense, const float *in, size_t per, int n,
                         float *logits, float *probs, uint64_t *spikes, int *n_lif)
{
    os_session_opts o = {.timesteps = DUMP_TIMESTEPS, .dense = dense, .count_spikes = true};
    os_session *s = NULL;
    os_status st = os_session_create(m, &o, &s);
    if (st)
        return st;
    int k = os_model_classes(m);
    for (int i = 0; i < n; i++) {
        memcpy(os_session_input(s), in + (size_t)i * per, per * sizeof *in);
        os_session_run(s, probs, logits + (size_t)i * (size_t)k);
    }
    for (*n_lif = 0;
         *n_lif < MAX_LIF && os_session_spikes(s, *n_lif, &spikes[2 * *n_lif], &spikes[2 * *n_lif + 1]);
         (*n_lif)++)
        ;
    os_session_destroy(s);
    return OS_OK;
}

static int cmd_dump(const os_model *m, const char *dir, int n, char **images)
{
    int rc = 1;
    int c, h, w, k = os_model_classes(m);
    os_model_input(m, &c, &h, &w);
    size_t per = (size_t)c * h * w;
    float *in = calloc((size_t)n * per, sizeof *in);
    float *logits = calloc((size_t)n * k, sizeof *logits);
    float *probs = calloc((size_t)k, sizeof *probs);
    os_session *s = NULL;
    void *jpeg = NULL;
    os_status st;
    if (!in || !logits || !probs) {
        fprintf(stderr, "engine_tensors: no memory for %d images\n", n);
        goto out;
    }
    if ((st = os_session_create(m, NULL, &s))) {
        rc = fail("session", st);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        if ((st = os_read_file(images[i], MAX_IMAGE_BYTES, &jpeg, &len)) ||
            (st = os_session_load_jpeg(s, jpeg, len))) {
            rc = fail(images[i], st);
            goto out;
        }
        memcpy(in + (size_t)i * per, os_session_input(s), per * sizeof *in);
        free(jpeg);
        jpeg = NULL;
    }
    if (write_floats(dir, "input.f32", in, (size_t)n * per))
        goto out;
    const struct {
        bool dense;
        const char *file;
    } paths[] = {{false, "onespike.logits.f32"}, {true, "onespike-dense.logits.f32"}};
    static uint64_t spikes[2 * MAX_LIF];
    int n_lif = 0;
    for (size_t p = sizeof paths / sizeof *paths; p-- > 0;) { /* the default path's counts last */
        if ((st = run_all(m, paths[p].dense, in, per, n, logits, probs, spikes, &n_lif))) {
            rc = fail("session", st);
            goto out;
        }
        if (write_floats(dir, paths[p].file, logits, (size_t)n * k))
            goto out;
    }
    printf("{\"images\":%d,\"channels\":%d,\"height\":%d,\"width\":%d,\"classes\":%d,"
           "\"timesteps\":%d,\"openblas_core\":\"%s\",\"backend\":\"%s\",\"isa\":\"%s\","
           "\"spikes\":[",
           n, c, h, w, k, DUMP_TIMESTEPS, openblas_get_corename(), os_session_backend(s),
           os_session_isa(s));
    for (int l = 0; l < n_lif; l++)
        printf("%s[%llu,%llu]", l ? "," : "", (unsigned long long)spikes[2 * l],
               (unsigned long long)spikes[2 * l + 1]);
    printf("]}\n");
    rc = 0;
out:
    free(jpeg);
    os_session_destroy(s);
    free(probs);
    free(logits);
    free(in);
    return rc;
}

/* ---- timing ---------------------------------------------------------------------------- */

typedef struct {
    int threads, batch, timesteps;
    long iters, warmup;
    bool dense;
} time_opts;

typedef struct {
    const os_model *m;
    const time_opts *o;
    const float *in;
    size_t per;
    int n_images, first; /* threads start at different images */
    double *call_s;      /* iters entries: seconds per timed call */
    os_status st;
} job;

static pthread_barrier_t warm; /* threads + main: timing starts when all are warm */

/* One call: copy the batch's tensors into the session's inputs and run them as one batch
 * (os_session_run_batch), as the server's dynamic batching and classify do. */
static void one_call(os_session *s, const job *j, long *next, float *probs)
{
    for (int b = 0; b < j->o->batch; b++) {
        memcpy(os_session_input_at(s, b), j->in + (size_t)*next * j->per, j->per * sizeof *j->in);
        *next = (*next + 1) % j->n_images;
    }
    os_session_run_batch(s, j->o->batch, probs, NULL);
}

static void *run(void *arg)
{
    job *j = arg;
    os_session_opts so = {.timesteps = j->o->timesteps, .dense = j->o->dense,
                          .max_batch = j->o->batch};
    os_session *s = NULL;
    float *probs = calloc((size_t)os_model_classes(j->m) * j->o->batch, sizeof *probs);
    long next = j->first % j->n_images;
    j->st = probs ? os_session_create(j->m, &so, &s) : OS_ENOMEM;
    for (long i = 0; i < j->o->warmup && !j->st; i++)
        one_call(s, j, &next, probs);
    pthread_barrier_wait(&warm);
    for (long i = 0; i < j->o->iters && !j->st; i++) {
        double t0 = os_clock_s();
        one_call(s, j, &next, probs);
        j->call_s[i] = os_clock_s() - t0;
    }
    os_session_destroy(s);
    free(probs);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double percentile(const double *v, size_t n, double q)
{
    size_t r = (size_t)(q / 100.0 * (double)n + 0.999999);
    return v[r < 1 ? 0 : (r > n ? n - 1 : r - 1)];
}

static int cmd_time(const os_model *m, const char *input, const time_opts *o)
{
    int rc = 1, c, h, w;
    os_model_input(m, &c, &h, &w);
    size_t per = (size_t)c * h * w, len = 0;
    void *buf = NULL;
    double *calls = NULL;
    job jobs[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    memset(jobs, 0, sizeof jobs);
    os_status st = os_read_file(input, MAX_INPUT_BYTES, &buf, &len);
    if (st)
        return fail(input, st);
    if (len == 0 || len % (per * sizeof(float))) {
        fprintf(stderr,
                "engine_tensors: %s: %zu bytes, not a whole number of %dx%dx%d float32 "
                "tensors\n",
                input, len, c, h, w);
        goto out;
    }
    int n_images = (int)(len / (per * sizeof(float)));
    size_t total = (size_t)o->threads * (size_t)o->iters;
    if (!(calls = calloc(total, sizeof *calls))) {
        fprintf(stderr, "engine_tensors: no memory for %zu timings\n", total);
        goto out;
    }
    for (int t = 0; t < o->threads; t++)
        jobs[t] = (job){.m = m,
                        .o = o,
                        .in = buf,
                        .per = per,
                        .n_images = n_images,
                        .first = t * n_images / o->threads,
                        .call_s = calls + (size_t)t * (size_t)o->iters};
    pthread_barrier_init(&warm, NULL, (unsigned)o->threads + 1);
    for (int t = 0; t < o->threads; t++)
        pthread_create(&th[t], NULL, run, &jobs[t]);
    pthread_barrier_wait(&warm);
    double t0 = os_clock_s();
    for (int t = 0; t < o->threads; t++)
        pthread_join(th[t], NULL);
    double secs = os_clock_s() - t0;
    pthread_barrier_destroy(&warm);
    for (int t = 0; t < o->threads; t++)
        if (jobs[t].st) {
            rc = fail("session", jobs[t].st);
            goto out;
        }
    qsort(calls, total, sizeof *calls, cmp_double);
    double images = (double)total * o->batch;
    /* int8 and fp16 weight rows (ONESPIKE_WEIGHTS) are paths of their own in the report */
    const char *weights = os_model_weights(m);
    const char *path = o->dense ? "dense" : strcmp(weights, "fp32") ? weights : "default";
    printf("{\"engine\":\"onespike\",\"path\":\"%s\",\"timesteps\":%d,\"threads\":%d,\"batch\":%d,"
           "\"calls\":%zu,\"images\":%.0f,\"seconds\":%.4f,\"images_per_s\":%.2f,"
           "\"median_ms\":%.4f,\"p10_ms\":%.4f,\"p90_ms\":%.4f,\"openblas_core\":\"%s\"}\n",
           path, o->timesteps, o->threads, o->batch, total, images, secs,
           images / secs, percentile(calls, total, 50) * 1e3, percentile(calls, total, 10) * 1e3,
           percentile(calls, total, 90) * 1e3,
           openblas_get_corename());
    rc = 0;
out:
    free(calls);
    free(buf);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: engine_tensors dump MODEL OUTDIR IMAGE...\n"
                    "       engine_tensors time MODEL INPUT.f32 [--threads N] [--batch B] "
                    "[--iters N] [--warmup N] [--timesteps T] [--dense]\n");
    return 2;
}

static bool parse_time_opts(int argc, char **argv, time_opts *o)
{
    *o = (time_opts){1, 1, 1, DEFAULT_ITERS, DEFAULT_WARMUP, false};
    for (int i = 0; i < argc; i++) {
        long v = 0;
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(a, "--dense") == 0) {
            o->dense = true;
            continue;
        }
        bool ok = true;
        if (strcmp(a, "--threads") == 0 && (ok = os_parse_long(val, 1, MAX_THREADS, &v)))
            o->threads = (int)v;
        else if (strcmp(a, "--batch") == 0 && (ok = os_parse_long(val, 1, MAX_BATCH, &v)))
            o->batch = (int)v;
        else if (strcmp(a, "--iters") == 0 && (ok = os_parse_long(val, 1, MAX_ITERS, &v)))
            o->iters = v;
        else if (strcmp(a, "--warmup") == 0 && (ok = os_parse_long(val, 0, MAX_ITERS, &v)))
            o->warmup = v;
        else if (strcmp(a, "--timesteps") == 0 &&
                 (ok = os_parse_long(val, 1, OS_MODEL_MAX_TIMESTEPS, &v)))
            o->timesteps = (int)v;
        else {
            fprintf(stderr, "engine_tensors: %s %s: %s\n", a, val,
                    ok ? "unknown option" : "value out of range");
            return false;
        }
        i++;
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return usage();
    bool dump = strcmp(argv[1], "dump") == 0;
    time_opts o;
    if (dump ? argc < 5 : strcmp(argv[1], "time") != 0 || !parse_time_opts(argc - 4, argv + 4, &o))
        return usage();
    openblas_set_num_threads(1);
    os_model *m = NULL;
    os_status st = os_model_load(argv[2], &m);
    if (st)
        return fail(argv[2], st);
    int rc = dump ? cmd_dump(m, argv[3], argc - 4, argv + 4) : cmd_time(m, argv[3], &o);
    os_model_destroy(m);
    return rc;
}
