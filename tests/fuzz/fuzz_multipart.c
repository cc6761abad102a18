/* fuzz_multipart.c - libFuzzer harness: a multipart/form-data upload. The input's first line is
 * the Content-Type header (srv_multipart_boundary), the rest the body (srv_multipart_find for
 * the "image" field). A header without a usable boundary still fuzzes the body, with a fixed
 * boundary. The body is copied to a buffer of its exact size so that a read past it is seen. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

enum { FUZZ_HEADER_MAX = 256, FUZZ_BOUNDARY_MAX = 72, FUZZ_ERR_MAX = 512 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < FUZZ_HEADER_MAX ? size : FUZZ_HEADER_MAX);
    size_t hl = nl ? (size_t)(nl - data) : 0;
    char ct[FUZZ_HEADER_MAX + 1], boundary[FUZZ_BOUNDARY_MAX], err[FUZZ_ERR_MAX];
    memcpy(ct, data, hl);
    ct[hl] = '\0';
    if (!srv_multipart_boundary(ct, boundary, sizeof boundary))
        strcpy(boundary, "XyZ");
    if (strlen(boundary) >= sizeof boundary)
        abort();
    size_t body_len = nl ? size - hl - 1 : size;
    unsigned char *body = malloc(body_len ? body_len : 1);
    if (!body)
        abort();
    memcpy(body, nl ? nl + 1 : data, body_len);
    const unsigned char *field = NULL;
    size_t len = 0;
    if (srv_multipart_find(body, body_len, boundary, "image", &field, &len, err, sizeof err)) {
        if (field < body || len > body_len || (size_t)(field - body) > body_len - len)
            abort(); /* the field must lie inside the body */
    } else if (!memchr(err, '\0', sizeof err)) {
        abort();
    }
    free(body);
    return 0;
}
