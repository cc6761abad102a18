#!/usr/bin/env bash
# Container check for CI: build the Dockerfile with podman (no Docker engine needed) from a local
# Debian 12 base made by debootstrap, run the image on loopback only, and check what deploy/
# relies on. Adapted from the recipe in ../shared/tools/container-smoke.sh. Ends with the line
# 'N passed, N failed'; exit status 0 only when nothing failed.
#
#   bash deploy/container-test.sh
#
# env: WORK (podman storage, base tarball; default /var/tmp/onespike-ctr), IMAGE (default
#      localhost/onespike-serve:ci), BUILD (host build dir for the reference answer; default
#      build-test), MODEL (model file to put in the image; default
#      models/ucm-msresnet18-t1.safetensors, else an untrained stand-in, see below),
#      STORAGE_DRIVER, BUILD_ISOLATION, KEEP_IMAGE=0 (remove the image afterwards)
#
# What is checked:
#   - the image builds (its build stage compiles and runs the test suite);
#   - image config: numeric non-root user, HEALTHCHECK, STOPSIGNAL, port, no compiler/curl/python;
#   - with the image's own defaults (0.0.0.0:8080 in a private network namespace, --network=none,
#     read-only root, no capabilities): the image's HEALTHCHECK turns healthy, the process runs as
#     uid 10001, /bin/sleep exists for deploy/'s preStop, SIGTERM exits 0;
#   - on the host network (127.0.0.1 and a free port): readiness, then POST a fixture JPEG to
#     /v2/models/ucm/classify and compare every class probability with the host build's
#     `onespike-train classify --json` on the same model file (|diff| <= 1e-6); the probe run
#     inside the container exits 0; `podman stop` (SIGTERM) drains and exits 0;
#   - the image size is printed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${WORK:-/var/tmp/onespike-ctr}
IMAGE=${IMAGE:-localhost/onespike-serve:ci}
BUILD=${BUILD:-build-test}
SHIPPED=models/ucm-msresnet18-t1.safetensors
FIXTURE=tests/fixtures/ucm_beach00.jpg
T0=$(date +%s)
log() { echo "[container-test $(($(date +%s) - T0))s] $*"; }
. deploy/checks.sh
die() { echo "container-test: $*" >&2; failed=$((failed + 1)); finish; }

# 1. tools (runc, not crun: crun 1.8 refuses this kernel's hybrid cgroup layout)
need=()
for p in podman runc debootstrap curl python3; do
    command -v "$p" >/dev/null || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # With Recommends, as the tested recipe (../shared/tools/container-smoke.sh) installs them.
    apt-get -o DPkg::Lock::Timeout=600 update -qq &&
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
            podman runc debootstrap curl python3 >/dev/null || die "cannot install ${need[*]}"
fi

# 2. private podman configuration (nothing written to /etc): overlay (vfs fallback), runc,
#    cgroupfs, file events, ulimits under what the sandbox allows (podman's default nofile fails)
mkdir -p "$WORK"
NOFILE=$(ulimit -Hn); [ "$NOFILE" = unlimited ] && NOFILE=65536; [ "$NOFILE" -gt 65536 ] && NOFILE=65536
DRIVER=${STORAGE_DRIVER:-$(grep -qw overlay /proc/filesystems && echo overlay || echo vfs)}
cat >"$WORK/storage.conf" <<CONF
[storage]
driver = "$DRIVER"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
CONF
cat >"$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
CONF
export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf

# 3. the host build (reference answers) and the model to put in the image
if [ ! -x "$BUILD/tools/onespike-train" ]; then
    log "building $BUILD on the host"
    meson setup "$BUILD" -Dwerror=true >/dev/null || die "meson setup $BUILD failed"
fi
meson compile -C "$BUILD" >/dev/null || die "meson compile -C $BUILD failed"
TRAIN=$ROOT/$BUILD/tools/onespike-train
MODEL=${MODEL:-}
if [ -z "$MODEL" ] && [ -f "$SHIPPED" ]; then
    MODEL=$SHIPPED
elif [ -z "$MODEL" ]; then
    # Not the shipped model: an untrained network of the same recipe. It proves the plumbing
    # (the image's answers equal the host's), not accuracy. Kept out of git (.gitignore).
    MODEL=.container-test/standin-ucm.safetensors
    mkdir -p .container-test
    if [ -d ../shared/data/ucmerced ]; then
        classes=(--data ../shared/data/ucmerced)
    else
        classes=(--labels agricultural,airplane,baseballdiamond,beach,buildings,chaparral,denseresidential,forest,freeway,golfcourse,harbor,intersection,mediumresidential,mobilehomepark,overpass,parkinglot,river,runway,sparseresidential,storagetanks,tenniscourt)
    fi
    "$TRAIN" init --arch resnet18 --width-mult 0.5 --input 64 "${classes[@]}" --threshold 0.1 \
        --name ucm-standin --out "$MODEL" >/dev/null || die "cannot write the stand-in model"
    echo "NOTE: $SHIPPED is absent: the image gets an UNTRAINED stand-in ($MODEL," \
        "onespike-train init --arch resnet18 --width-mult 0.5 --input 64 ${classes[*]} --threshold 0.1)"
fi
case $MODEL in /*) MODEL=$(realpath --relative-to="$ROOT" "$MODEL") ;; esac
case $MODEL in ../*) die "MODEL must be inside the build context ($ROOT): $MODEL" ;; esac
[ -s "$MODEL" ] || die "no model file: $MODEL"
log "model in the image: $MODEL ($(stat -c %s "$MODEL") bytes)"

# 4. base image from debootstrap (tarball cached in $WORK between runs on the same machine)
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BASE_TAR=$WORK/debian-bookworm-minbase.tar
if ! podman image exists localhost/debian:bookworm; then
    if [ ! -s "$BASE_TAR" ]; then
        log "debootstrap (once per machine; the tarball stays in $WORK)"
        rm -rf "$WORK/rootfs"
        debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
            { tail -20 "$WORK/debootstrap.log"; die "debootstrap failed"; }
        rm -f "$WORK/rootfs/etc/apt/sources.list" "$WORK/rootfs"/var/cache/apt/archives/*.deb
        rm -rf "$WORK/rootfs"/var/lib/apt/lists/*
        cp /etc/apt/sources.list.d/debian.sources "$WORK/rootfs/etc/apt/sources.list.d/"
        tar -C "$WORK/rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' \
            --exclude='./sys/*' -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
        rm -rf "$WORK/rootfs"
    fi
    podman import --change 'CMD ["/bin/bash"]' "$BASE_TAR" localhost/debian:bookworm >/dev/null ||
        die "podman import failed"
    podman tag localhost/debian:bookworm docker.io/library/debian:bookworm-slim
    log "base image imported"
fi

# 5. build. --format docker keeps HEALTHCHECK (the OCI format has none). vfs copies the whole
#    tree for every layer: there, --layers=false.
LAYERS=true; [ "$DRIVER" = vfs ] && LAYERS=false
log "podman build ($DRIVER, layers=$LAYERS)"
if podman build --format docker --pull=never --layers=$LAYERS --isolation="${BUILD_ISOLATION:-oci}" \
    --network=host --build-arg BASE=localhost/debian:bookworm --build-arg MODEL="$MODEL" \
    -t "$IMAGE" -f Dockerfile . >"$WORK/build.log" 2>&1; then
    check "image builds (build stage compiles and passes its tests)" true
    grep -E "^Ok:|^Fail:|^Skipped:|^Timeout:|\[  PASSED  \]" "$WORK/build.log" | sort | uniq -c | head -20
else
    tail -40 "$WORK/build.log"
    check "image builds (log: $WORK/build.log)" false
    finish
fi
# overlay: the dangling stage images ARE the build cache; drop only those a day old, so that
# /var/tmp does not fill up over many runs. vfs: no cache (--layers=false), drop them all.
if [ "$DRIVER" = vfs ]; then podman image prune -f >/dev/null
else podman image prune -f --filter until=24h >/dev/null; fi
log "image built"

# 6. image configuration
cfg() { podman image inspect "$IMAGE" --format "$1"; }
check "image user is numeric non-root 10001:10001" test "$(cfg '{{.Config.User}}')" = 10001:10001
check "image has a HEALTHCHECK running --probe on /v2/health/ready" \
    grep -qF '"--probe","http://127.0.0.1:8080/v2/health/ready"' <<<"$(cfg '{{json .HealthCheck}}')"
check "image STOPSIGNAL is SIGTERM" test "$(cfg '{{.Config.StopSignal}}')" = SIGTERM
check "image exposes 8080/tcp" grep -q 8080/tcp <<<"$(cfg '{{json .Config.ExposedPorts}}')"
check "image entrypoint is the server binary" \
    test "$(cfg '{{json .Config.Entrypoint}}')" = '["/usr/local/bin/onespike-serve"]'
tools=$(podman run --rm --network=none --entrypoint /bin/sh "$IMAGE" -c \
    'for t in gcc cc meson ninja python3 curl wget; do command -v $t; done; true' 2>/dev/null)
check "runtime image has no compiler, meson, ninja, python3, curl or wget${tools:+ (found: ${tools//$'\n'/ })}" \
    test -z "$tools"

# 7. the image as shipped: its own defaults (0.0.0.0:8080), in a private network namespace that
#    has only a loopback interface; hardened like deploy/deployment.yaml.
# --read-only-tmpfs=false: like Kubernetes' readOnlyRootFilesystem, no writable /tmp either
HARDEN=(--read-only --read-only-tmpfs=false --cap-drop=all --security-opt=no-new-privileges)
A=onespike-ctr-a$$ B=onespike-ctr-b$$
cleanup() { podman rm -f -t 0 "$A" "$B" >/dev/null 2>&1 || true; }
trap cleanup EXIT
podman run -d --name "$A" --network=none "${HARDEN[@]}" "$IMAGE" >/dev/null 2>"$WORK/run-a.err" ||
    { cat "$WORK/run-a.err"; check "container starts with the image defaults" false; finish; }
healthy=1
for _ in $(seq 1 60); do
    if podman healthcheck run "$A" >/dev/null 2>&1; then healthy=0; break; fi
    sleep 0.5
done
check "image HEALTHCHECK (podman healthcheck run) turns healthy" test "$healthy" = 0
pid=$(podman inspect "$A" --format '{{.State.Pid}}')
uids=$(awk '/^Uid:/{print $2, $3, $4, $5}' "/proc/$pid/status" 2>/dev/null)
check "server process runs as uid 10001 (real, effective, saved, fs: $uids)" test "$uids" = "10001 10001 10001 10001"
capeff=$(awk '/^CapEff:/{print $2}' "/proc/$pid/status" 2>/dev/null)
check "server process has no effective capabilities ($capeff)" test "$capeff" = 0000000000000000
check "/bin/sleep runs in the image (deploy/deployment.yaml preStop)" podman exec "$A" /bin/sleep 0
podman stop -t 20 "$A" >/dev/null 2>&1
check "SIGTERM with the image defaults: exit status 0" \
    test "$(podman inspect "$A" --format '{{.State.ExitCode}}')" = 0

# 8. on the host network, 127.0.0.1 and a free port: classify a fixture and compare with the host
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
U=http://127.0.0.1:$PORT
podman run -d --name "$B" --network=host "${HARDEN[@]}" -e ONESPIKE_LISTEN=127.0.0.1 \
    -e ONESPIKE_PORT="$PORT" -e ONESPIKE_WORKERS=2 "$IMAGE" >/dev/null 2>"$WORK/run-b.err" ||
    { cat "$WORK/run-b.err"; check "container starts on 127.0.0.1:$PORT" false; finish; }
ready=1
for _ in $(seq 1 100); do
    if curl -fsS -m 2 "$U/v2/health/ready" >/dev/null 2>&1; then ready=0; break; fi
    sleep 0.2
done
check "ready on $U/v2/health/ready" test "$ready" = 0
[ "$ready" = 0 ] || podman logs "$B" 2>&1 | tail -5
got=$(curl -sS -m 20 -H 'Content-Type: image/jpeg' --data-binary @"$FIXTURE" "$U/v2/models/ucm/classify?top_k=21")
want=$("$TRAIN" classify --model "$MODEL" --json --top-k 21 "$FIXTURE")
compare() {
    python3 - "$got" "$want" <<'PY'
import json, sys
got, want = json.loads(sys.argv[1]), json.loads(sys.argv[2])
g = {p["index"]: (p["label"], p["probability"]) for p in got["predictions"]}
w = {p["index"]: (p["label"], p["probability"]) for p in want["predictions"]}
worst = max((abs(g[i][1] - w[i][1]) for i in w if i in g), default=float("inf"))
top = want["predictions"][0]
print(f"  container top-1 {got['predictions'][0]['label']} {got['predictions'][0]['probability']:.6f},"
      f" host top-1 {top['label']} {top['probability']:.6f}; {len(g)} classes, max |diff| {worst:.2e}")
ok = len(w) == 21 and g.keys() == w.keys() and all(g[i][0] == w[i][0] for i in w) and worst <= 1e-6
sys.exit(0 if ok else 1)
PY
}
check "classify $FIXTURE in the container = host onespike-train classify --json (1e-6)" compare
[ "$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])["predictions"]))' "$got" 2>/dev/null)" = 21 ] ||
    echo "  container answered: ${got:0:300}"
check "probe inside the container exits 0" \
    podman exec "$B" /usr/local/bin/onespike-serve --probe "$U/v2/health/ready"
podman stop -t 20 "$B" >/dev/null 2>&1
check "SIGTERM (podman stop) drains and exits 0" \
    test "$(podman inspect "$B" --format '{{.State.ExitCode}}')" = 0
check "the server logged its drain" grep -q '"drained"' <<<"$(podman logs "$B" 2>&1)"

# 9. size
size=$(cfg '{{.Size}}')
base=$(podman image inspect localhost/debian:bookworm --format '{{.Size}}')
log "image $IMAGE: $size bytes ($((size / 1048576)) MiB; base debootstrap minbase $((base / 1048576)) MiB," \
    "onespike layers $(((size - base) / 1048576)) MiB)"
cleanup
[ "${KEEP_IMAGE:-1}" = 1 ] || podman rmi -f "$IMAGE" >/dev/null 2>&1
finish
