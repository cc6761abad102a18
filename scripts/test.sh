#!/usr/bin/env bash
# Install what is missing, build, and run every test: once in a release build with -Werror,
# once under AddressSanitizer + UndefinedBehaviorSanitizer; then the deployment checks
# (deploy/validate.sh, deploy/container-test.sh: podman). This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

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

echo "== deployment manifests (offline: kustomize render, schemas, policy) =="
bash deploy/validate.sh
echo "== container image (podman build, run on loopback, compare with the host build) =="
BUILD=build-test bash deploy/container-test.sh
