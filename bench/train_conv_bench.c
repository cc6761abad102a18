/* train_conv_bench - the training convolutions of one network, ours against oneDNN's, layer by
 * layer and in total: forward, backward (to the data and the weights; the weights' part
 * apart), on one thread.
 *
 *   train_conv_bench [ARCH [INPUT [BATCH [REPS]]]]   (default resnet18 64 32 5)
 *
 * The network is the recipe ARCH at width x0.5 with 1 Unit at stage 2 (bench/train_bench.sh's).
 * For every conv of it, each way is timed REPS times after a warm-up call, best time kept:
 *   ours       core/train/grad.c: im2col in cache-sized chunks + OpenBLAS SGEMM, planar NCHW;
 *   dnnl nchw  oneDNN on the same plain NCHW / OIHW buffers (what a drop-in call would get);
 *   dnnl nhwc  oneDNN on channels-last activations (NHWC), weights in its own layout;
 *   dnnl any   oneDNN with the layouts it chooses (blocked, e.g. nChw8c), reorders excluded
 *              (what it gives a trainer that keeps its tensors in those layouts throughout);
 *   trainer    the trainer's own use of oneDNN (core/train/dconv.c): dnnl any with the reorders
 *              from and to our NCHW buffers, the backward reusing the forward's.
 * Every oneDNN result is checked against ours (max relative difference printed). The last line
 * is a JSON summary. The question it answers: would the trainer be faster with oneDNN's
 * convolutions (issue 16), on this machine? Run it on an otherwise idle machine, with
 * OMP_NUM_THREADS=1 (Debian's oneDNN uses OpenMP). Built only where libdnnl-dev is installed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

#include "dconv.h"
#include "grad.h"
#include "graph.h"
#include "onespike/arch.h"
#include "onespike/clock.h"
#include "onespike/net.h"

#define CHECK(call)                                                                            \
    do {                                                                                       \
        dnnl_status_t s_ = (call);                                                             \
        if (s_ != dnnl_success) {                                                              \
            fprintf(stderr, "train_conv_bench: %s failed (%d) at line %d\n", #call, (int)s_,    \
                    __LINE__);                                                                 \
            exit(2);                                                                           \
        }                                                                                      \
    } while (0)

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static float *filled(size_t n, unsigned seed)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "train_conv_bench: no memory\n");
        exit(2);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
    return p;
}

static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)a[i]));
    }
    return m > 0 ? d / m : d;
}

typedef struct {
    double fwd, bwd, bwd_weights; /* best seconds: forward, backward (data + weights), weights */
} times;

/* The layouts of a oneDNN convolution: ours (NCHW / OIHW, on our buffers), channels-last
 * activations, or whatever oneDNN prefers. */
typedef enum { L_NCHW, L_NHWC, L_ANY, L_COUNT } layout;
static const char *const layout_name[L_COUNT] = {"nchw", "nhwc", "any "};

typedef struct {
    dnnl_primitive_t fwd, bwd_data, bwd_weights;
    dnnl_memory_t src, wei, bias, dst, dsrc, dwei, dbias, ddst;
} dconv;

static dnnl_memory_t mem_of(const_dnnl_primitive_desc_t pd, dnnl_query_t what, int idx,
                            float *plain_data)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, what, idx);
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, engine, plain_data ? plain_data : DNNL_MEMORY_ALLOCATE));
    return m;
}

static void fill_mem(dnnl_memory_t m, unsigned seed)
{
    const dnnl_memory_desc_t *md;
    CHECK(dnnl_memory_get_memory_desc(m, &md));
    size_t bytes = dnnl_memory_desc_get_size(md);
    void *p;
    CHECK(dnnl_memory_get_data_handle(m, &p));
    float *f = filled(bytes / sizeof(float), seed);
    memcpy(p, f, bytes);
    free(f);
}

static void dconv_create(dconv *d, const os_conv_shape *s, int n, layout lay, float *x, float *w,
                         float *b, float *y, float *dx, float *dw, float *db, float *dy)
{
    const int oh = os_conv_out_h(s), ow = os_conv_out_w(s);
    dnnl_dims_t src = {n, s->in_c, s->in_h, s->in_w}, wei = {s->out_c, s->in_c, s->kh, s->kw},
                bia = {s->out_c}, dst = {n, s->out_c, oh, ow}, st = {s->stride, s->stride},
                pad = {s->pad, s->pad};
    const bool plain = lay == L_NCHW;
    dnnl_format_tag_t at = lay == L_NCHW ? dnnl_nchw : lay == L_NHWC ? dnnl_nhwc
                                                                     : dnnl_format_tag_any;
    dnnl_format_tag_t wt = plain ? dnnl_oihw : dnnl_format_tag_any;
    dnnl_memory_desc_t msrc, mwei, mbia, mdst;
    CHECK(dnnl_memory_desc_init_by_tag(&msrc, 4, src, dnnl_f32, at));
    CHECK(dnnl_memory_desc_init_by_tag(&mwei, 4, wei, dnnl_f32, wt));
    CHECK(dnnl_memory_desc_init_by_tag(&mbia, 1, bia, dnnl_f32, dnnl_x));
    CHECK(dnnl_memory_desc_init_by_tag(&mdst, 4, dst, dnnl_f32, at));
    dnnl_convolution_desc_t cf, cd, cw;
    CHECK(dnnl_convolution_forward_desc_init(&cf, dnnl_forward_training, dnnl_convolution_direct,
                                             &msrc, &mwei, &mbia, &mdst, st, pad, pad));
    CHECK(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &msrc, &mwei,
                                                   &mdst, st, pad, pad));
    CHECK(dnnl_convolution_backward_weights_desc_init(&cw, dnnl_convolution_direct, &msrc, &mwei,
                                                      &mbia, &mdst, st, pad, pad));
    dnnl_primitive_desc_t pf, pd, pw;
    CHECK(dnnl_primitive_desc_create(&pf, &cf, NULL, engine, NULL));
    CHECK(dnnl_primitive_desc_create(&pd, &cd, NULL, engine, pf));
    CHECK(dnnl_primitive_desc_create(&pw, &cw, NULL, engine, pf));
    CHECK(dnnl_primitive_create(&d->fwd, pf));
    CHECK(dnnl_primitive_create(&d->bwd_data, pd));
    CHECK(dnnl_primitive_create(&d->bwd_weights, pw));
    d->src = mem_of(pf, dnnl_query_src_md, 0, plain ? x : NULL);
    d->wei = mem_of(pf, dnnl_query_weights_md, 0, plain ? w : NULL);
    d->bias = mem_of(pf, dnnl_query_weights_md, 1, b);
    d->dst = mem_of(pf, dnnl_query_dst_md, 0, plain ? y : NULL);
    d->dsrc = mem_of(pd, dnnl_query_diff_src_md, 0, plain ? dx : NULL);
    d->ddst = mem_of(pd, dnnl_query_diff_dst_md, 0, plain ? dy : NULL);
    d->dwei = mem_of(pw, dnnl_query_diff_weights_md, 0, plain ? dw : NULL);
    d->dbias = mem_of(pw, dnnl_query_diff_weights_md, 1, db);
    if (!plain) {
        fill_mem(d->src, 1), fill_mem(d->wei, 2), fill_mem(d->ddst, 3);
    }
    const char *impl;
    CHECK(dnnl_primitive_desc_query(pf, dnnl_query_impl_info_str, 0, &impl));
    printf("      dnnl %s: forward %s", layout_name[lay], impl);
    CHECK(dnnl_primitive_desc_query(pw, dnnl_query_impl_info_str, 0, &impl));
    printf(", weights %s\n", impl);
    dnnl_primitive_desc_destroy(pf), dnnl_primitive_desc_destroy(pd), dnnl_primitive_desc_destroy(pw);
}

static void dconv_run(dconv *d, int which)
{
    dnnl_exec_arg_t a[4];
    int n = 0;
    if (which == 0) {
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, d->src};
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, d->wei};
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, d->bias};
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, d->dst};
        CHECK(dnnl_primitive_execute(d->fwd, stream, n, a));
    } else if (which == 1) {
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, d->ddst};
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, d->wei};
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, d->dsrc};
        CHECK(dnnl_primitive_execute(d->bwd_data, stream, n, a));
    } else {
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, d->src};
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, d->ddst};
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, d->dwei};
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, d->dbias};
        CHECK(dnnl_primitive_execute(d->bwd_weights, stream, n, a));
    }
    CHECK(dnnl_stream_wait(stream));
}

static void dconv_destroy(dconv *d)
{
    dnnl_primitive_destroy(d->fwd), dnnl_primitive_destroy(d->bwd_data);
    dnnl_primitive_destroy(d->bwd_weights);
    dnnl_memory_t m[] = {d->src, d->wei, d->bias, d->dst, d->dsrc, d->dwei, d->dbias, d->ddst};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        dnnl_memory_destroy(m[i]);
}

static const os_tensor_view *find_tensor(const void *ctx, const char *name)
{
    const os_arch *a = ctx;
    size_t n;
    const os_tensor_view *t = os_arch_tensors(a, &n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return &t[i];
    return NULL;
}

int main(int argc, char **argv)
{
    const char *arch = argc > 1 ? argv[1] : "resnet18";
    int input = argc > 2 ? atoi(argv[2]) : 64, batch = argc > 3 ? atoi(argv[3]) : 32;
    int reps = argc > 4 ? atoi(argv[4]) : 5;
    if (input < 8 || batch < 1 || reps < 1) {
        fprintf(stderr, "usage: train_conv_bench [ARCH [INPUT [BATCH [REPS]]]]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    os_arch_opts o = {.name = arch, .width_mult = 0.5, .input = input, .classes = 21, .units = 1,
                      .unit_at = 2, .batchnorm = true, .seed = 1};
    os_arch *a;
    os_graph *g;
    os_net *net;
    if (os_arch_build(&o, &a) || os_graph_from_json(os_arch_layers(a), arch, &g) ||
        os_net_build_ex(g, 3, input, input, 21, find_tensor, a, false, arch, &net)) {
        fprintf(stderr, "train_conv_bench: %s: %s\n", arch, os_errdetail());
        return 2;
    }
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    printf("train_conv_bench: %s x0.5 (1 Unit at stage 2), %dx%d, batch %d, best of %d, 1 thread "
           "(OpenBLAS 1, oneDNN %s)\n",
           arch, input, input, batch, reps, getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS")
                                                                      : "default threads");
    times tot[2 + L_COUNT] = {{0}};
    double worst[2] = {0};
    int convs = 0;
    for (int i = 0; i < os_net_count(net); i++) {
        const os_layer *L = os_net_layer(net, i);
        if (L->op != OS_OP_CONV)
            continue;
        int ic, ih, iw;
        if (L->from[0] == OS_NET_INPUT)
            ic = 3, ih = input, iw = input;
        else
            ic = os_net_layer(net, L->from[0])->c, ih = os_net_layer(net, L->from[0])->h,
            iw = os_net_layer(net, L->from[0])->w;
        os_conv_shape s = {ic, ih, iw, L->out, L->kh, L->kw, L->stride, L->pad};
        const int oh = os_conv_out_h(&s), ow = os_conv_out_w(&s);
        size_t nx = (size_t)batch * ic * ih * iw, ny = (size_t)batch * L->out * oh * ow;
        size_t nw = (size_t)L->out * ic * L->kh * L->kw;
        float *x = filled(nx, 1), *w = filled(nw, 2), *dy = filled(ny, 3), *b = filled(L->out, 4);
        float *y = malloc(ny * sizeof *y), *dx = malloc(nx * sizeof *dx);
        float *dw = calloc(nw, sizeof *dw), *db = calloc((size_t)L->out, sizeof *db);
        float *y2 = malloc(ny * sizeof *y2), *dx2 = malloc(nx * sizeof *dx2);
        float *dw2 = malloc(nw * sizeof *dw2), *db2 = malloc((size_t)L->out * sizeof *db2);
        float *col = malloc(os_conv_batch_floats(&s, batch) * sizeof *col);
        float *tmp = malloc((nx > ny ? nx : ny) * sizeof *tmp);
        /* ours: forward; backward to data and weights is one call (dw += and dx =), timed
         * whole and, with dx NULL, to the weights alone */
        double best[3] = {1e9, 1e9, 1e9};
        for (int r = 0; r <= reps; r++) {
            double t0 = os_clock_s();
            os_conv2d_batch(&s, batch, x, w, b, y, col, tmp);
            double t1 = os_clock_s();
            memset(dw, 0, nw * sizeof *dw), memset(db, 0, (size_t)L->out * sizeof *db);
            os_conv2d_backward_batch(&s, batch, x, w, dy, dw, db, NULL, col, tmp);
            double t2 = os_clock_s();
            os_conv2d_backward_batch(&s, batch, x, w, dy, dw2, db2, dx, col, tmp);
            double t3 = os_clock_s();
            if (r) {
                best[0] = fmin(best[0], t1 - t0);
                best[2] = fmin(best[2], t2 - t1);
                best[1] = fmin(best[1], t3 - t2);
            }
        }
        const times ours = {best[0], best[1], best[2]};
        printf("  %-18s %3dx%-3d -> %3d k%d s%d  %3dx%-3d  ours fwd %.3f bwd %.3f (weights %.3f) ms\n",
               L->name, ic, ih, L->out, L->kh, L->stride, oh, ow, 1e3 * best[0], 1e3 * best[1],
               1e3 * best[2]);
        times t[2 + L_COUNT];
        t[0] = ours;
        { /* the trainer's: a forward, then its backward (with and without dx) */
            os_dconv *dc;
            if (os_dconv_create(&s, batch, true, &dc)) {
                fprintf(stderr, "train_conv_bench: %s\n", os_errdetail());
                return 2;
            }
            double bb[3] = {1e9, 1e9, 1e9};
            for (int r = 0; r <= reps; r++) {
                double t0 = os_clock_s();
                os_dconv_forward(dc, x, w, b, y2, false);
                double t1 = os_clock_s();
                os_dconv_backward(dc, x, w, dy, dw2, db2, NULL);
                double t2 = os_clock_s();
                os_dconv_forward(dc, x, w, b, y2, false);
                double t3 = os_clock_s();
                os_dconv_backward(dc, x, w, dy, dw2, db2, dx2);
                double t4 = os_clock_s();
                if (r) {
                    bb[0] = fmin(bb[0], fmin(t1 - t0, t3 - t2));
                    bb[2] = fmin(bb[2], t2 - t1);
                    bb[1] = fmin(bb[1], t4 - t3);
                }
            }
            os_dconv_destroy(dc);
            t[1 + L_COUNT] = (times){bb[0], bb[1], bb[2]};
            printf("      trainer  : fwd %.3f bwd %.3f (weights %.3f) ms\n", 1e3 * bb[0],
                   1e3 * bb[1], 1e3 * bb[2]);
        }
        for (int lay = 0; lay < L_COUNT; lay++) {
            dconv d;
            dconv_create(&d, &s, batch, (layout)lay, x, w, b, y2, dx2, dw2, db2, dy);
            double bb[3] = {1e9, 1e9, 1e9};
            for (int r = 0; r <= reps; r++)
                for (int k = 0; k < 3; k++) {
                    double t0 = os_clock_s();
                    dconv_run(&d, k);
                    if (r)
                        bb[k] = fmin(bb[k], os_clock_s() - t0);
                }
            t[1 + lay] = (times){bb[0], bb[1] + bb[2], bb[2]};
            if (lay == L_NCHW) { /* the same numbers as ours, up to summation order */
                worst[0] = fmax(worst[0], rel_diff(y, y2, ny));
                worst[1] = fmax(worst[1], fmax(rel_diff(dx, dx2, nx), rel_diff(dw, dw2, nw)));
            }
            printf("      dnnl %s: fwd %.3f bwd %.3f (weights %.3f) ms\n", layout_name[lay],
                   1e3 * bb[0], 1e3 * (bb[1] + bb[2]), 1e3 * bb[2]);
            dconv_destroy(&d);
        }
        for (int k = 0; k < 2 + L_COUNT; k++) {
            tot[k].fwd += t[k].fwd, tot[k].bwd += t[k].bwd;
            tot[k].bwd_weights += t[k].bwd_weights;
        }
        convs++;
        free(x), free(w), free(dy), free(b), free(y), free(dx), free(dw), free(db);
        free(y2), free(dx2), free(dw2), free(db2), free(col), free(tmp);
    }
    static const char *const name[2 + L_COUNT] = {"ours", "dnnl nchw", "dnnl nhwc", "dnnl any",
                                                  "trainer"};
    printf("\ntotal over %d convs (ms)  forward  backward (weights)     all  / ours\n", convs);
    double ours_all = tot[0].fwd + tot[0].bwd;
    for (int k = 0; k < 2 + L_COUNT; k++) {
        double all = tot[k].fwd + tot[k].bwd;
        printf("  %-22s %8.2f %9.2f %10.2f %8.2f  %5.2f\n", name[k], 1e3 * tot[k].fwd,
               1e3 * tot[k].bwd, 1e3 * tot[k].bwd_weights, 1e3 * all, all / ours_all);
    }
    printf("max relative difference from ours (dnnl nchw): forward %.2g, backward %.2g\n",
           worst[0], worst[1]);
    printf("{\"arch\":\"%s\",\"input\":%d,\"batch\":%d,\"convs\":%d", arch, input, batch, convs);
    for (int k = 0; k < 2 + L_COUNT; k++)
        printf(",\"%s\":{\"fwd_ms\":%.3f,\"bwd_ms\":%.3f,\"weights_ms\":%.3f}", name[k],
               1e3 * tot[k].fwd, 1e3 * tot[k].bwd, 1e3 * tot[k].bwd_weights);
    printf("}\n");
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
    os_net_destroy(net);
    os_graph_destroy(g);
    os_arch_destroy(a);
    return 0;
}
