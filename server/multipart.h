/* multipart.h - find one field of a multipart/form-data body (RFC 7578), without copying.
 *
 * The body is scanned in place; the field's bytes are returned as a pointer into it. Only what
 * onespike needs is read: each part's Content-Disposition name. Errors are messages that say
 * what is wrong with the body ("no field \"image\" in the form (fields: file)").
 */
#ifndef SRV_MULTIPART_H
#define SRV_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

/* The boundary parameter of a multipart/form-data Content-Type into out (cap bytes). False if
 * the type is not multipart/form-data or the boundary is missing, empty or too long. */
bool srv_multipart_boundary(const char *content_type, char *out, size_t cap);

/* Locate the part named field. On success *data and *len point into body (borrowed). On failure
 * returns false with a message in err. */
bool srv_multipart_find(const unsigned char *body, size_t body_len, const char *boundary,
                        const char *field, const unsigned char **data, size_t *len, char *err,
                        size_t errcap);

#endif
