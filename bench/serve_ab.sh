#!/usr/bin/env bash
# Interleaved A/B of two builds' servers: both started side by side (2 workers each, the shipped
# model), then wrk runs of SECONDS at CONNS connections alternating between them, ROUNDS rounds;
# prints each side's requests/s and the median of the per-round NEW/BASE ratios. The idle server
# sleeps while the other is measured (its workers spin for --idle-spin-us at most).
#
#   bash bench/serve_ab.sh BASE_BUILD NEW_BUILD [CONNS] [ROUNDS] [SECONDS]
#
# Env: AB_MODEL (default models/ucm-msresnet18-t1.safetensors), AB_IMAGE (default UC Merced's
# airplane00.jpg). Needs wrk.
set -euo pipefail
BASE=${1:?base build dir}; NEW=${2:?new build dir}; C=${3:-8}; R=${4:-6}; S=${5:-3}
M=${AB_MODEL:-models/ucm-msresnet18-t1.safetensors}
IMG=${AB_IMAGE:-${BENCH_DATA:-../shared/data/ucmerced}/airplane/airplane00.jpg}
T=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; rm -rf "$T"' EXIT
URLS=()
for b in "$BASE" "$NEW"; do
    n=${#URLS[@]}
    "$b/server/onespike-serve" --model ucm="$M" --workers 2 --port 0 --log-level warn 2>"$T/$n.log" &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q '"listening"' "$T/$n.log" && break; sleep 0.05; done
    URLS+=("http://127.0.0.1:$(grep -o '"port":[0-9]*' "$T/$n.log" | cut -d: -f2)/v2/models/ucm/classify")
    wrk -t1 -c"$C" -d1s -s bench/wrk_post_jpeg.lua "${URLS[$n]}" -- "$IMG" >/dev/null # warm-up
done
for _ in $(seq "$R"); do
    for u in "${URLS[@]}"; do
        wrk -t1 -c"$C" -d"${S}"s -s bench/wrk_post_jpeg.lua "$u" -- "$IMG" | tail -1
    done
done | python3 -c "
import json, statistics as st, sys
v = [json.loads(l)['rps'] for l in sys.stdin]
b, n = v[0::2], v[1::2]
r = [y / x for x, y in zip(b, n)]
print('$C connections: base %s, new %s requests/s; new/base per round: median %.3f'
      % ([round(x) for x in b], [round(x) for x in n], st.median(r)))"
