#!/usr/bin/env bash
# The ablations of issue 4 on UC Merced (our validation split: 10 images per class), on a
# configuration small enough for a 2-core machine. Every run resumes from its checkpoint, so the
# script can be stopped and started again; finished runs are skipped.
#   scripts/ablations.sh [RUNDIR]    (default /var/tmp/onespike-runs/ablations)
# Then: scripts/ablations.sh --table  prints the Markdown table of all finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN=${TRAIN:-build/models/onespike-train}
DATA=${DATA:-../shared/data/ucmerced}
RUNS=${RUNDIR:-/var/tmp/onespike-runs/ablations}
[ "${1:-}" != "" ] && [ "${1:-}" != "--table" ] && RUNS=$1
mkdir -p "$RUNS"

# name | flags
CONFIGS=(
  "r20-u1at2-prune|--arch resnet20 --units 1 --unit-at 2 --t0 5"
  "r20-u1at2-direct|--arch resnet20 --units 1 --unit-at 2 --t0 1 --epochs-snn 15"
  "r20-nounits-prune|--arch resnet20 --units 0 --t0 5"
  "r20-u1at1-prune|--arch resnet20 --units 1 --unit-at 1 --t0 5"
  "vgg11-u1at2-prune|--arch vgg11 --units 1 --unit-at 2 --t0 5"
  "vgg11-u1at4-prune|--arch vgg11 --units 1 --unit-at 4 --t0 5"
  "r20-u1at3-prune|--arch resnet20 --units 1 --unit-at 3 --t0 5"
  "vgg11-nounits-prune|--arch vgg11 --units 0 --t0 5"
  "vgg11-u1at2-direct|--arch vgg11 --units 1 --unit-at 2 --t0 1 --epochs-snn 15"
)
COMMON="--width-mult 0.5 --input 32 --epochs-ann 30 --epochs-snn 3 --epochs-finetune 4
        --lr-snn 5e-4 --lr-finetune 2e-4 --batch 32 --seed 1 --quiet"

table() {
  echo "| run | ANN | converted (T0) | each T (val top-1) | after Unit removal | final T=1 | minutes |"
  echo "|---|---|---|---|---|---|---|"
  for c in "${CONFIGS[@]}"; do
    name=${c%%|*}
    rep=$RUNS/$name.safetensors.report.json
    [ -s "$rep" ] || continue
    /usr/bin/python3 - "$rep" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r["stages"]
acc = lambda n: next((x["val_top1"] for x in s if x["stage"] == n), None)
fmt = lambda v: "-" if v is None else "%.1f %%" % (100 * v)
ts = " / ".join("T%d %s" % (x["timesteps"], fmt(x["val_top1"])) for x in s if x["stage"].startswith("snn-"))
print("| %s | %s | %s | %s | %s | %s | %.0f |" % (sys.argv[2], fmt(acc("ann")), fmt(acc("convert")), ts,
      fmt(acc("remove-units")), fmt(r["final"]["validation_engine"]["top1"]), r["seconds"] / 60))
PY
  done
}

if [ "${1:-}" = "--table" ]; then table; exit 0; fi
for c in "${CONFIGS[@]}"; do
  name=${c%%|*}; flags=${c#*|}
  out=$RUNS/$name.safetensors
  [ -s "$out.report.json" ] && { echo "done: $name"; continue; }
  resume=; [ -f "$out.work/checkpoint.safetensors" ] && resume=--resume
  echo "run: $name ($(date -u +%H:%M))"
  # shellcheck disable=SC2086
  "$TRAIN" fit --data "$DATA" --out "$out" $COMMON $flags $resume 2>"$RUNS/$name.log" ||
    { echo "failed: $name (see $RUNS/$name.log)"; continue; }
done
table
