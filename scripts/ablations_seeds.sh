#!/usr/bin/env bash
# The method's ablation grid over seeds (issue 16), on UC Merced at the 64 px proxy:
#   {no Units, a Unit at stage 2, a Unit at stage 3} x {temporal pruning 5 -> 1, direct T = 1}
# for msresnet18 (Units faded out over the SNN epochs, --unit-fade 1: our reconstruction of a
# gradual spatial pruning) and VGG-11 (its Unit, conv-BN-act, cannot fade into the identity: it
# is removed at once), each cell SEEDS seeds (default 1 2 3; the seed sets the split too, so
# each seed is also another validation split of 210 images). The direct-T = 1 cell of a seed
# starts from the same seed's ANN as its pruning cell (--ann-from), so the two differ only in
# the SNN schedule; it trains as many SNN epochs at T = 1 as pruning trains over T = 5..1.
# Every run resumes from its checkpoint and finished runs are skipped, so the script can be
# stopped and started again (a run's work dir is not locked: parallel runners need disjoint
# ONLY lists).
#   scripts/ablations_seeds.sh [RUNDIR]   (default /var/tmp/onespike-runs/ablations-seeds)
#   scripts/ablations_seeds.sh --table    mean +- sd per cell of the finished runs
#   ONLY=ms-u2-tp,ms-u2-t1 SEEDS="1 2" scripts/ablations_seeds.sh
#   THREADS=2 scripts/ablations_seeds.sh  (fit --threads: data-parallel replicas)
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN=${TRAIN:-build/tools/onespike-train}
DATA=${DATA:-../shared/data/ucmerced}
SEEDS=${SEEDS:-1 2 3}
THREADS=${THREADS:-1}
RUNS=/var/tmp/onespike-runs/ablations-seeds
MODE=run
case "${1:-}" in
  --table) MODE=table ;;
  "") ;;
  *) RUNS=$1 ;;
esac
mkdir -p "$RUNS"

# cell | flags | the cell whose ANN it starts from (same seed), or empty
SNN_EPOCHS=12 # 4 at T0 = 5, then 2 at each of T = 4..1: what --t0 1 trains at T = 1 instead
MS="--arch msresnet18 --width-mult 0.5"
VGG="--arch vgg11 --width-mult 0.25"
CELLS=(
  "ms-none-tp|$MS --units 0 --t0 5|"
  "ms-none-t1|$MS --units 0 --t0 1 --epochs-t0 $SNN_EPOCHS|ms-none-tp"
  "ms-u2-tp|$MS --units 1 --unit-at 2 --unit-fade 1 --t0 5|"
  "ms-u2-t1|$MS --units 1 --unit-at 2 --unit-fade 1 --t0 1 --epochs-t0 $SNN_EPOCHS|ms-u2-tp"
  "ms-u3-tp|$MS --units 1 --unit-at 3 --unit-fade 1 --t0 5|"
  "ms-u3-t1|$MS --units 1 --unit-at 3 --unit-fade 1 --t0 1 --epochs-t0 $SNN_EPOCHS|ms-u3-tp"
  "vgg-none-tp|$VGG --units 0 --t0 5|"
  "vgg-none-t1|$VGG --units 0 --t0 1 --epochs-t0 $SNN_EPOCHS|vgg-none-tp"
  "vgg-u4-tp|$VGG --units 1 --unit-at 4 --t0 5|"
  "vgg-u4-t1|$VGG --units 1 --unit-at 4 --t0 1 --epochs-t0 $SNN_EPOCHS|vgg-u4-tp"
)
COMMON="--input 64 --epochs-ann 60 --epochs-t0 4 --epochs-snn 2 --epochs-finetune 30
        --lr-snn 5e-4 --lr-finetune 1e-3 --distill 0.5 --surrogate-gamma 1.0 --batch 32 --quiet"

table() {
  /usr/bin/python3 - "$RUNS" "${CELLS[@]}" <<'PY'
import json, os, statistics, sys
runs, cells = sys.argv[1], [c.split("|")[0] for c in sys.argv[2:]]
def sd(x):
    return statistics.stdev(x) if len(x) > 1 else float("nan")
print("| cell | seeds | ANN | after Unit removal | final, T = 1 (mean +- sd) | minutes per run |")
print("|---|---|---|---|---|---|")
for c in cells:
    reps = []
    for f in sorted(os.listdir(runs)):
        if f.startswith(c + "-s") and f.endswith(".safetensors.report.json"):
            reps.append(json.load(open(os.path.join(runs, f))))
    if not reps:
        continue
    get = lambda r, n: next((s["val_top1"] for s in r["stages"] if s["stage"] == n), None)
    fin = [r["final"]["validation_engine"]["top1"] * 100 for r in reps]
    ann = [get(r, "ann") * 100 for r in reps if get(r, "ann") is not None]
    rem = [get(r, "remove-units") * 100 for r in reps if get(r, "remove-units") is not None]
    f = lambda v: "-" if not v else "%.1f +- %.1f %%" % (statistics.mean(v), sd(v))
    print("| %s | %d | %s | %s | **%s** | %.0f |" % (c, len(reps), f(ann), f(rem), f(fin),
          statistics.mean(r["seconds"] for r in reps) / 60))
PY
}

if [ "$MODE" = table ]; then table; exit 0; fi
for seed in $SEEDS; do
  for c in "${CELLS[@]}"; do
    IFS='|' read -r cell flags from <<<"$c"
    if [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$cell,"* ]]; then continue; fi
    name=$cell-s$seed
    out=$RUNS/$name.safetensors
    [ -s "$out.report.json" ] && { echo "done: $name"; continue; }
    extra=
    if [ -n "$from" ]; then
      ann=$RUNS/$from-s$seed.safetensors.work/ann.safetensors
      [ -s "$ann" ] || { echo "skip: $name (needs $ann)"; continue; }
      extra="--ann-from $ann"
    fi
    [ -f "$out.work/checkpoint.safetensors" ] && extra="$extra --resume"
    echo "run: $name ($(date -u +%H:%M))"
    # shellcheck disable=SC2086
    "$TRAIN" fit --data "$DATA" --out "$out" $COMMON $flags --seed "$seed" --threads "$THREADS" \
        $extra 2>"$RUNS/$name.log" || { echo "failed: $name (see $RUNS/$name.log)"; continue; }
  done
done
table
