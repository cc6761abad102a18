#!/usr/bin/python3
"""Summarise one bench/run.sh run: tables, ratios, targets; write the Markdown and SVG results.

    report.py RUNDIR --md OUT.md --svg OUT.svg [--note TEXT] [--load-before "a b c"]

RUNDIR holds what run.sh collected in this run (nothing here is a stored number):
  dump.json      engine_tensors dump (images, shape, classes, OpenBLAS core)
  timings.jsonl  one JSON line per timed configuration (engine_tensors time, ort_bench.js,
                 torch_bench.py)
  agree.json, agree.txt   bench/agree.py
  serve.txt      bench/serve_bench.sh output (last line: JSON summary)
  train.txt      bench/train_bench.sh output if it ran (last line: JSON summary)
  images.txt     the agreement images
  quant.json, quant.txt, int8.json, int8.fused.txt   ORT int8 (bench/quant_agree.py,
                 bench/quantize_onnx.py's ranges, the ops ORT ran it as)
  acc.json       bench/accumulates.py (work per image on the default path)
  ceiling.jsonl  bench/ceiling (the sweep and the network's layers)
Prints the summary (ratios and targets met/missed) on stdout. Standard library only.
"""
import argparse
import datetime
import html
import json
import os
import platform
import statistics
import sys

# The targets (onespike = the default path, dense = false).
LATENCY_FLOOR = 1.0   # onespike batch-1 latency / ORT int8's must be <= this
LATENCY_AIM = 0.5     # ... and the aim
LATENCY_FP32 = 0.4    # onespike batch-1 latency / ORT fp32's
THROUGHPUT_FLOOR = 1.0  # onespike best 2-thread img/s / ORT int8's best (any batch, threading)
SERVER_FLOOR = 0.85   # server req/s at 64 connections / engine images/s (2 threads, with decode)
T_SPEEDUP = 4.0       # latency at T=5 / latency at T=1


def read_json_lines(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def last_json(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    try:
        return json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None


def machine(load_before, core):
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                have = line.split(":", 1)[1].split()
                flags = " ".join(x for x in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16")
                                 if x in have)
                break
    with open("/proc/loadavg") as f:
        load_after = " ".join(f.read().split()[:3])
    return {"cpu": model, "cores": os.cpu_count(), "flags": flags, "openblas_core": core,
            "kernel": platform.release(), "load_before": load_before, "load_after": load_after}


class Timings:
    def __init__(self, rows):
        self.rows = rows

    def get(self, engine, threads, batch, path=None, timesteps=1, sessions=1):
        for r in self.rows:
            if r["engine"] != engine or r["threads"] != threads or r["batch"] != batch:
                continue
            if r.get("sessions", 1) != sessions:
                continue
            if engine == "onespike" and (r["path"] != path or r["timesteps"] != timesteps):
                continue
            return r
        return None


ENGINES = [  # (key, label, engine field, onespike path, sessions)
    ("onespike", "onespike (default path)", "onespike", "default", 1),
    ("onespike-dense", "onespike (dense=true)", "onespike", "dense", 1),
    ("onespike-int8", "onespike (int8 weight rows)", "onespike", "int8", 1),
    ("onespike-fp16", "onespike (fp16 weight rows)", "onespike", "fp16", 1),
    ("ort", "ONNX Runtime fp32 (CPU EP)", "ort", None, 1),
    ("ort-2s", "ONNX Runtime fp32, 2 sessions x 1 thread", "ort", None, 2),
    ("ort-int8", "ONNX Runtime int8 (QDQ)", "ort-int8", None, 1),
    ("ort-int8-2s", "ONNX Runtime int8, 2 sessions x 1 thread", "ort-int8", None, 2),
    ("torch-eager", "PyTorch eager", "torch-eager", None, 1),
    ("torchscript", "TorchScript (trace+freeze)", "torchscript", None, 1),
]


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def svg_bars(path, title_l, lat, title_r, thr, note):
    """Two horizontal bar charts side by side: latency (lower is better), throughput (higher)."""
    row_h, left, bar_w, value_w = 22, 200, 250, 110  # value_w: room for the number after a bar
    W = 2 * (left + bar_w + value_w) + 20
    H = 44 + max(len(lat), len(thr)) * row_h + 44
    colors = {"onespike": "#1b7837", "onespike-dense": "#7fbf7b", "onespike-int8": "#00441b",
              "onespike-fp16": "#5aae61",
              "ort": "#2166ac",
              "ort-2s": "#4393c3", "ort-int8": "#542788", "ort-int8-2s": "#8073ac",
              "torch-eager": "#d6604d", "torchscript": "#f4a582"}
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>']

    def panel(x0, title, items, unit):
        out.append('<text x="%d" y="24" font-size="14" font-weight="bold">%s</text>'
                   % (x0, html.escape(title)))
        vmax = max([v for _, _, v in items if v] or [1.0])
        y = 44
        for key, label, v in items:
            w = 0 if not v else bar_w * v / vmax
            out.append('<text x="%d" y="%d" text-anchor="end">%s</text>'
                       % (x0 + left - 6, y + 15, html.escape(label)))
            out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>'
                       % (x0 + left, y + 3, w, row_h - 6, colors.get(key, "#888")))
            out.append('<text x="%.1f" y="%d">%s %s</text>'
                       % (x0 + left + w + 4, y + 15, fmt(v, ".3g"), unit))
            y += row_h
        return y

    panel(10, title_l, lat, "ms")
    panel(10 + left + bar_w + value_w, title_r, thr, "img/s")
    out.append('<text x="10" y="%d" fill="#555">%s</text>' % (H - 12, html.escape(note)))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def _load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _read(path):
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return f.read().rstrip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--md", required=True)
    ap.add_argument("--svg", required=True)
    ap.add_argument("--note", default="")
    ap.add_argument("--load-before", default="?")
    ap.add_argument("--model", default="models/ucm-msresnet18-t1.safetensors")
    a = ap.parse_args()
    D = a.dir
    with open(os.path.join(D, "dump.json")) as f:
        dump = json.load(f)
    T = Timings(read_json_lines(os.path.join(D, "timings.jsonl")))
    with open(os.path.join(D, "agree.json")) as f:
        agree = json.load(f)
    with open(os.path.join(D, "agree.txt")) as f:
        agree_txt = f.read().rstrip()
    serve = last_json(os.path.join(D, "serve.txt"))
    serve = serve if isinstance(serve, dict) and "server" in serve else None
    train = last_json(os.path.join(D, "train.txt"))
    train = train if isinstance(train, dict) else None
    mach = machine(a.load_before, dump["openblas_core"])
    md = []
    say = md.append

    def row_for(key, threads, batch, timesteps=1):
        _, _, eng, path, sessions = next(e for e in ENGINES if e[0] == key)
        return T.get(eng, threads, batch, path, timesteps, sessions)

    versions = {}
    for r in T.rows:
        if "version" in r:
            versions[r["engine"]] = r["version"]

    # ---- latency, batch 1, 1 thread
    os_lat = row_for("onespike", 1, 1)
    lat_tab = ["| engine | median ms | p90 ms | calls | onespike / engine (median) |",
               "|---|---:|---:|---:|---:|"]
    lat_svg = []
    for key, label, _, _, _ in ENGINES:
        r = row_for(key, 1, 1)
        if not r:
            continue
        lat_tab.append("| %s | %.3f | %.3f | %d | %s |" % (
            label, r["median_ms"], r["p90_ms"], r["calls"],
            fmt(ratio(os_lat["median_ms"], r["median_ms"]) if os_lat else None)))
        lat_svg.append((key, label, r["median_ms"]))

    # ---- throughput, 2 threads
    thr_tab = ["| engine | 2 threads, batch 1: img/s | 2 threads, batch 8: img/s | "
               "onespike / engine (b1) | onespike / engine (b8) |",
               "|---|---:|---:|---:|---:|"]
    thr_svg = []
    os_b1, os_b8 = row_for("onespike", 2, 1), row_for("onespike", 2, 8)
    for key, label, _, _, _ in ENGINES:
        b1, b8 = row_for(key, 2, 1), row_for(key, 2, 8)
        if not b1 and not b8:
            continue
        v1 = b1["images_per_s"] if b1 else None
        v8 = b8["images_per_s"] if b8 else None
        thr_tab.append("| %s | %s | %s | %s | %s |" % (
            label, fmt(v1, ".1f"), fmt(v8, ".1f"),
            fmt(ratio(os_b1["images_per_s"] if os_b1 else None, v1)),
            fmt(ratio(os_b8["images_per_s"] if os_b8 else None, v8))))
        thr_svg.append((key, label + " b1", v1))
        thr_svg.append((key, label + " b8", v8))

    # ---- T = 5 vs T = 1
    t_tab = ["| onespike path | T=1 median ms | T=5 median ms | T=5 / T=1 |", "|---|---:|---:|---:|"]
    t_ratio = {}
    for key in ("onespike", "onespike-dense"):
        r1, r5 = row_for(key, 1, 1, 1), row_for(key, 1, 1, 5)
        if r1 and r5:
            t_ratio[key] = r5["median_ms"] / r1["median_ms"]
            t_tab.append("| %s | %.3f | %.3f | %.2f |" % (key, r1["median_ms"], r5["median_ms"],
                                                         t_ratio[key]))

    # ---- server vs engine
    srv_tab, srv = [], {}
    if serve:
        e1, e2 = serve["engine_1_thread"]["images_per_s"], serve["engine_2_threads"]["images_per_s"]
        srv_tab = ["| | req/s or img/s | p50 ms | p99 ms | non-2xx | server / engine |",
                   "|---|---:|---:|---:|---:|---:|",
                   "| engine + JPEG decode, 1 thread | %.1f | %.2f | - | - | |"
                   % (e1, serve["engine_1_thread"]["ms_per_image"]),
                   "| engine + JPEG decode, 2 threads | %.1f | %.2f | - | - | |"
                   % (e2, serve["engine_2_threads"]["ms_per_image"])]
        for c in ("1", "8", "64"):
            s = serve["server"][c]
            base = e1 if c == "1" else e2
            srv[c] = s["rps"] / base
            srv_tab.append("| server, %s conn (%d workers) | %.1f | %.2f | %.2f | %d | %.2f (vs %s) |"
                           % (c, serve["workers"], s["rps"], s["p50_ms"], s["p99_ms"],
                              s["errors_status"], srv[c], "1 thread" if c == "1" else "2 threads"))

    # ---- ratios and targets
    def med(key):
        r = row_for(key, 1, 1)
        return r["median_ms"] if r else None

    def ips(key, batch):
        r = row_for(key, 2, batch)
        return r["images_per_s"] if r else None

    def best_ips(*keys):
        v = [x for k in keys for x in (ips(k, 1), ips(k, 8)) if x]
        return max(v) if v else None

    # Batch-1 latency in interleaved rounds (rounds.jsonl): each ratio taken within a round, the
    # median over rounds; these are the headline batch-1 ratios when the file is there.
    rounds = {}
    rpath = os.path.join(D, "rounds.jsonl")
    for r in (read_json_lines(rpath) if os.path.exists(rpath) else []):
        key = r["engine"] if r["engine"] != "onespike" else (
            "onespike" if r["path"] == "default" else "onespike-" + r["path"])
        rounds.setdefault(r["round"], {})[key] = r["median_ms"]
    round_keys = ("onespike", "onespike-int8", "onespike-fp16", "ort", "ort-int8")
    complete = [rounds[k] for k in sorted(rounds) if all(e in rounds[k] for e in round_keys)]

    def round_ratio(a, b):
        v = sorted(x[a] / x[b] for x in complete)
        return (statistics.median(v), v[0], v[-1]) if v else None

    rr = {(a, b): round_ratio(a, b) for a, b in (("onespike", "ort-int8"), ("onespike", "ort"),
                                                  ("onespike-int8", "ort-int8"),
                                                  ("onespike-fp16", "ort-int8"),
                                                  ("onespike-fp16", "onespike"))}
    rounds_tab = []
    if complete:
        rounds_tab = ["| round | onespike ms | onespike int8 rows ms | onespike fp16 rows ms | "
                      "ORT fp32 ms | ORT int8 ms | onespike / ORT int8 | onespike / ORT fp32 | "
                      "int8 rows / ORT int8 | fp16 rows / ORT int8 |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for i, x in enumerate(complete, 1):
            rounds_tab.append("| %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f | %.2f | %.2f | %.2f |" % (
                i, x["onespike"], x["onespike-int8"], x["onespike-fp16"], x["ort"], x["ort-int8"],
                x["onespike"] / x["ort-int8"], x["onespike"] / x["ort"],
                x["onespike-int8"] / x["ort-int8"], x["onespike-fp16"] / x["ort-int8"]))
        rounds_tab.append("| **median of rounds** | %s | %s | %s | %s | %s | **%.2f** | **%.2f** | **%.2f** | **%.2f** |" % (
            tuple("%.3f" % statistics.median(x[e] for x in complete) for e in round_keys) +
            tuple(rr[k][0] for k in (("onespike", "ort-int8"), ("onespike", "ort"),
                                     ("onespike-int8", "ort-int8"),
                                     ("onespike-fp16", "ort-int8")))))

    def lat_ratio(a, b):
        return rr[(a, b)][0] if complete else ratio(med(a), med(b))

    r_ort = lat_ratio("onespike", "ort")
    r_int8 = lat_ratio("onespike", "ort-int8")
    r_thr_int8 = ratio(best_ips("onespike"), best_ips("ort-int8", "ort-int8-2s"))
    r_eager = ratio(med("onespike"), med("torch-eager"))
    r_ts = ratio(med("onespike"), med("torchscript"))
    summary = [
        ("latency onespike / ORT int8 (batch 1, 1 thread, median%s)" % (
            " of %d interleaved rounds" % len(complete) if complete else ""), r_int8),
        ("latency onespike / ORT fp32 (batch 1, 1 thread, median%s)" % (
            " of rounds" if complete else ""), r_ort),
        ("latency onespike dense / ORT fp32", ratio(med("onespike-dense"), med("ort"))),
        ("latency onespike int8 rows / ORT int8 (batch 1, 1 thread)",
         lat_ratio("onespike-int8", "ort-int8")),
        ("throughput onespike int8 rows / ORT int8 (2 threads, best of each)",
         ratio(best_ips("onespike-int8"), best_ips("ort-int8", "ort-int8-2s"))),
        ("latency onespike fp16 rows / ORT int8 (batch 1, 1 thread)",
         lat_ratio("onespike-fp16", "ort-int8")),
        ("latency onespike fp16 rows / fp32 rows (batch 1, 1 thread)",
         lat_ratio("onespike-fp16", "onespike")),
        ("throughput onespike fp16 rows / ORT int8 (2 threads, best of each)",
         ratio(best_ips("onespike-fp16"), best_ips("ort-int8", "ort-int8-2s"))),
        ("latency onespike / PyTorch eager", r_eager),
        ("latency onespike / TorchScript", r_ts),
        ("throughput onespike / ORT int8 (2 threads, best of each, any batch/threading)",
         r_thr_int8),
        ("throughput onespike / ORT int8 2 sessions (2 threads, batch 1)",
         ratio(ips("onespike", 1), ips("ort-int8-2s", 1))),
        ("throughput onespike / ORT int8 2 sessions (2 threads, batch 8)",
         ratio(ips("onespike", 8), ips("ort-int8-2s", 8))),
        ("throughput onespike / ORT fp32 (2 threads, batch 1)", ratio(ips("onespike", 1), ips("ort", 1))),
        ("throughput onespike / ORT fp32 (2 threads, batch 8)", ratio(ips("onespike", 8), ips("ort", 8))),
        ("throughput onespike / ORT fp32 2 sessions (2 threads, batch 8)",
         ratio(ips("onespike", 8), ips("ort-2s", 8))),
        ("throughput onespike / PyTorch eager (2 threads, batch 8)",
         ratio(*(x["images_per_s"] if x else None for x in (os_b8, row_for("torch-eager", 2, 8))))),
        ("throughput onespike / TorchScript (2 threads, batch 8)",
         ratio(*(x["images_per_s"] if x else None for x in (os_b8, row_for("torchscript", 2, 8))))),
        ("speed-up T=1 vs T=5 (latency T5 / T1, default path)", t_ratio.get("onespike")),
        ("server 1 conn / engine 1 thread", srv.get("1")),
        ("server 8 conn / engine 2 threads", srv.get("8")),
        ("server 64 conn / engine 2 threads", srv.get("64")),
    ]

    def target(name, value, ok):
        return (name, "-" if value is None else "%.2f" % value,
                "n/a" if value is None else ("met" if ok(value) else "MISSED"))

    targets = [
        target("onespike batch-1 latency <= ORT int8 (floor: ratio <= %.2f)" % LATENCY_FLOOR,
               r_int8, lambda v: v <= LATENCY_FLOOR),
        target("onespike batch-1 latency <= %.1fx ORT int8 (aim)" % LATENCY_AIM, r_int8,
               lambda v: v <= LATENCY_AIM),
        target("onespike batch-1 latency <= %.1fx ORT fp32" % LATENCY_FP32, r_ort,
               lambda v: v <= LATENCY_FP32),
        target("onespike 2-thread img/s >= ORT int8's best (floor)", r_thr_int8,
               lambda v: v >= THROUGHPUT_FLOOR),
        target("onespike 2-thread img/s >= 2x ORT int8's best (aim)", r_thr_int8,
               lambda v: v >= 2 * THROUGHPUT_FLOOR),
        target("onespike below PyTorch eager (ratio < 1)", r_eager, lambda v: v < 1),
        target("onespike below TorchScript (ratio < 1)", r_ts, lambda v: v < 1),
        target("server at 64 conns >= %.2fx engine img/s" % SERVER_FLOOR, srv.get("64"),
               lambda v: v >= SERVER_FLOOR),
        target("T=1 >= %.0fx faster than T=5" % T_SPEEDUP, t_ratio.get("onespike"),
               lambda v: v >= T_SPEEDUP),
    ]

    agree_line = "agreement on %d images vs onespike dense: %s (%s)" % (
        agree["images"], "PASS" if agree["pass"] else "FAIL",
        ", ".join("%s %s/%d argmax, max |d| %s" % (
            e["engine"], e.get("argmax_disagree", "-"), agree["images"],
            fmt(e.get("max_abs_delta"), ".2g")) for e in agree["engines"]))

    # Training: bench/train_bench.sh's own ratios and target (its JSON: ann / snn_t5 objects with
    # "ratio" = onespike img/s / PyTorch img/s, and "target_ratio").
    if train:
        tgt = train.get("target_ratio")
        for k, label in (("ann", "ANN epoch"), ("snn_t5", "SNN epoch at T=5")):
            v = train.get(k, {}).get("ratio") if isinstance(train.get(k), dict) else None
            if v is None:
                continue
            summary.append(("training %s images/s onespike / PyTorch" % label, v))
            if tgt is not None:
                targets.append(target("training %s >= %.2fx PyTorch" % (label, tgt), v,
                                      lambda x, t=tgt: x >= t))

    # ---- ORT int8: answers changed and accuracy
    quant = _load(os.path.join(D, "quant.json"))
    quant_txt = _read(os.path.join(D, "quant.txt"))
    int8 = _load(os.path.join(D, "int8.json"))
    fused = _read(os.path.join(D, "int8.fused.txt"))
    int8_lines = []
    if quant:
        for q in quant["sets"]:
            t = q["top1"]
            int8_lines.append(
                "ORT int8 on %d images (%s): %s answers of ORT fp32 changed (%s of onespike dense); "
                "top-1 int8 %.2f %%, ORT fp32 %.2f %%, onespike %.2f %%" % (
                    q["images"], q["set"], q.get("changed_vs_ort", "-"),
                    q.get("changed_vs_onespike-dense", "-"), 100 * t.get("ort-int8", float("nan")),
                    100 * t.get("ort", float("nan")), 100 * t.get("onespike", float("nan"))))

    # ---- the limit: work per image, achieved rate, the kernels' ceiling
    acc = _load(os.path.join(D, "acc.json"))
    ceil = read_json_lines(os.path.join(D, "ceiling.jsonl")) if os.path.exists(
        os.path.join(D, "ceiling.jsonl")) else []
    sweep = [c for c in ceil if c["kind"] == "sweep"]
    cmodel = next((c for c in ceil if c["kind"] == "model"), None)
    limit_lines = []
    if acc and os_lat:
        t_ms = os_lat["median_ms"]
        achieved = acc["accumulates"] / (t_ms * 1e-3) * 1e-9
        limit_lines.append("work per image (default path, %d images): %.2f M event-driven "
                           "accumulates (dense: %.1f M MACs) + %.2f M dense MACs (stem, head)"
                           % (acc["images"], acc["accumulates"] / 1e6,
                              acc["event_convs_dense_macs"] / 1e6, acc["dense_macs"] / 1e6))
        limit_lines.append("achieved: %.2f G accumulates/s (all of the %.3f ms batch-1 latency "
                           "charged to them)" % (achieved, t_ms))
        if cmodel:
            limit_lines.append(
                "ceiling for these layers (bench/ceiling, the network's shapes in sequence): "
                "%.2f G/s, %.3f ms per image: the engine takes %.2fx that"
                % (cmodel["gacc_per_s"], cmodel["us"] / 1e3, t_ms / (cmodel["us"] / 1e3)))
        if sweep:
            pk = max(sweep, key=lambda c: c["gacc_per_s"])
            limit_lines.append("peak of the kernel shape (sweep): %.2f G/s (%s, %s, %d B of "
                               "weights); from 11 MiB of weights: %s G/s"
                               % (pk["gacc_per_s"], pk["name"], pk["kernel"], pk["weight_bytes"],
                                  "/".join("%.2f" % c["gacc_per_s"] for c in sweep
                                           if c["name"].startswith("11MiB"))))

    # ---- stdout summary
    print("\n== " + agree_line)
    for ln in int8_lines:
        print("== " + ln)
    if fused:
        print("== " + fused)
    if limit_lines:
        print("\n== the limit ==")
        for ln in limit_lines:
            print("  " + ln)
    print("\n== summary (ratios measured in this run) ==")
    for name, v in summary:
        print("  %-76s %s" % (name, fmt(v)))
    print("\n== targets ==")
    for name, v, verdict in targets:
        print("  %-60s %6s  %s" % (name, v, verdict))

    # ---- Markdown
    today = datetime.date.today().isoformat()
    say("# Benchmark %s\n" % today)
    if a.note:
        say("> %s\n" % a.note)
    say("Written by `bash bench/run.sh`; every number below was measured in that run, side by "
        "side on one machine. Ratios are the point; absolute times depend on the machine and its "
        "load.\n")
    say("## Machine\n")
    say("- CPU: %s, %d cores (%s)" % (mach["cpu"], mach["cores"], mach["flags"] or "no AVX flags"))
    say("- onespike default path: %s kernels, instruction set %s; OpenBLAS core: %s "
        "(single-threaded inside onespike; one session per thread)"
        % (dump.get("backend", "?"), dump.get("isa", "?"), mach["openblas_core"]))
    say("- kernel %s; load average before %s, after %s (other processes on the machine share "
        "the cores)" % (mach["kernel"], mach["load_before"], mach["load_after"]))
    try:
        busy = float(mach["load_before"].split()[0]) > 0.5 * mach["cores"]
    except ValueError:
        busy = False
    if busy:
        say("- **the machine was busy** (1-minute load %s on %d cores): every number is disturbed, "
            "the peers' 2-thread runs most (their intra-op threads meet at every operator, so one "
            "descheduled thread stalls the call); onespike's 2 threads run independent sessions"
            % (mach["load_before"].split()[0], mach["cores"]))
    say("- peers: ONNX Runtime %s (onnxruntime-node, CPU EP, graphOptimizationLevel all, "
        "interOp 1), PyTorch %s (Debian python3-torch, inter-op 1)\n"
        % (versions.get("ort", "?"), versions.get("torch-eager", "?")))
    say("Network: `%s` at T = 1, input %dx%dx%d, %d classes; "
        "ONNX export by `bench/export_onnx.py`, PyTorch module by `bench/peers/onespike_torch.py`. "
        "Inputs: %d UC Merced JPEGs decoded once by onespike's own preprocessing and written as "
        "float32, so every engine reads the same bytes; timings exclude JPEG decoding except in "
        "the server section.\n" % (a.model, dump["channels"], dump["height"], dump["width"],
                                   dump["classes"], dump["images"]))
    say("## Summary\n")
    say("| ratio | value |\n|---|---:|")
    for name, v in summary:
        say("| %s | %s |" % (name, fmt(v)))
    say("\n" + agree_line[0].upper() + agree_line[1:] + ".")
    say("\n| target | value | |\n|---|---:|---|")
    for name, v, verdict in targets:
        say("| %s | %s | %s |" % (name, v, verdict))
    for ln in int8_lines:
        say("\n" + ln + ".")
    if limit_lines:
        say("\nThe limit: " + "; ".join(limit_lines) + ".")
    say("\n![latency and throughput](%s)\n" % os.path.basename(a.svg))
    say("## Agreement\n")
    say("Same input tensors; reference: onespike with dense=true. A near-threshold membrane value "
        "can flip a spike under another summation order; disagreements are counted, not hidden.\n")
    say("```\n%s\n```\n" % agree_txt)
    if quant_txt:
        say("## ORT int8: the QDQ graph against fp32\n")
        say("`bench/quantize_onnx.py`: int8 weights with one scale per output channel; the spike "
            "inputs of every conv after the first as uint8 (exact, they are 0/1); each such conv's "
            "output quantized with one per-tensor range, the min/max over %s calibration images "
            "(round robin over the classes from each class's lowest-numbered image; none of the "
            "agreement images); the first conv, the adds, the spikes and the linear head in "
            "fp32. %s. Answers changed (argmax) and top-1 accuracy against the folder labels:\n"
            % (int8["calibration_images"] if int8 else "?", fused or "ORT's fused graph not read"))
        say("```\n%s\n```\n" % quant_txt)
    if limit_lines:
        say("## The limit: work per image and the kernels' ceiling\n")
        say("Accumulates: for each event-driven conv, the weight rows of out_c floats its output "
            "positions add (one per tap inside the image and active input), counted exactly from "
            "the spike maps on the agreement images (`bench/accumulates.py`; its spike counts are "
            "checked against the engine's own). `bench/ceiling` runs the engine's own event-driven "
            "conv (`os_spike_conv`, fp32 rows, the instruction set a session picks: the kernel "
            "column) on synthetic random spikes, windows never on a border and nothing around "
            "the conv: a sweep of shapes and weight sizes, and the network's own layers in "
            "sequence with their measured rows per position, single-threaded, best of several "
            "runs.\n")
        say("\n".join("- " + ln for ln in limit_lines) + "\n")
        say("| ceiling run | kernel | out_c | in_c | taps | weights KiB | rows/position | G acc/s |")
        say("|---|---|---:|---:|---:|---:|---:|---:|")
        for c in ceil:
            if c["kind"] == "model":
                continue
            say("| %s %s | %s | %d | %d | %d | %.0f | %.1f | %.2f |" % (
                c["kind"], c["name"], c["kernel"], c["out_c"], c["in_c"], c["taps"],
                c["weight_bytes"] / 1024, c["rows_per_position"], c["gacc_per_s"]))
        if cmodel:
            say("| **network, layers in sequence** | | | | | %.0f | | **%.2f** |"
                % (cmodel["weight_bytes"] / 1024, cmodel["gacc_per_s"]))
        say("")
    if rounds_tab:
        say("## Batch-1 latency in interleaved rounds\n")
        say("The headline batch-1 ratios: %d rounds, each running onespike (fp32 rows, then int8 "
            "rows), ORT fp32 and ORT int8 one after another (batch 1, 1 thread, the same calls as "
            "below); each ratio is taken within its round and the summary gives the median over "
            "rounds (range %.2f-%.2f for onespike / ORT int8), so a burst of another tenant's "
            "load on a shared host skews one round, not the ratio.\n"
            % (len(complete), rr[("onespike", "ort-int8")][1], rr[("onespike", "ort-int8")][2]))
        say("\n".join(rounds_tab) + "\n")
    say("## Latency: batch 1, 1 thread\n")
    say("Each call runs one image; median and p90 over the timed calls after warm-up. onespike: "
        "copy the tensor into the session input + `os_session_run`; ORT: `session.run` "
        "(intraOpNumThreads 1); PyTorch: `torch.set_num_threads(1)`, `inference_mode`.\n")
    say("\n".join(lat_tab) + "\n")
    say("## Throughput: 2 threads\n")
    say("onespike: two threads, one session each (as the server's workers); batch 8 means each "
        "call runs 8 images as one pass (`os_session_run_batch`: layer by layer, every image "
        "through a layer before the next layer, each image's answer bit-identical to its run "
        "alone). ORT and PyTorch: one "
        "caller, 2 intra-op threads; batch 8 is one [8, C, H, W] tensor. ORT \"2 sessions x 1 "
        "thread\": two independent sessions on two worker threads, started together, images/s "
        "over both (the way onespike-serve runs two workers).\n")
    say("\n".join(thr_tab) + "\n")
    say("## Time steps: T = 5 vs T = 1\n")
    say("Same weights run for 5 steps (`os_session_opts.timesteps = 5`), batch 1, 1 thread.\n")
    say("\n".join(t_tab) + "\n")
    if srv_tab:
        say("## Service: onespike-serve vs the engine\n")
        say("`bench/serve_bench.sh` on the shipped model and one real JPEG: wrk over loopback "
            "(wrk shares the cores) against the engine with JPEG decode (`engine_bench`).\n")
        say("\n".join(srv_tab) + "\n")
        say("Server RSS: %d kB idle, %d kB peak; exit status after SIGTERM: %d.\n"
            % (serve["rss_idle_kb"], serve["rss_peak_kb"], serve["sigterm_exit"]))
    if os.path.exists(os.path.join(D, "train.txt")):
        with open(os.path.join(D, "train.txt")) as f:
            say("## Training (`bench/train_bench.sh`)\n")
            say("```\n%s\n```\n" % f.read().rstrip())
    say("## Raw timings\n")
    say("```")
    for r in T.rows:
        say(json.dumps(r))
    say("```\n")
    with open(os.path.join(D, "images.txt")) as f:
        imgs = [os.path.relpath(p.strip(), "/work/shared/data") if p.startswith("/work/shared/data")
                else p.strip() for p in f if p.strip()]
    say("Agreement images (%d): %s\n" % (len(imgs), ", ".join(os.path.basename(p) for p in imgs)))
    with open(a.md, "w") as f:
        f.write("\n".join(md))

    svg_bars(a.svg, "Latency, batch 1, 1 thread (median ms, lower is better)", lat_svg,
             "Throughput, 2 threads (img/s, higher is better)", thr_svg,
             "onespike bench %s; %s; %s, OpenBLAS %s; load %s" % (
                 today, a.note or "full run", mach["cpu"], mach["openblas_core"],
                 mach["load_before"]))
    print("\nwrote %s and %s" % (a.md, a.svg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
