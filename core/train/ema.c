/* ema.c - the moving average of a parameter set; see ema.h. */
#include "ema.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    os_tensor_view view; /* the parameter's name and shape; data is the shadow */
    float *shadow;
    char *base;          /* the parameter's name (view.name points here) */
    char *name;          /* view.name with the prefix of the last os_ema_views */
} entry;

struct os_ema {
    double decay;
    int n;
    entry *e; /* in the parameter set's order */
};

os_status os_ema_create(os_params *p, double decay, os_ema **out)
{
    *out = NULL;
    if (!(decay > 0 && decay < 1))
        return os_fail(OS_EINVAL, "EMA decay %g: expected a value in (0, 1)", decay);
    os_ema *m = calloc(1, sizeof *m);
    int n = os_params_count(p);
    if (!m || !(m->e = calloc((size_t)(n ? n : 1), sizeof *m->e))) {
        free(m);
        return os_fail(OS_ENOMEM, "no memory for the weight average");
    }
    m->decay = decay, m->n = n;
    for (int i = 0; i < n; i++) {
        const os_param *q = os_params_at(p, i);
        entry *x = &m->e[i];
        x->view = q->view;
        x->shadow = malloc((q->view.count ? q->view.count : 1) * sizeof *x->shadow);
        x->base = malloc(strlen(q->view.name) + 1);
        if (!x->shadow || !x->base) {
            os_ema_destroy(m);
            return os_fail(OS_ENOMEM, "no memory for the weight average");
        }
        memcpy(x->shadow, q->data, q->view.count * sizeof *x->shadow);
        strcpy(x->base, q->view.name);
        x->view.data = x->shadow, x->view.name = x->base;
    }
    *out = m;
    return OS_OK;
}

void os_ema_destroy(os_ema *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++)
        free(m->e[i].shadow), free(m->e[i].base), free(m->e[i].name);
    free(m->e);
    free(m);
}

double os_ema_decay_at(const os_ema *m, long t)
{
    double warm = (1.0 + (double)t) / (10.0 + (double)t);
    return warm < m->decay ? warm : m->decay;
}

void os_ema_update(os_ema *m, os_params *p, long t)
{
    assert(os_params_count(p) == m->n);
    const float d = (float)os_ema_decay_at(m, t), u = 1.0f - d;
    for (int i = 0; i < m->n; i++) {
        const os_param *q = os_params_at(p, i);
        if (q->frozen)
            continue;
        float *s = m->e[i].shadow;
        const float *v = q->data;
        for (size_t j = 0; j < q->view.count; j++)
            s[j] = d * s[j] + u * v[j];
    }
}

void os_ema_swap(os_ema *m, os_params *p)
{
    assert(os_params_count(p) == m->n);
    for (int i = 0; i < m->n; i++) {
        float *s = m->e[i].shadow, *v = os_params_at(p, i)->data;
        for (size_t j = 0; j < m->e[i].view.count; j++) {
            float t = s[j];
            s[j] = v[j], v[j] = t;
        }
    }
}

os_status os_ema_views(const os_ema *m, const char *prefix, os_tensor_view **out, size_t *n)
{
    *out = malloc((size_t)(m->n ? m->n : 1) * sizeof **out);
    *n = 0;
    if (!*out)
        return os_fail(OS_ENOMEM, "no memory for the weight average's views");
    for (int i = 0; i < m->n; i++) {
        entry *x = &m->e[i];
        size_t len = strlen(prefix) + strlen(x->view.name) + 1;
        free(x->name);
        if (!(x->name = malloc(len))) {
            free(*out);
            *out = NULL;
            return os_fail(OS_ENOMEM, "no memory for the weight average's views");
        }
        snprintf(x->name, len, "%s%s", prefix, x->view.name);
        (*out)[i] = x->view;
        (*out)[i].name = x->name;
    }
    *n = (size_t)m->n;
    return OS_OK;
}

os_status os_ema_restore(os_ema *m, const char *prefix,
                         const os_tensor_view *(*find)(const void *, const char *),
                         const void *ctx)
{
    for (int i = 0; i < m->n; i++) {
        entry *x = &m->e[i];
        char name[512];
        snprintf(name, sizeof name, "%s%s", prefix, x->view.name);
        const os_tensor_view *t = find(ctx, name);
        if (!t || t->count != x->view.count)
            return os_fail(OS_EFORMAT, "checkpoint: the weight average %s is %s", name,
                           t ? "of another shape" : "missing");
        memcpy(x->shadow, t->data, t->count * sizeof *x->shadow);
    }
    return OS_OK;
}
