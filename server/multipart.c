/* multipart.c - in-place multipart/form-data scanning (see multipart.h). */
#include "multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DELIM_MAX      80  /* "\r\n--" + a 70-byte boundary, with room */
#define FIELD_LIST_MAX 128 /* bytes of field names quoted in "no such field" messages */
#define FIELD_NAME_MAX 64

/* memmem is a GNU extension; this is the portable few lines of it. */
static const char *find(const char *hay, size_t n, const char *needle, size_t m)
{
    if (m == 0 || n < m)
        return NULL;
    const char *last = hay + (n - m);
    for (const char *p = hay; p <= last; p++) {
        p = memchr(p, needle[0], (size_t)(last - p) + 1);
        if (!p)
            return NULL;
        if (!memcmp(p, needle, m))
            return p;
    }
    return NULL;
}

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Parameter `key` of a header value "type; a=b; key=\"v\"" into out; false if absent. */
static bool header_param(const char *v, size_t vlen, const char *key, char *out, size_t cap)
{
    const char *end = v + vlen;
    size_t klen = strlen(key);
    const char *p = memchr(v, ';', vlen);
    while (p && p < end) {
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if ((size_t)(end - p) > klen && !strncasecmp(p, key, klen) && p[klen] == '=') {
            p += klen + 1;
            size_t n = 0;
            if (p < end && *p == '"') {
                for (p++; p < end && *p != '"'; p++) {
                    if (*p == '\\' && p + 1 < end)
                        p++;
                    if (n + 1 >= cap)
                        return false;
                    out[n++] = *p;
                }
                if (p >= end)
                    return false; /* unterminated quote */
            } else {
                for (; p < end && *p != ';' && *p != ' ' && *p != '\t'; p++) {
                    if (n + 1 >= cap)
                        return false;
                    out[n++] = *p;
                }
            }
            out[n] = '\0';
            return true;
        }
        p = memchr(p, ';', (size_t)(end - p));
    }
    return false;
}

bool srv_multipart_boundary(const char *content_type, char *out, size_t cap)
{
    static const char type[] = "multipart/form-data";
    const char *ct = skip_space(content_type);
    if (strncasecmp(ct, type, sizeof type - 1))
        return false;
    const char *rest = ct + sizeof type - 1;
    if (*skip_space(rest) != ';')
        return false;
    return header_param(rest, strlen(rest), "boundary", out, cap) && out[0];
}

/* The name="..." of a part whose headers are hdr[0..n), into name. */
static bool part_name(const char *hdr, size_t n, char *name, size_t cap)
{
    static const char cd[] = "content-disposition:";
    const char *p = hdr, *end = hdr + n;
    while (p < end) {
        const char *eol = find(p, (size_t)(end - p), "\r\n", 2);
        size_t line = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (line > sizeof cd - 1 && !strncasecmp(p, cd, sizeof cd - 1))
            return header_param(p, line, "name", name, cap);
        p += line + 2;
    }
    return false;
}

bool srv_multipart_find(const unsigned char *body, size_t body_len, const char *boundary,
                        const char *field, const unsigned char **data, size_t *len, char *err,
                        size_t errcap)
{
    char delim[DELIM_MAX], seen[FIELD_LIST_MAX] = "";
    int dn = snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    if (dn < 0 || (size_t)dn >= sizeof delim) {
        snprintf(err, errcap, "multipart boundary too long");
        return false;
    }
    const char *b = (const char *)body, *end = b + body_len;
    /* The first delimiter may open the body (no preamble) or follow a preamble line. */
    const char *p;
    if (body_len >= (size_t)dn - 2 && !memcmp(b, delim + 2, (size_t)dn - 2))
        p = b + dn - 2;
    else if ((p = find(b, body_len, delim, (size_t)dn)))
        p += dn;
    else {
        snprintf(err, errcap, "multipart body has no boundary line \"--%s\"", boundary);
        return false;
    }
    for (;;) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break; /* closing delimiter */
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            snprintf(err, errcap, "multipart boundary line not followed by CRLF");
            return false;
        }
        p += 2;
        const char *content;
        size_t hdr_len;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') { /* a part without headers */
            content = p + 2;
            hdr_len = 0;
        } else {
            const char *he = find(p, (size_t)(end - p), "\r\n\r\n", 4);
            if (!he) {
                snprintf(err, errcap, "multipart part headers not terminated by a blank line");
                return false;
            }
            hdr_len = (size_t)(he - p);
            content = he + 4;
        }
        const char *next = find(content, (size_t)(end - content), delim, (size_t)dn);
        if (!next) {
            snprintf(err, errcap, "multipart part not closed by \"--%s\" (body cut short?)",
                     boundary);
            return false;
        }
        char name[FIELD_NAME_MAX];
        if (part_name(p, hdr_len, name, sizeof name)) {
            if (!strcmp(name, field)) {
                *data = (const unsigned char *)content;
                *len = (size_t)(next - content);
                return true;
            }
            size_t sl = strlen(seen);
            if (sl + strlen(name) + 3 < sizeof seen)
                snprintf(seen + sl, sizeof seen - sl, "%s%s", sl ? ", " : "", name);
        }
        p = next + dn;
    }
    snprintf(err, errcap, "no field \"%s\" in the form (fields: %s)", field,
             seen[0] ? seen : "none");
    return false;
}
