#!/usr/bin/env bash
# Install what onespike needs to build and test on Debian 12, skipping what is already there.
#   bash scripts/install-deps.sh [EXTRA_PACKAGE...]    (extras: e.g. the benchmark's peers)
set -euo pipefail
PKGS=(gcc meson ninja-build pkg-config
      libmicrohttpd-dev libjansson-dev libturbojpeg0-dev libgdal-dev libopenblas-dev libcmocka-dev
      libdnnl-dev  # oneDNN: training's matrix products on AVX-512 CPUs (core/train/gemm.h)
      libcurl4-openssl-dev curl python3 python3-numpy
      gdal-bin python3-gdal "$@")  # the last two: the raster tests write rasters with GDAL
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}"
fi
