/* fuzz_b64.c - libFuzzer harness: base64 text of an OIP BYTES input (srv_b64_decode), into a
 * separate buffer and in place (as infer.c decodes into the request body). Checks the contract:
 * output within (n / 4 + 1) * 3 bytes, both ways give the same bytes, a failure's offset inside
 * the text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap = (size / 4 + 1) * 3;
    unsigned char *out = malloc(cap);
    /* In place needs room for the larger of the text and its decoding. */
    char *inplace = malloc(cap > size ? cap : size);
    if (!out || !inplace)
        abort();
    memcpy(inplace, data, size);
    size_t n1 = 0, n2 = 0, bad1 = 0, bad2 = 0;
    bool ok1 = srv_b64_decode((const char *)data, size, out, &n1, &bad1);
    bool ok2 = srv_b64_decode(inplace, size, (unsigned char *)inplace, &n2, &bad2);
    if (ok1 != ok2 || (ok1 && (n1 != n2 || n1 > cap || memcmp(out, inplace, n1))) ||
        (!ok1 && (bad1 != bad2 || bad1 > size)))
        abort();
    free(out);
    free(inplace);
    return 0;
}
