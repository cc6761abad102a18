#!/usr/bin/python3
"""rescale_input.py SRC DST F [W]: write DST, model SRC with its input std multiplied by F and
tensor W (default stem.conv.weight, the first convolution) by F, data hash renewed.

For F a power of two the two changes cancel exactly: the model normalises an image to x / F and
its first convolution multiplies by F, so it computes bit for bit what SRC does while its
normalisation differs. With W "none" only the std changes (a model that reads images otherwise).
"""
import hashlib
import json
import struct
import sys

import numpy as np

src, dst, f = sys.argv[1], sys.argv[2], float(sys.argv[3])
name = sys.argv[4] if len(sys.argv) > 4 else "stem.conv.weight"
with open(src, "rb") as fh:
    b = fh.read()
n = struct.unpack("<Q", b[:8])[0]
header = json.loads(b[8:8 + n])
data = bytearray(b[8 + n:])
if name != "none":
    t = header[name]
    assert t["dtype"] == "F32", t
    lo, hi = t["data_offsets"]
    w = np.frombuffer(bytes(data[lo:hi]), dtype="<f4") * np.float32(f)
    data[lo:hi] = w.astype("<f4").tobytes()
meta = header["__metadata__"]
model = json.loads(meta["onespike.model"])
model["input"]["std"] = [float(np.float32(s) * np.float32(f)) for s in model["input"]["std"]]
meta["onespike.model"] = json.dumps(model)
meta["onespike.sha256"] = hashlib.sha256(bytes(data)).hexdigest()
hb = json.dumps(header).encode()
hb += b" " * ((8 - len(hb) % 8) % 8)
tmp = dst + ".tmp"
with open(tmp, "wb") as fh:
    fh.write(struct.pack("<Q", len(hb)) + hb + bytes(data))
__import__("os").replace(tmp, dst)
