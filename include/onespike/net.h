/* net.h - the network graph described by a model file's "layers" list.
 *
 * The architecture is an ordered list of layers (docs/DESIGN.md §3). Each layer names its
 * inputs with "from" (a layer name, or "input" for the image; default: the previous layer), so
 * one description covers plain stacks (VGG) and residual graphs (ResNet). Building a net checks
 * every field, infers every shape, and checks each referenced tensor's shape against it; any
 * problem is an error that names the layer and the field. Layer ops:
 *
 *   conv    out, kernel (int or [kh,kw]), stride=1, pad=0, weight [out,in,kh,kw], bias [out]?
 *   bn      weight, bias, mean, var (each [c]), eps=1e-5     (folded into a preceding conv)
 *   relu
 *   lif     threshold > 0, leak in (0,1]                     (spikes 0/1; state across steps)
 *   maxpool / avgpool   kernel, stride=kernel, pad=0
 *   gap     global average pool -> [c,1,1]
 *   linear  out, weight [out, c*h*w of its input], bias [out]?  (flattens its input)
 *   add     from: [a, b] of equal shape                      (residual sum)
 *
 * A layer may carry "unit": k (k >= 1) to mark it as part of the k-th Unit (docs/DESIGN.md §2),
 * the spatial structures that training prunes away. The last layer must be a linear layer with
 * one output per label: its outputs, summed over the time steps, are the logits.
 */
#ifndef ONESPIKE_NET_H
#define ONESPIKE_NET_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "onespike/safetensors.h"
#include "onespike/status.h"

#define OS_NET_INPUT (-1)      /* "from" index meaning the network input */
#define OS_NET_NAME_MAX 64

typedef enum {
    OS_OP_CONV,
    OS_OP_BN,
    OS_OP_RELU,
    OS_OP_LIF,
    OS_OP_MAXPOOL,
    OS_OP_AVGPOOL,
    OS_OP_GAP,
    OS_OP_LINEAR,
    OS_OP_ADD,
    OS_OP_COUNT
} os_op;

/* One layer, read-only to callers. Weight pointers are borrowed from the model's tensors, or
 * owned by the net where BatchNorm was folded into them. */
typedef struct {
    char name[OS_NET_NAME_MAX];
    os_op op;
    int from[2], n_from;        /* input layer indices, or OS_NET_INPUT */
    int c, h, w;                /* output shape */
    int out, kh, kw, stride, pad;
    int fan_in;                 /* conv: in_c*kh*kw, linear: in features */
    float threshold, leak;      /* lif */
    int unit;                   /* Unit id, 0 if none */
    const float *weight, *bias; /* conv/linear (bias may be NULL); conv includes folded BN */
    const float *scale, *shift; /* bn not folded: per-channel affine */
    const float *bn[4];         /* bn: gamma, beta, running mean, running var (borrowed) */
    float eps;                  /* bn */
    bool folded;                /* bn folded into its conv: output aliases the conv's */
    bool is_static;             /* independent of the time step: computed once per inference */
    size_t params;              /* trainable parameters stored in the file for this layer */
} os_layer;

typedef struct os_net os_net;

/* Build from a JSON array of layer objects (borrowed), with the input shape, the number of
 * classes, and the tensors of the file (borrowed; must outlive the net). label names the file
 * in error messages. The list is parsed by the engine's layer graph (core/engine/graph.h),
 * whose os_net_build_ex is the general form (tensors from a lookup function, optional BatchNorm
 * folding) that training uses. */
os_status os_net_build(const json_t *layers, int in_c, int in_h, int in_w, int n_classes,
                       const os_st_file *tensors, const char *label, os_net **out);
void os_net_destroy(os_net *net); /* NULL is fine */

/* Where os_net_build_ex finds a tensor by name: NULL if absent. */
typedef const os_tensor_view *(*os_tensor_find_fn)(const void *find_ctx, const char *name);

int os_net_count(const os_net *net);
const os_layer *os_net_layer(const os_net *net, int i);
const char *os_op_name(os_op op);
size_t os_net_params(const os_net *net);  /* sum of layers' params */
int os_net_units(const os_net *net);      /* highest Unit id present, 0 if none */
int os_net_lif_count(const os_net *net);

#endif
