#!/usr/bin/python3
"""PyTorch (Debian python3-torch 1.13, CPU) on the same onespike network: eager and TorchScript.

    torch_bench.py MODEL.safetensors INPUT.f32 [--logits-dir DIR] [--configs 1:1,2:1,2:8]
                   [--iters N] [--warmup N] [--modes eager,torchscript]

INPUT.f32 holds N x C x H x W float32 tensors (bench/engine_tensors dump). With --logits-dir,
each image is run alone (batch 1, one thread) and the N x classes logits are written to
DIR/torch-eager.logits.f32 and DIR/torchscript.logits.f32.
Each config THREADS:BATCH sets torch.set_num_threads(THREADS) (inter-op threads: 1); a call runs
one [BATCH, C, H, W] tensor (a real batch) under torch.inference_mode(), cycling through the
images. After WARMUP calls, ITERS calls are timed one by one. One JSON line per mode and config.
TorchScript is torch.jit.trace + torch.jit.freeze of the same module.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onespike_torch  # noqa: E402


def percentile(sorted_v, q):
    r = int(np.ceil(q / 100.0 * len(sorted_v)))
    return sorted_v[min(len(sorted_v), max(1, r)) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("--logits-dir")
    ap.add_argument("--configs", default="1:1,2:1,2:8")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--modes", default="eager,torchscript")
    a = ap.parse_args()
    torch.set_num_interop_threads(1)
    torch.set_num_threads(1)

    model = onespike_torch.onespike_file.load(a.model)
    eager = onespike_torch.OneSpikeNet(model).eval()
    shape = model["input"]  # (C, H, W) of one tensor in INPUT.f32
    raw = np.fromfile(a.input, dtype="<f4")
    per = int(np.prod(shape))
    if raw.size == 0 or raw.size % per:
        print("torch_bench: %s: %d floats, not a whole number of %r tensors"
              % (a.input, raw.size, shape), file=sys.stderr)
        return 1
    x_all = torch.from_numpy(raw.reshape(-1, *shape).copy())
    n = x_all.shape[0]

    engines = {}
    for mode in a.modes.split(","):
        if mode == "eager":
            engines["torch-eager"] = eager
        elif mode == "torchscript":
            engines["torchscript"] = onespike_torch.script(eager, x_all[:1])
        else:
            print("torch_bench: unknown mode %r" % mode, file=sys.stderr)
            return 2

    with torch.inference_mode():
        if a.logits_dir:
            for name, net in engines.items():
                out = np.stack([net(x_all[i:i + 1])[0].numpy() for i in range(n)])
                out.astype("<f4").tofile(os.path.join(a.logits_dir, name + ".logits.f32"))

        for name, net in engines.items():
            for cfg in a.configs.split(","):
                threads, batch = (int(v) for v in cfg.split(":"))
                torch.set_num_threads(threads)
                idx = [[(i + j) % n for j in range(batch)] for i in range(0, n, batch)]
                feeds = [x_all[ix].contiguous() for ix in idx]
                f = 0
                for _ in range(a.warmup):
                    net(feeds[f % len(feeds)])
                    f += 1
                times = np.empty(a.iters)
                t0 = time.perf_counter()
                for i in range(a.iters):
                    c0 = time.perf_counter()
                    net(feeds[f % len(feeds)])
                    times[i] = (time.perf_counter() - c0) * 1e3
                    f += 1
                secs = time.perf_counter() - t0
                times.sort()
                print(json.dumps({
                    "engine": name, "version": torch.__version__, "threads": threads,
                    "batch": batch, "calls": a.iters, "images": a.iters * batch,
                    "seconds": round(secs, 4), "images_per_s": round(a.iters * batch / secs, 2),
                    "median_ms": round(float(percentile(times, 50)), 4),
                    "p90_ms": round(float(percentile(times, 90)), 4)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
