/* b64.h - base64 decoding (RFC 4648, standard alphabet) for OIP BYTES inputs. */
#ifndef SRV_B64_H
#define SRV_B64_H

#include <stdbool.h>
#include <stddef.h>

/* Decode in[0..n) into out, which needs room for (n / 4 + 1) * 3 bytes; out may be the same
 * memory as in (decoding writes behind where it reads) or any other buffer. Padding '=' is
 * optional; CR and LF are skipped (MIME line breaks). Any other byte outside the alphabet, or
 * data after padding, fails with *bad_at set to its offset. */
bool srv_b64_decode(const char *in, size_t n, unsigned char *out, size_t *out_len, size_t *bad_at);

#endif
