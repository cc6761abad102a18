#!/usr/bin/python3
"""Agreement of the engines' logits on the same input tensors (bench/run.sh step 1).

    agree.py DIR --classes K [--json OUT.json] [--max-disagree 1]

Reads DIR/ENGINE.logits.f32 (N x K float32) for every engine present; the reference is
onespike-dense (onespike's dense float kernels). For each other engine: argmax disagreements
with the reference, max |delta logit| and the median over images of each image's max |delta|.

Exit status 1 when an engine disagrees on more than --max-disagree argmax decisions, or when its
export is clearly wrong: most images differ by more than TOL_WRONG (a flipped near-threshold spike
moves the logits of one image; a wrong layer moves every image's).
"""
import argparse
import json
import os
import sys

import numpy as np

REFERENCE = "onespike-dense"
ENGINES = ["onespike", "ort", "torch-eager", "torchscript"]
# Median over images of max |delta logit| above this is not summation order: the network differs.
TOL_WRONG = 1e-2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--classes", type=int, required=True)
    ap.add_argument("--json")
    ap.add_argument("--max-disagree", type=int, default=1)
    a = ap.parse_args()

    def read(name):
        p = os.path.join(a.dir, name + ".logits.f32")
        if not os.path.exists(p):
            return None
        v = np.fromfile(p, dtype="<f4")
        if v.size == 0 or v.size % a.classes:
            raise SystemExit("agree: %s: %d floats, not N x %d" % (p, v.size, a.classes))
        return v.reshape(-1, a.classes).astype(np.float64)

    ref = read(REFERENCE)
    if ref is None:
        raise SystemExit("agree: no %s logits in %s" % (REFERENCE, a.dir))
    n = ref.shape[0]
    ref_arg = ref.argmax(1)
    rows, ok = [], True
    print("agreement on %d images, reference %s (logit range %.3f .. %.3f)"
          % (n, REFERENCE, ref.min(), ref.max()))
    print("%-14s %10s %14s %16s %8s" % ("engine", "argmax ≠", "max |Δ logit|", "median img max", "verdict"))
    for name in ENGINES:
        x = read(name)
        if x is None:
            print("%-14s %10s" % (name, "missing"))
            rows.append({"engine": name, "missing": True})
            ok = False
            continue
        if x.shape != ref.shape:
            raise SystemExit("agree: %s has %d images, reference %d" % (name, x.shape[0], n))
        d = np.abs(x - ref)
        per_img = d.max(1)
        bad = np.nonzero(x.argmax(1) != ref_arg)[0]
        wrong = float(np.median(per_img)) > TOL_WRONG or not np.all(np.isfinite(x))
        verdict = "ok"
        if len(bad) > a.max_disagree:
            verdict = "FAIL"
        if wrong:
            verdict = "WRONG"
        ok &= verdict == "ok"
        print("%-14s %7d/%-3d %14.3g %16.3g %8s" % (name, len(bad), n, d.max(), np.median(per_img),
                                                   verdict))
        rows.append({"engine": name, "images": n, "argmax_disagree": int(len(bad)),
                     "disagree_images": bad.tolist(), "max_abs_delta": float(d.max()),
                     "median_image_max_delta": float(np.median(per_img)),
                     "images_exact": int(np.sum(per_img == 0)), "verdict": verdict})
    print("agreement: %s (at most %d of %d argmax disagreements allowed per engine)"
          % ("PASS" if ok else "FAIL", a.max_disagree, n))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"reference": REFERENCE, "images": n, "engines": rows, "pass": ok}, f)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
