#!/usr/bin/env bash
# Server end to end (wrk over loopback) vs the engine alone, side by side in one run, on one
# real JPEG and one model: requests/s and p50/p99 latency at 1, 8 and 64 connections against
# onespike-serve --workers 2, next to engine_bench's images/s with 1 and 2 threads; plus the
# server's resident memory. Prints the ratios (server / engine), not just absolute numbers.
#
#   bash bench/serve_bench.sh [BUILD_DIR] [IMAGE] [SECONDS] [MODEL]
#
# Needs wrk (apt-get install wrk). Without MODEL, the model is an untrained ResNet-18 (width 0.5,
# 64x64 input, 1 time step) with the UC Merced labels: timing does not depend on the weights'
# values (bench/run.sh passes the shipped model). ENGINE_N (default 400) sets engine_bench's
# images per thread. The last line is a JSON summary of every number printed.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
IMG=${2:-../shared/data/ucmerced/beach/beach00.jpg}
SECS=${3:-10}
MODEL=${4:-}
ENGINE_N=${ENGINE_N:-400}
WORKERS=2
T=$(mktemp -d)
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
command -v wrk >/dev/null || { echo "serve_bench: wrk not installed (apt-get install wrk)" >&2; exit 2; }
[ -f "$IMG" ] || { echo "serve_bench: no image $IMG" >&2; exit 2; }

if [ -n "$MODEL" ]; then
    [ -f "$MODEL" ] || { echo "serve_bench: no model $MODEL" >&2; exit 2; }
    M=$MODEL
    echo "model: $M; image: $IMG ($(stat -c %s "$IMG") bytes)"
else
    M=$T/bench.safetensors
    LABELS=$(ls -d ../shared/data/ucmerced/*/ 2>/dev/null | xargs -n1 basename | paste -sd, -)
    [ -n "$LABELS" ] || LABELS=$(seq -s, -f 'c%g' 1 21)
    "$B/tools/onespike-train" init --arch resnet18 --width-mult 0.5 --input 64 --timesteps 1 \
        --labels "$LABELS" --out "$M" >/dev/null
    echo "model: resnet18 width 0.5, 64x64, T=1, $(echo "$LABELS" | tr , '\n' | wc -l) classes (untrained); image: $IMG ($(stat -c %s "$IMG") bytes)"
fi
echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

engine() { "$B/bench/engine_bench" "$M" "$IMG" "$1" "$2"; }
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

E1=$(engine "$ENGINE_N" 1)
E2=$(engine "$ENGINE_N" 2)

"$B/server/onespike-serve" --model ucm="$M" --workers $WORKERS --port 0 --log-level warn \
    2>"$T/server.log" &
SPID=$!
for _ in $(seq 100); do grep -q '"listening"' "$T/server.log" && break; sleep 0.05; done
PORT=$(grep -o '"port":[0-9]*' "$T/server.log" | cut -d: -f2)
URL=http://127.0.0.1:$PORT/v2/models/ucm/classify
RSS_IDLE=$(awk '/VmRSS/ {print $2}' /proc/$SPID/status)
wrk -t1 -c8 -d2s -s bench/wrk_post_jpeg.lua "$URL" -- "$IMG" >/dev/null # warm-up

printf '\n%-22s %10s %9s %9s %8s\n' "" "req/s" "p50 ms" "p99 ms" "non-2xx"
printf '%-22s %10.1f %9.2f %9s %8s\n' "engine, 1 thread" "$(json "$E1" images_per_s)" \
    "$(json "$E1" ms_per_image)" "-" "-"
printf '%-22s %10.1f %9.2f %9s %8s\n' "engine, 2 threads" "$(json "$E2" images_per_s)" \
    "$(json "$E2" ms_per_image)" "-" "-"
declare -A RPS WRK
for c in 1 8 64; do
    R=$(wrk -t1 -c$c -d${SECS}s -s bench/wrk_post_jpeg.lua "$URL" -- "$IMG" | tail -1)
    WRK[$c]=$R
    RPS[$c]=$(json "$R" rps)
    printf '%-22s %10.1f %9.2f %9.2f %8s\n' "server, $c conn" "${RPS[$c]}" "$(json "$R" p50_ms)" \
        "$(json "$R" p99_ms)" "$(json "$R" errors_status)"
done
RSS_LOAD=$(awk '/VmHWM/ {print $2}' /proc/$SPID/status)
kill -TERM $SPID
wait $SPID && rc=0 || rc=$?
SPID=
python3 - "$E1" "$E2" "${RPS[1]}" "${RPS[8]}" "${RPS[64]}" <<'PY'
import json, sys
e1, e2 = (json.loads(a)["images_per_s"] for a in sys.argv[1:3])
s1, s8, s64 = map(float, sys.argv[3:6])
print(f"\nratios: server 1 conn / engine 1 thread = {s1 / e1:.2f}; "
      f"server 8 conn / engine 2 threads = {s8 / e2:.2f}; "
      f"server 64 conn / engine 2 threads = {s64 / e2:.2f}")
PY
echo "server RSS ($WORKERS workers): ${RSS_IDLE} kB idle after start, ${RSS_LOAD} kB peak under load; exit status after SIGTERM: $rc"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average after: $LOAD_AFTER (wrk shares the same cores)"
python3 - "$E1" "$E2" "${WRK[1]}" "${WRK[8]}" "${WRK[64]}" "$WORKERS" "$RSS_IDLE" "$RSS_LOAD" "$rc" \
    "$SECS" "$LOAD_AFTER" <<'PY'
import json, sys
a = sys.argv[1:]
print(json.dumps({"engine_1_thread": json.loads(a[0]), "engine_2_threads": json.loads(a[1]),
                  "server": {c: json.loads(r) for c, r in zip(("1", "8", "64"), a[2:5])},
                  "workers": int(a[5]), "rss_idle_kb": int(a[6]), "rss_peak_kb": int(a[7]),
                  "sigterm_exit": int(a[8]), "seconds_per_level": float(a[9]),
                  "load_after": a[10]}))
PY
