/* st_writer.c - write a known safetensors file with libonespike, for tests/py/check_safetensors.py
 * to read back with an independent parser (Python + numpy): "other tools can read what we write".
 *
 * Usage: st_writer OUT.safetensors
 * Writes  a = [[1,2,3],[4,5,6]]      F32, shape [2,3]
 *         b = arange(10) * 0.5        F32, shape [10]
 *         __metadata__ = {"k": "v", "onespike.sha256": <SHA-256 of the data section>}
 * The Python side holds the same expectations literally; keep the two in step.
 */
#include <stdio.h>
#include <stdlib.h>

#include "onespike/safetensors.h"
#include "onespike/sha256.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT.safetensors\n", argv[0]);
        return 2;
    }
    const float a[6] = {1, 2, 3, 4, 5, 6};
    float b[10];
    for (int i = 0; i < 10; i++)
        b[i] = (float)i * 0.5f;
    const os_tensor_view t[2] = {
        {.name = "a", .ndim = 2, .shape = {2, 3}, .data = a, .count = 6},
        {.name = "b", .ndim = 1, .shape = {10}, .data = b, .count = 10},
    };

    /* The data section is a then b back to back: hash it the way a reader would see it. */
    char hex[65];
    os_sha256 c;
    uint8_t d[32];
    os_sha256_init(&c);
    os_sha256_update(&c, a, sizeof a);
    os_sha256_update(&c, b, sizeof b);
    os_sha256_final(&c, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    const os_st_meta meta[2] = {{"k", "v"}, {"onespike.sha256", hex}};

    void *buf = NULL;
    size_t len = 0;
    os_status st = os_st_serialize(t, 2, meta, 2, &buf, &len);
    if (st == OS_OK)
        st = os_write_file_atomic(argv[1], buf, len);
    free(buf);
    if (st != OS_OK) {
        fprintf(stderr, "st_writer: %s: %s\n", os_strerror(st), os_errdetail());
        return 1;
    }
    return 0;
}
