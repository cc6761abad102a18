#!/usr/bin/env bash
# Fuzz every harness for a while: bash tests/fuzz/run.sh BUILD_DIR SECONDS [HARNESS...]
# BUILD_DIR is a clang build with the harnesses (scripts/test.sh: build-fuzz). Each harness
# starts from its seed corpus in tests/fuzz/corpus/<name> (read only) and keeps what it finds
# in BUILD_DIR/fuzz-corpus/<name>; a crash leaves BUILD_DIR/fuzz-crash-<name>-* and fails the
# run. Two harnesses run at a time (CI has 2 cores). Prints each one's last stats line
# (executions, cov:, ft:).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:?usage: run.sh BUILD_DIR SECONDS [HARNESS...]}
SECS=${2:?usage: run.sh BUILD_DIR SECONDS [HARNESS...]}
shift 2
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(jpeg raster multipart oip b64 head routes model dataset_list)

fuzz_one() {
    local h=$1 out="$BUILD/fuzz-corpus/$1" log="$BUILD/fuzz-$1.log"
    mkdir -p "$out"
    # rss_limit: a harness that needs more than this per input is a finding too.
    if "$BUILD/tests/fuzz/fuzz_$h" -max_total_time="$SECS" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$BUILD/fuzz-crash-$h-" "$out" "tests/fuzz/corpus/$h" >"$log" 2>&1; then
        printf '%-13s %s\n' "$h" "$(grep -E '^#[0-9]+' "$log" | tail -1)"
    else
        printf '%-13s FAILED (see %s)\n' "$h" "$log"
        grep -m1 -A12 -E '^==[0-9]+==ERROR|SUMMARY|deadly signal' "$log" || tail -20 "$log"
        return 1
    fi
}

status=0
for ((i = 0; i < ${#HARNESSES[@]}; i += 2)); do
    pids=()
    fuzz_one "${HARNESSES[i]}" & pids+=($!)
    if [ $((i + 1)) -lt ${#HARNESSES[@]} ]; then
        fuzz_one "${HARNESSES[i + 1]}" & pids+=($!)
    fi
    for p in "${pids[@]}"; do wait "$p" || status=1; done
done
exit $status
