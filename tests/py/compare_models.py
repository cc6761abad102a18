#!/usr/bin/python3
"""compare_models.py A B: exit 0 when two onespike model files hold bit-identical tensors and the
same layer list (the training metadata - command line, timings - may differ)."""
import json
import struct
import sys


def load(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    model = json.loads(header["__metadata__"]["onespike.model"])
    return model, b[8 + n:]


ma, da = load(sys.argv[1])
mb, db = load(sys.argv[2])
ok = da == db and ma["layers"] == mb["layers"]
acc = lambda m: [round(s["val_top1"], 4) for s in m["training"]["stages"]]
print("tensors identical: %s, layers identical: %s, stage accuracies %s / %s"
      % (da == db, ma["layers"] == mb["layers"], acc(ma), acc(mb)))
sys.exit(0 if ok else 1)
