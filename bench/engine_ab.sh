#!/usr/bin/env bash
# Interleaved A/B of two builds' engine (bench/engine_tensors time: batch 1 unless given, 1
# thread, the shipped model on dumped UC Merced tensors): ROUNDS rounds, each running both
# (BASE first in even rounds, NEW first in odd ones); prints both medians and the median of the
# per-round NEW/BASE ratios, the figure to trust on a host whose speed moves between runs (two
# identical binaries measured so differ by up to 3.5 % at 15 rounds on the 2-core EPYC, 0.8 %
# and 2.8 % at 31 rounds on the Xeon).
#
#   bash bench/engine_ab.sh BASE_BUILD NEW_BUILD [ROUNDS] [-- engine_tensors time options]
#
# Env: AB_MODEL (default models/ucm-msresnet18-t1.safetensors), AB_INPUT (an input.f32 of
# `engine_tensors dump`; default: bench/run.sh's 50 UC Merced JPEGs, dumped once into /tmp), and
# ONESPIKE_ISA / ONESPIKE_WEIGHTS as for any session. AB_STAT=p10_ms compares each run's 10th
# percentile call instead of its median: less moved by another tenant's bursts, which only
# slow calls down.
set -euo pipefail
BASE=${1:?base build dir}; NEW=${2:?new build dir}; ROUNDS=${3:-15}
shift $(($# < 3 ? $# : 3)); [ "${1:-}" = "--" ] && shift
M=${AB_MODEL:-models/ucm-msresnet18-t1.safetensors}
IN=${AB_INPUT:-}
if [ -z "$IN" ]; then
    D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
    mapfile -t IMGS < <(python3 bench/pick_images.py "${BENCH_DATA:-../shared/data/ucmerced}" 50)
    "$NEW/bench/engine_tensors" dump "$M" "$D" "${IMGS[@]}" >/dev/null
    IN=$D/input.f32
fi
# Odd rounds run NEW first, so that whatever favours the first (or second) run of a round
# falls on both builds alike; each line says which build it timed.
for r in $(seq "$ROUNDS"); do
    order="B:$BASE N:$NEW"; [ $((r % 2)) = 1 ] && order="N:$NEW B:$BASE"
    for e in $order; do
        "${e#*:}/bench/engine_tensors" time "$M" "$IN" --iters 300 --warmup 30 "$@" |
            python3 -c "import json, sys; print(sys.argv[2], json.loads(sys.stdin.read())[sys.argv[1]])" \
                "${AB_STAT:-median_ms}" "${e%%:*}"
    done
done | python3 -c "
import statistics as st, sys
rounds = [l.split() for l in sys.stdin.read().splitlines()]
b = [float(t) for k, t in rounds if k == 'B']
n = [float(t) for k, t in rounds if k == 'N']
r = [y / x for x, y in zip(b, n)]
print('base %.3f ms, new %.3f ms (medians of ${AB_STAT:-median_ms}); new/base per round: median %.3f (%.3f-%.3f), %d rounds'
      % (st.median(b), st.median(n), st.median(r), min(r), max(r), len(r)))"
