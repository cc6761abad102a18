#!/usr/bin/env bash
# The ablations of issue 4 on UC Merced (our validation split: 10 images per class), at a size
# this 2-core machine trains in 20-40 minutes a run. Every run resumes from its checkpoint, so
# the script can be stopped and started again; finished runs are skipped. Runs marked ann:NAME
# start from run NAME's trained ANN (--ann-from), so they differ from it only in the SNN stages.
#   scripts/ablations.sh [RUNDIR]    (default /var/tmp/onespike-runs/ablations)
#   scripts/ablations.sh --table     the Markdown table of all finished runs
#   ONLY=r18-u1at3,vgg11-u1at4 scripts/ablations.sh    just those runs (two runners in parallel
#                                     must be given disjoint lists: a run's work dir is not locked)
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN=${TRAIN:-build/tools/onespike-train}
DATA=${DATA:-../shared/data/ucmerced}
RUNS=/var/tmp/onespike-runs/ablations
MODE=run
case "${1:-}" in
  --table) MODE=table ;;
  "") ;;
  *) RUNS=$1 ;;
esac
mkdir -p "$RUNS"

# name | flags | ann:RUN (optional)
CONFIGS=(
  "r18-u1at2|--arch resnet18 --width-mult 0.5 --units 1 --unit-at 2 --t0 5|"
  "r18-u1at2-direct|--arch resnet18 --width-mult 0.5 --units 1 --unit-at 2 --t0 1 --epochs-t0 20|ann:r18-u1at2"
  "r18-u1at2-norecal|--arch resnet18 --width-mult 0.5 --units 1 --unit-at 2 --t0 5 --recalibrate 0|ann:r18-u1at2"
  "r18-nounits|--arch resnet18 --width-mult 0.5 --units 0 --t0 5|"
  "vgg11-u1at2|--arch vgg11 --width-mult 0.25 --units 1 --unit-at 2 --t0 5|"
  "vgg11-u1at4|--arch vgg11 --width-mult 0.25 --units 1 --unit-at 4 --t0 5|"
  "r18-u1at3|--arch resnet18 --width-mult 0.5 --units 1 --unit-at 3 --t0 5|"
  "vgg11-nounits|--arch vgg11 --width-mult 0.25 --units 0 --t0 5|"
  "vgg11-u1at2-direct|--arch vgg11 --width-mult 0.25 --units 1 --unit-at 2 --t0 1 --epochs-t0 20|ann:vgg11-u1at2"
)
# The schedule these runs were measured with, pinned flag by flag: fit's defaults have since
# become the shipped model's recipe (--surrogate-gamma 0.3 was the default of these runs).
COMMON="--input 64 --epochs-ann 60 --epochs-snn 4 --epochs-t0 4 --epochs-finetune 30 --lr-snn 5e-4
        --lr-finetune 5e-4 --distill 0 --surrogate-gamma 0.3 --batch 32 --seed 1 --threads 1 --quiet"

table() {
  echo "| run | ANN | converted (T0) | SNN stages (val top-1) | after Unit removal | final, T = 1 | minutes |"
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

if [ "$MODE" = table ]; then table; exit 0; fi
for c in "${CONFIGS[@]}"; do
  IFS='|' read -r name flags from <<<"$c"
  if [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
  out=$RUNS/$name.safetensors
  [ -s "$out.report.json" ] && { echo "done: $name"; continue; }
  extra=
  if [ -n "$from" ]; then
    ann=$RUNS/${from#ann:}.safetensors.work/ann.safetensors
    [ -s "$ann" ] || { echo "skip: $name (needs $ann)"; continue; }
    extra="--ann-from $ann"
  fi
  [ -f "$out.work/checkpoint.safetensors" ] && extra="$extra --resume"
  echo "run: $name ($(date -u +%H:%M))"
  # shellcheck disable=SC2086
  "$TRAIN" fit --data "$DATA" --out "$out" $COMMON $flags $extra 2>"$RUNS/$name.log" ||
    { echo "failed: $name (see $RUNS/$name.log)"; continue; }
done
table
