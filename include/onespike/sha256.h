/* sha256.h - SHA-256 (FIPS 180-4), streaming. Used for the model file's tensor checksum. */
#ifndef ONESPIKE_SHA256_H
#define ONESPIKE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len;     /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
    /* the block function, chosen by os_sha256_init: the x86 SHA extensions where the CPU has
     * them (and ONESPIKE_ISA is not "scalar"), else portable C; both give the same digests */
    void (*blocks)(uint32_t h[8], const uint8_t *p, size_t n);
} os_sha256;

void os_sha256_init(os_sha256 *c);
void os_sha256_update(os_sha256 *c, const void *data, size_t n);
void os_sha256_final(os_sha256 *c, uint8_t digest[32]);

/* One-shot digest as 64 lowercase hex characters plus NUL. */
void os_sha256_hex(const void *data, size_t n, char hex[65]);

#endif
