/* b64.c - strict base64 decoding (see b64.h). */
#include "b64.h"

#include <stdint.h>

#define B64_INVALID 0xFF
#define B64_PAD     0xFE
#define B64_SKIP    0xFD

static uint8_t b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (uint8_t)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (uint8_t)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (uint8_t)(c - '0' + 52);
    switch (c) {
    case '+': return 62;
    case '/': return 63;
    case '=': return B64_PAD;
    case '\r':
    case '\n': return B64_SKIP;
    default: return B64_INVALID;
    }
}

bool srv_b64_decode(const char *in, size_t n, unsigned char *out, size_t *out_len, size_t *bad_at)
{
    uint32_t acc = 0;
    int have = 0; /* sextets in acc */
    int pads = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t v = b64_value((unsigned char)in[i]);
        if (v == B64_SKIP)
            continue;
        if (v == B64_PAD) {
            /* '=' only completes a group of 2 or 3 sextets, at most twice. */
            if (have + pads < 2 || ++pads > 2 || have + pads > 4) {
                *bad_at = i;
                return false;
            }
            continue;
        }
        if (v == B64_INVALID || pads) {
            *bad_at = i;
            return false;
        }
        acc = acc << 6 | v;
        if (++have == 4) {
            out[o++] = (uint8_t)(acc >> 16);
            out[o++] = (uint8_t)(acc >> 8);
            out[o++] = (uint8_t)acc;
            acc = 0, have = 0;
        }
    }
    if (have == 1 || (pads && have + pads != 4)) {
        *bad_at = n;
        return false;
    }
    if (have == 2) {
        out[o++] = (uint8_t)(acc >> 4);
    } else if (have == 3) {
        out[o++] = (uint8_t)(acc >> 10);
        out[o++] = (uint8_t)(acc >> 2);
    }
    *out_len = o;
    return true;
}
