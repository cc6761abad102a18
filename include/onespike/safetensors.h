/* safetensors.h - the safetensors container (https://huggingface.co/docs/safetensors):
 * 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the tensor bytes.
 *
 * The JSON maps tensor names to {"dtype","shape","data_offsets":[begin,end]} (offsets relative
 * to the byte buffer after the header) plus an optional "__metadata__" object of string values.
 * Only F32 tensors are accepted (other dtypes are OS_EDTYPE naming the tensor and dtype).
 *
 * Parsing validates everything before returning: header length within the file and under
 * OS_ST_MAX_HEADER, JSON an object, every entry well-formed, shape product * 4 == end - begin,
 * offsets within the data section, no two tensors overlapping, and the data section fully
 * covered (no holes, as the reference implementation requires). Any failure names `label`
 * (usually the file path) and the reason.
 */
#ifndef ONESPIKE_SAFETENSORS_H
#define ONESPIKE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "onespike/status.h"

#define OS_ST_MAX_DIMS 8
#define OS_ST_MAX_HEADER (100u * 1024u * 1024u)

typedef struct {
    const char *name;               /* NUL-terminated */
    int ndim;
    int64_t shape[OS_ST_MAX_DIMS];
    const float *data;              /* F32, row-major */
    size_t count;                   /* product of shape (1 for ndim == 0) */
} os_tensor_view;

typedef struct {
    const char *key, *value;
} os_st_meta;

typedef struct os_st_file os_st_file;

/* Parse a complete file image held in buf[0..len). buf is borrowed and must outlive *out and be
 * 4-byte aligned; tensor views point into it (a data offset that is not 4-byte aligned within
 * the file is OS_EFORMAT). */
os_status os_st_parse(const void *buf, size_t len, const char *label, os_st_file **out);
void os_st_free(os_st_file *f); /* NULL is fine */

size_t os_st_count(const os_st_file *f);
const os_tensor_view *os_st_tensor(const os_st_file *f, size_t i); /* in data-offset order */
const os_tensor_view *os_st_find(const os_st_file *f, const char *name); /* NULL if absent */

/* Value of a __metadata__ key, or NULL. Borrowed from f. */
const char *os_st_meta_get(const os_st_file *f, const char *key);

/* The data section (all tensor bytes), for checksumming. */
const void *os_st_data(const os_st_file *f, size_t *len);

/* Serialise to a freshly malloc'd buffer (caller frees with free()): tensors in the given order,
 * contiguous, header padded with spaces to a multiple of 8 bytes so the data is aligned.
 * Tensor names must be unique and not "__metadata__". */
os_status os_st_serialize(const os_tensor_view *tensors, size_t n, const os_st_meta *meta,
                          size_t n_meta, void **out, size_t *out_len);

/* Write len bytes to path atomically: a temporary file in the same folder, fsync, rename over
 * path, fsync the folder. On failure path is untouched and the temporary is removed. */
os_status os_write_file_atomic(const char *path, const void *data, size_t len);

/* Read a whole file into a malloc'd, 64-byte aligned buffer (caller frees with free()). */
os_status os_read_file(const char *path, size_t max_len, void **out, size_t *out_len);

#endif
