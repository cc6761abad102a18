/* status.h - the one status type of libonespike, and the detail message that goes with it.
 *
 * Every fallible function returns an os_status; results go out through pointers. When a
 * function fails because of its input (a file, an image, an argument), it also records a
 * human-readable detail in a thread-local buffer that names the file/field/value at fault,
 * e.g. "m.safetensors: tensor \"conv3.weight\" shape [64,32,3,3], architecture wants [64,64,3,3]".
 * The detail stays valid until the next failing call on the same thread.
 */
#ifndef ONESPIKE_STATUS_H
#define ONESPIKE_STATUS_H

typedef enum {
    OS_OK = 0,
    OS_ENOMEM,      /* out of memory */
    OS_EINVAL,      /* invalid argument or option */
    OS_EIO,         /* a file could not be read or written */
    OS_EFORMAT,     /* malformed container or metadata */
    OS_ECHECKSUM,   /* tensor data does not match its checksum */
    OS_EDTYPE,      /* unsupported tensor dtype */
    OS_ESHAPE,      /* tensor shape contradicts the architecture */
    OS_EARCH,       /* invalid architecture description */
    OS_EEMPTY,      /* empty input */
    OS_EUNSUPPORTED,/* input of a kind we do not handle (PNG, CMYK JPEG, ...) */
    OS_ECORRUPT,    /* corrupt or truncated image data */
    OS_ETOOBIG,     /* input over a configured limit */
    OS_EMISMATCH,   /* input that decodes but does not fit the model (bands, data type) */
    OS_ECANCELED,   /* a long run stopped: cancelled, or past its deadline */
    OS_ECOUNT       /* number of codes; not a status */
} os_status;

/* Short static description of a status code ("checksum mismatch"); never NULL. */
const char *os_strerror(os_status st);

/* Record a printf-style detail for the current thread and return st unchanged, so failures read
 * `return os_fail(OS_EFORMAT, "%s: header length %llu past end of file", path, n);`. */
os_status os_fail(os_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The detail recorded by the last os_fail on this thread ("" if none). Borrowed. */
const char *os_errdetail(void);

/* Forget the recorded detail (used before a call whose failure may leave none). */
void os_errclear(void);

#endif
