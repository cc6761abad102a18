#!/usr/bin/python3
"""Export a onespike model as an int8 QDQ ONNX graph: the "ORT int8" peer of bench/run.sh.

    quantize_onnx.py MODEL CALIB.f32 OUT.onnx [--json RANGES.json]

What a user would get by quantizing the exported network (bench/export_onnx.py) for ONNX Runtime,
written with onnx's helper API (onnxruntime's Python quantization tool is not needed):

- every conv that reads spikes (all but the first, which reads the image): its input through
  QuantizeLinear/DequantizeLinear as uint8 with scale 1, zero point 0 (exact: spikes are 0/1);
  its weights int8, symmetric, one scale per output channel (max |w| / 127, DequantizeLinear on
  axis 0); its bias int32 at scale input_scale * weight_scale (what ORT's QDQ conv selector wants);
  its output through QuantizeLinear/DequantizeLinear as uint8 with one per-tensor range, the
  min/max (widened to include 0) of that conv's float output over the calibration images;
- the first conv, the adds, the spikes and the linear head stay float32.
ORT turns each DQ -> Conv -> Q group into a QLinearConv (graphOptimizationLevel 'all').

CALIB.f32 holds the calibration tensors (N x C x H x W float32, onespike's preprocessing, as
bench/engine_tensors dump writes them; bench/run.sh passes 100 training images). The float conv
outputs are computed by the PyTorch module of the same network (bench/peers/onespike_torch.py).
Needs python3-onnx, python3-numpy, python3-torch.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "peers"))
import export_onnx  # noqa: E402
import onespike_file  # noqa: E402

CALIB_BATCH = 25


def event_convs(model):
    """Indices of the convs that read spikes (every conv whose source is not the image)."""
    return [i for i, L in enumerate(model["layers"])
            if L["op"] == "conv" and L["src"][0] != onespike_file.INPUT]


def calibrate(model, calib, convs):
    """Per-tensor (min, max) of each conv's float output over the calibration tensors."""
    import torch
    import onespike_torch
    net = onespike_torch.OneSpikeNet(model).eval()
    lo = {i: np.inf for i in convs}
    hi = {i: -np.inf for i in convs}

    def hook(i):
        def f(_m, _inp, out):
            lo[i] = min(lo[i], float(out.min()))
            hi[i] = max(hi[i], float(out.max()))
        return f

    hs = [net.layers[i].register_forward_hook(hook(i)) for i in convs]
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with torch.inference_mode():
        for b in range(0, calib.shape[0], CALIB_BATCH):
            net(torch.from_numpy(calib[b:b + CALIB_BATCH]))
    for h in hs:
        h.remove()
    return {i: (lo[i], hi[i]) for i in convs}


def uint8_params(lo, hi):
    """Asymmetric uint8 scale and zero point of [lo, hi] widened to include 0 (as ORT's tool)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zp = int(np.clip(round(-lo / scale), 0, 255))
    return np.float32(scale), np.uint8(zp)


def quantize(model, ranges, fp32):
    g = fp32.graph
    inits = {t.name: t for t in g.initializer}
    layers = model["layers"]
    convs = {layers[i]["name"]: i for i in ranges}
    new_nodes, new_inits = [], []
    spike_q = {}  # spike tensor -> its uint8 tensor (one QuantizeLinear per tensor)
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "q.spike.scale")
    zero_u8 = numpy_helper.from_array(np.array(0, dtype=np.uint8), "q.spike.zp")
    new_inits += [one, zero_u8]
    info = []
    for node in g.node:
        if node.op_type != "Conv" or node.name not in convs:
            new_nodes.append(node)
            continue
        i = convs[node.name]
        name = node.name
        x, wname = node.input[0], node.input[1]
        # spikes: float 0/1 -> uint8 (scale 1) -> float, exact
        if x not in spike_q:
            spike_q[x] = x + ".u8"
            new_nodes.append(helper.make_node("QuantizeLinear", [x, one.name, zero_u8.name],
                                              [spike_q[x]], name=x + ".quant"))
        xd = name + ".x.dq"
        new_nodes.append(helper.make_node("DequantizeLinear", [spike_q[x], one.name, zero_u8.name],
                                          [xd], name=xd))
        # weights: int8, symmetric, per output channel
        w = numpy_helper.to_array(inits[wname]).astype(np.float32)
        oc = w.shape[0]
        amax = np.abs(w.reshape(oc, -1)).max(1)
        ws = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        wq = np.clip(np.round(w / ws.reshape(-1, 1, 1, 1)), -127, 127).astype(np.int8)
        new_inits += [numpy_helper.from_array(wq, name + ".Wq"),
                      numpy_helper.from_array(ws, name + ".Ws"),
                      numpy_helper.from_array(np.zeros(oc, np.int8), name + ".Wzp")]
        wd = name + ".w.dq"
        new_nodes.append(helper.make_node("DequantizeLinear", [name + ".Wq", name + ".Ws",
                                                               name + ".Wzp"], [wd], name=wd, axis=0))
        ins = [xd, wd]
        if len(node.input) > 2:  # bias: int32 at scale 1 * ws
            b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
            bq = np.clip(np.round(b / ws), -2**31, 2**31 - 1).astype(np.int32)
            new_inits += [numpy_helper.from_array(bq, name + ".Bq"),
                          numpy_helper.from_array(ws.copy(), name + ".Bs"),
                          numpy_helper.from_array(np.zeros(oc, np.int32), name + ".Bzp")]
            bd = name + ".b.dq"
            new_nodes.append(helper.make_node("DequantizeLinear", [name + ".Bq", name + ".Bs",
                                                                   name + ".Bzp"], [bd], name=bd,
                                              axis=0))
            ins.append(bd)
        # the conv, its float output quantized with the calibrated range and dequantized
        y = node.output[0]
        ys, yzp = uint8_params(*ranges[i])
        new_inits += [numpy_helper.from_array(np.array(ys), name + ".ys"),
                      numpy_helper.from_array(np.array(yzp), name + ".yzp")]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        new_nodes.append(helper.make_node("Conv", ins, [y + ".f"], name=name, **attrs))
        new_nodes.append(helper.make_node("QuantizeLinear", [y + ".f", name + ".ys", name + ".yzp"],
                                          [y + ".u8"], name=name + ".quant"))
        new_nodes.append(helper.make_node("DequantizeLinear", [y + ".u8", name + ".ys",
                                                               name + ".yzp"], [y], name=name + ".dq"))
        info.append({"layer": name, "out_c": oc, "range": list(ranges[i]), "scale": float(ys),
                     "zero_point": int(yzp), "weight_scale_max": float(ws.max())})
    used = {n for node in new_nodes for n in node.input}
    keep = [t for t in g.initializer if t.name in used]
    graph = helper.make_graph(new_nodes, g.name, list(g.input), list(g.output),
                              initializer=keep + new_inits)
    m = helper.make_model(graph, producer_name="onespike bench/quantize_onnx.py",
                          opset_imports=list(fp32.opset_import))
    m.doc_string = fp32.doc_string + "; int8 QDQ (per-channel weights, calibrated conv outputs)"
    onnx.checker.check_model(m)
    return m, info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("out")
    ap.add_argument("--json", help="write the calibrated ranges here")
    a = ap.parse_args()
    try:
        model = onespike_file.load(a.model)
    except (onespike_file.ModelError, OSError, KeyError, ValueError) as e:
        print("quantize_onnx: %s" % e, file=sys.stderr)
        return 1
    c, h, w = model["input"]
    calib = np.fromfile(a.calib, dtype="<f4")
    if calib.size == 0 or calib.size % (c * h * w):
        print("quantize_onnx: %s: %d floats, not N x %d x %d x %d" % (a.calib, calib.size, c, h, w),
              file=sys.stderr)
        return 1
    calib = calib.reshape(-1, c, h, w)
    convs = event_convs(model)
    ranges = calibrate(model, calib, convs)
    m, info = quantize(model, ranges, export_onnx.build(model))
    tmp = a.out + ".tmp"
    onnx.save(m, tmp)
    os.replace(tmp, a.out)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"calibration_images": int(calib.shape[0]), "convs": info}, f, indent=1)
    print("quantize_onnx: %s -> %s (%d of %d convs int8 QDQ, calibrated on %d images, %d nodes)"
          % (a.model, a.out, len(convs), sum(L["op"] == "conv" for L in model["layers"]),
             calib.shape[0], len(m.graph.node)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
