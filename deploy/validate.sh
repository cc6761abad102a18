#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests in deploy/ (no cluster needed). Ends with the
# line 'N passed, N failed'; exit status 0 only when nothing failed.
#
#   bash deploy/validate.sh
#
# 1. render: `kubectl kustomize deploy/` and `kubectl kustomize deploy/kserve/` must succeed.
#    kubectl: the one on PATH (or $KUBECTL); where there is none, Debian 12's kubernetes-client
#    package (kubectl 1.20, kustomize v2.0.3) is downloaded with apt-get and unpacked into
#    deploy/validate/.tools/ (nothing installed system-wide). Both render the same output.
# 2. deploy/validate/check.mjs on the rendered output: kubernetes-models schemas, kubernetes-types
#    + tsc --strict (unknown fields), our KServe types (deploy/validate/kserve.ts), policy checks
#    (probes, workers = CPU limit, grace > preStop + drain, hardening, selectors, KServe v2) and a
#    self-test that broken copies are rejected. Its npm packages are pinned in
#    deploy/validate/package-lock.json and installed with `npm ci` into deploy/validate/node_modules
#    (git-ignored); Node.js and npm come from Debian 12 (nodejs, npm) where missing.
set -uo pipefail
. "$(dirname "$0")/checks.sh"
cd "$(dirname "$0")/.."
V=deploy/validate
T0=$(date +%s)
log() { echo "[validate $(($(date +%s) - T0))s] $*"; }
count() { # counts the ok / not ok lines of a check's output, and prints them
    local out=$1
    echo "$out"
    passed=$((passed + $(grep -c '^ok - ' <<<"$out")))
    failed=$((failed + $(grep -c '^not ok - ' <<<"$out")))
}
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq &&
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. kubectl with kustomize
KUBECTL=${KUBECTL:-$(command -v kubectl || true)}
if [ -z "$KUBECTL" ] || ! "$KUBECTL" kustomize --help >/dev/null 2>&1; then
    KUBECTL=$PWD/$V/.tools/usr/bin/kubectl
    if [ ! -x "$KUBECTL" ]; then
        log "no kubectl: unpacking Debian's kubernetes-client into $V/.tools"
        dl=$(mktemp -d) && chmod 755 "$dl"
        (cd "$dl" && { apt-get download kubernetes-client >/dev/null 2>&1 ||
            { apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get download kubernetes-client >/dev/null 2>&1; }; }) &&
            rm -rf "$V/.tools" && dpkg-deb -x "$dl"/kubernetes-client_*.deb "$V/.tools"
        rm -rf "$dl"
    fi
fi
check "kubectl with kustomize: $KUBECTL ($("$KUBECTL" version --client 2>/dev/null | head -1 | cut -c1-60))" \
    "$KUBECTL" kustomize --help >/dev/null
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
render() { "$KUBECTL" kustomize "$1" >"$2"; }
check "kubectl kustomize deploy/ renders" render deploy "$OUT/base.yaml"
check "kubectl kustomize deploy/kserve/ renders" render deploy/kserve "$OUT/kserve.yaml"
[ -s "$OUT/base.yaml" ] && [ -s "$OUT/kserve.yaml" ] || finish

# 2. Node.js tools (pinned by package-lock.json; npm ci only when the lock changed)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing Debian's nodejs and npm"
    apt_install nodejs npm || { check "nodejs and npm installed" false; finish; }
fi
lock=$(sha256sum "$V/package-lock.json" | cut -c1-64)
if [ "$(cat "$V/node_modules/.onespike-lock" 2>/dev/null)" != "$lock" ]; then
    log "npm ci in $V (node $(node --version), npm $(npm --version))"
    if (cd "$V" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
        echo "$lock" >"$V/node_modules/.onespike-lock"
    else
        check "npm ci in $V" false; finish
    fi
fi
out=$(node "$V/check.mjs" "$OUT/base.yaml" "$OUT/kserve.yaml" 2>&1)
rc=$?
count "$out"
[ $rc -eq 0 ] || grep -q '^not ok - ' <<<"$out" || check "check.mjs ran (exit $rc)" false
log "done"
finish
