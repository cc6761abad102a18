/* The layer graph: a "layers" list read and written back says the same thing, errors name the
 * layer and the field, and the edit primitives rewire consumers as promised. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "graph.h"
#include "onespike/arch.h"
#include "testutil.h"

/* A residual graph using every op and every optional field, in the canonical form
 * os_graph_to_json writes (from only where not the previous layer, defaults only if given). */
static const char canonical[] =
    "[{\"name\":\"c1\",\"op\":\"conv\",\"out\":4,\"kernel\":3,\"stride\":1,\"pad\":1,"
    "  \"weight\":\"c1.w\",\"bias\":\"c1.b\"},"
    " {\"name\":\"b1\",\"op\":\"bn\",\"weight\":\"b1.g\",\"bias\":\"b1.b\",\"mean\":\"b1.m\","
    "  \"var\":\"b1.v\",\"eps\":0.001},"
    " {\"name\":\"r1\",\"op\":\"relu\"},"
    " {\"name\":\"c2\",\"op\":\"conv\",\"unit\":1,\"out\":4,\"kernel\":[3,1],\"pad\":1,"
    "  \"weight\":\"c2.w\"},"
    " {\"name\":\"a\",\"op\":\"add\",\"from\":[\"c2\",\"r1\"],\"unit\":1},"
    " {\"name\":\"l\",\"op\":\"lif\",\"threshold\":0.5,\"leak\":0.25},"
    " {\"name\":\"mp\",\"op\":\"maxpool\",\"kernel\":2},"
    " {\"name\":\"ap\",\"op\":\"avgpool\",\"from\":\"l\",\"kernel\":3,\"stride\":2,\"pad\":1},"
    " {\"name\":\"g\",\"op\":\"gap\"},"
    " {\"name\":\"fc\",\"op\":\"linear\",\"out\":3,\"weight\":\"fc.w\",\"bias\":\"fc.b\"}]";

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (!j)
        fail_msg("bad test JSON: %s", err.text);
    return j;
}

static os_graph *graph(const char *text)
{
    json_t *j = parse(text);
    os_graph *g = NULL;
    assert_int_equal(os_graph_from_json(j, "t", &g), OS_OK);
    json_decref(j);
    return g;
}

/* g written out equals the JSON text want. */
static void assert_layers(const os_graph *g, const char *want)
{
    json_t *got = os_graph_to_json(g), *w = parse(want);
    if (!json_equal(got, w)) {
        char *x = json_dumps(got, JSON_COMPACT);
        fail_msg("got %s", x);
    }
    json_decref(got);
    json_decref(w);
}

static void test_round_trip(void **state)
{
    (void)state;
    os_graph *g = graph(canonical);
    assert_int_equal(os_graph_count(g), 10);
    const os_layer_spec *c2 = os_graph_layer(g, 3), *a = os_graph_layer(g, 4);
    assert_int_equal(c2->kh, 3);
    assert_int_equal(c2->kw, 1);
    assert_int_equal(c2->stride, 1);
    assert_int_equal(c2->unit, 1);
    assert_null(c2->tensor[OS_TENSOR_BIAS]);
    assert_string_equal(c2->tensor[OS_TENSOR_WEIGHT], "c2.w");
    assert_int_equal(a->n_from, 2);
    assert_int_equal(a->from[0], 3);
    assert_int_equal(a->from[1], 2);
    assert_int_equal(os_graph_layer(g, 0)->from[0], OS_NET_INPUT);
    assert_int_equal(os_graph_layer(g, 6)->stride, 2); /* pooling stride defaults to the kernel */
    assert_true(os_graph_layer(g, 1)->eps == 0.001);
    assert_string_equal(os_graph_layer(g, 1)->tensor[OS_TENSOR_VAR], "b1.v");
    assert_int_equal(os_graph_find(g, "ap"), 7);
    assert_int_equal(os_graph_find(g, "input"), OS_NET_INPUT);
    assert_int_equal(os_graph_find(g, "nope"), -2);
    assert_layers(g, canonical);

    os_graph *c = NULL; /* a clone is independent of its original */
    assert_int_equal(os_graph_clone(g, &c), OS_OK);
    assert_int_equal(os_graph_set_tensor(c, 0, OS_TENSOR_BIAS, NULL), OS_OK);
    os_graph_edit(c, 5)->threshold = 2;
    os_graph_destroy(c);
    assert_layers(g, canonical);
    os_graph_destroy(g);
}

/* Redundant spellings are written the short way, and mean the same. */
static void test_canonical_form(void **state)
{
    (void)state;
    os_graph *g =
        graph("[{\"name\":\"c\",\"op\":\"conv\",\"from\":\"input\",\"out\":2,"
              "  \"kernel\":1,\"weight\":\"w\"},"
              " {\"name\":\"r\",\"op\":\"relu\",\"from\":[\"c\"]},"
              " {\"name\":\"p\",\"op\":\"maxpool\",\"kernel\":2,\"pad\":0},"
              " {\"name\":\"f\",\"op\":\"linear\",\"from\":\"p\",\"out\":2,\"weight\":\"f\"}]");
    assert_layers(g, "[{\"name\":\"c\",\"op\":\"conv\",\"out\":2,\"kernel\":1,\"weight\":\"w\"},"
                     " {\"name\":\"r\",\"op\":\"relu\"},"
                     " {\"name\":\"p\",\"op\":\"maxpool\",\"kernel\":2,\"pad\":0},"
                     " {\"name\":\"f\",\"op\":\"linear\",\"out\":2,\"weight\":\"f\"}]");
    os_graph_destroy(g);
}

/* Every recipe's layer list survives the trip unchanged. */
static void test_recipes_round_trip(void **state)
{
    (void)state;
    static const char *const names[] = {"vgg11", "resnet18", "resnet20", "msresnet18",
                                        "msresnet20"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        for (int spiking = 0; spiking < 2; spiking++) {
            os_arch_opts o = {.name = names[i],
                              .width_mult = 0.125,
                              .input = 64,
                              .classes = 3,
                              .units = 2,
                              .unit_at = 2,
                              .spiking = spiking,
                              .batchnorm = !spiking,
                              .threshold = 0.75f,
                              .leak = 0.5f,
                              .seed = 1};
            os_arch *a = NULL;
            assert_int_equal(os_arch_build(&o, &a), OS_OK);
            os_graph *g = NULL;
            assert_int_equal(os_graph_from_json(os_arch_layers(a), names[i], &g), OS_OK);
            json_t *back = os_graph_to_json(g);
            assert_true(json_equal(back, os_arch_layers(a)));
            json_decref(back);
            os_graph_destroy(g);
            os_arch_destroy(a);
        }
}

/* Errors name the layer and the field, as a model file's loader reports them. */
static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *layers, *needle;
    } cases[] = {
        {"[]", "t: \"layers\" must be a non-empty array"},
        {"[1]", "t: layer 0 is not an object"},
        {"[{\"name\":\"x\",\"op\":\"swish\"}]", "t: layer 0 \"x\": unknown op \"swish\""},
        {"[{\"name\":\"x\",\"op\":\"conv\",\"kernel\":3,\"weight\":\"w\"}]",
         "layer 0 \"x\": missing field \"out\""},
        {"[{\"name\":\"x\",\"op\":\"linear\",\"out\":2,\"weight\":7}]",
         "field \"weight\" must be a tensor name"},
        {"[{\"name\":\"x\",\"op\":\"relu\",\"from\":\"y\"}]",
         "\"from\" names \"y\", not an earlier layer"},
        {"[{\"name\":\"x\",\"op\":\"relu\"},{\"name\":\"y\",\"op\":\"add\",\"from\":\"x\"}]",
         "layer 1 \"y\": add takes 2 input(s), \"from\" names 1"},
        {"[{\"name\":\"x\",\"op\":\"relu\"},{\"name\":\"y\",\"op\":\"add\"}]",
         "add needs \"from\": [a, b]"},
        {"[{\"name\":\"x\",\"op\":\"bn\",\"weight\":\"a\",\"bias\":\"b\",\"mean\":\"c\",\"var\":"
         "\"d\","
         "\"eps\":-1}]",
         "eps -1 is negative"},
        {"[{\"name\":\"x\",\"op\":\"maxpool\",\"kernel\":[2,3]}]", "pooling kernel must be square"},
        {"[{\"name\":\"x\",\"op\":\"avgpool\",\"kernel\":2,\"pad\":2}]",
         "field \"pad\" = 2, expected 0..1"},
        {"[{\"name\":\"x\",\"op\":\"lif\",\"threshold\":1,\"leak\":0}]",
         "leak 0 must be in (0, 1]"},
        {"[{\"name\":\"x\",\"op\":\"relu\"},{\"name\":\"x\",\"op\":\"relu\"}]", "used twice"},
        {"[{\"name\":\"input\",\"op\":\"relu\"}]", "reserved"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j = parse(cases[i].layers);
        os_graph *g = NULL;
        assert_int_equal(os_graph_from_json(j, "t", &g), OS_EARCH);
        assert_null(g);
        if (!strstr(os_errdetail(), cases[i].needle))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, os_errdetail(), cases[i].needle);
        json_decref(j);
    }
}

static const char chain[] = "[{\"name\":\"a\",\"op\":\"relu\"},"
                            " {\"name\":\"b\",\"op\":\"relu\"},"
                            " {\"name\":\"c\",\"op\":\"add\",\"from\":[\"b\",\"a\"]},"
                            " {\"name\":\"d\",\"op\":\"relu\",\"from\":\"a\"}]";

static void test_insert_after(void **state)
{
    (void)state;
    os_graph *g = graph(chain);
    int count[8];
    os_graph_consumers(g, count);
    assert_int_equal(count[0], 3); /* b, c and d read a */
    assert_int_equal(count[1], 1);
    assert_int_equal(count[3], 0);
    os_layer_spec x = {.name = "x", .op = OS_OP_BN, .eps = OS_GRAPH_DEFAULT_BN_EPS};
    x.tensor[OS_TENSOR_WEIGHT] = "x.g", x.tensor[OS_TENSOR_BIAS] = "x.b";
    x.tensor[OS_TENSOR_MEAN] = "x.m", x.tensor[OS_TENSOR_VAR] = "x.v";
    assert_int_equal(os_graph_insert_after(g, 0, &x), OS_OK);
    assert_layers(g, "[{\"name\":\"a\",\"op\":\"relu\"},"
                     " {\"name\":\"x\",\"op\":\"bn\",\"weight\":\"x.g\",\"bias\":\"x.b\","
                     "  \"mean\":\"x.m\",\"var\":\"x.v\"},"
                     " {\"name\":\"b\",\"op\":\"relu\"},"
                     " {\"name\":\"c\",\"op\":\"add\",\"from\":[\"b\",\"x\"]},"
                     " {\"name\":\"d\",\"op\":\"relu\",\"from\":\"x\"}]");
    os_graph_consumers(g, count);
    assert_int_equal(count[0], 1);
    assert_int_equal(count[1], 3);
    /* at the front, it takes the input's readers */
    os_layer_spec y = {.name = "y", .op = OS_OP_RELU};
    assert_int_equal(os_graph_insert_after(g, OS_NET_INPUT, &y), OS_OK);
    assert_int_equal(os_graph_layer(g, 0)->from[0], OS_NET_INPUT);
    assert_int_equal(os_graph_layer(g, 1)->from[0], 0);
    assert_int_equal(os_graph_layer(g, 4)->from[1], 2);
    /* refused: a taken name, a two-input op */
    assert_int_equal(os_graph_insert_after(g, 0, &x), OS_EARCH);
    os_layer_spec z = {.name = "z", .op = OS_OP_ADD};
    assert_int_equal(os_graph_insert_after(g, 0, &z), OS_EARCH);
    assert_int_equal(os_graph_count(g), 6);
    /* and removed again, the readers go back to what they read */
    os_graph_remove(g, 0);
    os_graph_remove(g, 1);
    assert_layers(g, chain);
    os_graph_destroy(g);
}

/* Removal passes a layer's readers to its first input, through chains of removed layers. */
static void test_remove_where(void **state)
{
    (void)state;
    os_graph *g = graph("[{\"name\":\"a\",\"op\":\"relu\"},"
                        " {\"name\":\"u1\",\"op\":\"relu\",\"unit\":1},"
                        " {\"name\":\"u2\",\"op\":\"add\",\"from\":[\"u1\",\"a\"],\"unit\":1},"
                        " {\"name\":\"b\",\"op\":\"add\",\"from\":[\"a\",\"u2\"]},"
                        " {\"name\":\"c\",\"op\":\"relu\",\"from\":\"u2\"}]");
    bool drop[5] = {false, true, true, false, false};
    os_graph_remove_where(g, drop);
    assert_layers(g, "[{\"name\":\"a\",\"op\":\"relu\"},"
                     " {\"name\":\"b\",\"op\":\"add\",\"from\":[\"a\",\"a\"]},"
                     " {\"name\":\"c\",\"op\":\"relu\",\"from\":\"a\"}]");
    bool first[3] = {true, false, false}; /* the first layer: its readers read the input */
    os_graph_remove_where(g, first);
    assert_int_equal(os_graph_layer(g, 0)->from[0], OS_NET_INPUT);
    assert_int_equal(os_graph_layer(g, 0)->from[1], OS_NET_INPUT);
    assert_int_equal(os_graph_layer(g, 1)->from[0], OS_NET_INPUT);
    os_graph_destroy(g);
}

static void test_replace_op(void **state)
{
    (void)state;
    os_graph *g = graph(canonical);
    assert_int_equal(os_graph_replace_op(g, 2, OS_OP_LIF), OS_OK);
    os_layer_spec *l = os_graph_edit(g, 2);
    l->threshold = 2, l->leak = 1;
    assert_int_equal(os_graph_replace_op(g, 0, OS_OP_RELU), OS_OK); /* its tensors go */
    assert_null(os_graph_layer(g, 0)->tensor[OS_TENSOR_WEIGHT]);
    assert_int_equal(os_graph_replace_op(g, 4, OS_OP_RELU), OS_EARCH); /* add has two inputs */
    json_t *j = os_graph_to_json(g);
    json_t *relu = parse("{\"name\":\"c1\",\"op\":\"relu\"}");
    assert_true(json_equal(json_array_get(j, 0), relu));
    json_decref(relu);
    json_t *want = parse("{\"name\":\"r1\",\"op\":\"lif\",\"threshold\":2.0,\"leak\":1.0}");
    assert_true(json_equal(json_array_get(j, 2), want));
    json_decref(want);
    json_decref(j);
    os_graph_destroy(g);
}

/* An edited graph builds into a net: shapes follow the edits. */
typedef struct {
    const os_tensor_view *t;
    int n;
} table;

static const os_tensor_view *find_in(const void *ctx, const char *name)
{
    const table *tb = ctx;
    for (int i = 0; tb && i < tb->n; i++)
        if (strcmp(tb->t[i].name, name) == 0)
            return &tb->t[i];
    return NULL;
}

static void test_build_after_edits(void **state)
{
    (void)state;
    static float w[2 * 3 * 2 * 2];
    os_tensor_view fc = {
        .name = "fc.w", .ndim = 2, .shape = {2, 3 * 2 * 2}, .data = w, .count = 24};
    table tb = {&fc, 1};
    os_graph *g = graph("[{\"name\":\"p\",\"op\":\"maxpool\",\"kernel\":2},"
                        " {\"name\":\"fc\",\"op\":\"linear\",\"out\":2,\"weight\":\"fc.w\"}]");
    os_net *net = NULL;
    assert_int_equal(os_net_build_ex(g, 3, 4, 4, 2, find_in, NULL, true, "t", &net), OS_EARCH);
    assert_null(net);
    assert_non_null(
        strstr(os_errdetail(), "t: layer 1 \"fc\": weight tensor \"fc.w\" is not in the file"));
    os_layer_spec r = {.name = "r", .op = OS_OP_RELU};
    assert_int_equal(os_graph_insert_after(g, 0, &r), OS_OK);
    assert_int_equal(os_net_build_ex(g, 3, 4, 4, 2, find_in, &tb, true, "t", &net), OS_OK);
    assert_int_equal(os_net_count(net), 3);
    const os_layer *L = os_net_layer(net, 1);
    assert_string_equal(L->name, "r");
    assert_int_equal(L->from[0], 0);
    assert_int_equal(L->c * L->h * L->w, 12);
    assert_int_equal(os_net_layer(net, 2)->from[0], 1);
    assert_int_equal(os_net_params(net), 24);
    os_net_destroy(net);
    os_graph_remove(g, 0); /* without the pooling, fc reads 3*4*4 values */
    assert_int_equal(os_net_build_ex(g, 3, 4, 4, 2, find_in, &tb, true, "t", &net), OS_ESHAPE);
    assert_non_null(strstr(os_errdetail(), "architecture wants [2,48]"));
    os_graph_destroy(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),         cmocka_unit_test(test_canonical_form),
        cmocka_unit_test(test_recipes_round_trip), cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_insert_after),       cmocka_unit_test(test_remove_where),
        cmocka_unit_test(test_replace_op),         cmocka_unit_test(test_build_after_edits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
