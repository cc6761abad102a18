/* safetensors.c - parse, serialise, and atomically write/read safetensors files.
 *
 * The parser trusts nothing in the file: every length, offset and shape is checked against the
 * buffer before a view is handed out, and products are computed with overflow guards, so a
 * hostile file is an error message, never an out-of-bounds read. The JSON header is parsed by
 * jansson; the parsed tree is kept alive in the os_st_file because tensor names and metadata
 * values are borrowed from it.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkstemp, fsync, O_DIRECTORY, O_CLOEXEC */
#endif

#include "onespike/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "onespike/shape.h"
#include "onespike/utf8.h"

/* The format is little-endian; tensor bytes are copied as they are in memory. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c copies F32 data in host byte order: a big-endian host needs byte swapping"
#endif

_Static_assert(sizeof(json_int_t) >= 8, "offsets and shapes need a 64-bit json_int_t");
_Static_assert(sizeof(float) == 4, "F32 is 4 bytes");

enum {
    ST_LEN_FIELD = 8,  /* the little-endian u64 header length */
    ST_MIN_HEADER = 2, /* "{}" */
    ST_F32_BYTES = 4,
    ST_DATA_ALIGN = 4, /* what a float view needs */
    ST_HEADER_PAD = 8, /* serialised headers are padded so data starts 8-aligned */
    ST_QUOTE_MAX = 80, /* longest name quoted in a message before it is cut */
    ST_QUOTE_BUF = 4 * ST_QUOTE_MAX + 8,
    ST_SHAPE_BUF = OS_SHAPE_TEXT_MAX(OS_ST_MAX_DIMS),
    READ_ALIGN = 64, /* os_read_file's buffer alignment */
};

/* A single write()/read() call moves at most this much; Linux caps transfers near 2 GiB anyway. */
#define IO_CHUNK ((size_t)1 << 30)

#define META_KEY "__metadata__"

struct os_st_file {
    json_t *root;        /* owns the strings that names and metadata values point into */
    json_t *meta;        /* borrowed from root; NULL when there is no __metadata__ */
    const uint8_t *data; /* data section, borrowed from the caller's buffer */
    size_t data_len;
    size_t n;
    os_tensor_view views[]; /* sorted by data offset */
};

/* ---------------------------------------------------------------------------------------------
 * Message helpers. Names come from the file, so they are quoted with control and non-ASCII bytes
 * escaped and long ones cut, to keep messages printable and within the detail buffer.
 */

static const char *quote(char buf[ST_QUOTE_BUF], const char *s)
{
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (i == ST_QUOTE_MAX) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            o += (size_t)snprintf(buf + o, 5, "\\x%02x", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

/* dtypes the safetensors format defines, so an unsupported one reads differently from garbage. */
static int known_dtype(const char *s)
{
    static const char *const dtypes[] = {
        "BOOL", "U8",  "I8",  "I16",     "U16",     "F16",     "BF16",    "I32",     "U32", "F64",
        "I64",  "U64", "C64", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",
    };
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(s, dtypes[i]) == 0)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Parsing.
 */

typedef struct {
    uint64_t begin, end;
    os_tensor_view v;
} st_entry;

static int entry_cmp(const void *pa, const void *pb)
{
    const st_entry *a = pa, *b = pb;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    return strcmp(a->v.name, b->v.name); /* names are unique: a total, deterministic order */
}

static os_status parse_meta(const char *label, json_t *meta)
{
    const char *key;
    json_t *val;
    char q[ST_QUOTE_BUF];
    if (!json_is_object(meta))
        return os_fail(OS_EFORMAT, "%s: " META_KEY " is %s, expected an object of strings", label,
                       json_kind(meta));
    json_object_foreach(meta, key, val)
    {
        if (!json_is_string(val))
            return os_fail(OS_EFORMAT, "%s: metadata %s is %s, expected a string", label,
                           quote(q, key), json_kind(val));
    }
    return OS_OK;
}

/* Read a non-negative JSON integer; 0 if v is not one. */
static int get_uint(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

/* Validate one tensor entry against the data section and fill e (view data set here). */
static os_status parse_entry(const char *label, const char *name, json_t *obj, const uint8_t *data,
                             size_t data_len, size_t data_start, st_entry *e)
{
    char q[ST_QUOTE_BUF], q2[ST_QUOTE_BUF], sh[ST_SHAPE_BUF];
    const char *key;
    json_t *val;

    quote(q, name);
    if (!json_is_object(obj))
        return os_fail(OS_EFORMAT, "%s: tensor %s is %s, expected an object", label, q,
                       json_kind(obj));
    json_object_foreach(obj, key, val)
    {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0)
            return os_fail(OS_EFORMAT, "%s: tensor %s: unknown field %s", label, q, quote(q2, key));
    }
    json_t *dtype = json_object_get(obj, "dtype");
    json_t *shape = json_object_get(obj, "shape");
    json_t *offs = json_object_get(obj, "data_offsets");
    if (!dtype || !shape || !offs)
        return os_fail(OS_EFORMAT, "%s: tensor %s: missing \"%s\"", label, q,
                       !dtype   ? "dtype"
                       : !shape ? "shape"
                                : "data_offsets");

    if (!json_is_string(dtype))
        return os_fail(OS_EFORMAT, "%s: tensor %s: dtype is %s, expected a string", label, q,
                       json_kind(dtype));
    const char *dt = json_string_value(dtype);
    if (strcmp(dt, "F32") != 0 && known_dtype(dt))
        return os_fail(OS_EDTYPE, "%s: tensor %s: dtype %s not supported (only F32)", label, q,
                       quote(q2, dt));
    if (strcmp(dt, "F32") != 0)
        return os_fail(OS_EDTYPE, "%s: tensor %s: unknown dtype %s (only F32 is supported)", label,
                       q, quote(q2, dt));

    if (!json_is_array(shape))
        return os_fail(OS_EFORMAT, "%s: tensor %s: shape is %s, expected an array", label, q,
                       json_kind(shape));
    size_t ndim = json_array_size(shape);
    if (ndim > OS_ST_MAX_DIMS)
        return os_fail(OS_EFORMAT, "%s: tensor %s: shape has %zu dimensions, at most %d supported",
                       label, q, ndim, OS_ST_MAX_DIMS);
    e->v.ndim = (int)ndim;
    int empty = 0;
    for (size_t i = 0; i < ndim; i++) {
        json_t *d = json_array_get(shape, i);
        uint64_t dim;
        if (!json_is_integer(d))
            return os_fail(OS_EFORMAT, "%s: tensor %s: shape[%zu] is %s, expected an integer",
                           label, q, i, json_kind(d));
        if (!get_uint(d, &dim))
            return os_fail(OS_EFORMAT, "%s: tensor %s: shape[%zu] is negative (%" PRId64 ")", label,
                           q, i, (int64_t)json_integer_value(d));
        e->v.shape[i] = (int64_t)dim;
        empty |= dim == 0;
    }
    /* The element count, keeping count * 4 representable; any zero dimension makes it 0 however
     * large the others are. */
    uint64_t count = 1;
    for (size_t i = 0; i < ndim && !empty; i++) {
        uint64_t dim = (uint64_t)e->v.shape[i];
        if (count > (UINT64_MAX / ST_F32_BYTES) / dim)
            return os_fail(OS_EFORMAT, "%s: tensor %s: shape %s is too large", label, q,
                           os_shape_format(sh, sizeof sh, e->v.shape, e->v.ndim));
        count *= dim;
    }
    if (empty)
        count = 0;

    uint64_t begin, end;
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)))
        return os_fail(OS_EFORMAT, "%s: tensor %s: data_offsets must be an array of two integers",
                       label, q);
    if (!get_uint(json_array_get(offs, 0), &begin) || !get_uint(json_array_get(offs, 1), &end))
        return os_fail(OS_EFORMAT,
                       "%s: tensor %s: data_offsets [%" PRId64 ",%" PRId64 "] are negative", label,
                       q, (int64_t)json_integer_value(json_array_get(offs, 0)),
                       (int64_t)json_integer_value(json_array_get(offs, 1)));
    if (begin > end)
        return os_fail(OS_EFORMAT,
                       "%s: tensor %s: data_offsets [%" PRIu64 ",%" PRIu64 "] begin after end",
                       label, q, begin, end);
    if (end > data_len)
        return os_fail(OS_EFORMAT,
                       "%s: tensor %s: data_offsets [%" PRIu64 ",%" PRIu64
                       "] past end of data section (%zu bytes; file truncated?)",
                       label, q, begin, end, data_len);
    if (count * ST_F32_BYTES != end - begin)
        return os_fail(OS_EFORMAT,
                       "%s: tensor %s shape %s needs %" PRIu64 " bytes, offsets give %" PRIu64,
                       label, q, os_shape_format(sh, sizeof sh, e->v.shape, e->v.ndim),
                       count * ST_F32_BYTES, end - begin);
    if ((data_start + begin) % ST_DATA_ALIGN != 0)
        return os_fail(OS_EFORMAT,
                       "%s: tensor %s: data at file offset %" PRIu64 " is not %d-byte aligned",
                       label, q, (uint64_t)data_start + begin, ST_DATA_ALIGN);

    e->begin = begin;
    e->end = end;
    e->v.name = name;
    e->v.count = (size_t)count; /* fits: count * 4 <= data_len */
    e->v.data = (const float *)(const void *)(data + begin);
    return OS_OK;
}

/* With entries sorted by offset, each must start exactly where the previous ones ended and the
 * last must end at the end of the data section: no overlap, no hole (as the reference
 * implementation requires). */
static os_status check_layout(const char *label, const st_entry *e, size_t n, size_t data_len)
{
    char q[ST_QUOTE_BUF], q2[ST_QUOTE_BUF];
    uint64_t cursor = 0;
    const char *owner = NULL; /* the last non-empty tensor, which ends at cursor */
    for (size_t i = 0; i < n; i++) {
        if (e[i].begin < cursor) {
            if (e[i].begin == e[i].end)
                return os_fail(OS_EFORMAT,
                               "%s: empty tensor %s at offset %" PRIu64 " lies inside tensor %s",
                               label, quote(q, e[i].v.name), e[i].begin, quote(q2, owner));
            return os_fail(OS_EFORMAT, "%s: tensors %s and %s overlap", label, quote(q, owner),
                           quote(q2, e[i].v.name));
        }
        if (e[i].begin > cursor)
            return os_fail(OS_EFORMAT,
                           "%s: data section has %" PRIu64
                           " bytes not covered by any tensor (offsets [%" PRIu64 ",%" PRIu64 "))",
                           label, e[i].begin - cursor, cursor, e[i].begin);
        if (e[i].end > e[i].begin)
            owner = e[i].v.name;
        cursor = e[i].end;
    }
    if (cursor != data_len)
        return os_fail(OS_EFORMAT,
                       "%s: data section has %" PRIu64
                       " bytes not covered by any tensor (offsets [%" PRIu64 ",%zu))",
                       label, (uint64_t)data_len - cursor, cursor, data_len);
    return OS_OK;
}

os_status os_st_parse(const void *buf, size_t len, const char *label, os_st_file **out)
{
    const uint8_t *p = buf;
    json_t *root = NULL;
    st_entry *entries = NULL;
    os_st_file *f = NULL;
    os_status st = OS_OK;

    if (!label)
        label = "<buffer>";
    if (!out || (!buf && len > 0))
        return os_fail(OS_EINVAL, "%s: os_st_parse: NULL argument", label);
    *out = NULL;
    if ((uintptr_t)buf % ST_DATA_ALIGN != 0)
        return os_fail(OS_EINVAL, "%s: buffer is not %d-byte aligned", label, ST_DATA_ALIGN);
    if (len < ST_LEN_FIELD)
        return os_fail(OS_EFORMAT, "%s: file is %zu bytes, too short for the %d-byte header length",
                       label, len, ST_LEN_FIELD);

    uint64_t hlen = 0;
    for (int i = ST_LEN_FIELD - 1; i >= 0; i--)
        hlen = hlen << 8 | p[i];
    if (hlen > len - ST_LEN_FIELD)
        return os_fail(OS_EFORMAT, "%s: header length %" PRIu64 " past end of file (%zu bytes)",
                       label, hlen, len);
    if (hlen < ST_MIN_HEADER)
        return os_fail(OS_EFORMAT, "%s: header length %" PRIu64 " too small (at least %d)", label,
                       hlen, ST_MIN_HEADER);
    if (hlen > OS_ST_MAX_HEADER)
        return os_fail(OS_EFORMAT, "%s: header length %" PRIu64 " over the limit of %u bytes",
                       label, hlen, OS_ST_MAX_HEADER);

    json_error_t jerr;
    root = json_loadb((const char *)p + ST_LEN_FIELD, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        st = os_fail(OS_EFORMAT, "%s: invalid JSON header at line %d column %d: %s", label,
                     jerr.line, jerr.column, jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        st =
            os_fail(OS_EFORMAT, "%s: header is %s, expected a JSON object", label, json_kind(root));
        goto out;
    }

    size_t data_start = ST_LEN_FIELD + (size_t)hlen;
    const uint8_t *data = p + data_start;
    size_t data_len = len - data_start;
    json_t *meta = json_object_get(root, META_KEY);
    if (meta && (st = parse_meta(label, meta)) != OS_OK)
        goto out;

    size_t n = json_object_size(root) - (meta ? 1 : 0);
    /* n is bounded by the header size (each entry takes > 10 bytes), so these cannot overflow. */
    entries = calloc(n ? n : 1, sizeof *entries);
    f = malloc(sizeof *f + n * sizeof f->views[0]);
    if (!entries || !f) {
        st = os_fail(OS_ENOMEM, "%s: out of memory for %zu tensor entries", label, n);
        goto out;
    }

    size_t i = 0;
    const char *name;
    json_t *val;
    json_object_foreach(root, name, val)
    {
        if (strcmp(name, META_KEY) == 0)
            continue;
        st = parse_entry(label, name, val, data, data_len, data_start, &entries[i++]);
        if (st != OS_OK)
            goto out;
    }
    qsort(entries, n, sizeof *entries, entry_cmp);
    if ((st = check_layout(label, entries, n, data_len)) != OS_OK)
        goto out;

    f->root = root;
    f->meta = meta;
    f->data = data;
    f->data_len = data_len;
    f->n = n;
    for (i = 0; i < n; i++)
        f->views[i] = entries[i].v;
    *out = f;
    root = NULL;
    f = NULL;

out:
    free(entries);
    free(f);
    json_decref(root);
    return st;
}

void os_st_free(os_st_file *f)
{
    if (!f)
        return;
    json_decref(f->root);
    free(f);
}

size_t os_st_count(const os_st_file *f)
{
    return f->n;
}

const os_tensor_view *os_st_tensor(const os_st_file *f, size_t i)
{
    return i < f->n ? &f->views[i] : NULL;
}

/* Linear: a model has tens of tensors and lookups happen once, at load. */
const os_tensor_view *os_st_find(const os_st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->views[i].name, name) == 0)
            return &f->views[i];
    return NULL;
}

const char *os_st_meta_get(const os_st_file *f, const char *key)
{
    return f->meta ? json_string_value(json_object_get(f->meta, key)) : NULL;
}

const void *os_st_data(const os_st_file *f, size_t *len)
{
    if (len)
        *len = f->data_len;
    return f->data;
}

/* ---------------------------------------------------------------------------------------------
 * Serialising.
 */

static os_status check_view(const os_tensor_view *t, size_t idx)
{
    char q[ST_QUOTE_BUF], sh[ST_SHAPE_BUF];
    if (!t->name)
        return os_fail(OS_EINVAL, "serialize: tensor %zu has no name", idx);
    quote(q, t->name);
    if (!os_utf8_valid(t->name))
        return os_fail(OS_EINVAL, "serialize: tensor name %s is not valid UTF-8", q);
    if (strcmp(t->name, META_KEY) == 0)
        return os_fail(OS_EINVAL, "serialize: tensor name %s is reserved", q);
    if (t->ndim < 0 || t->ndim > OS_ST_MAX_DIMS)
        return os_fail(OS_EINVAL, "serialize: tensor %s has %d dimensions (0..%d allowed)", q,
                       t->ndim, OS_ST_MAX_DIMS);
    uint64_t count = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0)
            return os_fail(OS_EINVAL, "serialize: tensor %s has negative shape %s", q,
                           os_shape_format(sh, sizeof sh, t->shape, t->ndim));
        uint64_t d = (uint64_t)t->shape[i];
        if (d != 0 && count > (SIZE_MAX / ST_F32_BYTES) / d)
            return os_fail(OS_EINVAL, "serialize: tensor %s shape %s is too large", q,
                           os_shape_format(sh, sizeof sh, t->shape, t->ndim));
        count *= d;
    }
    if (count != t->count)
        return os_fail(OS_EINVAL,
                       "serialize: tensor %s shape %s has %" PRIu64 " elements but count is %zu", q,
                       os_shape_format(sh, sizeof sh, t->shape, t->ndim), count, t->count);
    if (count > 0 && !t->data)
        return os_fail(OS_EINVAL, "serialize: tensor %s has no data", q);
    return OS_OK;
}

os_status os_st_serialize(const os_tensor_view *tensors, size_t n, const os_st_meta *meta,
                          size_t n_meta, void **out, size_t *out_len)
{
    os_status st = OS_OK;
    json_t *root = NULL, *jmeta = NULL;
    char *text = NULL;
    uint8_t *buf = NULL;
    char q[ST_QUOTE_BUF];

    if (!out || !out_len || (n > 0 && !tensors) || (n_meta > 0 && !meta))
        return os_fail(OS_EINVAL, "serialize: NULL argument");
    *out = NULL;
    *out_len = 0;

    root = json_object();
    if (!root)
        goto nomem;
    if (n_meta > 0) {
        jmeta = json_object();
        if (!jmeta || json_object_set(root, META_KEY, jmeta) != 0)
            goto nomem;
        for (size_t i = 0; i < n_meta; i++) {
            const char *k = meta[i].key, *v = meta[i].value;
            if (!k || !v) {
                st = os_fail(OS_EINVAL, "serialize: metadata entry %zu has a NULL key or value", i);
                goto out;
            }
            /* Checked here, so that a NULL from jansson below can only mean out of memory. */
            if (!os_utf8_valid(k) || !os_utf8_valid(v)) {
                st = os_fail(OS_EINVAL, "serialize: metadata %s is not valid UTF-8", quote(q, k));
                goto out;
            }
            if (json_object_get(jmeta, k)) {
                st = os_fail(OS_EINVAL, "serialize: duplicate metadata key %s", quote(q, k));
                goto out;
            }
            if (json_object_set_new(jmeta, k, json_string(v)) != 0) /* steals v */
                goto nomem;
        }
    }

    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const os_tensor_view *t = &tensors[i];
        if ((st = check_view(t, i)) != OS_OK)
            goto out;
        if (json_object_get(root, t->name)) {
            st = os_fail(OS_EINVAL, "serialize: duplicate tensor name %s", quote(q, t->name));
            goto out;
        }
        uint64_t bytes = (uint64_t)t->count * ST_F32_BYTES;
        if (bytes > SIZE_MAX - offset) {
            st = os_fail(OS_ETOOBIG, "serialize: tensor data over %zu bytes", (size_t)SIZE_MAX);
            goto out;
        }
        /* Keys in the order Python's safetensors writes them. We hold our own references to
         * the three containers and drop them after the (reference-taking) json_object_set calls,
         * so every failure path frees the same way. */
        json_t *entry = json_object(), *shape = json_array(), *offs = json_array();
        int bad = !entry || !shape || !offs;
        for (int d = 0; d < t->ndim; d++)
            bad |= json_array_append_new(shape, json_integer((json_int_t)t->shape[d])) != 0;
        bad |= json_array_append_new(offs, json_integer((json_int_t)offset)) != 0;
        bad |= json_array_append_new(offs, json_integer((json_int_t)(offset + bytes))) != 0;
        bad |= json_object_set_new(entry, "dtype", json_string("F32")) != 0;
        bad |= json_object_set(entry, "shape", shape) != 0;
        bad |= json_object_set(entry, "data_offsets", offs) != 0;
        bad |= json_object_set(root, t->name, entry) != 0;
        json_decref(shape);
        json_decref(offs);
        json_decref(entry);
        if (bad)
            goto nomem;
        offset += bytes;
    }

    text = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT);
    if (!text)
        goto nomem;
    size_t tlen = strlen(text);
    size_t hlen = (tlen + ST_HEADER_PAD - 1) / ST_HEADER_PAD * ST_HEADER_PAD;
    if (hlen > OS_ST_MAX_HEADER) {
        st = os_fail(OS_ETOOBIG, "serialize: header of %zu bytes over the limit of %u", hlen,
                     OS_ST_MAX_HEADER);
        goto out;
    }
    if (offset > SIZE_MAX - ST_LEN_FIELD - hlen) {
        st = os_fail(OS_ETOOBIG, "serialize: file over %zu bytes", (size_t)SIZE_MAX);
        goto out;
    }
    size_t total = ST_LEN_FIELD + hlen + (size_t)offset;
    buf = malloc(total);
    if (!buf)
        goto nomem;
    for (int i = 0; i < ST_LEN_FIELD; i++)
        buf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(buf + ST_LEN_FIELD, text, tlen);
    memset(buf + ST_LEN_FIELD + tlen, ' ', hlen - tlen);
    uint8_t *dst = buf + ST_LEN_FIELD + hlen;
    for (size_t i = 0; i < n; i++) {
        size_t bytes = tensors[i].count * ST_F32_BYTES;
        if (bytes > 0)
            memcpy(dst, tensors[i].data, bytes);
        dst += bytes;
    }
    *out = buf;
    *out_len = total;
    buf = NULL;
    goto out;

nomem:
    st = os_fail(OS_ENOMEM, "serialize: out of memory");
out:
    free(buf);
    free(text);
    json_decref(jmeta);
    json_decref(root);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Files.
 */

/* The folder holding path ("." when path has no slash), malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path); /* "/x" lives in "/" */
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len < IO_CHUNK ? len : IO_CHUNK);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) { /* should not happen for a regular file; do not spin */
            errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* mkstemp creates 0600; a model file should be readable by a server running as another user,
 * so give it what open(O_CREAT, 0666) gives under the common umask 022. */
#define ST_FILE_MODE 0644

os_status os_write_file_atomic(const char *path, const void *data, size_t len)
{
    static const char suffix[] = ".tmp.XXXXXX";
    os_status st = OS_OK;
    char *tmp = NULL, *dir = NULL;
    int fd = -1, dfd = -1, renamed = 0;

    if (!path || (!data && len > 0))
        return os_fail(OS_EINVAL, "write: NULL argument");
    size_t plen = strlen(path);
    tmp = malloc(plen + sizeof suffix);
    dir = dir_of(path);
    if (!tmp || !dir) {
        st = os_fail(OS_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, suffix, sizeof suffix);

    fd = mkstemp(tmp);
    if (fd < 0) {
        st = os_fail(OS_EIO, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
        tmp[0] = '\0'; /* nothing to remove */
        goto out;
    }
    if (fchmod(fd, ST_FILE_MODE) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        st = os_fail(OS_EIO, "%s: cannot write temporary file %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        st = os_fail(OS_EIO, "%s: cannot write temporary file %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    /* Open the folder before the rename so that the likely failures come while path is still
     * untouched. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        st = os_fail(OS_EIO, "%s: cannot open folder %s: %s", path, dir, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        st = os_fail(OS_EIO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        goto out;
    }
    renamed = 1;
    /* Without this the rename itself may not survive a crash. Some file systems cannot fsync a
     * folder (EINVAL); there is nothing more to do on those. Any other failure is reported, even
     * though path already holds the new contents: the caller asked for durability. */
    if (fsync(dfd) != 0 && errno != EINVAL) {
        st = os_fail(OS_EIO, "%s: written, but fsync of folder %s failed: %s", path, dir,
                     strerror(errno));
        goto out;
    }

out:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    if (st != OS_OK && !renamed && tmp && tmp[0] != '\0')
        unlink(tmp);
    free(tmp);
    free(dir);
    return st;
}

os_status os_read_file(const char *path, size_t max_len, void **out, size_t *out_len)
{
    os_status st = OS_OK;
    uint8_t *buf = NULL;
    int fd = -1;
    struct stat sb;

    if (!path || !out || !out_len)
        return os_fail(OS_EINVAL, "read: NULL argument");
    *out = NULL;
    *out_len = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return os_fail(OS_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0) {
        st = os_fail(OS_EIO, "%s: cannot stat: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = os_fail(OS_EIO, "%s: not a regular file", path);
        goto out;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if ((max_len > 0 && size > max_len) || size > SIZE_MAX - READ_ALIGN) {
        st = os_fail(OS_ETOOBIG, "%s: file is %" PRIu64 " bytes, over the limit of %zu bytes", path,
                     size, max_len > 0 ? max_len : SIZE_MAX - READ_ALIGN);
        goto out;
    }
    /* aligned_alloc wants a size that is a multiple of the alignment, and non-zero. */
    size_t cap = ((size_t)size + READ_ALIGN - 1) / READ_ALIGN * READ_ALIGN;
    if (cap == 0)
        cap = READ_ALIGN;
    buf = aligned_alloc(READ_ALIGN, cap);
    if (!buf) {
        st = os_fail(OS_ENOMEM, "%s: out of memory for %" PRIu64 " bytes", path, size);
        goto out;
    }
    size_t got = 0;
    while (got < size) {
        size_t want = (size_t)size - got;
        ssize_t r = read(fd, buf + got, want < IO_CHUNK ? want : IO_CHUNK);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            st = os_fail(OS_EIO, "%s: read failed: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0) {
            st = os_fail(OS_EIO, "%s: file shrank while being read (%zu of %" PRIu64 " bytes)",
                         path, got, size);
            goto out;
        }
        got += (size_t)r;
    }
    memset(buf + got, 0, cap - got); /* deterministic padding */
    *out = buf;
    *out_len = got;
    buf = NULL;

out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return st;
}
