#!/usr/bin/env bash
# The benchmark, in one command: onespike vs ONNX Runtime vs PyTorch on the same network and
# weights (the shipped model), T = 1 vs T = 5, the HTTP service vs the engine, and training (when
# bench/train_bench.sh is there). Prints ratios and the issue's targets (met / missed); writes
# bench/results/<date>.md and bench/results/<date>.svg.
#
#   bash bench/run.sh [--quick] [--no-train] [--no-serve]
#
# --quick: few iterations (a smoke run: numbers are noisy; results go to <date>.quick.md/.svg).
# Env: BENCH_ITERS (timed calls per configuration; default 300, quick 30), BENCH_WARMUP (20 / 5),
# BENCH_ROUNDS (interleaved rounds of the batch-1 latencies the headline ratios come from; 7 / 1),
# BENCH_SERVE_SECS (wrk seconds per connection level; 10 / 2), BENCH_BUILD (build-release),
# BENCH_MODEL (models/ucm-msresnet18-t1.safetensors), BENCH_DATA (../shared/data/ucmerced),
# BENCH_NAME (the results file name instead of the date: a second run on one day),
# BENCH_KEEP=1 keeps the run folder (input tensors, ONNX file, logits, raw JSON) and names it.
#
# BENCH_INT8_ALL=0 skips ORT int8's agreement on every image of BENCH_DATA (on the 50 it runs).
#
# Steps: install missing peers (apt: python3-onnx python3-torch nodejs npm wrk; npm:
# onnxruntime-node into ./node_modules with --ignore-scripts), build a release build, decode 50
# UC Merced JPEGs with onespike's preprocessing into one float32 file, export the model to ONNX
# in a temporary folder, check that all engines agree (exit 1 if not); export the int8 QDQ graph
# calibrated on 100 other images (bench/quantize_onnx.py) and count the answers it changes on the
# 50 and on every image; count the default path's work per image (bench/accumulates.py) and
# measure its kernels' ceiling (bench/ceiling); time the engines (ORT fp32 and int8 also as two
# independent 1-thread sessions), run the service and training benchmarks, summarise.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0 TRAIN=1 SERVE=1
for a in "$@"; do
    case $a in
    --quick) QUICK=1 ;;
    --no-train) TRAIN=0 ;;
    --no-serve) SERVE=0 ;;
    *) echo "usage: bash bench/run.sh [--quick] [--no-train] [--no-serve]" >&2; exit 2 ;;
    esac
done
if [ $QUICK = 1 ]; then D_ITERS=30 D_WARMUP=5 D_SECS=2 D_ROUNDS=1; else D_ITERS=300 D_WARMUP=20 D_SECS=10 D_ROUNDS=7; fi
ITERS=${BENCH_ITERS:-$D_ITERS}
ROUNDS=${BENCH_ROUNDS:-$D_ROUNDS}
WARMUP=${BENCH_WARMUP:-$D_WARMUP}
SECS=${BENCH_SERVE_SECS:-$D_SECS}
B=${BENCH_BUILD:-build-release}
MODEL=${BENCH_MODEL:-models/ucm-msresnet18-t1.safetensors}
DATA=${BENCH_DATA:-../shared/data/ucmerced}
N_IMAGES=50
PY=/usr/bin/python3 # Debian's: python3-onnx and python3-torch live there, not in a pyenv
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- peers and build ---------------------------------------------------------------------
missing=()
for m in numpy:python3-numpy onnx:python3-onnx torch:python3-torch; do
    $PY -c "import ${m%%:*}" 2>/dev/null || missing+=("${m#*:}")
done
for c in node:nodejs npm:npm wrk:wrk; do # a node from elsewhere (nodesource) brings its own npm
    command -v "${c%%:*}" >/dev/null || missing+=("${c#*:}")
done
bash scripts/install-deps.sh "${missing[@]}"
if [ ! -d node_modules/onnxruntime-node ]; then
    echo "installing onnxruntime-node (npm, --ignore-scripts: the CPU library ships in the package)"
    npm install --no-save --ignore-scripts --no-audit --no-fund onnxruntime-node >/dev/null
fi
if [ ! -f "$B/build.ninja" ]; then
    meson setup "$B" --buildtype=release -Dwerror=true -Dtests=false
fi
ninja -C "$B" >/dev/null
[ -f "$MODEL" ] || { echo "run.sh: no model $MODEL" >&2; exit 2; }
[ -d "$DATA" ] || { echo "run.sh: no data folder $DATA (the agreement check needs real JPEGs)" >&2; exit 2; }

W=$(mktemp -d /tmp/onespike-bench.XXXXXX)
if [ -n "${BENCH_KEEP:-}" ]; then echo "run folder kept: $W"; else trap 'rm -rf "$W"' EXIT; fi
E=$B/bench/engine_tensors

# ---- inputs: 50 real images, spread over the classes (bench/pick_images.py) -----------------
$PY bench/pick_images.py "$DATA" "$N_IMAGES" >"$W/images.txt"
mapfile -t IMAGES <"$W/images.txt"
"$E" dump "$MODEL" "$W" "${IMAGES[@]}" >"$W/dump.json"
json() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
SHAPE="$(json "$W/dump.json" channels),$(json "$W/dump.json" height),$(json "$W/dump.json" width)"
CLASSES=$(json "$W/dump.json" classes)
echo "== inputs: ${#IMAGES[@]} UC Merced images, tensors $SHAPE, $CLASSES classes"
echo "== machine: $(nproc) cores, OpenBLAS $(json "$W/dump.json" openblas_core), load $LOAD_BEFORE; onespike default path: $(json "$W/dump.json" backend) kernels, $(json "$W/dump.json" isa)"

# ---- export + agreement -------------------------------------------------------------------
$PY bench/export_onnx.py "$MODEL" "$W/model.onnx"
node bench/peers/ort_bench.js "$W/model.onnx" "$W/input.f32" --shape "$SHAPE" \
    --logits "$W/ort.logits.f32" --configs 1:1 --iters 1 --warmup 0 >/dev/null
$PY bench/peers/torch_bench.py "$MODEL" "$W/input.f32" --logits-dir "$W" --configs 1:1 \
    --iters 1 --warmup 0 >/dev/null
echo "== agreement"
if ! $PY bench/agree.py "$W" --classes "$CLASSES" --json "$W/agree.json" | tee "$W/agree.txt"; then
    echo "run.sh: the engines disagree (see above): the export or an engine is wrong; no timings" >&2
    exit 1
fi

# ---- ORT int8: calibration on 100 images (round robin over the classes from each class's
# lowest-numbered image, so none of the 50 above), QDQ export, answers changed --------------
$PY - "$DATA" >"$W/all.txt" <<'PY'
import os, sys
root = sys.argv[1]
for c in sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))):
    for f in sorted(f for f in os.listdir(os.path.join(root, c)) if f.lower().endswith(".jpg")):
        print(os.path.join(root, c, f))
PY
$PY - "$W/all.txt" 100 >"$W/calib.txt" <<'PY'
import collections, os, sys
by = collections.defaultdict(list)
for p in open(sys.argv[1]).read().split("\n"):
    if p:
        by[os.path.basename(os.path.dirname(p))].append(p)
out, k, n = [], 0, int(sys.argv[2])
while len(out) < n and k < max(len(v) for v in by.values()):
    out += [by[c][k] for c in sorted(by) if k < len(by[c])][:n - len(out)]
    k += 1
print("\n".join(out))
PY
mapfile -t CALIB <"$W/calib.txt"
mkdir -p "$W/calib" "$W/all"
"$E" dump "$MODEL" "$W/calib" "${CALIB[@]}" >/dev/null
$PY bench/quantize_onnx.py "$MODEL" "$W/calib/input.f32" "$W/model.int8.onnx" --json "$W/int8.json"
node bench/peers/ort_bench.js "$W/model.int8.onnx" "$W/input.f32" --shape "$SHAPE" --configs none \
    --logits "$W/ort-int8.logits.f32" --save-optimized "$W/model.int8.ort.onnx" 2>/dev/null
$PY - "$W/model.int8.ort.onnx" <<'PY' | tee "$W/int8.fused.txt"
import collections, sys
import onnx
c = collections.Counter(n.op_type for n in onnx.load(sys.argv[1]).graph.node)
print("ORT runs the int8 graph as: %s" % ", ".join(
    "%d %s" % (c[k], k) for k in ("QLinearConv", "ConvInteger", "Conv", "QuantizeLinear",
                                  "DequantizeLinear", "Gemm") if c[k]))
PY
QSETS=(--set agreement "$W" "$W/images.txt")
if [ "${BENCH_INT8_ALL:-1}" != 0 ]; then
    mapfile -t ALL <"$W/all.txt"
    echo "== ORT int8 vs fp32 on all ${#ALL[@]} images of $DATA (BENCH_INT8_ALL=0 skips this)"
    "$E" dump "$MODEL" "$W/all" "${ALL[@]}" >/dev/null
    for m in ort:model ort-int8:model.int8; do
        node bench/peers/ort_bench.js "$W/${m#*:}.onnx" "$W/all/input.f32" --shape "$SHAPE" \
            --configs none --logits "$W/all/${m%%:*}.logits.f32"
    done
    QSETS+=(--set all "$W/all" "$W/all.txt")
fi
LABELS=$($PY -c "import sys; sys.path.insert(0, 'bench/peers'); import onespike_file; print(','.join(onespike_file.load(sys.argv[1])['labels']))" "$MODEL")
echo "== ORT int8 (QDQ, calibrated on ${#CALIB[@]} images): answers changed, top-1"
$PY bench/quant_agree.py "${QSETS[@]}" --labels "$LABELS" --json "$W/quant.json" | tee "$W/quant.txt"
rm -rf "${W:?}/all" "${W:?}/calib" # 200 MB of tensors

# ---- the limit: work per image on the default path, and the kernels' ceiling ----------------
echo "== work per image and the kernels' ceiling (bench/accumulates.py, bench/ceiling)"
$PY bench/accumulates.py "$MODEL" "$W/input.f32" --dump "$W/dump.json" --json "$W/acc.json" \
    --layers "$W/layers.txt"
{ "$B/bench/ceiling" && "$B/bench/ceiling" --layers "$W/layers.txt"; } >"$W/ceiling.jsonl"

# ---- timings --------------------------------------------------------------------------------
echo "== timings ($ITERS timed calls per configuration after $WARMUP warm-up calls)"
TJ=$W/timings.jsonl
: >"$TJ"
for path in "" --dense; do
    for cfg in "1 1 1" "2 1 1" "2 8 1" "1 1 5"; do
        read -r th ba ts <<<"$cfg"
        "$E" time "$MODEL" "$W/input.f32" --threads "$th" --batch "$ba" --timesteps "$ts" \
            --iters "$ITERS" --warmup "$WARMUP" $path | tee -a "$TJ"
    done
done
# int8 and fp16 weight rows (the reduced-precision options beside ORT int8)
for wf in int8 fp16; do
    for cfg in "1 1 1" "2 1 1" "2 8 1"; do
        read -r th ba ts <<<"$cfg"
        ONESPIKE_WEIGHTS=$wf "$E" time "$MODEL" "$W/input.f32" --threads "$th" --batch "$ba" \
            --timesteps "$ts" --iters "$ITERS" --warmup "$WARMUP" | tee -a "$TJ"
    done
done
for m in ort:model ort-int8:model.int8; do # 2x1: two independent sessions of 1 thread
    node bench/peers/ort_bench.js "$W/${m#*:}.onnx" "$W/input.f32" --shape "$SHAPE" \
        --engine "${m%%:*}" --configs 1:1,2:1,2:8,2x1:1,2x1:8 --iters "$ITERS" --warmup "$WARMUP" |
        tee -a "$TJ"
done
$PY bench/peers/torch_bench.py "$MODEL" "$W/input.f32" --configs 1:1,2:1,2:8 \
    --iters "$ITERS" --warmup "$WARMUP" | tee -a "$TJ"
# Batch 1, 1 thread again, in ROUNDS interleaved rounds of onespike (fp32, int8, fp16 rows), ORT fp32
# and ORT int8: on a shared host a burst of another tenant's load lands on one configuration of
# one pass; the report takes each ratio within a round and gives the median over rounds.
RJ=$W/rounds.jsonl
: >"$RJ"
echo "== batch 1, 1 thread: $ROUNDS interleaved rounds"
for r in $(seq "$ROUNDS"); do
    {
        "$E" time "$MODEL" "$W/input.f32" --iters "$ITERS" --warmup "$WARMUP"
        ONESPIKE_WEIGHTS=int8 "$E" time "$MODEL" "$W/input.f32" --iters "$ITERS" --warmup "$WARMUP"
        ONESPIKE_WEIGHTS=fp16 "$E" time "$MODEL" "$W/input.f32" --iters "$ITERS" --warmup "$WARMUP"
        for m in ort:model ort-int8:model.int8; do
            node bench/peers/ort_bench.js "$W/${m#*:}.onnx" "$W/input.f32" --shape "$SHAPE" \
                --engine "${m%%:*}" --configs 1:1 --iters "$ITERS" --warmup "$WARMUP"
        done
    } | sed "s/^{/{\"round\":$r,/" >>"$RJ"
done

# ---- service ------------------------------------------------------------------------------
if [ $SERVE = 1 ]; then
    echo "== service (bench/serve_bench.sh, ${SECS}s per connection level)"
    # engine_bench: at least 200 images per thread, so its time is not one scheduler slice
    ENGINE_N=$((ITERS * 2 > 200 ? ITERS * 2 : 200)) \
        bash bench/serve_bench.sh "$B" "${IMAGES[0]}" "$SECS" "$MODEL" | tee "$W/serve.txt" ||
        echo "run.sh: bench/serve_bench.sh failed; the summary goes on without it" >&2
fi

# ---- training -----------------------------------------------------------------------------
if [ $TRAIN = 1 ] && [ -f bench/train_bench.sh ]; then
    echo "== training (bench/train_bench.sh)"
    bash bench/train_bench.sh "$B" | tee "$W/train.txt" ||
        echo "run.sh: bench/train_bench.sh failed; the summary goes on without it" >&2
fi

# ---- summary ------------------------------------------------------------------------------
mkdir -p bench/results
DAY=${BENCH_NAME:-$(date +%F)} # BENCH_NAME: another file name (a second run on one day)
SUFFIX=; NOTE=
if [ $QUICK = 1 ]; then
    SUFFIX=.quick
    NOTE="quick run: $ITERS timed calls per configuration, numbers are noisy"
fi
$PY bench/report.py "$W" --md "bench/results/$DAY$SUFFIX.md" --svg "bench/results/$DAY$SUFFIX.svg" \
    --load-before "$LOAD_BEFORE" --note "$NOTE" --model "$MODEL"
