#!/usr/bin/python3
"""ORT int8 against the float network: answers changed and top-1 accuracy (bench/run.sh).

    quant_agree.py --set NAME DIR IMAGES.txt [--set ...] --labels a,b,... [--json OUT.json]

Each set: DIR holds N x K float32 logits files (onespike-dense.logits.f32, onespike.logits.f32
from bench/engine_tensors dump, ort.logits.f32 and ort-int8.logits.f32 from ort_bench.js
--logits) of the N images listed in IMAGES.txt, whose parent folder names the true class.
For ort-int8: answers (argmax) changed against ORT fp32 and against onespike's dense reference;
top-1 accuracy of every engine present. Quantization changes answers by design: this reports,
it does not fail, except on a clearly broken export (more than BROKEN of the answers changed).
"""
import argparse
import json
import os
import sys

import numpy as np

ENGINES = ["onespike-dense", "onespike", "ort", "ort-int8"]
BROKEN = 0.2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", nargs=3, action="append", metavar=("NAME", "DIR", "IMAGES"),
                    required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--json")
    a = ap.parse_args()
    labels = a.labels.split(",")
    k = len(labels)
    out, ok = [], True
    print("%-10s %6s %-16s %-16s %s" % ("images", "n", "int8 vs ORT fp32", "int8 vs dense",
                                        "top-1: " + ", ".join(ENGINES)))
    for name, d, listing in a.set:
        with open(listing) as f:
            paths = [p.strip() for p in f if p.strip()]
        truth = np.array([labels.index(os.path.basename(os.path.dirname(p))) for p in paths])
        arg = {}
        for e in ENGINES:
            p = os.path.join(d, e + ".logits.f32")
            if os.path.exists(p):
                v = np.fromfile(p, dtype="<f4")
                if v.size != len(paths) * k:
                    raise SystemExit("quant_agree: %s: %d floats, not %d x %d" % (p, v.size,
                                                                                   len(paths), k))
                arg[e] = v.reshape(-1, k).argmax(1)
        if "ort-int8" not in arg:
            raise SystemExit("quant_agree: no ort-int8 logits in %s" % d)
        n = len(paths)
        row = {"set": name, "images": n,
               "top1": {e: float((arg[e] == truth).mean()) for e in arg}}
        for ref in ("ort", "onespike-dense"):
            if ref in arg:
                row["changed_vs_" + ref] = int((arg["ort-int8"] != arg[ref]).sum())
        ok &= row.get("changed_vs_ort", 0) <= BROKEN * n
        out.append(row)
        print("%-10s %6d %-16s %-16s %s" % (
            name, n, row.get("changed_vs_ort", "-"), row.get("changed_vs_onespike-dense", "-"),
            ", ".join("%s %.2f %%" % (e, 100 * row["top1"][e]) for e in ENGINES if e in arg)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"sets": out, "pass": ok}, f)
    if not ok:
        print("quant_agree: ORT int8 changes more than %d %% of the answers: the export is wrong"
              % (100 * BROKEN), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
