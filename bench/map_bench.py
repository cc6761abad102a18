#!/usr/bin/python3
"""Windows per second of `onespike-train map` against `classify` on the same windows as JPEGs.

map reads each window of the scene through GDAL (no JPEG decode) and batches them over threads;
classify decodes one JPEG file per window (TurboJPEG) in one session. Both are timed end to end
as processes (model load included, once each), single-threaded and, for map, also on every
core. The windows are the map's own grid (--window, --stride), cut with GDAL to JPEG quality 95
(the UC Merced conversion's). The machine may be shared: repeat and compare like with like.

usage: bench/map_bench.py [--train build-rel/tools/onespike-train] [--model M] [--scene S]
                          [--window 256] [--stride 64] [--repeat 1]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from osgeo import gdal

gdal.UseExceptions()
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def timed(cmd):
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit("%s failed: %s" % (" ".join(cmd[:2]), p.stderr))
    return dt, p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", default=os.path.join(ROOT, "build-rel", "tools", "onespike-train"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "ucm-msresnet18-t1.safetensors"))
    ap.add_argument("--scene", default="/work/shared/data/geotiff/m_4709963_se_14_1_20200831.tif")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--stride", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    env_note = "OPENBLAS_NUM_THREADS=%s" % os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    with tempfile.TemporaryDirectory() as t:
        out = os.path.join(t, "map.geojson")
        base = [a.train, "map", "--model", a.model, "--in", a.scene, "--out", out,
                "--window", str(a.window), "--stride", str(a.stride), "--quiet"]
        _, s = timed(base + ["--threads", "1"])
        feats = json.load(open(out))["features"]
        jpgs = []
        for i, f in enumerate(feats):  # the same windows, as JPEG files
            x, y, w, h = f["properties"]["window"]
            j = os.path.join(t, "w%05d.jpg" % i)
            gdal.Translate(j, a.scene, format="JPEG", srcWin=[x, y, w, h], bandList=[1, 2, 3],
                           creationOptions=["QUALITY=95"])
            jpgs.append(j)
        n = len(feats)
        rows = []
        for _ in range(a.repeat):
            t_map1, s1 = timed(base + ["--threads", "1"])
            t_mapn, sn = timed(base)
            t_cls, _ = timed([a.train, "classify", "--model", a.model, "--top-k", "3", *jpgs])
            rows.append((t_map1, t_mapn, t_cls, json.loads(s1)["windows_per_s"],
                         json.loads(sn)["windows_per_s"]))
    best = min(rows, key=lambda r: r[0])
    t_map1, t_mapn, t_cls, in1, inn = best
    print("scene %s: %d windows of %dx%d at stride %d (%s, %d cores)" % (
        os.path.basename(a.scene), n, a.window, a.window, a.stride, env_note, os.cpu_count()))
    print("%-34s %10s %12s" % ("", "seconds", "windows/s"))
    print("%-34s %10.3f %12.1f   (in-run %.1f)" % ("map --threads 1", t_map1, n / t_map1, in1))
    print("%-34s %10.3f %12.1f   (in-run %.1f)" % ("map, every core", t_mapn, n / t_mapn, inn))
    print("%-34s %10.3f %12.1f" % ("classify, %d JPEG files" % n, t_cls, n / t_cls))
    print("ratio map/classify: %.2f (one thread each), %.2f (map on every core)" % (
        t_cls / t_map1, t_cls / t_mapn))


if __name__ == "__main__":
    main()
