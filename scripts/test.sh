#!/usr/bin/env bash
# Install what is missing, build, and run every test: once in a release build with -Werror,
# once under AddressSanitizer + UndefinedBehaviorSanitizer, the server suite once more under
# ThreadSanitizer; the libFuzzer harnesses (clang) over their seed corpora and then for
# FUZZ_SECONDS each (default 20); then the deployment checks (deploy/validate.sh,
# deploy/container-test.sh: podman). This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# clang and its runtimes (libFuzzer, sanitizers) for the fuzz step.
bash scripts/install-deps.sh clang libclang-rt-14-dev
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

echo "== release build (-Werror) =="
meson setup build-test --reconfigure -Dwerror=true >/dev/null 2>&1 || meson setup build-test -Dwerror=true
meson compile -C build-test
meson test -C build-test -v --print-errorlogs --num-processes 2

echo "== sanitizer build (address,undefined) =="
meson setup build-asan --reconfigure -Dwerror=true -Db_sanitize=address,undefined \
    -Dbuildtype=debugoptimized -Db_lundef=false >/dev/null 2>&1 ||
    meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined \
        -Dbuildtype=debugoptimized -Db_lundef=false
meson compile -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan -v --print-errorlogs --num-processes 2

echo "== ThreadSanitizer build (server suite: worker pool, connections, metrics; training replicas and loader) =="
meson setup build-tsan --reconfigure -Dwerror=true -Db_sanitize=thread -Dbuildtype=debugoptimized \
    -Db_lundef=false >/dev/null 2>&1 ||
    meson setup build-tsan -Dwerror=true -Db_sanitize=thread -Dbuildtype=debugoptimized \
        -Db_lundef=false
meson compile -C build-tsan
# tests/tsan.supp: GDAL-internal lock-order reports only (see the file).
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp \
    meson test -C build-tsan -v --print-errorlogs --num-processes 2 --suite server
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp \
    meson test -C build-tsan -v --print-errorlogs --num-processes 2 dp loader

echo "== fuzzing (clang, libFuzzer + ASan/UBSan): seed corpora, then ${FUZZ_SECONDS} s per harness =="
# Not -Werror: clang warns where gcc does not, in code the gcc builds above already hold to it.
FUZZ_OPTS=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
           -Dc_args=-fsanitize=fuzzer-no-link)
CC=clang meson setup build-fuzz --reconfigure "${FUZZ_OPTS[@]}" >/dev/null 2>&1 ||
    CC=clang meson setup build-fuzz "${FUZZ_OPTS[@]}"
FUZZERS=(jpeg raster multipart oip b64 head routes model dataset_list)
meson compile -C build-fuzz "${FUZZERS[@]/#/fuzz_}" # only the harnesses: the rest is built above
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-fuzz --no-rebuild --print-errorlogs --num-processes 2 --suite fuzz
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 bash tests/fuzz/run.sh build-fuzz "$FUZZ_SECONDS" "${FUZZERS[@]}"

echo "== deployment manifests (offline: kustomize render, schemas, policy) =="
bash deploy/validate.sh
echo "== container image (podman build, run on loopback, compare with the host build) =="
BUILD=build-test bash deploy/container-test.sh
