/* arch.h - architecture recipes: the VGG and ResNet families of docs/DESIGN.md §2, with Units.
 *
 * A recipe produces the "layers" list of a model document plus freshly initialised tensors
 * (Kaiming-normal convolutions, PyTorch-style uniform linear layers, identity BatchNorm).
 *
 *   vgg11, vgg16   conv3x3-BN-act stages separated by 2x2 max pooling, then
 *                  linear(hidden)-act-linear(classes). A Unit (ours: the paper does not give
 *                  its layers) is one more conv3x3 (C->C)-BN-act at the end of stage AS.
 *   resnet18       stem conv3x3-BN-act (stride 2 + 2x2 max pool when input >= 64 px), four
 *                  stages of 2 basic blocks (64,128,256,512 channels x width), GAP, linear.
 *   resnet20       CIFAR layout: stem, three stages of 3 basic blocks (16,32,64 x width).
 *                  A ResNet Unit is one more identity basic block at the end of stage AS.
 *   msresnet18, msresnet20   the same stages with membrane shortcuts (ours, after MS-ResNet,
 *                  Hu et al.): the residual stream carries real values (the ANN's pre-
 *                  activation, an SNN's membrane currents) and each block reads it through
 *                  an activation: x + BN(conv(act(BN(conv(act(x)))))), the projection
 *                  shortcut BN(conv1x1(act(x))) reading the same spikes; the stem is conv-BN
 *                  (+ max pool) without activation and the net ends GAP(stream), linear. Every
 *                  conv after the stem reads spikes, none reads a sum of spikes.
 *
 * Units keep channel count and spatial size, so removing them leaves a valid network with
 * exactly the baseline topology. Activations are ReLU (ANN) or LIF (SNN).
 */
#ifndef ONESPIKE_ARCH_H
#define ONESPIKE_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "onespike/safetensors.h"
#include "onespike/status.h"

typedef struct {
    const char *name;     /* vgg11, vgg16, resnet18, resnet20, msresnet18, msresnet20 */
    double width_mult;    /* channel multiplier, > 0 (channels rounded, at least 4) */
    int input;            /* square input side in pixels */
    int classes;
    int units;            /* M >= 0 */
    int unit_at;          /* AS: 1-based stage index that gets the Units */
    bool spiking;         /* LIF activations instead of ReLU */
    bool batchnorm;       /* BN after each conv (conv without bias); else conv with bias */
    float threshold, leak;/* initial LIF parameters */
    uint64_t seed;        /* weight initialisation */
} os_arch_opts;

typedef struct os_arch os_arch;

/* Stages a recipe has (the valid range of unit_at), or 0 for an unknown name. */
int os_arch_stages(const char *name);

os_status os_arch_build(const os_arch_opts *o, os_arch **out);
void os_arch_destroy(os_arch *a); /* NULL is fine */

const json_t *os_arch_layers(const os_arch *a);              /* borrowed */
const os_tensor_view *os_arch_tensors(const os_arch *a, size_t *n); /* borrowed */

#endif
