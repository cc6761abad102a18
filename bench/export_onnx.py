#!/usr/bin/python3
"""Export a onespike model file to ONNX: the same network and float32 weights at T = 1.

    export_onnx.py MODEL.safetensors OUT.onnx [--opset N]

Input  "input":  float32 [N, C, H, W], the normalised CHW tensor that onespike's own
                 preprocessing produces (bench/engine_tensors dump writes it); N is dynamic.
Output "logits": float32 [N, classes], the last linear layer's output (at T = 1 the logits).

Layer mapping (include/onespike/net.h, core/engine/layers.c):
  conv -> Conv (BatchNorm folded into it exactly where core/engine/net.c folds it), bn (not folded) ->
  Mul + Add per channel, relu -> Relu, lif -> Greater(x, threshold) + Cast to float (at T = 1
  the membrane starts at 0, so u is the input current; strict `u > threshold` fires a spike of
  amplitude 1; the soft reset does not matter for a single step), maxpool -> MaxPool (padding
  ignored, as core), avgpool -> AveragePool(count_include_pad=1), gap -> GlobalAveragePool,
  linear -> Flatten + Gemm(transB=1), add -> Add.
A model stored with timesteps > 1 is exported at T = 1 all the same (a warning says so).

Needs python3-onnx and python3-numpy only.
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
import onespike_file  # noqa: E402

DEFAULT_OPSET = 13  # every op used here is stable since 13; python3-onnx 1.12 knows up to 17


def build(model, opset=DEFAULT_OPSET):
    layers = model["layers"]
    c, h, w = model["input"]
    inits, nodes = [], []
    out_name = {}  # layer index -> tensor name of its output

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def src(i):
        return "input" if i == onespike_file.INPUT else out_name[i]

    for i, L in enumerate(layers):
        op, name = L["op"], L["name"]
        x = src(L["src"][0])
        y = name
        if op == "conv":
            ins = [x, const(name + ".W", L["weight"])]
            if L["bias"] is not None:
                ins.append(const(name + ".B", L["bias"]))
            kh, kw = L["weight"].shape[2:]
            p, s = L["pad"], L["stride"]
            nodes.append(helper.make_node("Conv", ins, [y], name=name, kernel_shape=[kh, kw],
                                          strides=[s, s], pads=[p, p, p, p]))
        elif op == "bn":
            if L["folded"]:
                out_name[i] = x  # the conv's output already carries the affine
                continue
            sc = const(name + ".scale", L["scale"].reshape(-1, 1, 1))
            sh = const(name + ".shift", L["shift"].reshape(-1, 1, 1))
            nodes.append(helper.make_node("Mul", [x, sc], [name + ".mul"], name=name + ".mul"))
            nodes.append(helper.make_node("Add", [name + ".mul", sh], [y], name=name))
        elif op == "relu":
            nodes.append(helper.make_node("Relu", [x], [y], name=name))
        elif op == "lif":
            thr = const(name + ".threshold", np.array(L["threshold"], dtype=np.float32))
            nodes.append(helper.make_node("Greater", [x, thr], [name + ".fire"], name=name + ".gt"))
            nodes.append(helper.make_node("Cast", [name + ".fire"], [y], name=name,
                                          to=TensorProto.FLOAT))
        elif op in ("maxpool", "avgpool"):
            k, s, p = L["kernel"], L["stride"], L["pad"]
            attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
            if op == "avgpool":
                attrs["count_include_pad"] = 1
            nodes.append(helper.make_node("MaxPool" if op == "maxpool" else "AveragePool", [x], [y],
                                          name=name, **attrs))
        elif op == "gap":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [y], name=name))
        elif op == "linear":
            nodes.append(helper.make_node("Flatten", [x], [name + ".flat"], name=name + ".flat",
                                          axis=1))
            ins = [name + ".flat", const(name + ".W", L["weight"])]
            if L["bias"] is not None:
                ins.append(const(name + ".B", L["bias"]))
            nodes.append(helper.make_node("Gemm", ins, [y], name=name, transB=1))
        elif op == "add":
            nodes.append(helper.make_node("Add", [x, src(L["src"][1])], [y], name=name))
        else:
            raise onespike_file.ModelError("layer %r: op %r has no ONNX mapping" % (name, op))
        out_name[i] = y

    last = len(layers) - 1
    nodes.append(helper.make_node("Identity", [out_name[last]], ["logits"], name="logits"))
    k = layers[-1]["shape"][0]
    graph = helper.make_graph(
        nodes, model["name"],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", k])],
        initializer=inits)
    m = helper.make_model(graph, producer_name="onespike bench/export_onnx.py",
                          opset_imports=[helper.make_opsetid("", opset)])
    m.doc_string = "onespike model %s at T=1; labels: %s" % (model["name"], ",".join(model["labels"]))
    onnx.checker.check_model(m)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    a = ap.parse_args()
    try:
        model = onespike_file.load(a.model)
    except (onespike_file.ModelError, OSError, KeyError, ValueError) as e:
        print("export_onnx: %s" % e, file=sys.stderr)
        return 1
    if model["timesteps"] != 1:
        print("export_onnx: %s is stored with timesteps=%d; exporting the T=1 network"
              % (a.model, model["timesteps"]), file=sys.stderr)
    m = build(model, a.opset)
    tmp = a.out + ".tmp"
    onnx.save(m, tmp)
    os.replace(tmp, a.out)
    n_lif = sum(L["op"] == "lif" for L in model["layers"])
    print("export_onnx: %s -> %s (%d layers, %d lif, %d nodes, opset %d)"
          % (a.model, a.out, len(model["layers"]), n_lif, len(m.graph.node), a.opset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
