/* fuzz_dataset_list.c - libFuzzer harness: a train/val list file (os_dataset_select) over a real
 * scanned dataset folder (two classes, made once in a temp folder), and the stratified split
 * (os_dataset_split) with a fraction and seed taken from the input. Each selected index must
 * name an image of the dataset; the split must be a partition. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onespike/dataset.h"

enum { FUZZ_IMAGES_PER_CLASS = 3, FUZZ_PATH_MAX = 512 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/onespike-fuzz-ds-XXXXXX";
static char list_path[FUZZ_PATH_MAX];

static void remove_dir(void)
{
    char cmd[sizeof dir + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_dataset_list: could not remove %s\n", dir);
}

static os_dataset *dataset_once(void)
{
    static os_dataset *d;
    if (d)
        return d;
    static const char *const classes[] = {"beach", "harbor"};
    char p[FUZZ_PATH_MAX];
    if (!mkdtemp(dir))
        abort();
    atexit(remove_dir); /* libFuzzer ends a timed run with exit() */
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "%s/%s", dir, classes[c]);
        if (mkdir(p, 0700))
            abort();
        for (int i = 0; i < FUZZ_IMAGES_PER_CLASS; i++) {
            snprintf(p, sizeof p, "%s/%s/img%d.jpg", dir, classes[c], i);
            FILE *f = fopen(p, "w"); /* scanning reads names only */
            if (!f)
                abort();
            fclose(f);
        }
    }
    snprintf(list_path, sizeof list_path, "%s/list.txt", dir);
    if (os_dataset_scan(dir, &d))
        abort();
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    os_dataset *d = dataset_once();
    FILE *f = fopen(list_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f))
        abort();
    size_t *idx = NULL, n = 0;
    if (os_dataset_select(d, list_path, &idx, &n) == OS_OK) {
        for (size_t i = 0; i < n; i++)
            if (idx[i] >= os_dataset_size(d))
                abort();
        free(idx);
    }
    /* The split: fraction in [0, 1] and a seed from the first bytes. */
    double frac = size ? data[0] / 255.0 : 0.2;
    uint64_t seed = 0;
    for (size_t i = 1; i < size && i < 9; i++)
        seed = seed << 8 | data[i];
    size_t *tr = NULL, *va = NULL, ntr = 0, nva = 0;
    if (os_dataset_split(d, frac, seed, &tr, &ntr, &va, &nva) == OS_OK) {
        if (ntr + nva != os_dataset_size(d))
            abort();
        char *seen = calloc(os_dataset_size(d), 1);
        for (size_t i = 0; i < ntr + nva; i++) {
            size_t k = i < ntr ? tr[i] : va[i - ntr];
            if (k >= os_dataset_size(d) || seen[k]++)
                abort();
        }
        free(seen);
        free(tr);
        free(va);
    }
    return 0;
}
