/* graph.c - the layer list of a model document, parsed, edited and written back; see graph.h. */
#include "graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    GRAPH_MAX_LAYERS = 4096,
    GRAPH_MAX_DIM = 65536,
    GRAPH_MIN_CAP = 16,
};

struct os_graph {
    os_layer_spec *l;
    int n, cap;
    int *map; /* cap entries: index remapping scratch, so that removal never allocates */
};

static const char *const role_names[OS_TENSOR_ROLES] = {
    [OS_TENSOR_WEIGHT] = "weight",
    [OS_TENSOR_BIAS] = "bias",
    [OS_TENSOR_MEAN] = "mean",
    [OS_TENSOR_VAR] = "var",
};

const char *os_tensor_role_name(os_tensor_role r)
{
    return (unsigned)r < OS_TENSOR_ROLES ? role_names[r] : "?";
}

static int op_parse(const char *s)
{
    for (int i = 0; i < OS_OP_COUNT; i++)
        if (strcmp(s, os_op_name((os_op)i)) == 0)
            return i;
    return -1;
}

static int op_inputs(os_op op)
{
    return op == OS_OP_ADD ? 2 : 1;
}

static void spec_clear(os_layer_spec *l)
{
    for (int r = 0; r < OS_TENSOR_ROLES; r++) {
        free(l->tensor[r]);
        l->tensor[r] = NULL;
    }
}

/* ---- storage ---- */

static os_status graph_new(int cap, os_graph **out)
{
    *out = NULL;
    os_graph *g = calloc(1, sizeof *g);
    if (cap < GRAPH_MIN_CAP)
        cap = GRAPH_MIN_CAP;
    if (!g || !(g->l = calloc((size_t)cap, sizeof *g->l)) ||
        !(g->map = malloc((size_t)cap * sizeof *g->map))) {
        os_graph_destroy(g);
        return os_fail(OS_ENOMEM, "no memory for a layer graph of %d layers", cap);
    }
    g->cap = cap;
    *out = g;
    return OS_OK;
}

static os_status graph_reserve(os_graph *g, int n)
{
    if (n <= g->cap)
        return OS_OK;
    int cap = g->cap * 2 > n ? g->cap * 2 : n;
    os_layer_spec *l = realloc(g->l, (size_t)cap * sizeof *l);
    if (!l)
        return os_fail(OS_ENOMEM, "no memory for a layer graph of %d layers", cap);
    g->l = l;
    int *map = realloc(g->map, (size_t)cap * sizeof *map);
    if (!map)
        return os_fail(OS_ENOMEM, "no memory for a layer graph of %d layers", cap);
    g->map = map;
    g->cap = cap;
    return OS_OK;
}

void os_graph_destroy(os_graph *g)
{
    if (!g)
        return;
    for (int i = 0; g->l && i < g->n; i++)
        spec_clear(&g->l[i]);
    free(g->l);
    free(g->map);
    free(g);
}

/* dst = src with its own copies of the tensor names; dst's old names are not freed. */
static os_status spec_copy(os_layer_spec *dst, const os_layer_spec *src)
{
    *dst = *src;
    for (int r = 0; r < OS_TENSOR_ROLES; r++)
        dst->tensor[r] = NULL;
    for (int r = 0; r < OS_TENSOR_ROLES; r++) {
        if (src->tensor[r] && !(dst->tensor[r] = strdup(src->tensor[r]))) {
            spec_clear(dst);
            return os_fail(OS_ENOMEM, "no memory for layer \"%s\"", src->name);
        }
    }
    return OS_OK;
}

os_status os_graph_clone(const os_graph *g, os_graph **out)
{
    os_graph *c = NULL;
    os_status st = graph_new(g->n, &c);
    for (int i = 0; !st && i < g->n; i++)
        if (!(st = spec_copy(&c->l[i], &g->l[i])))
            c->n = i + 1;
    if (st) {
        os_graph_destroy(c);
        c = NULL;
    }
    *out = c;
    return st;
}

int os_graph_count(const os_graph *g)
{
    return g->n;
}

const os_layer_spec *os_graph_layer(const os_graph *g, int i)
{
    return &g->l[i];
}

os_layer_spec *os_graph_edit(os_graph *g, int i)
{
    return &g->l[i];
}

static int find_before(const os_graph *g, int upto, const char *name)
{
    if (strcmp(name, "input") == 0)
        return OS_NET_INPUT;
    for (int i = upto - 1; i >= 0; i--)
        if (strcmp(g->l[i].name, name) == 0)
            return i;
    return -2;
}

int os_graph_find(const os_graph *g, const char *name)
{
    return find_before(g, g->n, name);
}

os_status os_graph_set_tensor(os_graph *g, int i, os_tensor_role r, const char *name)
{
    char *copy = NULL;
    if (name && !(copy = strdup(name)))
        return os_fail(OS_ENOMEM, "no memory for tensor name \"%s\"", name);
    free(g->l[i].tensor[r]);
    g->l[i].tensor[r] = copy;
    return OS_OK;
}

/* ---- parsing ---- */

/* Everything a field parser needs to report an error in context. */
typedef struct {
    const char *label;
    int index;
    const json_t *obj;
    os_layer_spec *l;
} ctx;

#define LAYER_FAIL(cx, st, fmt, ...)                                                               \
    os_fail(st, "%s: layer %d \"%s\": " fmt, (cx)->label, (cx)->index, (cx)->l->name, __VA_ARGS__)

/* Integer field; `def` used when absent and not required. Range [lo, hi]. */
static os_status get_int(const ctx *cx, const char *key, bool required, int def, int lo, int hi,
                         int *out)
{
    const json_t *v = json_object_get(cx->obj, key);
    if (!v) {
        if (required)
            return LAYER_FAIL(cx, OS_EARCH, "missing field \"%s\"", key);
        *out = def;
        return OS_OK;
    }
    if (!json_is_integer(v))
        return LAYER_FAIL(cx, OS_EARCH, "field \"%s\" must be an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return LAYER_FAIL(cx, OS_EARCH, "field \"%s\" = %lld, expected %d..%d", key, (long long)x,
                          lo, hi);
    *out = (int)x;
    return OS_OK;
}

static os_status get_float(const ctx *cx, const char *key, double *out)
{
    const json_t *v = json_object_get(cx->obj, key);
    if (!v)
        return LAYER_FAIL(cx, OS_EARCH, "missing field \"%s\"", key);
    if (!json_is_number(v))
        return LAYER_FAIL(cx, OS_EARCH, "field \"%s\" must be a number", key);
    *out = json_number_value(v);
    if (!isfinite(*out))
        return LAYER_FAIL(cx, OS_EARCH, "field \"%s\" is not finite", key);
    return OS_OK;
}

/* The tensor name in the field of role r; the tensor itself is looked up by os_net_build_ex. */
static os_status get_tensor(const ctx *cx, os_tensor_role r, bool required)
{
    const char *key = role_names[r];
    const json_t *v = json_object_get(cx->obj, key);
    if (!v) {
        if (required)
            return LAYER_FAIL(cx, OS_EARCH, "missing field \"%s\"", key);
        return OS_OK;
    }
    if (!json_is_string(v))
        return LAYER_FAIL(cx, OS_EARCH, "field \"%s\" must be a tensor name", key);
    if (!(cx->l->tensor[r] = strdup(json_string_value(v))))
        return os_fail(OS_ENOMEM, "%s: no memory for tensor names", cx->label);
    return OS_OK;
}

static os_status parse_from(const ctx *cx, const os_graph *g)
{
    os_layer_spec *L = cx->l;
    const json_t *v = json_object_get(cx->obj, "from");
    int want = op_inputs(L->op);
    if (!v) {
        if (want == 2)
            return LAYER_FAIL(cx, OS_EARCH, "%s", "add needs \"from\": [a, b]");
        L->from[0] = cx->index - 1; /* previous layer, or the input for the first */
        L->n_from = 1;
        return OS_OK;
    }
    const json_t *names[2] = {v, NULL};
    int n = 1;
    if (json_is_array(v)) {
        n = (int)json_array_size(v);
        if (n < 1 || n > 2)
            return LAYER_FAIL(cx, OS_EARCH, "\"from\" has %d entries", n);
        names[0] = json_array_get(v, 0);
        names[1] = n > 1 ? json_array_get(v, 1) : NULL;
    }
    if (n != want)
        return LAYER_FAIL(cx, OS_EARCH, "%s takes %d input(s), \"from\" names %d",
                          os_op_name(L->op), want, n);
    for (int i = 0; i < n; i++) {
        if (!json_is_string(names[i]))
            return LAYER_FAIL(cx, OS_EARCH, "%s", "\"from\" entries must be layer names");
        int j = find_before(g, cx->index, json_string_value(names[i]));
        if (j == -2)
            return LAYER_FAIL(cx, OS_EARCH, "\"from\" names \"%s\", not an earlier layer",
                              json_string_value(names[i]));
        L->from[i] = j;
    }
    L->n_from = n;
    return OS_OK;
}

static os_status parse_kernel(const ctx *cx)
{
    os_layer_spec *L = cx->l;
    const json_t *k = json_object_get(cx->obj, "kernel");
    if (json_is_array(k) && json_array_size(k) == 2 && json_is_integer(json_array_get(k, 0)) &&
        json_is_integer(json_array_get(k, 1))) {
        json_int_t a = json_integer_value(json_array_get(k, 0));
        json_int_t b = json_integer_value(json_array_get(k, 1));
        if (a < 1 || b < 1 || a > GRAPH_MAX_DIM || b > GRAPH_MAX_DIM)
            return LAYER_FAIL(cx, OS_EARCH, "kernel [%lld,%lld] out of range", (long long)a,
                              (long long)b);
        L->kh = (int)a, L->kw = (int)b;
        L->given |= OS_GIVEN_KERNEL_PAIR;
        return OS_OK;
    }
    int s = 0;
    os_status st = get_int(cx, "kernel", true, 0, 1, GRAPH_MAX_DIM, &s);
    L->kh = L->kw = s;
    return st;
}

static void note_given(const ctx *cx, const char *key, unsigned bit)
{
    if (json_object_get(cx->obj, key))
        cx->l->given |= bit;
}

static os_status parse_conv(const ctx *cx)
{
    os_layer_spec *L = cx->l;
    os_status st;
    if ((st = get_int(cx, "out", true, 0, 1, GRAPH_MAX_DIM, &L->out)) || (st = parse_kernel(cx)) ||
        (st = get_int(cx, "stride", false, 1, 1, GRAPH_MAX_DIM, &L->stride)) ||
        (st = get_int(cx, "pad", false, 0, 0, GRAPH_MAX_DIM, &L->pad)) ||
        (st = get_tensor(cx, OS_TENSOR_WEIGHT, true)) ||
        (st = get_tensor(cx, OS_TENSOR_BIAS, false)))
        return st;
    note_given(cx, "stride", OS_GIVEN_STRIDE);
    note_given(cx, "pad", OS_GIVEN_PAD);
    return OS_OK;
}

static os_status parse_bn(const ctx *cx)
{
    os_layer_spec *L = cx->l;
    os_status st;
    for (int r = 0; r < OS_TENSOR_ROLES; r++)
        if ((st = get_tensor(cx, (os_tensor_role)r, true)))
            return st;
    if (json_object_get(cx->obj, "eps")) {
        if ((st = get_float(cx, "eps", &L->eps)))
            return st;
        L->given |= OS_GIVEN_EPS;
    }
    if (L->eps < 0)
        return LAYER_FAIL(cx, OS_EARCH, "eps %g is negative", L->eps);
    return OS_OK;
}

static os_status parse_pool(const ctx *cx)
{
    os_layer_spec *L = cx->l;
    os_status st;
    if ((st = parse_kernel(cx)))
        return st;
    if (L->kh != L->kw)
        return LAYER_FAIL(cx, OS_EARCH, "pooling kernel must be square, got %dx%d", L->kh, L->kw);
    if ((st = get_int(cx, "stride", false, L->kh, 1, GRAPH_MAX_DIM, &L->stride)) ||
        (st = get_int(cx, "pad", false, 0, 0, L->kh / 2, &L->pad)))
        return st;
    note_given(cx, "stride", OS_GIVEN_STRIDE);
    note_given(cx, "pad", OS_GIVEN_PAD);
    return OS_OK;
}

static os_status parse_linear(const ctx *cx)
{
    os_status st;
    if ((st = get_int(cx, "out", true, 0, 1, GRAPH_MAX_DIM, &cx->l->out)) ||
        (st = get_tensor(cx, OS_TENSOR_WEIGHT, true)) ||
        (st = get_tensor(cx, OS_TENSOR_BIAS, false)))
        return st;
    return OS_OK;
}

static os_status parse_lif(const ctx *cx)
{
    os_layer_spec *L = cx->l;
    os_status st;
    if ((st = get_float(cx, "threshold", &L->threshold)) || (st = get_float(cx, "leak", &L->leak)))
        return st;
    if (!(L->threshold > 0))
        return LAYER_FAIL(cx, OS_EARCH, "threshold %g must be > 0", L->threshold);
    if (!(L->leak > 0 && L->leak <= 1))
        return LAYER_FAIL(cx, OS_EARCH, "leak %g must be in (0, 1]", L->leak);
    return OS_OK;
}

static os_status parse_layer(const ctx *cx, const os_graph *g)
{
    os_layer_spec *L = cx->l;
    const json_t *o = cx->obj;
    L->eps = OS_GRAPH_DEFAULT_BN_EPS;
    if (!json_is_object(o))
        return os_fail(OS_EARCH, "%s: layer %d is not an object", cx->label, cx->index);
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!name || !*name || strlen(name) >= OS_NET_NAME_MAX)
        return os_fail(OS_EARCH, "%s: layer %d: \"name\" must be a string of 1..%d characters",
                       cx->label, cx->index, OS_NET_NAME_MAX - 1);
    strcpy(L->name, name);
    if (strcmp(name, "input") == 0 || find_before(g, cx->index, name) >= 0)
        return LAYER_FAIL(cx, OS_EARCH, "%s", "name is reserved or used twice");
    const char *op = json_string_value(json_object_get(o, "op"));
    int opi = op ? op_parse(op) : -1;
    if (opi < 0)
        return LAYER_FAIL(cx, OS_EARCH, "unknown op \"%s\"", op ? op : "(missing)");
    L->op = (os_op)opi;
    os_status st;
    if ((st = parse_from(cx, g)) ||
        (st = get_int(cx, "unit", false, 0, 0, GRAPH_MAX_LAYERS, &L->unit)))
        return st;
    switch (L->op) {
    case OS_OP_CONV: return parse_conv(cx);
    case OS_OP_BN: return parse_bn(cx);
    case OS_OP_LIF: return parse_lif(cx);
    case OS_OP_MAXPOOL:
    case OS_OP_AVGPOOL: return parse_pool(cx);
    case OS_OP_LINEAR: return parse_linear(cx);
    case OS_OP_RELU:
    case OS_OP_GAP:
    case OS_OP_ADD: return OS_OK;
    default: break;
    }
    return LAYER_FAIL(cx, OS_EARCH, "%s", "unhandled op");
}

os_status os_graph_from_json(const json_t *layers, const char *label, os_graph **out)
{
    *out = NULL;
    if (!json_is_array(layers) || json_array_size(layers) == 0)
        return os_fail(OS_EARCH, "%s: \"layers\" must be a non-empty array", label);
    size_t n = json_array_size(layers);
    if (n > GRAPH_MAX_LAYERS)
        return os_fail(OS_EARCH, "%s: %zu layers, at most %d supported", label, n,
                       GRAPH_MAX_LAYERS);
    os_graph *g = NULL;
    os_status st = graph_new((int)n, &g);
    if (st)
        return os_fail(st, "%s: no memory for %zu layers", label, n);
    for (size_t i = 0; i < n && !st; i++) {
        /* counted before parsing, so that destroy frees a half-parsed layer's names */
        g->n = (int)i + 1;
        ctx cx = {label, (int)i, json_array_get(layers, i), &g->l[i]};
        st = parse_layer(&cx, g);
    }
    if (st) {
        os_graph_destroy(g);
        return st;
    }
    *out = g;
    return OS_OK;
}

/* ---- writing ---- */

static json_t *from_json(const os_graph *g, int i)
{
    const os_layer_spec *L = &g->l[i];
    const char *names[2];
    for (int k = 0; k < L->n_from; k++)
        names[k] = L->from[k] == OS_NET_INPUT ? "input" : g->l[L->from[k]].name;
    if (L->n_from == 2)
        return json_pack("[s, s]", names[0], names[1]);
    return L->from[0] == i - 1 ? NULL : json_string(names[0]);
}

/* json_object_set_new that remembers a failure (a NULL value from a failed allocation). */
static void put(json_t *o, const char *key, json_t *v, bool *ok)
{
    if (!v || json_object_set_new(o, key, v) != 0)
        *ok = false;
}

static void put_tensor(json_t *o, const os_layer_spec *L, os_tensor_role r, bool *ok)
{
    if (L->tensor[r])
        put(o, role_names[r], json_string(L->tensor[r]), ok);
}

static void put_kernel(json_t *o, const os_layer_spec *L, bool *ok)
{
    if ((L->given & OS_GIVEN_KERNEL_PAIR) || L->kh != L->kw)
        put(o, "kernel", json_pack("[i, i]", L->kh, L->kw), ok);
    else
        put(o, "kernel", json_integer(L->kh), ok);
}

static json_t *layer_json(const os_graph *g, int i)
{
    const os_layer_spec *L = &g->l[i];
    json_t *o = json_object();
    bool ok = o != NULL;
    if (!ok)
        return NULL;
    put(o, "name", json_string(L->name), &ok);
    put(o, "op", json_string(os_op_name(L->op)), &ok);
    json_t *from = from_json(g, i);
    if (from || L->n_from == 2 || L->from[0] != i - 1)
        put(o, "from", from, &ok);
    if (L->unit)
        put(o, "unit", json_integer(L->unit), &ok);
    switch (L->op) {
    case OS_OP_CONV:
        put(o, "out", json_integer(L->out), &ok);
        put_kernel(o, L, &ok);
        if ((L->given & OS_GIVEN_STRIDE) || L->stride != 1)
            put(o, "stride", json_integer(L->stride), &ok);
        if ((L->given & OS_GIVEN_PAD) || L->pad != 0)
            put(o, "pad", json_integer(L->pad), &ok);
        put_tensor(o, L, OS_TENSOR_WEIGHT, &ok);
        put_tensor(o, L, OS_TENSOR_BIAS, &ok);
        break;
    case OS_OP_BN:
        for (int r = 0; r < OS_TENSOR_ROLES; r++)
            put_tensor(o, L, (os_tensor_role)r, &ok);
        if ((L->given & OS_GIVEN_EPS) || L->eps != OS_GRAPH_DEFAULT_BN_EPS)
            put(o, "eps", json_real(L->eps), &ok);
        break;
    case OS_OP_LIF:
        put(o, "threshold", json_real(L->threshold), &ok);
        put(o, "leak", json_real(L->leak), &ok);
        break;
    case OS_OP_MAXPOOL:
    case OS_OP_AVGPOOL:
        put_kernel(o, L, &ok);
        if ((L->given & OS_GIVEN_STRIDE) || L->stride != L->kh)
            put(o, "stride", json_integer(L->stride), &ok);
        if ((L->given & OS_GIVEN_PAD) || L->pad != 0)
            put(o, "pad", json_integer(L->pad), &ok);
        break;
    case OS_OP_LINEAR:
        put(o, "out", json_integer(L->out), &ok);
        put_tensor(o, L, OS_TENSOR_WEIGHT, &ok);
        put_tensor(o, L, OS_TENSOR_BIAS, &ok);
        break;
    default: break;
    }
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *os_graph_to_json(const os_graph *g)
{
    json_t *a = json_array();
    for (int i = 0; a && i < g->n; i++) {
        json_t *o = layer_json(g, i);
        if (!o || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* ---- edits ---- */

void os_graph_consumers(const os_graph *g, int *count)
{
    memset(count, 0, (size_t)g->n * sizeof *count);
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < g->l[i].n_from; k++)
            if (g->l[i].from[k] != OS_NET_INPUT)
                count[g->l[i].from[k]]++;
}

os_status os_graph_insert_after(os_graph *g, int i, const os_layer_spec *l)
{
    if (op_inputs(l->op) != 1)
        return os_fail(OS_EARCH, "cannot insert %s \"%s\": it takes two inputs", os_op_name(l->op),
                       l->name);
    if (!l->name[0] || os_graph_find(g, l->name) != -2)
        return os_fail(OS_EARCH, "cannot insert layer \"%s\": name is reserved or used", l->name);
    os_layer_spec copy;
    os_status st;
    if ((st = graph_reserve(g, g->n + 1)) || (st = spec_copy(&copy, l)))
        return st;
    int at = i + 1;
    memmove(&g->l[at + 1], &g->l[at], (size_t)(g->n - at) * sizeof *g->l);
    g->n++;
    copy.from[0] = i, copy.from[1] = 0, copy.n_from = 1;
    g->l[at] = copy;
    /* Indices past i move up by one; what read i reads the new layer, which sits at i + 1. */
    for (int j = at + 1; j < g->n; j++)
        for (int k = 0; k < g->l[j].n_from; k++) {
            int *f = &g->l[j].from[k];
            if (*f >= i) /* == i: a consumer of i, now of the new layer at i + 1 */
                (*f)++;
        }
    return OS_OK;
}

void os_graph_remove_where(os_graph *g, const bool *drop)
{
    int kept = 0;
    for (int i = 0; i < g->n; i++) {
        os_layer_spec *L = &g->l[i];
        for (int k = 0; k < L->n_from; k++)
            if (L->from[k] != OS_NET_INPUT)
                L->from[k] = g->map[L->from[k]];
        if (drop[i]) {
            g->map[i] = L->from[0]; /* already a kept layer or the input */
            spec_clear(L);
            continue;
        }
        g->map[i] = kept;
        g->l[kept++] = *L;
    }
    g->n = kept;
}

void os_graph_remove(os_graph *g, int i)
{
    os_layer_spec *L = &g->l[i];
    int to = L->from[0];
    spec_clear(L);
    memmove(L, L + 1, (size_t)(g->n - i - 1) * sizeof *L);
    g->n--;
    for (int j = i; j < g->n; j++)
        for (int k = 0; k < g->l[j].n_from; k++) {
            int *f = &g->l[j].from[k];
            *f = *f == i ? to : *f > i ? *f - 1 : *f;
        }
}

os_status os_graph_replace_op(os_graph *g, int i, os_op op)
{
    os_layer_spec *L = &g->l[i];
    if (op_inputs(op) != L->n_from)
        return os_fail(OS_EARCH, "layer \"%s\": %s takes %d input(s), it has %d", L->name,
                       os_op_name(op), op_inputs(op), L->n_from);
    spec_clear(L);
    L->op = op;
    L->out = L->kh = L->kw = L->stride = L->pad = 0;
    L->threshold = L->leak = 0;
    L->eps = OS_GRAPH_DEFAULT_BN_EPS;
    L->given = 0;
    return OS_OK;
}
