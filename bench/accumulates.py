#!/usr/bin/python3
"""The default path's work per image: event-driven accumulates and dense MACs (bench/run.sh).

    accumulates.py MODEL INPUT.f32 [--dump dump.json] [--json OUT.json] [--layers OUT.txt]

An event-driven conv (one whose input is spikes, core/engine/spikeconv.c) adds, for each output
position, one weight row of out_c floats per (tap inside the image, active input channel): its
accumulates are sum over output positions of the active inputs under the window, times out_c.
They are counted exactly on the images of INPUT.f32 from the spike maps of the same network in
PyTorch (bench/peers/onespike_torch.py): per conv, conv2d of the per-pixel spike count with a
window of ones (stride and padding of the conv) gives the rows each position sums. The convs
that read the image (the stem) and the linear head are dense: their MACs are counted from their
shapes. With --dump (bench/engine_tensors dump's JSON on the same images), the spike counts per
LIF layer are checked against the engine's own, so the count is of the engine's work.

--layers writes one line per event conv for bench/ceiling: name out_c in_c kh kw stride
positions rows_per_position (the measured mean).
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))
import onespike_file  # noqa: E402

BATCH = 25


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("--dump")
    ap.add_argument("--json")
    ap.add_argument("--layers")
    a = ap.parse_args()
    import torch
    import torch.nn.functional as F
    import onespike_torch
    model = onespike_file.load(a.model)
    layers = model["layers"]
    c, h, w = model["input"]
    x = np.fromfile(a.input, dtype="<f4")
    if x.size == 0 or x.size % (c * h * w):
        raise SystemExit("accumulates: %s is not N x %d x %d x %d float32" % (a.input, c, h, w))
    x = x.reshape(-1, c, h, w)
    n = x.shape[0]
    net = onespike_torch.OneSpikeNet(model).eval()
    event = [i for i, L in enumerate(layers)
             if L["op"] == "conv" and L["src"][0] != onespike_file.INPUT]
    lifs = [i for i, L in enumerate(layers) if L["op"] == "lif"]
    rows = {i: 0.0 for i in event}
    spikes = {i: 0 for i in lifs}

    def conv_hook(i):
        L = layers[i]
        kh, kw = L["weight"].shape[2:]

        def f(_m, inp, _out):
            s = inp[0]
            if not torch.all((s == 0) | (s == 1)):
                raise SystemExit("accumulates: %s reads non-binary input" % L["name"])
            per_px = s.sum(1, keepdim=True)
            r = F.conv2d(per_px, torch.ones(1, 1, kh, kw), stride=L["stride"], padding=L["pad"])
            rows[i] += float(r.double().sum())
        return f

    def lif_hook(i):
        def f(_m, _inp, out):
            spikes[i] += int(out.sum())
        return f

    hs = [net.layers[i].register_forward_hook(conv_hook(i)) for i in event]
    hs += [net.layers[i].register_forward_hook(lif_hook(i)) for i in lifs]
    with torch.inference_mode():
        for b in range(0, n, BATCH):
            net(torch.from_numpy(x[b:b + BATCH]))
    for hk in hs:
        hk.remove()

    convs = []
    for i in event:
        L = layers[i]
        oc, ic, kh, kw = L["weight"].shape
        pos = L["shape"][1] * L["shape"][2]
        r = rows[i] / n
        convs.append({"name": L["name"], "out_c": oc, "in_c": ic, "kh": kh, "kw": kw,
                      "stride": L["stride"], "positions": pos, "rows_per_image": r,
                      "rows_per_position": r / pos, "accumulates": r * oc,
                      "weight_bytes_fp32": oc * ic * kh * kw * 4,
                      "dense_macs": oc * ic * kh * kw * pos})
    dense = []
    for i, L in enumerate(layers):
        if L["op"] == "conv" and i not in event:
            oc, ic, kh, kw = L["weight"].shape
            dense.append({"name": L["name"], "macs": oc * ic * kh * kw * L["shape"][1] * L["shape"][2]})
        elif L["op"] == "linear":
            dense.append({"name": L["name"], "macs": int(L["weight"].size)})
    acc = sum(cv["accumulates"] for cv in convs)
    res = {"images": n, "accumulates": acc, "dense_macs": sum(d["macs"] for d in dense),
           "event_convs_dense_macs": sum(cv["dense_macs"] for cv in convs),
           "event_weight_bytes_fp32": sum(cv["weight_bytes_fp32"] for cv in convs),
           "convs": convs, "dense": dense}
    if a.dump:
        with open(a.dump) as f:
            eng = json.load(f).get("spikes")
        if eng:
            ours = [spikes[i] for i in lifs]
            if len(eng) != len(ours):
                raise SystemExit("accumulates: %d LIF layers, the engine reports %d"
                                 % (len(ours), len(eng)))
            diff = sum(abs(e[0] - o) for e, o in zip(eng, ours))
            res["spikes_engine"] = sum(e[0] for e in eng)
            res["spikes_counted"] = sum(ours)
            res["spikes_differing"] = diff
            if diff > 1e-3 * max(1, sum(ours)):
                raise SystemExit("accumulates: the spike counts differ from the engine's by %d of %d"
                                 % (diff, sum(ours)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    if a.layers:
        with open(a.layers, "w") as f:
            for cv in convs:
                f.write("%s %d %d %d %d %d %d %.2f\n" % (
                    cv["name"], cv["out_c"], cv["in_c"], cv["kh"], cv["kw"], cv["stride"],
                    cv["positions"], cv["rows_per_position"]))
    print("accumulates: %d images: %.2f M event-driven accumulates per image in %d convs "
          "(dense they would be %.1f M MACs), %.2f M dense MACs (%s)%s"
          % (n, acc / 1e6, len(convs), res["event_convs_dense_macs"] / 1e6,
             res["dense_macs"] / 1e6, ", ".join("%s %.3f M" % (d["name"], d["macs"] / 1e6)
                                               for d in dense),
             "; spikes match the engine's (%d differ of %d)" % (res["spikes_differing"],
                                                               res["spikes_counted"])
             if "spikes_differing" in res else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
