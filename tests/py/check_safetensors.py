#!/usr/bin/python3
"""Read a safetensors file with an independent minimal parser (struct + json + numpy) and check it.

This is the "other tools can read what we write" test: it shares no code with libonespike.
The `safetensors` pip package is not needed; the parser below follows the published format
(8-byte little-endian header length, JSON header, raw little-endian tensor bytes).

Usage:
  check_safetensors.py FILE [--expect SIDECAR.json]
  check_safetensors.py --writer PATH/st_writer [--expect SIDECAR.json]

With --writer, runs `st_writer OUT` into a temporary folder and checks OUT. Without --expect,
the expectations are those of tests/engine/st_writer.c (held literally below). A sidecar is
  {"tensors": {"name": {"shape": [...], "values": [...nested or flat...]}, ...},
   "metadata": {"key": "value", ...}}
and must list every tensor and metadata key in the file. If the metadata has onespike.sha256,
it must be the SHA-256 of the data section. Exits 0 when everything matches, 1 otherwise.
"""
import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

DATA_ALIGN = 8  # writers pad the header so the data section starts 8-byte aligned

ST_WRITER_EXPECT = {
    "tensors": {
        "a": {"shape": [2, 3], "values": [[1, 2, 3], [4, 5, 6]]},
        "b": {"shape": [10], "values": (np.arange(10) * 0.5).tolist()},
    },
    "metadata": {"k": "v"},  # plus onespike.sha256, checked against the data
}


class Mismatch(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Mismatch(msg)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    check(len(keys) == len(set(keys)), "duplicate keys in header: %r" % keys)
    return dict(pairs)


def read_safetensors(path):
    """Return (tensors: name -> np.ndarray, metadata: dict, data_start: int, data: bytes)."""
    with open(path, "rb") as f:
        blob = f.read()
    check(len(blob) >= 8, "file is %d bytes" % len(blob))
    (n,) = struct.unpack("<Q", blob[:8])
    check(8 + n <= len(blob), "header length %d past end of file (%d bytes)" % (n, len(blob)))
    header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=no_duplicates)
    check(isinstance(header, dict), "header is not a JSON object")
    data_start = 8 + n
    data = blob[data_start:]

    meta = header.pop("__metadata__", {})
    check(isinstance(meta, dict), "__metadata__ is not an object")
    for k, v in meta.items():
        check(isinstance(v, str), "metadata %r is not a string" % k)

    tensors = {}
    spans = []
    for name, info in header.items():
        check(set(info) == {"dtype", "shape", "data_offsets"},
              "tensor %r fields %r" % (name, sorted(info)))
        check(info["dtype"] == "F32", "tensor %r dtype %r" % (name, info["dtype"]))
        shape = info["shape"]
        check(all(isinstance(d, int) and d >= 0 for d in shape),
              "tensor %r shape %r" % (name, shape))
        begin, end = info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64))  # 1 for shape []
        check(0 <= begin <= end <= len(data),
              "tensor %r offsets [%d,%d] out of bounds" % (name, begin, end))
        check(end - begin == 4 * count,
              "tensor %r shape %r vs offsets [%d,%d]" % (name, shape, begin, end))
        arr = np.frombuffer(data, dtype="<f4", count=count, offset=begin).reshape(shape)
        tensors[name] = arr
        spans.append((begin, end, name))

    cursor = 0
    for begin, end, name in sorted(spans):
        check(begin == cursor,
              "tensor %r starts at %d, expected %d (hole or overlap)" % (name, begin, cursor))
        cursor = end
    check(cursor == len(data), "data section is %d bytes, tensors cover %d" % (len(data), cursor))
    return tensors, meta, data_start, data


def verify(path, expect):
    tensors, meta, data_start, data = read_safetensors(path)
    check(data_start % DATA_ALIGN == 0,
          "data starts at byte %d, not %d-aligned" % (data_start, DATA_ALIGN))

    want_t = expect["tensors"]
    check(sorted(tensors) == sorted(want_t),
          "tensors %r, expected %r" % (sorted(tensors), sorted(want_t)))
    for name, w in want_t.items():
        got = tensors[name]
        check(got.dtype == np.dtype("<f4"), "tensor %r dtype %s" % (name, got.dtype))
        check(list(got.shape) == list(w["shape"]),
              "tensor %r shape %r, expected %r" % (name, list(got.shape), w["shape"]))
        want = np.asarray(w["values"], dtype=np.float32).reshape(w["shape"])
        check(np.array_equal(got, want), "tensor %r values\n%r\nexpected\n%r" % (name, got, want))

    want_m = dict(expect["metadata"])
    if "onespike.sha256" in meta:
        digest = hashlib.sha256(data).hexdigest()
        check(meta["onespike.sha256"] == digest,
              "onespike.sha256 %s, data section hashes to %s" % (meta["onespike.sha256"], digest))
        want_m.setdefault("onespike.sha256", digest)
    check(meta == want_m, "metadata %r, expected %r" % (meta, want_m))
    return tensors


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?", help="safetensors file to check")
    ap.add_argument("--writer", help="run this st_writer to produce the file first")
    ap.add_argument("--expect", help="JSON sidecar with the expected tensors and metadata")
    args = ap.parse_args()
    if (args.file is None) == (args.writer is None):
        ap.error("give exactly one of FILE or --writer")

    expect = ST_WRITER_EXPECT
    if args.expect:
        with open(args.expect, encoding="utf-8") as f:
            expect = json.load(f)

    with tempfile.TemporaryDirectory(prefix="os_st_py_") as tmp:
        path = args.file
        if args.writer:
            path = os.path.join(tmp, "written.safetensors")
            rc = subprocess.run([args.writer, path]).returncode
            if rc != 0:
                print("FAIL: %s exited with status %d" % (args.writer, rc), file=sys.stderr)
                return 1
        try:
            tensors = verify(path, expect)
        except (Mismatch, ValueError, KeyError, TypeError) as e:
            print("FAIL %s: %s" % (path, e), file=sys.stderr)
            return 1
    print("OK: %d tensors match (%s)" % (len(tensors), ", ".join(sorted(tensors))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
