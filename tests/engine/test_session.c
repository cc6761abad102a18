/* Session: the engine's answers against a float reference written from the spec in this file
 * (direct convolution, unfolded BatchNorm in double, LIF by the book), on a real JPEG. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "layers.h"
#include "onespike/session.h"
#include "testutil.h"

#define C 8
#define S 32
#define K 5

static const char layers_json[] =
    "[{\"name\":\"conv1\",\"op\":\"conv\",\"from\":\"input\",\"out\":8,\"kernel\":3,\"pad\":1,\"weight\":\"conv1.w\"},"
    " {\"name\":\"bn1\",\"op\":\"bn\",\"weight\":\"bn1.g\",\"bias\":\"bn1.b\",\"mean\":\"bn1.m\",\"var\":\"bn1.v\"},"
    " {\"name\":\"lif1\",\"op\":\"lif\",\"threshold\":0.4,\"leak\":0.95},"
    " {\"name\":\"conv2\",\"op\":\"conv\",\"out\":8,\"kernel\":3,\"pad\":1,\"weight\":\"conv2.w\",\"bias\":\"conv2.b\"},"
    " {\"name\":\"bn2\",\"op\":\"bn\",\"weight\":\"bn2.g\",\"bias\":\"bn2.b\",\"mean\":\"bn2.m\",\"var\":\"bn2.v\",\"eps\":0.001},"
    " {\"name\":\"add\",\"op\":\"add\",\"from\":[\"bn2\",\"lif1\"]},"
    " {\"name\":\"bn3\",\"op\":\"bn\",\"weight\":\"bn3.g\",\"bias\":\"bn3.b\",\"mean\":\"bn3.m\",\"var\":\"bn3.v\"},"
    " {\"name\":\"lif2\",\"op\":\"lif\",\"threshold\":0.6,\"leak\":0.8},"
    " {\"name\":\"pool\",\"op\":\"avgpool\",\"kernel\":2},"
    " {\"name\":\"conv3\",\"op\":\"conv\",\"out\":8,\"kernel\":1,\"weight\":\"conv3.w\",\"bias\":\"conv3.b\"},"
    " {\"name\":\"relu\",\"op\":\"relu\"},"
    " {\"name\":\"mp\",\"op\":\"maxpool\",\"kernel\":3,\"stride\":2,\"pad\":1},"
    " {\"name\":\"gap\",\"op\":\"gap\"},"
    " {\"name\":\"fc\",\"op\":\"linear\",\"out\":5,\"weight\":\"fc.w\",\"bias\":\"fc.b\"}]";

enum { NT = 19 };

typedef struct {
    float conv1_w[C * 3 * 9], conv2_w[C * C * 9], conv2_b[C], conv3_w[C * C], conv3_b[C];
    float bn[3][4][C]; /* gamma, beta, mean, var */
    float fc_w[K * C], fc_b[K];
    os_tensor_view t[NT];
    char *dir, path[256];
} net_fixture;

static int setup(void **state)
{
    net_fixture *f = calloc(1, sizeof *f);
    tu_fill(f->conv1_w, sizeof f->conv1_w / 4, 11, 0.4f);
    tu_fill(f->conv2_w, sizeof f->conv2_w / 4, 12, 0.25f);
    tu_fill(f->conv2_b, C, 13, 0.1f);
    tu_fill(f->conv3_w, sizeof f->conv3_w / 4, 14, 0.5f);
    tu_fill(f->conv3_b, C, 15, 0.1f);
    tu_fill(f->fc_w, K * C, 16, 1.0f);
    tu_fill(f->fc_b, K, 17, 0.2f);
    for (int b = 0; b < 3; b++) {
        tu_fill(f->bn[b][0], C, 20 + (uint32_t)b, 0.5f);
        tu_fill(f->bn[b][1], C, 30 + (uint32_t)b, 0.2f);
        tu_fill(f->bn[b][2], C, 40 + (uint32_t)b, 0.2f);
        tu_fill(f->bn[b][3], C, 50 + (uint32_t)b, 0.5f);
        for (int i = 0; i < C; i++)
            f->bn[b][0][i] += 1.0f, f->bn[b][3][i] += 1.0f; /* gamma ~1, var in (0.5, 1.5) */
    }
    int k = 0;
    f->t[k++] = (os_tensor_view){"conv1.w", 4, {C, 3, 3, 3}, f->conv1_w, C * 27};
    f->t[k++] = (os_tensor_view){"conv2.w", 4, {C, C, 3, 3}, f->conv2_w, C * C * 9};
    f->t[k++] = (os_tensor_view){"conv2.b", 1, {C}, f->conv2_b, C};
    f->t[k++] = (os_tensor_view){"conv3.w", 4, {C, C, 1, 1}, f->conv3_w, C * C};
    f->t[k++] = (os_tensor_view){"conv3.b", 1, {C}, f->conv3_b, C};
    static const char *const bn_names[3][4] = {{"bn1.g", "bn1.b", "bn1.m", "bn1.v"},
                                               {"bn2.g", "bn2.b", "bn2.m", "bn2.v"},
                                               {"bn3.g", "bn3.b", "bn3.m", "bn3.v"}};
    for (int b = 0; b < 3; b++)
        for (int j = 0; j < 4; j++)
            f->t[k++] = (os_tensor_view){bn_names[b][j], 1, {C}, f->bn[b][j], C};
    f->t[k++] = (os_tensor_view){"fc.w", 2, {K, C}, f->fc_w, K * C};
    f->t[k++] = (os_tensor_view){"fc.b", 1, {K}, f->fc_b, K};
    assert_int_equal(k, NT);
    f->dir = tu_tmpdir();
    snprintf(f->path, sizeof f->path, "%s/net.safetensors", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    net_fixture *f = *state;
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static os_model *write_and_load(net_fixture *f, int timesteps)
{
    json_t *doc = tu_doc(layers_json, S, S, K, timesteps);
    assert_int_equal(os_model_write(f->path, doc, f->t, NT), OS_OK);
    json_decref(doc);
    os_model *m = NULL;
    assert_int_equal(os_model_load(f->path, &m), OS_OK);
    return m;
}

/* ---- the reference: the same network, computed the slow and obvious way ---- */

static void ref_bn(float *x, const float p[4][C], double eps, int hw)
{
    for (int c = 0; c < C; c++)
        for (int i = 0; i < hw; i++) {
            double v = (x[c * hw + i] - p[2][c]) / sqrt((double)p[3][c] + eps);
            x[c * hw + i] = (float)(v * p[0][c] + p[1][c]);
        }
}

static void ref_lif(float *u, const float *in, float *s, int n, float thr, float leak)
{
    for (int i = 0; i < n; i++) {
        u[i] = leak * u[i] + in[i];
        s[i] = u[i] > thr ? 1.0f : 0.0f;
        u[i] -= s[i] * thr;
    }
}

static void reference(const net_fixture *f, const float *x, int T, float *probs)
{
    enum { HW = S * S, H2 = S / 2, HW2 = H2 * H2, H3 = H2 / 2 + (H2 % 2) };
    static float a1[C * HW], s1[C * HW], a2[C * HW], u1[C * HW], u2[C * HW], s2[C * HW];
    static float p2[C * HW2], a3[C * HW2];
    double logits[K] = {0};
    memset(u1, 0, sizeof u1);
    memset(u2, 0, sizeof u2);
    os_conv_shape c1 = {3, S, S, C, 3, 3, 1, 1}, c2 = {C, S, S, C, 3, 3, 1, 1};
    os_conv_shape c3 = {C, H2, H2, C, 1, 1, 1, 0};
    for (int t = 0; t < T; t++) {
        os_conv2d_naive(&c1, x, f->conv1_w, NULL, a1);
        ref_bn(a1, f->bn[0], 1e-5, HW);
        ref_lif(u1, a1, s1, C * HW, 0.4f, 0.95f);
        os_conv2d_naive(&c2, s1, f->conv2_w, f->conv2_b, a2);
        ref_bn(a2, f->bn[1], 1e-3, HW);
        for (int i = 0; i < C * HW; i++)
            a2[i] += s1[i];
        ref_bn(a2, f->bn[2], 1e-5, HW);
        ref_lif(u2, a2, s2, C * HW, 0.6f, 0.8f);
        for (int c = 0; c < C; c++) /* avgpool 2 */
            for (int y = 0; y < H2; y++)
                for (int xx = 0; xx < H2; xx++) {
                    const float *q = s2 + c * HW + 2 * y * S + 2 * xx;
                    p2[c * HW2 + y * H2 + xx] = (q[0] + q[1] + q[S] + q[S + 1]) / 4;
                }
        os_conv2d_naive(&c3, p2, f->conv3_w, f->conv3_b, a3);
        double g[C];
        for (int c = 0; c < C; c++) { /* relu, maxpool 3/2/1 (a 8x8 map), gap */
            double sum = 0;
            for (int y = 0; y < H3; y++)
                for (int xx = 0; xx < H3; xx++) {
                    float mx = -INFINITY;
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++) {
                            int yy = 2 * y + dy, xc = 2 * xx + dx;
                            if (yy >= 0 && yy < H2 && xc >= 0 && xc < H2) {
                                float v = fmaxf(a3[c * HW2 + yy * H2 + xc], 0);
                                mx = fmaxf(mx, v);
                            }
                        }
                    sum += mx;
                }
            g[c] = sum / (H3 * H3);
        }
        for (int k = 0; k < K; k++) {
            double z = f->fc_b[k];
            for (int c = 0; c < C; c++)
                z += f->fc_w[k * C + c] * g[c];
            logits[k] += z;
        }
    }
    double mx = logits[0], sum = 0;
    for (int k = 1; k < K; k++)
        mx = fmax(mx, logits[k]);
    for (int k = 0; k < K; k++)
        sum += exp(logits[k] - mx);
    for (int k = 0; k < K; k++)
        probs[k] = (float)(exp(logits[k] - mx) / sum);
}

static void load_fixture_input(const os_model *m, float *x)
{
    size_t len;
    unsigned char *jpeg = tu_slurp(FIXTURE_DIR "/ucm_airplane00.jpg", &len);
    assert_non_null(jpeg);
    os_decoder *d;
    os_rgb_image img;
    assert_int_equal(os_decoder_create(&d), OS_OK);
    assert_int_equal(os_decoder_decode(d, jpeg, len, 0, S, S, &img), OS_OK);
    os_image_to_tensor(&img, S, S, OS_RESIZE_STRETCH, os_model_mean(m), os_model_std(m), x);
    os_decoder_destroy(d);
    free(jpeg);
}

static void check_against_reference(net_fixture *f, int model_T, int run_T)
{
    os_model *m = write_and_load(f, model_T);
    static float x[3 * S * S];
    load_fixture_input(m, x);
    float want[K], got[K], logits[K];
    reference(f, x, run_T, want);

    os_session *s;
    os_session_opts o = {.timesteps = run_T == model_T ? 0 : run_T, .count_spikes = true};
    assert_int_equal(os_session_create(m, &o, &s), OS_OK);
    assert_int_equal(os_session_timesteps(s), run_T);
    size_t len;
    unsigned char *jpeg = tu_slurp(FIXTURE_DIR "/ucm_airplane00.jpg", &len);
    assert_int_equal(os_session_classify(s, jpeg, len, got), OS_OK);
    double sum = 0, maxdiff = 0;
    for (int k = 0; k < K; k++) {
        sum += got[k];
        maxdiff = fmax(maxdiff, fabs(got[k] - want[k]));
    }
    printf("T=%d: max |p - p_ref| = %g\n", run_T, maxdiff);
    assert_true(maxdiff < 1e-5);
    assert_true(fabs(sum - 1.0) < 1e-5);
    /* Not a degenerate net: the answer is not uniform. */
    assert_true(fabs(got[0] - 0.2f) > 1e-3 || fabs(got[1] - 0.2f) > 1e-3);

    /* Running again gives bit-identical results (state is reset between images). */
    memcpy(os_session_input(s), x, sizeof x);
    os_session_run(s, want, logits);
    assert_memory_equal(want, got, sizeof got);

    uint64_t spikes, steps;
    assert_true(os_session_spikes(s, 0, &spikes, &steps));
    assert_int_equal(steps, 2ull * run_T * C * S * S);
    assert_true(spikes > 0 && spikes < steps);
    assert_false(os_session_spikes(s, 2, &spikes, &steps));
    free(jpeg);
    os_session_destroy(s);
    os_model_destroy(m);
}

static void test_t1_matches_reference(void **state)
{
    check_against_reference(*state, 1, 1);
}

static void test_t3_matches_reference(void **state)
{
    check_against_reference(*state, 3, 3);
}

static void test_timesteps_override(void **state)
{
    check_against_reference(*state, 1, 4);
}

static void test_folding(void **state)
{
    net_fixture *f = *state;
    os_model *m = write_and_load(f, 1);
    const os_net *net = os_model_net(m);
    assert_true(os_net_layer(net, 1)->folded);  /* bn1 after conv1 */
    assert_true(os_net_layer(net, 4)->folded);  /* bn2 after conv2 */
    assert_false(os_net_layer(net, 6)->folded); /* bn3 after an add */
    assert_true(os_net_layer(net, 0)->is_static);
    assert_false(os_net_layer(net, 3)->is_static);
    os_model_destroy(m);
}

static void test_bad_images(void **state)
{
    net_fixture *f = *state;
    os_model *m = write_and_load(f, 1);
    os_session *s;
    os_session_opts o = {.max_pixels = 1000};
    assert_int_equal(os_session_create(m, &o, &s), OS_OK);
    float p[K];
    size_t len;
    unsigned char *jpeg = tu_slurp(FIXTURE_DIR "/ucm_airplane00.jpg", &len);
    assert_int_equal(os_session_classify(s, jpeg, len, p), OS_ETOOBIG);
    assert_int_equal(os_session_classify(s, jpeg, 0, p), OS_EEMPTY);
    assert_int_equal(os_session_classify(s, "\x89PNG\r\n\x1a\n", 8, p), OS_EUNSUPPORTED);
    free(jpeg);
    os_session_destroy(s);
    os_model_destroy(m);
}

static void test_topk(void **state)
{
    (void)state;
    const float p[6] = {0.1f, 0.3f, 0.05f, 0.3f, 0.2f, 0.05f};
    int idx[6];
    os_topk(p, 6, 4, idx);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 3);
    assert_int_equal(idx[2], 4);
    assert_int_equal(idx[3], 0);
    os_topk(p, 6, 9, idx); /* k capped at n */
    assert_int_equal(idx[5], 5);
}

/* A batch gives every image exactly its answer alone, on both backends, at T = 1 and T = 3, for
 * batches of every size up to the session's room and in any order; images that fired at
 * different rates share the batch (real JPEGs, a recipe with convs of spikes and an add). */
/* Layer buffers are shared once their readers have run, but never by a static layer: at T > 1
 * it runs at step 0 only, so a buffer it took from an earlier layer would be overwritten by that
 * layer at the next step. The same net with its static shortcut (a conv of the input) listed
 * after the LIF layers and listed first gives the same logits, on both backends. */
static const char *const static_after_lif[2] = {
    "[{\"name\":\"conv1\",\"op\":\"conv\",\"from\":\"input\",\"out\":8,\"kernel\":3,\"pad\":1,"
    "\"weight\":\"conv1.w\"},"
    " {\"name\":\"lif1\",\"op\":\"lif\",\"threshold\":0.4,\"leak\":0.95},"
    " {\"name\":\"conv2\",\"op\":\"conv\",\"out\":8,\"kernel\":3,\"pad\":1,\"weight\":\"conv2.w\"},"
    " {\"name\":\"lif2\",\"op\":\"lif\",\"threshold\":0.4,\"leak\":0.95},"
    " {\"name\":\"convs\",\"op\":\"conv\",\"from\":\"input\",\"out\":8,\"kernel\":3,\"pad\":1,"
    "\"weight\":\"convs.w\"},"
    " {\"name\":\"add\",\"op\":\"add\",\"from\":[\"lif2\",\"convs\"]},"
    " {\"name\":\"gap\",\"op\":\"gap\"},"
    " {\"name\":\"fc\",\"op\":\"linear\",\"out\":5,\"weight\":\"fc.w\"}]",
    "[{\"name\":\"convs\",\"op\":\"conv\",\"from\":\"input\",\"out\":8,\"kernel\":3,\"pad\":1,"
    "\"weight\":\"convs.w\"},"
    " {\"name\":\"conv1\",\"op\":\"conv\",\"from\":\"input\",\"out\":8,\"kernel\":3,\"pad\":1,"
    "\"weight\":\"conv1.w\"},"
    " {\"name\":\"lif1\",\"op\":\"lif\",\"threshold\":0.4,\"leak\":0.95},"
    " {\"name\":\"conv2\",\"op\":\"conv\",\"out\":8,\"kernel\":3,\"pad\":1,\"weight\":\"conv2.w\"},"
    " {\"name\":\"lif2\",\"op\":\"lif\",\"threshold\":0.4,\"leak\":0.95},"
    " {\"name\":\"add\",\"op\":\"add\",\"from\":[\"lif2\",\"convs\"]},"
    " {\"name\":\"gap\",\"op\":\"gap\"},"
    " {\"name\":\"fc\",\"op\":\"linear\",\"out\":5,\"weight\":\"fc.w\"}]"};

static void test_static_layer_keeps_its_buffer(void **state)
{
    (void)state;
    static float w1[8 * 27], w2[8 * 72], ws[8 * 27], wf[40];
    tu_fill(w1, 8 * 27, 1, 0.5f), tu_fill(w2, 8 * 72, 2, 0.5f);
    tu_fill(ws, 8 * 27, 3, 5.0f), tu_fill(wf, 40, 4, 1.0f);
    os_tensor_view t[] = {{"conv1.w", 4, {8, 3, 3, 3}, w1, 8 * 27},
                          {"conv2.w", 4, {8, 8, 3, 3}, w2, 8 * 72},
                          {"convs.w", 4, {8, 3, 3, 3}, ws, 8 * 27},
                          {"fc.w", 2, {5, 8}, wf, 40}};
    char *dir = tu_tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    for (int dense = 0; dense < 2; dense++) {
        float logits[2][5];
        for (int order = 0; order < 2; order++) {
            json_t *doc = tu_doc(static_after_lif[order], 16, 16, 5, 3);
            assert_int_equal(os_model_write(path, doc, t, 4), OS_OK);
            json_decref(doc);
            os_model *m;
            assert_int_equal(os_model_load(path, &m), OS_OK);
            os_session *s;
            assert_int_equal(os_session_create(m, &(os_session_opts){.dense = dense}, &s), OS_OK);
            assert_int_equal(os_session_timesteps(s), 3);
            tu_fill(os_session_input(s), 3 * 16 * 16, 7, 1.0f);
            float p[5];
            os_session_run(s, p, logits[order]);
            os_session_destroy(s);
            os_model_destroy(m);
        }
        for (int k = 0; k < 5; k++) /* the same sums in the same order: equal floats */
            assert_float_equal(logits[0][k], logits[1][k], 0.0f);
    }
    tu_rmdir(dir);
}

static void test_batch_equals_single(void **state)
{
    (void)state;
    enum { NB = 5, NK = 4 };
    static const char *const files[] = {"ucm_beach00.jpg", "ucm_airplane00.jpg",
                                        "ucm_harbor10.jpg"};
    char *dir = tu_tmpdir();
    os_arch_opts o = {.name = "msresnet20",
                      .width_mult = 0.5,
                      .input = 32,
                      .classes = NK,
                      .spiking = true,
                      .batchnorm = true,
                      .threshold = 0.5f,
                      .leak = 1.0f,
                      .seed = 11};
    os_model_destroy(tu_arch_model(&o, dir)); /* writes dir/msresnet20.safetensors */
    char model_path[512];
    snprintf(model_path, sizeof model_path, "%s/msresnet20.safetensors", dir);
    unsigned char *jpeg[3];
    size_t len[3];
    for (int f = 0; f < 3; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", FIXTURE_DIR, files[f]);
        assert_non_null(jpeg[f] = tu_slurp(path, &len[f]));
    }
    static const char *const formats[] = {"fp32", "int8", "fp16"};
    os_model *m = NULL;
    for (int w = 0; w < 3; w++)
        for (int dense = 0; dense < 2; dense++)
            for (int T = 1; T <= 3; T += 2) {
                if (dense == 0 && T == 1) {
                    os_model_destroy(m);
                    assert_int_equal(
                        os_model_load_ex(model_path, &(os_model_opts){.weights = formats[w]}, &m),
                        OS_OK);
                }
                os_session_opts so = {.dense = dense, .timesteps = T, .max_batch = NB};
                os_session *single = NULL, *batch = NULL;
                assert_int_equal(
                    os_session_create(m, &(os_session_opts){.dense = dense, .timesteps = T},
                                      &single),
                    OS_OK);
                assert_int_equal(os_session_create(m, &so, &batch), OS_OK);
                assert_int_equal(os_session_max_batch(batch), NB);
                float want[3][NK], got[NB * NK], lg[NB * NK], lwant[3][NK];
                for (int f = 0; f < 3; f++) {
                    assert_int_equal(os_session_load_jpeg(single, jpeg[f], len[f]), OS_OK);
                    os_session_run(single, want[f], lwant[f]);
                }
                for (int n = 1; n <= NB; n++) {
                    for (int j = 0; j < n; j++) /* image order 2, 0, 1, 2, 0: repeats included */
                        assert_int_equal(
                            os_session_load_jpeg_at(batch, j, jpeg[(j + 2) % 3], len[(j + 2) % 3]),
                            OS_OK);
                    os_session_run_batch(batch, n, got, lg);
                    for (int j = 0; j < n; j++) {
                        const int f = (j + 2) % 3;
                        if (memcmp(got + j * NK, want[f], sizeof want[f]) ||
                            memcmp(lg + j * NK, lwant[f], sizeof lwant[f]))
                            fail_msg("%s %s T=%d batch %d image %d: not the single-image answer",
                                     formats[w], dense ? "dense" : "event", T, n, j);
                    }
                }
                assert_string_equal(os_session_backend(batch), dense ? "dense" : "event");
                assert_int_equal(os_session_load_jpeg_at(batch, NB, jpeg[0], len[0]), OS_EINVAL);
                os_session_destroy(single);
                os_session_destroy(batch);
            }
    os_session *bad = NULL;
    assert_int_equal(os_session_create(m, &(os_session_opts){.max_batch = -1}, &bad), OS_EINVAL);
    assert_null(bad);
    for (int f = 0; f < 3; f++)
        free(jpeg[f]);
    os_model_destroy(m);
    tu_rmdir(dir);
}

/* The reference views, as image operations: turn counterclockwise (the top-right corner goes
 * to the top left) v / 2 times, then mirror left-right if v is odd. */
static void ref_turn(const float *src, float *dst, int c, int n)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) /* what was at column n-1-y of row x */
                dst[(ch * n + y) * n + x] = src[(ch * n + x) * n + (n - 1 - y)];
}

static void ref_view(const float *src, float *dst, int c, int n, int v)
{
    const size_t per = (size_t)c * n * n;
    float *a = malloc(per * sizeof *a), *b = malloc(per * sizeof *b);
    memcpy(a, src, per * sizeof *a);
    for (int r = 0; r < v / 2; r++) {
        ref_turn(a, b, c, n);
        memcpy(a, b, per * sizeof *a);
    }
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                dst[(ch * n + y) * n + x] = a[(ch * n + y) * n + (v & 1 ? n - 1 - x : x)];
    free(a);
    free(b);
}

/* Test-time views: each view is the reference's, 1 view is the plain run, the mean is the
 * views' answers alone averaged in order, the 8 views are the whole group (the image turned
 * first gives the same mean up to the order of the sum), and bad counts are refused. */
static void test_views(void **state)
{
    (void)state;
    enum { NK = 4, N = 32, PER = 3 * N * N };
    char *dir = tu_tmpdir();
    os_arch_opts o = {.name = "msresnet20", .width_mult = 0.5, .input = N, .classes = NK,
                      .spiking = true, .batchnorm = true, .threshold = 0.5f, .leak = 1.0f,
                      .seed = 11};
    os_model *m = tu_arch_model(&o, dir);
    size_t len;
    char path[512];
    snprintf(path, sizeof path, "%s/ucm_harbor10.jpg", FIXTURE_DIR);
    unsigned char *jpeg = tu_slurp(path, &len);
    assert_non_null(jpeg);
    os_session *one = NULL, *many = NULL, *small = NULL;
    assert_int_equal(os_session_create(m, NULL, &one), OS_OK);
    assert_int_equal(os_session_create(m, &(os_session_opts){.max_batch = 8}, &many), OS_OK);
    assert_int_equal(os_session_create(m, &(os_session_opts){.max_batch = 4}, &small), OS_OK);
    assert_int_equal(os_session_load_jpeg(one, jpeg, len), OS_OK);
    static float img[PER], want_view[PER], got_view[PER];
    memcpy(img, os_session_input(one), sizeof img);
    float alone[8][NK], got[8 * NK];
    for (int v = 0; v < 8; v++) {
        ref_view(img, want_view, 3, N, v);
        os_session_view(img, got_view, 3, N, v);
        if (memcmp(want_view, got_view, sizeof got_view))
            fail_msg("view %d is not the reference's", v);
        for (int u = 0; u < v; u++) { /* eight different images */
            float other[PER];
            ref_view(img, other, 3, N, u);
            assert_true(memcmp(other, got_view, sizeof other) != 0);
        }
        memcpy(os_session_input(one), want_view, sizeof want_view);
        os_session_run(one, alone[v], NULL);
    }
    for (int views = 1; views <= 8; views *= 2) {
        assert_int_equal(os_session_load_jpeg(many, jpeg, len), OS_OK);
        assert_int_equal(os_session_run_views(many, views, got), OS_OK);
        float want[NK];
        for (int j = 0; j < NK; j++) {
            double sum = 0;
            for (int v = 0; v < views; v++)
                sum += alone[v][j];
            want[j] = (float)(sum / views);
        }
        if (memcmp(want, got, sizeof want))
            fail_msg("%d views: not the mean of the views run alone", views);
    }
    float mean8[NK];
    memcpy(mean8, got, sizeof mean8);
    ref_view(img, os_session_input(many), 3, N, 2);
    assert_int_equal(os_session_run_views(many, 8, got), OS_OK);
    for (int j = 0; j < NK; j++)
        assert_float_equal(got[j], mean8[j], 1e-6);
    assert_int_equal(os_session_run_views(many, 3, got), OS_EINVAL);
    assert_int_equal(os_session_run_views(many, 16, got), OS_EINVAL);
    assert_int_equal(os_session_run_views(many, 0, got), OS_EINVAL);
    assert_int_equal(os_session_run_views(small, 8, got), OS_EINVAL);
    assert_int_equal(os_session_run_views(small, 4, got), OS_OK);
    assert_true(os_session_views_valid(8) && !os_session_views_valid(6));
    os_session_destroy(one);
    os_session_destroy(many);
    os_session_destroy(small);
    free(jpeg);
    os_model_destroy(m);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_t1_matches_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_t3_matches_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timesteps_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_images, setup, teardown),
        cmocka_unit_test(test_topk),
        cmocka_unit_test(test_static_layer_keeps_its_buffer),
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
