/* parse.h - strict parsing of numbers from flags and environment variables: the whole string
 * must be the number (no trailing text, no overflow) and lie in [lo, hi]. */
#ifndef ONESPIKE_PARSE_H
#define ONESPIKE_PARSE_H

#include <stdbool.h>

/* Decimal integer; *out is untouched when false. */
bool os_parse_long(const char *s, long lo, long hi, long *out);

/* Finite floating-point number; *out is untouched when false. */
bool os_parse_double(const char *s, double lo, double hi, double *out);

#endif
