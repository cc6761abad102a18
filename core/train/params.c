/* params.c - parameter sets and optimizers; see params.h. */
#include "params.h"
#include "vec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameters are allocated one by one, so an os_param pointer stays valid while others are
 * added or removed. */
struct os_params {
    os_param **p;
    int n, cap;
    char **state_names; /* names of opt.* views handed out by os_params_views */
    int n_state;
    bool alias; /* os_params_alias: names and data belong to another set */
};

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

os_status os_params_create(os_params **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? OS_OK : os_fail(OS_ENOMEM, "no memory for parameters");
}

static void free_state_names(os_params *p)
{
    for (int i = 0; i < p->n_state; i++)
        free(p->state_names[i]);
    free(p->state_names);
    p->state_names = NULL, p->n_state = 0;
}

static void param_free(os_param *q)
{
    if (!q)
        return;
    free((char *)q->view.name);
    free(q->data), free(q->grad), free(q->m), free(q->v);
    free(q);
}

void os_params_destroy(os_params *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++) {
        if (p->alias) {
            free(p->p[i]->grad);
            free(p->p[i]);
        } else {
            param_free(p->p[i]);
        }
    }
    free_state_names(p);
    free(p->p);
    free(p);
}

os_param *os_params_find(os_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->p[i]->view.name, name) == 0)
            return p->p[i];
    return NULL;
}

const os_tensor_view *os_params_view(const void *p, const char *name)
{
    os_param *q = os_params_find((os_params *)p, name);
    return q ? &q->view : NULL;
}

static os_param_kind kind_of(const os_tensor_view *t)
{
    if (ends_with(t->name, ".running_mean") || ends_with(t->name, ".running_var"))
        return OS_PARAM_BUFFER;
    if (ends_with(t->name, ".threshold"))
        return OS_PARAM_THRESHOLD;
    if (ends_with(t->name, ".leak"))
        return OS_PARAM_LEAK;
    if (t->ndim <= 1)
        return OS_PARAM_BIAS;
    return OS_PARAM_WEIGHT;
}

os_status os_params_add(os_params *p, const os_tensor_view *t)
{
    if (os_params_find(p, t->name))
        return os_fail(OS_EINVAL, "parameter \"%s\" added twice", t->name);
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        os_param **grown = realloc(p->p, (size_t)cap * sizeof *grown);
        if (!grown)
            return os_fail(OS_ENOMEM, "no memory for parameters");
        p->p = grown, p->cap = cap;
    }
    os_param *q = calloc(1, sizeof *q);
    if (!q)
        return os_fail(OS_ENOMEM, "no memory for parameter %s", t->name);
    q->view = *t, q->kind = kind_of(t);
    size_t bytes = (t->count ? t->count : 1) * sizeof(float);
    q->view.name = strdup(t->name);
    q->data = malloc(bytes);
    if (q->kind != OS_PARAM_BUFFER)
        q->grad = calloc(1, bytes);
    if (!q->view.name || !q->data || (q->kind != OS_PARAM_BUFFER && !q->grad)) {
        param_free(q);
        return os_fail(OS_ENOMEM, "no memory for parameter %s", t->name);
    }
    memcpy(q->data, t->data, t->count * sizeof(float));
    q->view.data = q->data;
    p->p[p->n++] = q;
    return OS_OK;
}

os_status os_params_alias(os_params *p, os_params **out)
{
    os_params *a = calloc(1, sizeof *a);
    if (!a || !(a->p = calloc((size_t)(p->n ? p->n : 1), sizeof *a->p))) {
        free(a);
        return os_fail(OS_ENOMEM, "no memory for a replica's parameters");
    }
    a->alias = true, a->cap = p->n;
    for (int i = 0; i < p->n; i++) {
        const os_param *q = p->p[i];
        os_param *r = calloc(1, sizeof *r);
        if (r && q->grad && !(r->grad = calloc(q->view.count ? q->view.count : 1, sizeof(float)))) {
            free(r);
            r = NULL;
        }
        if (!r) {
            os_params_destroy(a);
            return os_fail(OS_ENOMEM, "no memory for a replica's gradients");
        }
        r->view = q->view, r->data = q->data, r->kind = q->kind, r->frozen = q->frozen;
        a->p[a->n++] = r;
    }
    *out = a;
    return OS_OK;
}

void os_params_add_grads(os_params *p, const os_params *from, const int *which, int count)
{
    for (int w = 0; w < count; w++) {
        int i = which ? which[w] : w;
        if (i >= p->n || i >= from->n)
            continue;
        float *g = p->p[i]->grad;
        const float *h = from->p[i]->grad;
        if (g && h && !p->p[i]->frozen)
            for (size_t j = 0; j < p->p[i]->view.count; j++)
                g[j] += h[j];
    }
}

os_status os_params_add_scalar(os_params *p, const char *name, float value)
{
    os_tensor_view t = {.name = name, .ndim = 1, .shape = {1}, .data = &value, .count = 1};
    return os_params_add(p, &t);
}

void os_params_remove(os_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->p[i]->view.name, name) == 0) {
            param_free(p->p[i]);
            memmove(&p->p[i], &p->p[i + 1], (size_t)(p->n - i - 1) * sizeof *p->p);
            p->n--;
            return;
        }
}

int os_params_count(const os_params *p)
{
    return p->n;
}

os_param *os_params_at(os_params *p, int i)
{
    return p->p[i];
}

size_t os_params_trainable(const os_params *p)
{
    size_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (p->p[i]->kind != OS_PARAM_BUFFER && !p->p[i]->frozen)
            n += p->p[i]->view.count;
    return n;
}

void os_params_zero_grad(os_params *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->p[i]->grad)
            memset(p->p[i]->grad, 0, p->p[i]->view.count * sizeof(float));
}

void os_params_reset_state(os_params *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->p[i]->m), free(p->p[i]->v);
        p->p[i]->m = p->p[i]->v = NULL;
    }
}

float os_lr_at(const os_opt_config *c, long step)
{
    if (step < c->warmup_steps)
        return c->lr * (float)(step + 1) / (float)c->warmup_steps;
    long span = c->total_steps - c->warmup_steps;
    if (span <= 0)
        return c->lr;
    double x = (double)(step - c->warmup_steps) / (double)span;
    if (x > 1)
        x = 1;
    return (float)(0.5 * c->lr * (1.0 + cos(M_PI * x)));
}

os_status os_params_step_some(os_params *p, const os_opt_config *c, long step, const int *which,
                              int count)
{
    float lr0 = os_lr_at(c, step);
    double bc1 = 1.0 - pow(c->beta1, (double)(step + 1));
    double bc2 = 1.0 - pow(c->beta2, (double)(step + 1));
    for (int w = 0; w < count; w++) {
        os_param *q = p->p[which ? which[w] : w];
        if (q->kind == OS_PARAM_BUFFER || q->frozen)
            continue;
        size_t n = q->view.count;
        bool adam = c->kind == OS_OPT_ADAMW;
        if (!q->m && !(q->m = calloc(n, sizeof(float))))
            return os_fail(OS_ENOMEM, "no memory for optimizer state");
        if (adam && !q->v && !(q->v = calloc(n, sizeof(float))))
            return os_fail(OS_ENOMEM, "no memory for optimizer state");
        bool lif = q->kind == OS_PARAM_THRESHOLD || q->kind == OS_PARAM_LEAK;
        float lr = lif ? lr0 * c->lif_lr_scale : lr0;
        float wd = q->kind == OS_PARAM_WEIGHT ? c->weight_decay : 0.0f;
        float *x = q->data, *g = q->grad, *m = q->m, *v = q->v;
        if (adam) {
            float step_size = (float)(lr / bc1), denom_scale = (float)(1.0 / sqrt(bc2));
            os_vec()->adamw(x, g, m, v, n, c->beta1, c->beta2, lr * wd, step_size, denom_scale,
                            c->eps);
        } else {
            for (size_t j = 0; j < n; j++) {
                float d = g[j] + wd * x[j];
                m[j] = c->momentum * m[j] + d;
                x[j] -= lr * m[j];
            }
        }
        if (q->kind == OS_PARAM_THRESHOLD)
            for (size_t j = 0; j < n; j++)
                x[j] = fmaxf(x[j], OS_MIN_THRESHOLD);
        if (q->kind == OS_PARAM_LEAK)
            for (size_t j = 0; j < n; j++)
                x[j] = fminf(fmaxf(x[j], OS_MIN_LEAK), 1.0f);
    }
    return OS_OK;
}

os_status os_params_step(os_params *p, const os_opt_config *c, long step)
{
    return os_params_step_some(p, c, step, NULL, p->n);
}

static char *prefixed(const char *prefix, const char *name)
{
    size_t len = strlen(prefix) + strlen(name) + 1;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%s%s", prefix, name);
    return s;
}

os_status os_params_views(os_params *p, bool with_state, bool skip_scalars, os_tensor_view **out,
                          size_t *n)
{
    *out = NULL, *n = 0;
    free_state_names(p);
    os_tensor_view *v = calloc((size_t)(3 * p->n + 1), sizeof *v);
    p->state_names = calloc((size_t)(2 * p->n + 1), sizeof *p->state_names);
    if (!v || !p->state_names) {
        free(v);
        return os_fail(OS_ENOMEM, "no memory for tensor views");
    }
    size_t k = 0;
    for (int i = 0; i < p->n; i++) {
        os_param *q = p->p[i];
        bool scalar = q->kind == OS_PARAM_THRESHOLD || q->kind == OS_PARAM_LEAK;
        if (!(skip_scalars && scalar))
            v[k++] = q->view;
    }
    for (int i = 0; with_state && i < p->n; i++) {
        os_param *q = p->p[i];
        float *bufs[2] = {q->m, q->v};
        const char *pre[2] = {"opt.m.", "opt.v."};
        for (int j = 0; j < 2; j++) {
            if (!bufs[j])
                continue;
            char *name = prefixed(pre[j], q->view.name);
            if (!name) {
                free(v);
                return os_fail(OS_ENOMEM, "no memory for tensor names");
            }
            p->state_names[p->n_state++] = name;
            v[k] = q->view;
            v[k].name = name;
            v[k].data = bufs[j];
            k++;
        }
    }
    *out = v, *n = k;
    return OS_OK;
}

os_status os_params_restore_state(os_params *p,
                                  const os_tensor_view *(*find)(const void *, const char *),
                                  const void *ctx)
{
    for (int i = 0; i < p->n; i++) {
        os_param *q = p->p[i];
        float **bufs[2] = {&q->m, &q->v};
        const char *pre[2] = {"opt.m.", "opt.v."};
        for (int j = 0; j < 2; j++) {
            char *name = prefixed(pre[j], q->view.name);
            if (!name)
                return os_fail(OS_ENOMEM, "no memory");
            const os_tensor_view *t = find(ctx, name);
            free(name);
            if (!t)
                continue;
            if (t->count != q->view.count)
                return os_fail(OS_ESHAPE, "optimizer state for %s has %zu values, want %zu",
                               q->view.name, t->count, q->view.count);
            if (!*bufs[j] && !(*bufs[j] = malloc(t->count * sizeof(float))))
                return os_fail(OS_ENOMEM, "no memory");
            memcpy(*bufs[j], t->data, t->count * sizeof(float));
        }
    }
    return OS_OK;
}
