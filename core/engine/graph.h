/* graph.h - the typed, editable layer list of a model document (engine-private).
 *
 * A graph is what a model file's "layers" array says, parsed once: for each layer its name, op,
 * inputs (as indices of earlier layers), attributes and the names of the tensors it binds. It
 * knows nothing of shapes or tensor data: os_net_build_ex turns it into the shape-inferred
 * os_layer view (net.h) against a set of tensors. The training rewrites (BN folding and
 * insertion, ANN -> SNN conversion, Unit removal) edit a graph; JSON appears only in
 * os_graph_from_json and os_graph_to_json, at the file boundary.
 *
 * Invariants the functions keep: names are unique and not "input"; every input is an earlier
 * layer or OS_NET_INPUT, so the list is in topological order; add has two inputs, every other
 * op one.
 */
#ifndef ONESPIKE_GRAPH_H
#define ONESPIKE_GRAPH_H

#include <stdbool.h>

#include <jansson.h>

#include "onespike/net.h"
#include "onespike/status.h"

/* The tensors a layer binds, named as the document's fields: conv/linear use weight and bias;
 * bn uses all four (gamma, beta, running mean, running variance). */
typedef enum {
    OS_TENSOR_WEIGHT,
    OS_TENSOR_BIAS,
    OS_TENSOR_MEAN,
    OS_TENSOR_VAR,
    OS_TENSOR_ROLES
} os_tensor_role;

/* Optional fields written explicitly in the document: kept so that a document read and written
 * again says the same thing in the same words (a default is written only if it was given). */
enum {
    OS_GIVEN_STRIDE = 1u << 0,
    OS_GIVEN_PAD = 1u << 1,
    OS_GIVEN_EPS = 1u << 2,
    OS_GIVEN_KERNEL_PAIR = 1u << 3, /* kernel written as [kh, kw] */
};

#define OS_GRAPH_DEFAULT_BN_EPS 1e-5

/* One layer as described. tensor[] strings are owned by the graph (NULL: not bound); change
 * them with os_graph_set_tensor. */
typedef struct {
    char name[OS_NET_NAME_MAX];
    os_op op;
    int from[2], n_from;          /* earlier layer indices, or OS_NET_INPUT */
    int out, kh, kw, stride, pad; /* conv, linear (out), pooling */
    double threshold, leak;       /* lif */
    double eps;                   /* bn */
    int unit;                     /* Unit id, 0 if none */
    unsigned given;               /* OS_GIVEN_* */
    char *tensor[OS_TENSOR_ROLES];
} os_layer_spec;

typedef struct os_graph os_graph;

/* Parse and check a "layers" array (borrowed): every field that does not need shapes or tensor
 * data, with errors "<label>: layer <i> \"<name>\": ..." naming the field. */
os_status os_graph_from_json(const json_t *layers, const char *label, os_graph **out);

/* The "layers" array (a new reference, NULL without memory): "from" written only where it is
 * not the previous layer, optional fields only where given or not the default. */
json_t *os_graph_to_json(const os_graph *g);

os_status os_graph_clone(const os_graph *g, os_graph **out);
void os_graph_destroy(os_graph *g); /* NULL is fine */

int os_graph_count(const os_graph *g);
const os_layer_spec *os_graph_layer(const os_graph *g, int i);
/* For changing a layer's numeric attributes (threshold, leak, out, ...) in place. Its name,
 * inputs and tensor names must be changed only through the functions below. */
os_layer_spec *os_graph_edit(os_graph *g, int i);
/* Index of the layer called name, OS_NET_INPUT for "input", -2 if none. */
int os_graph_find(const os_graph *g, const char *name);
const char *os_tensor_role_name(os_tensor_role r); /* the document's field: "weight", ... */

/* Bind layer i's tensor of role r to name (copied; NULL unbinds). */
os_status os_graph_set_tensor(os_graph *g, int i, os_tensor_role r, const char *name);

/* How many inputs of later layers read each layer: count[i] for i < os_graph_count (caller's
 * array). One pass over the graph. */
void os_graph_consumers(const os_graph *g, int *count);

/* Insert a one-input layer l (its name, op, attributes and tensor names are copied; its inputs
 * ignored) right after layer i (OS_NET_INPUT: first), reading layer i; every layer that read
 * layer i reads the new one instead. Fails if the name is taken or the op takes two inputs. */
os_status os_graph_insert_after(os_graph *g, int i, const os_layer_spec *l);

/* Remove every layer i with drop[i], in one pass: a layer that read a removed one reads that
 * layer's first input instead (through chains of removed layers). */
void os_graph_remove_where(os_graph *g, const bool *drop);
void os_graph_remove(os_graph *g, int i); /* one layer, as above */

/* Change layer i's op, keeping its name, inputs and Unit; attributes and tensors are cleared
 * (the caller sets the new op's). Fails if the new op takes another number of inputs. */
os_status os_graph_replace_op(os_graph *g, int i, os_op op);

/* Build the net (net.h) of graph g (borrowed; the net copies what it needs). Tensors come from
 * find(find_ctx, name) (NULL if absent; the views must outlive the net, and their data may
 * change between passes: the net keeps pointers, not copies), and BatchNorm is folded only when
 * fold_bn. Without folding, the bn layers' scale/shift tables reflect the running statistics at
 * build time only. */
os_status os_net_build_ex(const os_graph *g, int in_c, int in_h, int in_w, int n_classes,
                          os_tensor_find_fn find, const void *find_ctx, bool fold_bn,
                          const char *label, os_net **out);

#endif
