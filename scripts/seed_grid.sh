#!/usr/bin/env bash
# A grid of `onespike-train fit` recipes over seeds, run resumably, and its table: mean +- sd
# per cell (issue 16: the method's ablations, the accuracy levers, the UC Merced candidates).
#
#   scripts/seed_grid.sh GRID [RUNDIR]            run every cell x seed not yet done
#   scripts/seed_grid.sh GRID --table [RUNDIR]    mean +- sd per cell of the finished runs
#   scripts/seed_grid.sh GRID --latency [RUNDIR]  the same, plus each model's engine latency
#                                                 (batch 1, 1 thread; and of its 8 test-time
#                                                 views, one batch of 8; run it on idle cores)
#   ONLY=cell,cell SEEDS="1 2" THREADS=2 TRAIN=... DATA=... scripts/seed_grid.sh GRID
#   JSON=FILE scripts/seed_grid.sh GRID --latency   also the table's rows as JSON, for
#                                                 scripts/front.py (the accuracy-latency plot)
#
# GRID is a file of scripts/grids/ (a path or its name without .sh) that sets
#   COMMON  flags of every run;
#   CELLS   "cell|flags|cell whose ANN (same seed) the run converts instead of training one";
# The table gives each one-step model's validation top-1 alone and with 8 test-time views (eval
# --tta 8 on the run's own validation list, by TRAIN, cached as MODEL.views8.json; a report of a
# newer trainer has the figure already).
# A grid may set SEEDS_GRID (its seeds; default 1 2 3), RUNS (the default run dir) and ANN_ONLY=1 (the table
# reports the ANN stage; the runs stop after it). The seed sets the split too, so each seed is
# also another validation split. Every run resumes from its checkpoint and a finished run is
# skipped, so the script can be stopped and started again; a run's work dir is not locked, so
# runners in parallel need disjoint ONLY lists.
set -euo pipefail
cd "$(dirname "$0")/.."
GRID=${1:?usage: scripts/seed_grid.sh GRID [--table|--latency] [RUNDIR]}
shift
[ -f "$GRID" ] || GRID=scripts/grids/$GRID.sh
[ -f "$GRID" ] || { echo "seed_grid: no grid $GRID" >&2; exit 2; }
TRAIN=${TRAIN:-build/tools/onespike-train}
BENCH=${BENCH:-build/bench/engine_tensors}
DATA=${DATA:-../shared/data/ucmerced}
THREADS=${THREADS:-1}
SEEDS_DEFAULT="1 2 3"
ANN_ONLY=0
RUNS=/var/tmp/onespike-runs/$(basename "$GRID" .sh)
# shellcheck source=/dev/null
. "$GRID"
SEEDS=${SEEDS:-${SEEDS_GRID:-$SEEDS_DEFAULT}}
MODE=run
case "${1:-}" in
  --table) MODE=table; shift ;;
  --latency) MODE=latency; shift ;;
esac
[ -n "${1:-}" ] && RUNS=$1
mkdir -p "$RUNS"

table() {
  TRAIN=$TRAIN DATA=$DATA /usr/bin/python3 - "$RUNS" "$ANN_ONLY" "$@" "${CELLS[@]}" <<'PY'
import json, os, statistics, subprocess, sys
runs, ann_only = sys.argv[1], sys.argv[2] == "1"
lat, lat8 = {}, {}
rest = sys.argv[3:]
while rest and rest[0].startswith(("lat=", "lat8=")):
    key, v = rest.pop(0).split("=", 1)
    k, v = v.split("=")
    (lat if key == "lat" else lat8)[k] = float(v)


def views8(report):
    """The model's validation top-1 with 8 test-time views: from its report, else eval --tta 8
    on its validation list (cached beside the model)."""
    v = report["final"]["validation_engine"].get("views8")
    if v:
        return v["top1"] * 100
    model = report["final"]["path"]
    cache = model + ".views8.json"
    if not os.path.exists(cache):
        lst = model + ".work/val.txt"
        if not os.path.exists(lst):
            return None
        out = subprocess.run([os.environ["TRAIN"], "eval", "--model", model, "--data",
                              os.environ["DATA"], "--list", lst, "--tta", "8", "--json"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            return None
        e = json.loads(out.stdout)
        with open(cache + ".tmp", "w") as fh:
            json.dump({"top1": e["top1"], "top5": e["top5"], "images": e["images"]}, fh)
        os.replace(cache + ".tmp", cache)
    return json.load(open(cache))["top1"] * 100

cells = [c.split("|")[0] for c in rest]
rows = []
def sd(x):
    return statistics.stdev(x) if len(x) > 1 else float("nan")
f = lambda v: "-" if not v else "%.1f %%" % v[0] if len(v) == 1 else \
    "%.1f +- %.1f %%" % (statistics.mean(v), sd(v))
head = ("| cell | seeds | ANN | after Unit removal | final, T = 1 (mean +- sd) | "
        "with 8 test-time views | minutes per run |")
if ann_only:
    head = "| cell | seeds | ANN (mean +- sd) | each seed | minutes per run |"
if lat:
    head += " engine ms (batch 1, 1 thread) |"
    if not ann_only:
        head += " 8 views, ms |"
print(head)
print("|---" * (head.count("|") - 1) + "|")
for c in cells:
    reps = []
    for n in sorted(os.listdir(runs)):
        if n.startswith(c + "-s") and n[len(c) + 2:].split(".")[0].isdigit() \
                and n.endswith(".safetensors.report.json"):
            reps.append(json.load(open(os.path.join(runs, n))))
    if not reps:
        continue
    get = lambda r, n: next((s["val_top1"] for s in r["stages"] if s["stage"] == n), None)
    ann = [get(r, "ann") * 100 for r in reps if get(r, "ann") is not None]
    mins = statistics.mean(r["seconds"] for r in reps) / 60
    if ann_only:
        row = "| %s | %d | **%s** | %s | %.0f |" % (c, len(reps), f(ann),
              ", ".join("%.1f" % a for a in ann), mins)
    else:
        fin = [r["final"]["validation_engine"]["top1"] * 100 for r in reps]
        rem = [get(r, "remove-units") * 100 for r in reps if get(r, "remove-units") is not None]
        v8 = [v for v in map(views8, reps) if v is not None]
        row = "| %s | %d | %s | %s | **%s** | %s | %.0f |" % (c, len(reps), f(ann), f(rem), f(fin),
                                                          f(v8), mins)
    if lat:
        row += " %s |" % ("%.2f" % lat[c] if c in lat else "-")
        if not ann_only:
            row += " %s |" % ("%.2f" % lat8[c] if c in lat8 else "-")
    print(row)
    acc = ann if ann_only else fin
    rows.append({"cell": c, "seeds": len(reps), "top1": acc, "mean": statistics.mean(acc),
                 "sd": sd(acc) if len(acc) > 1 else None, "ms": lat.get(c), "minutes": mins})
    if not ann_only and v8:
        rows.append({"cell": c + " (8 views)", "seeds": len(v8), "top1": v8,
                     "mean": statistics.mean(v8), "sd": sd(v8) if len(v8) > 1 else None,
                     "ms": lat8.get(c), "minutes": mins})
if os.environ.get("JSON"):
    json.dump(rows, open(os.environ["JSON"], "w"), indent=1)
PY
}

# The median batch-1 latency of each cell's first finished model, 1 thread, on 50 images of
# DATA preprocessed by the model itself.
latencies() {
  local out=() c cell m img
  local imgs
  imgs=$(find "$DATA" -name '*.jpg' | sort | awk 'NR % 34 == 1' | head -50)
  for c in "${CELLS[@]}"; do
    cell=${c%%|*}
    m=$(ls "$RUNS/$cell"-s*.safetensors 2>/dev/null | head -1) || true
    [ -n "$m" ] && [ -s "$m" ] || continue
    img=$(mktemp -d)
    # shellcheck disable=SC2086
    "$BENCH" dump "$m" "$img" $imgs >/dev/null
    out+=("lat=$cell=$("$BENCH" time "$m" "$img/input.f32" --iters 300 |
          /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["median_ms"])')")
    [ "$ANN_ONLY" = 1 ] ||
      out+=("lat8=$cell=$("$BENCH" time "$m" "$img/input.f32" --iters 40 --batch 8 |
            /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["median_ms"])')")
    rm -rf "$img"
  done
  table "${out[@]}"
}

case $MODE in
  table) table; exit 0 ;;
  latency) latencies; exit 0 ;;
esac
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
    [ "$ANN_ONLY" = 1 ] && extra="$extra --t0 1 --epochs-t0 0 --epochs-snn 0 --epochs-finetune 0"
    [ -f "$out.work/checkpoint.safetensors" ] && extra="$extra --resume"
    echo "run: $name ($(date -u +%H:%M))"
    # shellcheck disable=SC2086
    "$TRAIN" fit --data "$DATA" --out "$out" $COMMON $flags --seed "$seed" --threads "$THREADS" \
        $extra 2>"$RUNS/$name.log" || { echo "failed: $name (see $RUNS/$name.log)"; continue; }
  done
done
table
