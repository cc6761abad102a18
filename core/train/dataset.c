/* dataset.c - scan, split and decode an image-folder dataset; see dataset.h. */
#include "onespike/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "onespike/image.h"
#include "onespike/raster.h"
#include "onespike/rng.h"
#include "onespike/safetensors.h"

enum { DS_MAX_IMAGE_BYTES = 64 * 1024 * 1024, DS_MAX_THREADS = 64, DS_PATH_MAX = 4096 };
#define DS_MAX_PIXELS ((size_t)100 * 1000 * 1000)

struct os_dataset {
    char *dir;
    char **classes;
    int n_classes;
    os_sample *samples;
    size_t n, cap;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir that are folders (want_dirs) or image files (os_raster_is_image_name). */
static os_status list_dir(const char *dir, bool want_dirs, char ***out, size_t *n)
{
    *out = NULL, *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return os_fail(OS_EIO, "%s: cannot open folder: %s", dir, strerror(errno));
    size_t cap = 0;
    char **v = NULL;
    struct dirent *e;
    os_status st = OS_OK;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[DS_PATH_MAX];
        struct stat sb;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        bool stat_ok = stat(path, &sb) == 0;
        /* A file named as an image is listed even when it is a broken link, a link loop or a
         * FIFO: decoding then skips it with the warning an undecodable file gets (see
         * check_regular), rather than it vanishing from the dataset unannounced. */
        if (want_dirs ? !(stat_ok && S_ISDIR(sb.st_mode))
                      : !(os_raster_is_image_name(e->d_name) && !(stat_ok && S_ISDIR(sb.st_mode))))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **g = realloc(v, cap * sizeof *g);
            if (!g) {
                st = os_fail(OS_ENOMEM, "no memory listing %s", dir);
                break;
            }
            v = g;
        }
        if (!(v[*n] = strdup(e->d_name))) {
            st = os_fail(OS_ENOMEM, "no memory listing %s", dir);
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (st) {
        for (size_t i = 0; i < *n; i++)
            free(v[i]);
        free(v);
        *n = 0;
        return st;
    }
    if (*n)
        qsort(v, *n, sizeof *v, cmp_str);
    *out = v;
    return OS_OK;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static os_status add_sample(os_dataset *d, const char *cls, const char *file, int label)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 1024;
        os_sample *g = realloc(d->samples, cap * sizeof *g);
        if (!g)
            return os_fail(OS_ENOMEM, "no memory for the dataset index");
        d->samples = g, d->cap = cap;
    }
    size_t len = strlen(d->dir) + strlen(cls) + strlen(file) + 3;
    char *p = malloc(len);
    if (!p)
        return os_fail(OS_ENOMEM, "no memory for the dataset index");
    snprintf(p, len, "%s/%s/%s", d->dir, cls, file);
    d->samples[d->n++] = (os_sample){p, label};
    return OS_OK;
}

os_status os_dataset_scan(const char *dir, os_dataset **out)
{
    *out = NULL;
    os_dataset *d = calloc(1, sizeof *d);
    if (!d || !(d->dir = strdup(dir))) {
        free(d);
        return os_fail(OS_ENOMEM, "no memory");
    }
    size_t nc = 0;
    os_status st = list_dir(dir, true, &d->classes, &nc);
    d->n_classes = (int)nc;
    if (!st && nc == 0)
        st = os_fail(OS_EINVAL, "%s: no class subfolders (expected DIR/<class>/<image>.jpg)", dir);
    for (int c = 0; !st && c < d->n_classes; c++) {
        char path[DS_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, d->classes[c]);
        char **files = NULL;
        size_t nf = 0;
        if ((st = list_dir(path, false, &files, &nf)))
            break;
        if (nf == 0)
            st = os_fail(OS_EINVAL,
                         "%s: class \"%s\" has no image files (.jpg .jpeg .tif .tiff .png .jp2)",
                         dir, d->classes[c]);
        for (size_t i = 0; !st && i < nf; i++)
            st = add_sample(d, d->classes[c], files[i], c);
        free_names(files, nf);
    }
    if (st) {
        os_dataset_destroy(d);
        return st;
    }
    *out = d;
    return OS_OK;
}

void os_dataset_destroy(os_dataset *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->samples[i].path);
    free(d->samples);
    free_names(d->classes, (size_t)d->n_classes);
    free(d->dir);
    free(d);
}

int os_dataset_classes(const os_dataset *d) { return d->n_classes; }
const char *os_dataset_class(const os_dataset *d, int i) { return d->classes[i]; }
size_t os_dataset_size(const os_dataset *d) { return d->n; }
const os_sample *os_dataset_sample(const os_dataset *d, size_t i) { return &d->samples[i]; }

const char *os_dataset_relpath(const os_dataset *d, size_t i)
{
    return d->samples[i].path + strlen(d->dir) + 1; /* scanned as DIR "/" class "/" file */
}

/* Within each class, the seeded shuffle both partitions use; choose(i, m) says whether the
 * class's i-th shuffled image (of m) goes to validation. */
typedef bool (*to_val_fn)(size_t i, size_t m, const void *arg);

static os_status partition(const os_dataset *d, uint64_t seed, to_val_fn to_val, const void *arg,
                           size_t **train, size_t *n_train, size_t **val, size_t *n_val)
{
    *train = malloc((d->n + 1) * sizeof **train);
    *val = malloc((d->n + 1) * sizeof **val);
    size_t *cls = malloc((d->n + 1) * sizeof *cls);
    *n_train = *n_val = 0;
    if (!*train || !*val || !cls) {
        free(*train), free(*val), free(cls);
        *train = *val = NULL;
        return os_fail(OS_ENOMEM, "no memory for the split");
    }
    for (int c = 0; c < d->n_classes; c++) {
        size_t m = 0;
        for (size_t i = 0; i < d->n; i++)
            if (d->samples[i].label == c)
                cls[m++] = i;
        uint64_t rng = seed ^ (0xA5A5A5A5ull * (uint64_t)(c + 1));
        for (size_t i = m; i > 1; i--) { /* Fisher-Yates */
            size_t j = (size_t)(os_rng_next(&rng) % i);
            size_t t = cls[i - 1];
            cls[i - 1] = cls[j], cls[j] = t;
        }
        for (size_t i = 0; i < m; i++) {
            if (to_val(i, m, arg))
                (*val)[(*n_val)++] = cls[i];
            else
                (*train)[(*n_train)++] = cls[i];
        }
    }
    free(cls);
    return OS_OK;
}

static bool in_fraction(size_t i, size_t m, const void *arg)
{
    double val_fraction = *(const double *)arg;
    size_t nv = (size_t)lround(val_fraction * (double)m);
    if (val_fraction > 0 && nv == 0 && m >= 2)
        nv = 1;
    if (nv >= m && m > 0)
        nv = m - 1;
    return i < nv;
}

os_status os_dataset_split(const os_dataset *d, double val_fraction, uint64_t seed,
                           size_t **train, size_t *n_train, size_t **val, size_t *n_val)
{
    return partition(d, seed, in_fraction, &val_fraction, train, n_train, val, n_val);
}

typedef struct {
    int folds, fold;
} fold_arg;

static bool in_fold(size_t i, size_t m, const void *arg)
{
    const fold_arg *f = arg;
    size_t lo = m * (size_t)(f->fold - 1) / (size_t)f->folds;
    size_t hi = m * (size_t)f->fold / (size_t)f->folds;
    return i >= lo && i < hi;
}

os_status os_dataset_fold(const os_dataset *d, int folds, int fold, uint64_t seed,
                          size_t **train, size_t *n_train, size_t **val, size_t *n_val)
{
    *train = *val = NULL, *n_train = *n_val = 0;
    if (folds < 2 || fold < 1 || fold > folds)
        return os_fail(OS_EINVAL, "fold %d of %d: expected 2 or more folds and a fold in 1..%d",
                       fold, folds, folds < 2 ? 2 : folds);
    fold_arg f = {folds, fold};
    return partition(d, seed, in_fold, &f, train, n_train, val, n_val);
}

os_status os_dataset_select(const os_dataset *d, const char *list_path, size_t **idx, size_t *n)
{
    *idx = NULL, *n = 0;
    FILE *f = fopen(list_path, "r");
    if (!f)
        return os_fail(OS_EIO, "%s: cannot open list: %s", list_path, strerror(errno));
    size_t *v = malloc((d->n + 1) * sizeof *v);
    if (!v) {
        fclose(f);
        return os_fail(OS_ENOMEM, "no memory");
    }
    char line[DS_PATH_MAX];
    int lineno = 0;
    os_status st = OS_OK;
    size_t dirlen = strlen(d->dir);
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s || *s == '#')
            continue;
        size_t found = d->n;
        for (size_t i = 0; i < d->n && found == d->n; i++) {
            const char *p = d->samples[i].path;
            if (!strcmp(p, s) || (!strncmp(p, d->dir, dirlen) && !strcmp(p + dirlen + 1, s)))
                found = i;
        }
        if (found == d->n) {
            st = os_fail(OS_EINVAL, "%s:%d: \"%s\" is not an image of %s", list_path, lineno, s,
                         d->dir);
            break;
        }
        if (*n < d->n)
            v[(*n)++] = found;
    }
    fclose(f);
    if (st) {
        free(v);
        *n = 0;
        return st;
    }
    *idx = v;
    return OS_OK;
}

/* ---- decoding with a few threads ---- */

typedef struct {
    const os_dataset *d;
    const size_t *idx;
    size_t n;
    int side, tid, threads;
    void (*warn)(const char *);
    float *pix;
    char *ok; /* per image: decoded */
    pthread_mutex_t *warn_lock;
    const os_raster_input *in; /* how a raster's bands and values become RGB */
} decode_job;

/* A listed image that is not a regular file: a broken symbolic link, a link loop, a FIFO (which
 * open(2) would wait on for ever), a socket or a device. Checked before opening it. */
static os_status check_regular(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return os_fail(OS_EIO, "cannot read: %s", strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return os_fail(OS_EIO, "not a regular file (%s)",
                       S_ISFIFO(sb.st_mode)   ? "a FIFO"
                       : S_ISSOCK(sb.st_mode) ? "a socket"
                       : S_ISDIR(sb.st_mode)  ? "a folder"
                                              : "a device");
    return OS_OK;
}

static void *decode_worker(void *arg)
{
    decode_job *j = arg;
    os_decoder *dec = NULL;
    os_raster_buf *rbuf = NULL;
    if (os_decoder_create(&dec) || os_raster_buf_create(&rbuf)) {
        os_decoder_destroy(dec);
        return NULL;
    }
    static const float mean0[3] = {0, 0, 0}, std1[3] = {1, 1, 1};
    size_t per = (size_t)3 * j->side * j->side;
    for (size_t i = (size_t)j->tid; i < j->n; i += (size_t)j->threads) {
        const char *path = j->d->samples[j->idx[i]].path;
        void *buf = NULL;
        size_t len = 0;
        os_rgb_image img;
        os_errclear();
        os_status st = check_regular(path);
        if (!st)
            st = os_read_file(path, DS_MAX_IMAGE_BYTES, &buf, &len);
        if (!st)
            st = os_raster_decode_any(dec, rbuf, buf, len, DS_MAX_PIXELS, j->side, j->side, j->in,
                                      &img);
        free(buf);
        if (st) {
            char msg[1024];
            const char *detail = os_errdetail();
            snprintf(msg, sizeof msg, "%s: %s, skipped", path, *detail ? detail : os_strerror(st));
            pthread_mutex_lock(j->warn_lock);
            if (j->warn)
                j->warn(msg);
            pthread_mutex_unlock(j->warn_lock);
            continue;
        }
        /* mean 0, std 1 on the [0,1] scale: the stored values are v/255. */
        os_image_to_tensor(&img, j->side, j->side, OS_RESIZE_STRETCH, mean0, std1,
                           j->pix + i * per);
        j->ok[i] = 1;
    }
    os_decoder_destroy(dec);
    os_raster_buf_destroy(rbuf);
    return NULL;
}

os_status os_imageset_load(const os_dataset *d, const size_t *idx, size_t n, int side,
                           const os_raster_input *in, int threads, void (*warn)(const char *msg),
                           os_imageset *out, size_t *failed)
{
    const os_raster_input rgb = os_raster_input_default();
    if (!in)
        in = &rgb;
    memset(out, 0, sizeof *out);
    *failed = 0;
    if (threads < 1)
        threads = 1;
    if (threads > DS_MAX_THREADS)
        threads = DS_MAX_THREADS;
    size_t per = (size_t)3 * side * side;
    float *pix = malloc((n ? n : 1) * per * sizeof *pix);
    char *ok = calloc(n ? n : 1, 1);
    out->labels = malloc((n ? n : 1) * sizeof *out->labels);
    out->source = malloc((n ? n : 1) * sizeof *out->source);
    if (!pix || !ok || !out->labels || !out->source) {
        free(pix), free(ok), free(out->labels), free(out->source);
        memset(out, 0, sizeof *out);
        return os_fail(OS_ENOMEM, "no memory to decode %zu images at %dx%d", n, side, side);
    }
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_t th[DS_MAX_THREADS];
    decode_job jobs[DS_MAX_THREADS];
    int started = 0;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (decode_job){d, idx, n, side, t, threads, warn, pix, ok, &lock, in};
        if (pthread_create(&th[t], NULL, decode_worker, &jobs[t]) == 0)
            started++;
        else
            break;
    }
    if (started == 0) /* no thread could start: decode here */
        decode_worker(&(decode_job){d, idx, n, side, 0, 1, warn, pix, ok, &lock, in});
    else if (started < threads) /* do the missing threads' share ourselves */
        for (int t = started; t < threads; t++)
            decode_worker(&jobs[t]);
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    /* Compact: keep decoded images in their original order. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ok[i]) {
            (*failed)++;
            continue;
        }
        if (k != i)
            memmove(pix + k * per, pix + i * per, per * sizeof *pix);
        out->labels[k] = d->samples[idx[i]].label;
        out->source[k] = idx[i];
        k++;
    }
    free(ok);
    out->pix = pix, out->n = k, out->side = side;
    return OS_OK;
}

void os_imageset_free(os_imageset *s)
{
    free(s->pix), free(s->labels), free(s->source);
    memset(s, 0, sizeof *s);
}

os_status os_imageset_spread(const os_imageset *s, size_t n, os_imageset *out)
{
    memset(out, 0, sizeof *out);
    if (n > s->n)
        n = s->n;
    size_t per = (size_t)3 * s->side * s->side;
    out->pix = malloc((n ? n : 1) * per * sizeof *out->pix);
    out->labels = malloc((n ? n : 1) * sizeof *out->labels);
    out->source = malloc((n ? n : 1) * sizeof *out->source);
    if (!out->pix || !out->labels || !out->source) {
        os_imageset_free(out);
        return os_fail(OS_ENOMEM, "no memory for a calibration set");
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = k * s->n / n;
        memcpy(out->pix + k * per, s->pix + i * per, per * sizeof *out->pix);
        out->labels[k] = s->labels[i];
        out->source[k] = s->source ? s->source[i] : i;
    }
    out->n = n;
    out->side = s->side;
    return OS_OK;
}

void os_imageset_stats(const os_imageset *s, float mean[3], float std[3])
{
    size_t hw = (size_t)s->side * s->side;
    for (int c = 0; c < 3; c++) {
        double sum = 0, sq = 0;
        for (size_t i = 0; i < s->n; i++) {
            const float *p = s->pix + (i * 3 + (size_t)c) * hw;
            for (size_t j = 0; j < hw; j++)
                sum += p[j], sq += (double)p[j] * p[j];
        }
        double m = (double)(s->n * hw);
        double mu = m > 0 ? sum / m : 0.5, var = m > 0 ? sq / m - mu * mu : 0.0625;
        mean[c] = (float)mu;
        std[c] = (float)(var > 1e-8 ? sqrt(var) : 1.0);
    }
}
