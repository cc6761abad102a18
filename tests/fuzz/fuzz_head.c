/* fuzz_head.c - libFuzzer harness: the bytes a client sends first on a connection, as the door
 * thread sees them (srv_head_check), with the default limits and with small ones (so the limit
 * paths are reached by short inputs). Checks the contract (head.h): OK only for a head that ends
 * with LF inside the input and the limits, holding no control byte but HTAB, CR and LF, and OK
 * the same with nothing behind it; one byte less of it is INCOMPLETE; INCOMPLETE only under the
 * head limit; BAD with one of the statuses and a message that fits a JSON string as it is, and
 * still BAD with more bytes behind (a prefix decided BAD stays BAD). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_one(const char *s, size_t n, const srv_head_limits *lim)
{
    srv_head_result r = srv_head_check(s, n, lim);
    switch (r.state) {
    case SRV_HEAD_OK:
        if (r.head_len == 0 || r.head_len > n || r.head_len > lim->max_head ||
            s[r.head_len - 1] != '\n')
            abort();
        for (size_t i = 0; i < r.head_len; i++) {
            unsigned char c = (unsigned char)s[i];
            if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
                abort();
        }
        if (srv_head_check(s, r.head_len, lim).state != SRV_HEAD_OK ||
            srv_head_check(s, r.head_len - 1, lim).state != SRV_HEAD_INCOMPLETE)
            abort();
        break;
    case SRV_HEAD_INCOMPLETE:
        if (n >= lim->max_head)
            abort();
        break;
    case SRV_HEAD_BAD: {
        int st = r.status;
        if (st != 400 && st != 413 && st != 414 && st != 431 && st != 505)
            abort();
        if (!r.msg[0])
            abort();
        for (const char *p = r.msg; *p; p++)
            if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
                abort();
        break;
    }
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    char *s = malloc(size ? size : 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    srv_head_limits dflt = srv_head_default_limits();
    srv_head_limits small = {.max_head = 512, .max_target = 128, .max_items = 8};
    check_one(s, size, &dflt);
    check_one(s, size, &small);
    /* A prefix decided BAD stays BAD with the rest of the input behind it. */
    for (size_t k = 1; k < size && k < 64; k++)
        if (srv_head_check(s, k, &small).state == SRV_HEAD_BAD &&
            srv_head_check(s, size, &small).state != SRV_HEAD_BAD)
            abort();
    free(s);
    return 0;
}
