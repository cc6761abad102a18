/* utf8.h - the one UTF-8 check (RFC 3629, strict), for every string that goes into JSON.
 *
 * Well-formed means what jansson and every JSON parser downstream accept: no overlong forms
 * (C0, C1, E0 80..9F, F0 80..8F), no UTF-16 surrogates (U+D800..U+DFFF), nothing past U+10FFFF
 * (F4 90.., F5..FF), no stray continuation bytes and no sequence cut short (a NUL or any
 * non-continuation byte inside a sequence ends it as malformed). Strings are NUL-terminated;
 * U+0000 cannot occur in them.
 */
#ifndef ONESPIKE_UTF8_H
#define ONESPIKE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length in bytes (1..4) of the well-formed sequence that starts at s, or 0 when s starts no
 * such sequence, or *s is the terminating NUL. Reads at most up to the first byte that does not
 * continue the sequence, so it never reads past the NUL. */
size_t os_utf8_seq(const char *s);

/* True when all of s (up to its NUL) is well-formed UTF-8. */
bool os_utf8_valid(const char *s);

/* Replace, in place, every byte of s that is not part of a well-formed sequence by repl (an
 * ASCII character), so that s can go into JSON; well-formed text is left as it is. Returns the
 * number of bytes replaced. */
size_t os_utf8_sanitize(char *s, char repl);

#endif
