"""Read a onespike model file into plain numpy, the way libonespike builds its network.

Shared by bench/export_onnx.py (ONNX graph) and bench/peers/onespike_torch.py (PyTorch module),
so both peers see the same layers and the same float32 weights as core/engine/net.c:

- the safetensors container is parsed with struct + json + numpy (no `safetensors` package),
  and the tensor bytes are checked against `onespike.sha256` as core/engine/model.c does;
- every layer's "from" is resolved to earlier layer indices ("input" is -1, absent means the
  previous layer), as core/engine/net.c parse_from;
- BatchNorm is folded into the conv that feeds it when that conv has no other consumer, with the
  same float32 arithmetic as core/engine/net.c fold_batchnorms; any other bn stays an affine x*scale+shift.

The result describes one inference at T = 1: a "lif" layer is `spike = input > threshold`
(membrane starts at 0, so u = input current; strict comparison as core/engine/layers.c os_lif_step).
"""
import hashlib
import json
import struct

import numpy as np

BN_DEFAULT_EPS = 1e-5  # core/engine/net.c NET_DEFAULT_BN_EPS
INPUT = -1  # "from" index of the network input (include/onespike/net.h OS_NET_INPUT)


class ModelError(Exception):
    pass


def _read_container(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ModelError("%s: %d bytes, not a safetensors file" % (path, len(blob)))
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ModelError("%s: header length %d past end of file" % (path, n))
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ModelError("%s: tensor %r dtype %s, only F32 supported" % (path, name, info["dtype"]))
        a, b = info["data_offsets"]
        if not 0 <= a <= b <= len(data):
            raise ModelError("%s: tensor %r offsets %r out of bounds" % (path, name, [a, b]))
        shape = tuple(info["shape"])
        arr = np.frombuffer(data[a:b], dtype="<f4")
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ModelError("%s: tensor %r has %d values, shape %r" % (path, name, arr.size, shape))
        tensors[name] = arr.reshape(shape).astype(np.float32)
    return meta, tensors, data


def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, list) else (int(v), int(v))


def load(path):
    """Return a dict: name, timesteps, input (c, h, w), mean, std, labels, layers.

    Each layer is a dict with name, op, src (list of input indices, INPUT for the image), the
    output shape (c, h, w) and, by op:
      conv:     weight [out,in,kh,kw], bias [out] or None, stride, pad (BN folded in if any)
      bn:       folded (True: output is its conv's), scale [c], shift [c]
      lif:      threshold (np.float32)
      maxpool / avgpool: kernel, stride, pad
      linear:   weight [out, in], bias [out] or None
    """
    meta, tensors, data = _read_container(path)
    if "onespike.model" not in meta:
        raise ModelError("%s: no onespike.model in __metadata__: not a onespike model file" % path)
    want = meta.get("onespike.sha256")
    have = hashlib.sha256(data).hexdigest()
    if want != have:
        raise ModelError("%s: tensor data SHA-256 is %s, file says %s" % (path, have, want))
    doc = json.loads(meta["onespike.model"])
    inp = doc["input"]
    in_shape = (int(inp["channels"]), int(inp["height"]), int(inp["width"]))

    def tensor(obj, key, shape, required=True):
        if key not in obj:
            if required:
                raise ModelError("%s: layer %r has no %r" % (path, obj["name"], key))
            return None
        t = tensors[obj[key]]
        if tuple(t.shape) != tuple(shape):
            raise ModelError("%s: tensor %r shape %r, architecture wants %r"
                             % (path, obj[key], t.shape, tuple(shape)))
        return t

    layers = []
    names = {}
    for i, obj in enumerate(doc["layers"]):
        op = obj["op"]
        frm = obj.get("from")
        if frm is None:
            src = [i - 1]  # previous layer; -1 is the input for the first
        else:
            frm = frm if isinstance(frm, list) else [frm]
            src = [INPUT if f == "input" else names[f] for f in frm]
        c, h, w = in_shape if src[0] == INPUT else layers[src[0]]["shape"]
        L = {"name": obj["name"], "op": op, "src": src}
        if op == "conv":
            kh, kw = _pair(obj["kernel"])
            out, stride, pad = int(obj["out"]), int(obj.get("stride", 1)), int(obj.get("pad", 0))
            L.update(weight=tensor(obj, "weight", (out, c, kh, kw)),
                     bias=tensor(obj, "bias", (out,), False), stride=stride, pad=pad)
            L["shape"] = (out, (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1)
        elif op == "bn":
            g, b = tensor(obj, "weight", (c,)), tensor(obj, "bias", (c,))
            mean, var = tensor(obj, "mean", (c,)), tensor(obj, "var", (c,))
            eps = float(obj.get("eps", BN_DEFAULT_EPS))
            # core/engine/net.c parse_bn: scale in double, stored as float; shift in float.
            scale = (g.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)).astype(np.float32)
            shift = (b - mean * scale).astype(np.float32)
            L.update(scale=scale, shift=shift, folded=False, shape=(c, h, w))
        elif op in ("relu", "lif"):
            L["shape"] = (c, h, w)
            if op == "lif":
                L["threshold"] = np.float32(obj["threshold"])
                L["leak"] = np.float32(obj["leak"])
        elif op in ("maxpool", "avgpool"):
            k = _pair(obj["kernel"])[0]
            stride, pad = int(obj.get("stride", k)), int(obj.get("pad", 0))
            L.update(kernel=k, stride=stride, pad=pad,
                     shape=(c, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1))
        elif op == "gap":
            L["shape"] = (c, 1, 1)
        elif op == "linear":
            out = int(obj["out"])
            L.update(weight=tensor(obj, "weight", (out, c * h * w)),
                     bias=tensor(obj, "bias", (out,), False), shape=(out, 1, 1))
        elif op == "add":
            other = in_shape if src[1] == INPUT else layers[src[1]]["shape"]
            if tuple(other) != (c, h, w):
                raise ModelError("%s: layer %r adds %r and %r" % (path, obj["name"], (c, h, w), other))
            L["shape"] = (c, h, w)
        else:
            raise ModelError("%s: layer %r: unknown op %r" % (path, obj["name"], op))
        names[obj["name"]] = i
        layers.append(L)

    _fold_batchnorms(layers)
    last = layers[-1]
    if last["op"] != "linear" or last["shape"][0] != len(doc["labels"]):
        raise ModelError("%s: last layer must be linear with one output per label" % path)
    return {"name": doc["name"], "timesteps": int(doc["timesteps"]), "input": in_shape,
            "mean": doc["input"]["mean"], "std": doc["input"]["std"], "labels": doc["labels"],
            "layers": layers}


def _fold_batchnorms(layers):
    """core/engine/net.c fold_batchnorms: a bn whose input is a conv feeding nothing else is folded."""
    for bn in layers:
        if bn["op"] != "bn" or bn["src"][0] == INPUT:
            continue
        j = bn["src"][0]
        cv = layers[j]
        consumers = sum(s == j for L in layers for s in L["src"])
        if cv["op"] != "conv" or consumers != 1:
            continue
        scale, shift = bn["scale"], bn["shift"]
        # float32 products and sums, element by element, as the C loop (no FMA: -std=c11).
        cv["weight"] = (cv["weight"] * scale[:, None, None, None]).astype(np.float32)
        bias = cv["bias"] if cv["bias"] is not None else np.zeros_like(scale)
        cv["bias"] = (bias * scale + shift).astype(np.float32)
        bn["folded"] = True
