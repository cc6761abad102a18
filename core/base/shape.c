/* shape.c - shapes as text; see shape.h. */
#include "onespike/shape.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>

const char *os_shape_format(char *buf, size_t cap, const int64_t *dims, int ndim)
{
    assert(buf && cap >= 1 && ndim >= 0 && (dims || ndim == 0));
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? ",%" PRId64 : "%" PRId64, dims[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
    return buf;
}
