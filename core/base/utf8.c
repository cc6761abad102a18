/* utf8.c - strict UTF-8 (RFC 3629 section 4); see utf8.h. */
#include "onespike/utf8.h"

#include <assert.h>

/* The first continuation byte's range depends on the lead byte (RFC 3629, Table 3-7 of the
 * Unicode standard): that is where overlongs, surrogates and code points past U+10FFFF are cut.
 * The later continuation bytes are always 80..BF. */
size_t os_utf8_seq(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c == 0)
        return 0;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* below: overlong */
        else if (c == 0xED)
            hi = 0x9F; /* above: surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* below: overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above: past U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 (always overlong) or F5..FF */
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) /* a NUL fails here too: nothing past it is read */
            return 0;
    return n;
}

bool os_utf8_valid(const char *s)
{
    while (*s) {
        size_t n = os_utf8_seq(s);
        if (!n)
            return false;
        s += n;
    }
    return true;
}

size_t os_utf8_sanitize(char *s, char repl)
{
    assert((unsigned char)repl < 0x80 && repl != '\0');
    size_t replaced = 0;
    while (*s) {
        size_t n = os_utf8_seq(s);
        if (n) {
            s += n;
        } else {
            *s++ = repl;
            replaced++;
        }
    }
    return replaced;
}
