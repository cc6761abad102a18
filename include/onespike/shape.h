/* shape.h - the one way a tensor shape is written in a message: "[64,32,3,3]", "[]" for a
 * scalar. Error messages from the model file, the network and the server all read alike, and
 * tests match them. */
#ifndef ONESPIKE_SHAPE_H
#define ONESPIKE_SHAPE_H

#include <stddef.h>
#include <stdint.h>

/* Bytes that always hold the text of ndim dimensions: 20 per int64 (with its sign), commas,
 * brackets and the NUL. */
#define OS_SHAPE_TEXT_MAX(ndim) (21 * (size_t)(ndim) + 3)

/* Write dims[0..ndim) as "[d0,d1,...]" into buf (cap bytes, cap >= 1) and return buf. Like
 * snprintf, a text that does not fit is cut to its first cap - 1 bytes (so the closing bracket
 * is missing) and always NUL-terminated. dims may be NULL when ndim is 0. */
const char *os_shape_format(char *buf, size_t cap, const int64_t *dims, int ndim);

#endif
