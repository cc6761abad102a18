/* head.h - the first request head of a connection, checked as bytes before libmicrohttpd sees it.
 *
 * The door thread peeks at what a new connection has sent (without consuming it) and asks
 * srv_head_check whether it is a complete and acceptable HTTP/1.x request head (RFC 9112 §2-5),
 * still incomplete, or wrong, with the status and the message to answer. Only what passes goes to
 * libmicrohttpd, which then reads the same bytes; what is refused is answered with our JSON error
 * instead of libmicrohttpd's HTML page, or instead of being let through when libmicrohttpd would
 * accept it differently (a raw NUL cuts a field value short there).
 *
 * The rules follow libmicrohttpd 0.9.75's parser wherever it is lenient in a way the RFC allows,
 * so what we let through parses the same way there:
 *   - a line ends with CRLF or a bare LF (RFC 9112 §2.2 lets a recipient accept LF; libmicrohttpd
 *     does); a CR not followed by LF is a control byte, refused;
 *   - empty lines before the request line are skipped (RFC 9112 §2.2; libmicrohttpd too);
 *   - leading SP/HTAB of a field value are not part of it. Trailing whitespace is refused in
 *     Content-Length, since libmicrohttpd would not read "5 " as a number and would answer HTML.
 * and it is stricter where the RFC says a server must refuse, or where libmicrohttpd would answer
 * on its own: see srv_head_check.
 *
 * Pure functions over bytes: no allocation, no I/O, thread-safe.
 */
#ifndef SRV_HEAD_H
#define SRV_HEAD_H

#include <stdbool.h>
#include <stddef.h>

/* The limits are chosen from libmicrohttpd 0.9.75's memory per connection, so that a head the door
 * let through is never refused by libmicrohttpd's own limit (with its HTML page):
 *
 * SRV_HEAD_MHD_MEMORY (MHD_OPTION_CONNECTION_MEMORY_LIMIT, set by http.c) is 32 KiB, its
 * default, and not more: above 32 KiB libmicrohttpd maps each connection's memory with mmap (and
 * unmaps it at the close) instead of malloc, which measured about 80 us more per connection on
 * a batch-1 request (docs/DESIGN-NOTES.md has the runs). Of it, libmicrohttpd first takes half
 * (16 KiB) as the read buffer, which holds the head (SRV_HEAD_MAX, 8 KiB: as Tomcat's and Jetty's
 * defaults); from the other half it allocates a 64-byte record per header field, per query
 * parameter and per cookie (the Cookie field split at ';' and ','), a copy of the Cookie value,
 * and later the response headers: SRV_HEAD_ITEMS_MAX (64) records take 4 KiB, the Cookie copy
 * less than 8 KiB, which leaves 4 KiB to spare. */
#define SRV_HEAD_MAX ((size_t)8 << 10)
/* Bytes of the request target (path and query), at most; more is 414. */
#define SRV_HEAD_TARGET_MAX ((size_t)4 << 10)
/* Header fields, query parameters and cookies of a head together, at most; more is 431 (414
 * when the query parameters alone pass it). */
#define SRV_HEAD_ITEMS_MAX  64
#define SRV_HEAD_MHD_MEMORY ((size_t)32 << 10)

#define SRV_HEAD_MSG_MAX 128

typedef enum {
    SRV_HEAD_INCOMPLETE = 0, /* no end of head yet, and nothing wrong so far */
    SRV_HEAD_OK,             /* complete and acceptable: head_len bytes */
    SRV_HEAD_BAD,            /* refuse with status and msg */
} srv_head_state;

typedef struct {
    size_t max_head;   /* SRV_HEAD_MAX */
    size_t max_target; /* SRV_HEAD_TARGET_MAX */
    int max_items;     /* SRV_HEAD_ITEMS_MAX */
} srv_head_limits;

typedef struct {
    srv_head_state state;
    size_t head_len; /* OK: bytes of the head, its final empty line included */
    int status;      /* BAD: 400, 413, 414, 431 or 505 */
    /* BAD: what is wrong, plain printable ASCII without quotes or backslashes (it goes into a
     * JSON string as it is). */
    char msg[SRV_HEAD_MSG_MAX];
} srv_head_result;

/* The defaults above. */
srv_head_limits srv_head_default_limits(void);

/* How many records libmicrohttpd makes of a query (the target's part after '?', q[0..n)) or of
 * a Cookie field value: an upper bound, one per part between separators. */
int srv_head_query_items(const char *q, size_t n);
int srv_head_cookie_items(const char *v, size_t n);

/* Check buf[0..len), the bytes a client has sent so far on a new connection. A prefix of an
 * acceptable head is always INCOMPLETE, never BAD; BAD is decided as early as the bytes allow (a
 * control byte at once, an over-long target or head as soon as it passes its limit), so a caller
 * that passes at most lim->max_head + 1 bytes always gets OK or BAD for a head that is complete or
 * too large. BAD when:
 *   400  the request line is not METHOD SP target SP HTTP/d.d (method a token, the target
 *        without SP or control bytes); a NUL or other control byte (HTAB allowed in field values)
 *        anywhere; a field line without a colon, with an empty name, a name that is not a token
 *        (whitespace before the colon, RFC 9112 §5.1), or starting with SP/HTAB (obs-fold, RFC
 *        9112 §5.2); Content-Length not 1*DIGIT, or given twice with different values; more than
 *        one Host, or none in HTTP/1.1 (RFC 9112 §3.2);
 *   413  Content-Length over 2^64 - 1;
 *   414  the target longer than max_target or with more than max_items query parameters (its
 *        '&'-separated parts), or the request line still unended past max_head;
 *   431  the head longer than max_head, or more than max_items header fields, query parameters
 *        and cookies (the parts of Cookie fields between ';' and ',') together;
 *   505  a version HTTP/d.d other than HTTP/1.0 and HTTP/1.1.
 * buf is borrowed; it may hold bytes past the head (a body). */
srv_head_result srv_head_check(const char *buf, size_t len, const srv_head_limits *lim);

/* A field name or method: 1*tchar (RFC 9110 §5.6.2). */
bool srv_head_is_token(const char *s, size_t n);
/* A field value (leading whitespace already skipped): no control byte but HTAB. */
bool srv_head_is_value(const char *s, size_t n);
/* A request target: no SP, no control byte. */
bool srv_head_is_target(const char *s, size_t n);

#endif
