/* dconv.c - training convolutions on oneDNN (see dconv.h). */
#include "dconv.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "isa.h"

#ifdef ONESPIKE_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

static atomic_int chosen = -1; /* 1 on, 0 off, -1 before the first use */
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

bool os_dconv_built(void)
{
#ifdef ONESPIKE_HAVE_DNNL
    return true;
#else
    return false;
#endif
}

static void choose(void)
{
    bool on = os_dconv_built() && os_isa_supported(OS_ISA_AVX512);
    const char *env = getenv("ONESPIKE_TRAIN_CONV");
    if (env && *env) {
        if (strcmp(env, "ours") == 0)
            on = false;
        else if (strcmp(env, "onednn") == 0 && os_dconv_built())
            on = true;
        else
            fprintf(stderr, "onespike: ONESPIKE_TRAIN_CONV=%s: not one of ours%s; using %s\n", env,
                    os_dconv_built() ? ", onednn" : " (no oneDNN in this build)",
                    on ? "onednn" : "ours");
    }
    atomic_store(&chosen, on);
}

bool os_dconv_enabled(void)
{
    pthread_once(&choose_once, choose);
    return atomic_load(&chosen) == 1;
}

bool os_dconv_force(bool on)
{
    if (on && !os_dconv_built())
        return false;
    pthread_once(&choose_once, choose);
    atomic_store(&chosen, on);
    return os_dconv_built();
}

#ifndef ONESPIKE_HAVE_DNNL

os_status os_dconv_create(const os_conv_shape *s, int n, bool bias, os_dconv **out)
{
    (void)s, (void)n, (void)bias;
    *out = NULL;
    return os_fail(OS_EINVAL, "this build has no oneDNN");
}
void os_dconv_destroy(os_dconv *d)
{
    (void)d;
}
int os_dconv_batch(const os_dconv *d)
{
    (void)d;
    return 0;
}
void os_dconv_forward(os_dconv *d, const float *x, const float *w, const float *b, float *y,
                      bool w_again)
{
    (void)d, (void)x, (void)w, (void)b, (void)y, (void)w_again;
}
void os_dconv_backward(os_dconv *d, const float *x, const float *w, const float *dy, float *dw,
                       float *db, float *dx)
{
    (void)d, (void)x, (void)w, (void)dy, (void)dw, (void)db, (void)dx;
}

#else

static dnnl_engine_t engine;
static dnnl_status_t engine_status = dnnl_runtime_error;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void engine_init(void)
{
    engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0);
}

/* A primitive that was created runs unless memory runs out inside oneDNN: a trainer cannot go
 * on without the step, so that ends the process with the reason. */
static void run(dnnl_primitive_t p, dnnl_stream_t s, int na, const dnnl_exec_arg_t *a)
{
    const dnnl_status_t st = dnnl_primitive_execute(p, s, na, a);
    if (st != dnnl_success) {
        fprintf(stderr, "onespike: a oneDNN convolution failed (status %d)\n", (int)st);
        abort();
    }
}

/* One tensor as oneDNN keeps it and as we do, with the reorder between the two (NULL when the
 * layouts are the same: then oneDNN works on our buffer itself). */
typedef struct {
    dnnl_memory_t theirs, ours;
    dnnl_primitive_t reorder; /* ours -> theirs for an input, theirs -> ours for an output */
    const void *holds;        /* an input: whose values theirs holds (the last reordered) */
    const void **holds_at;    /* &holds of the port that owns theirs */
    bool alias;               /* the same tensor as another port in the same layout: that
                                 port's memories are borrowed (not destroyed here) */
} port;

struct os_dconv {
    int n, out_c;
    bool bias;
    dnnl_stream_t stream;
    dnnl_primitive_t fwd, bwd_data, bwd_weights;
    port src, wei, dst;            /* forward */
    port wsrc, wddst, dwei;        /* backward to the weights (dwei: added to ours) */
    port ddst, bwei, dsrc;         /* backward to the data */
    dnnl_memory_t bias_m, dbias_m; /* plain [out_c] either way */
    float *dbias;                  /* the bias gradient before it is added */
};

#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((call) != dnnl_success)                                                                \
            goto fail;                                                                             \
    } while (0)

/* Our tensor of dims in tag's layout, with no buffer yet (each call sets it). */
static dnnl_status_t plain_md(dnnl_memory_desc_t *md, int nd, const dnnl_dims_t dims,
                              dnnl_format_tag_t tag)
{
    return dnnl_memory_desc_init_by_tag(md, nd, dims, dnnl_f32, tag);
}

/* The port of a primitive's tensor `what`: their layout from pd, ours plain. An input gets a
 * reorder ours -> theirs, an output theirs -> ours (with `accumulate`, added to ours). */
static dnnl_status_t port_init(port *p, const_dnnl_primitive_desc_t pd, dnnl_query_t what,
                               const dnnl_memory_desc_t *plain, bool input, bool accumulate)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, what, 0);
    dnnl_status_t st;
    p->holds_at = &p->holds;
    if (!md)
        return dnnl_invalid_arguments;
    if ((st = dnnl_memory_create(&p->ours, plain, engine, DNNL_MEMORY_NONE)))
        return st;
    if (dnnl_memory_desc_equal(md, plain) && !accumulate)
        return dnnl_success; /* oneDNN runs on our buffer */
    if ((st = dnnl_memory_create(&p->theirs, md, engine, DNNL_MEMORY_ALLOCATE)))
        return st;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    if (accumulate) {
        if ((st = dnnl_primitive_attr_create(&attr)) || (st = dnnl_post_ops_create(&po)) ||
            (st = dnnl_post_ops_append_sum(po, 1.0f)) ||
            (st = dnnl_primitive_attr_set_post_ops(attr, po)))
            goto out;
    }
    dnnl_primitive_desc_t rpd;
    st = input ? dnnl_reorder_primitive_desc_create(&rpd, plain, engine, md, engine, attr)
               : dnnl_reorder_primitive_desc_create(&rpd, md, engine, plain, engine, attr);
    if (!st) {
        st = dnnl_primitive_create(&p->reorder, rpd);
        dnnl_primitive_desc_destroy(rpd);
    }
out:
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* p takes a port of the same tensor in the same layout as it is (its memories, its reorder and
 * what it holds are shared from then on), or is made as port_init makes it. */
static dnnl_status_t port_share(port *p, port *same, const_dnnl_primitive_desc_t pd,
                                dnnl_query_t what, const dnnl_memory_desc_t *plain)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, what, 0);
    const dnnl_memory_desc_t *theirs = NULL;
    if (same->theirs && dnnl_memory_get_memory_desc(same->theirs, &theirs))
        theirs = NULL;
    if (md && (same->theirs ? theirs && dnnl_memory_desc_equal(md, theirs)
                            : dnnl_memory_desc_equal(md, plain))) {
        *p = *same;
        p->alias = true;
        return dnnl_success;
    }
    return port_init(p, pd, what, plain, true, false);
}

static void port_destroy(port *p)
{
    if (p->alias)
        return;
    dnnl_primitive_destroy(p->reorder);
    dnnl_memory_destroy(p->theirs);
    dnnl_memory_destroy(p->ours);
}

/* The memory the primitive reads for this input port, our buffer data set as ours; data is
 * reordered into theirs first, unless `again` says data's values are those theirs holds
 * already (the same buffer, unchanged since it was reordered). */
static dnnl_memory_t port_in(dnnl_stream_t s, port *p, const void *data, bool again)
{
    dnnl_memory_set_data_handle(p->ours, (void *)data);
    if (!p->reorder)
        return p->ours;
    if (!(again && *p->holds_at == data)) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, p->ours}, {DNNL_ARG_TO, p->theirs}};
        run(p->reorder, s, 2, a);
        *p->holds_at = data;
    }
    return p->theirs;
}

static dnnl_memory_t port_out(port *p, void *data)
{
    dnnl_memory_set_data_handle(p->ours, data);
    return p->reorder ? p->theirs : p->ours;
}

/* After the primitive: an output in their layout is reordered into (or added to) ours. */
static void port_done(dnnl_stream_t s, port *p)
{
    if (!p->reorder)
        return;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, p->theirs}, {DNNL_ARG_TO, p->ours}};
    run(p->reorder, s, 2, a);
}

os_status os_dconv_create(const os_conv_shape *s, int n, bool bias, os_dconv **out)
{
    *out = NULL;
    os_dnnl_one_thread(); /* before the primitives: laid out for the threads there are */
    pthread_once(&engine_once, engine_init);
    if (engine_status != dnnl_success)
        return os_fail(OS_EINVAL, "oneDNN has no CPU engine (status %d)", (int)engine_status);
    os_dconv *d = calloc(1, sizeof *d);
    float *dbias = bias ? malloc((size_t)s->out_c * sizeof *dbias) : NULL;
    if (!d || (bias && !dbias)) {
        free(d), free(dbias);
        return os_fail(OS_ENOMEM, "no memory for a oneDNN convolution");
    }
    d->n = n, d->out_c = s->out_c, d->bias = bias, d->dbias = dbias;
    dnnl_primitive_desc_t pf = NULL, pd = NULL, pw = NULL;
    const int oh = os_conv_out_h(s), ow = os_conv_out_w(s);
    const dnnl_dims_t src = {n, s->in_c, s->in_h, s->in_w}, wei = {s->out_c, s->in_c, s->kh, s->kw},
                      bia = {s->out_c}, dst = {n, s->out_c, oh, ow},
                      strides = {s->stride, s->stride}, pad = {s->pad, s->pad};
    dnnl_memory_desc_t p_src, p_wei, p_bia, p_dst, a_src, a_wei, a_dst;
    TRY(plain_md(&p_src, 4, src, dnnl_nchw));
    TRY(plain_md(&p_wei, 4, wei, dnnl_oihw));
    TRY(plain_md(&p_bia, 1, bia, dnnl_x));
    TRY(plain_md(&p_dst, 4, dst, dnnl_nchw));
    TRY(plain_md(&a_src, 4, src, dnnl_format_tag_any));
    TRY(plain_md(&a_wei, 4, wei, dnnl_format_tag_any));
    TRY(plain_md(&a_dst, 4, dst, dnnl_format_tag_any));
    dnnl_convolution_desc_t cf, cd, cw;
    TRY(dnnl_convolution_forward_desc_init(&cf, dnnl_forward_training, dnnl_convolution_direct,
                                           &a_src, &a_wei, bias ? &p_bia : NULL, &a_dst, strides,
                                           pad, pad));
    TRY(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &a_src, &a_wei,
                                                 &a_dst, strides, pad, pad));
    TRY(dnnl_convolution_backward_weights_desc_init(&cw, dnnl_convolution_direct, &a_src, &a_wei,
                                                    bias ? &p_bia : NULL, &a_dst, strides, pad,
                                                    pad));
    TRY(dnnl_primitive_desc_create(&pf, &cf, NULL, engine, NULL));
    TRY(dnnl_primitive_desc_create(&pd, &cd, NULL, engine, pf));
    TRY(dnnl_primitive_desc_create(&pw, &cw, NULL, engine, pf));
    TRY(dnnl_primitive_create(&d->fwd, pf));
    TRY(dnnl_primitive_create(&d->bwd_data, pd));
    TRY(dnnl_primitive_create(&d->bwd_weights, pw));
    TRY(port_init(&d->src, pf, dnnl_query_src_md, &p_src, true, false));
    TRY(port_init(&d->wei, pf, dnnl_query_weights_md, &p_wei, true, false));
    TRY(port_init(&d->dst, pf, dnnl_query_dst_md, &p_dst, false, false));
    /* the backward passes read the forward's input and weights and one dy: where they want
     * them in the same layout, one reorder serves (port_share) */
    TRY(port_share(&d->wsrc, &d->src, pw, dnnl_query_src_md, &p_src));
    TRY(port_init(&d->wddst, pw, dnnl_query_diff_dst_md, &p_dst, true, false));
    TRY(port_init(&d->dwei, pw, dnnl_query_diff_weights_md, &p_wei, false, true));
    TRY(port_share(&d->ddst, &d->wddst, pd, dnnl_query_diff_dst_md, &p_dst));
    TRY(port_init(&d->dsrc, pd, dnnl_query_diff_src_md, &p_src, false, false));
    TRY(port_share(&d->bwei, &d->wei, pd, dnnl_query_weights_md, &p_wei));
    if (bias) {
        TRY(dnnl_memory_create(&d->bias_m, &p_bia, engine, DNNL_MEMORY_NONE));
        TRY(dnnl_memory_create(&d->dbias_m, &p_bia, engine, dbias));
    }
    TRY(dnnl_stream_create(&d->stream, engine, dnnl_stream_default_flags));
    dnnl_primitive_desc_destroy(pf), dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_desc_destroy(pw);
    *out = d;
    return OS_OK;
fail:
    dnnl_primitive_desc_destroy(pf), dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_desc_destroy(pw);
    os_dconv_destroy(d);
    return os_fail(OS_EINVAL,
                   "oneDNN cannot run a %dx%dx%d -> %d convolution (kernel %dx%d, stride %d) "
                   "over %d images",
                   s->in_c, s->in_h, s->in_w, s->out_c, s->kh, s->kw, s->stride, n);
}

void os_dconv_destroy(os_dconv *d)
{
    if (!d)
        return;
    dnnl_primitive_destroy(d->fwd), dnnl_primitive_destroy(d->bwd_data);
    dnnl_primitive_destroy(d->bwd_weights);
    port *ports[] = {&d->src,  &d->wei,  &d->dst,  &d->wsrc, &d->wddst,
                     &d->dwei, &d->ddst, &d->bwei, &d->dsrc};
    for (size_t i = 0; i < sizeof ports / sizeof *ports; i++)
        port_destroy(ports[i]);
    dnnl_memory_destroy(d->bias_m), dnnl_memory_destroy(d->dbias_m);
    dnnl_stream_destroy(d->stream);
    free(d->dbias);
    free(d);
}

int os_dconv_batch(const os_dconv *d)
{
    return d->n;
}

void os_dconv_forward(os_dconv *d, const float *x, const float *w, const float *b, float *y,
                      bool w_again)
{
    os_dnnl_one_thread();
    /* new values, maybe in the same buffers: what the backward's own ports hold is stale */
    if (!d->wsrc.alias)
        d->wsrc.holds = NULL;
    if (!d->bwei.alias)
        d->bwei.holds = NULL;
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, port_in(d->stream, &d->src, x, false)},
                            {DNNL_ARG_WEIGHTS, port_in(d->stream, &d->wei, w, w_again)},
                            {DNNL_ARG_DST, port_out(&d->dst, y)}};
    int na = 3;
    if (d->bias) {
        dnnl_memory_set_data_handle(d->bias_m, (void *)b);
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, d->bias_m};
    }
    run(d->fwd, d->stream, na, a);
    port_done(d->stream, &d->dst);
    dnnl_stream_wait(d->stream);
}

void os_dconv_backward(os_dconv *d, const float *x, const float *w, const float *dy, float *dw,
                       float *db, float *dx)
{
    os_dnnl_one_thread();
    if (dw) {
        dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, port_in(d->stream, &d->wsrc, x, true)},
                                {DNNL_ARG_DIFF_DST, port_in(d->stream, &d->wddst, dy, false)},
                                {DNNL_ARG_DIFF_WEIGHTS, port_out(&d->dwei, dw)}};
        int na = 3;
        if (d->bias)
            a[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, d->dbias_m};
        run(d->bwd_weights, d->stream, na, a);
        port_done(d->stream, &d->dwei); /* dw += */
    }
    if (dx) {
        /* dy as the weights' pass reordered it, if both want the same layout */
        const bool again = dw && d->ddst.alias;
        dnnl_exec_arg_t b[3] = {{DNNL_ARG_DIFF_DST, port_in(d->stream, &d->ddst, dy, again)},
                                {DNNL_ARG_WEIGHTS, port_in(d->stream, &d->bwei, w, true)},
                                {DNNL_ARG_DIFF_SRC, port_out(&d->dsrc, dx)}};
        run(d->bwd_data, d->stream, 3, b);
        port_done(d->stream, &d->dsrc);
    }
    dnnl_stream_wait(d->stream);
    if (dw && d->bias && db)
        for (int o = 0; o < d->out_c; o++)
            db[o] += d->dbias[o];
}

#endif
