# onespike-serve image: build stage (compile + tests), then a runtime stage with only the
# runtime libraries, the server binary and one model. See deploy/README.md.
#
#   podman build --format docker -t onespike-serve:0.1.0 .      (docker build -t ... . works too)
#   podman run --rm -p 127.0.0.1:8080:8080 onespike-serve:0.1.0
#
# Build arguments:
#   BASE       Debian 12 base image (CI passes a local debootstrap image, deploy/container-test.sh)
#   MODEL      model file in the build context, served as "ucm" (default: the shipped model)
#   RUN_TESTS  1 (default): run the test suite in the build stage; 0 skips it
# --format docker (podman): the OCI image format has no HEALTHCHECK, podman would drop it.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
# python3, numpy, python3-gdal and curl only run tests (CLI checks, safetensors interoperability,
# rasters written by GDAL's Python bindings, server end to end; test_api.py's metric counts
# assume its curl checks ran).
RUN apt-get -o DPkg::Lock::Timeout=600 update -qq \
 && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
        gcc libc6-dev meson ninja-build pkg-config \
        libmicrohttpd-dev libjansson-dev libturbojpeg0-dev libgdal-dev libopenblas-dev \
        libcmocka-dev python3 python3-numpy python3-gdal curl >/dev/null \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY meson.build meson_options.txt ./
COPY core core
COPY include include
COPY tools tools
COPY models models
COPY server server
COPY bench bench
COPY tests tests
# the server tests run scripts/eval_http.py (issue 5's HTTP accuracy measurement), test_fit
# runs scripts/model_card.py and scripts/crossval.py
COPY scripts/eval_http.py scripts/eval_http.py
COPY scripts/model_card.py scripts/model_card.py
COPY scripts/crossval.py scripts/crossval.py
RUN meson setup /build -Dbuildtype=release -Dwerror=true >/dev/null \
 && meson compile -C /build
# Tests that need ../shared/data are not here (they skip without it); the server tests talk to
# the server on the build container's loopback only.
ARG RUN_TESTS=1
RUN if [ "$RUN_TESTS" = 1 ]; then \
        OPENBLAS_NUM_THREADS=1 meson test -C /build --print-errorlogs --num-processes 2; \
    else echo "tests skipped (RUN_TESTS=$RUN_TESTS)"; fi
ARG MODEL=models/ucm-msresnet18-t1.safetensors
COPY ${MODEL} /out/models/ucm.safetensors
# A damaged or foreign model file fails the build here, not the first pod.
RUN /build/tools/onespike-train inspect /out/models/ucm.safetensors \
 && install -D -m 0755 -s /build/server/onespike-serve /out/bin/onespike-serve \
 && chmod 0444 /out/models/ucm.safetensors

FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
# Runtime libraries only (no docs, man pages or locales); OpenBLAS is the pthread build. libgdal32
# (TIFF, GeoTIFF, PNG, JPEG 2000 through GDAL) brings its own dependencies, most of the image's
# size; no gdal-bin or Python here.
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
        'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/info/*' \
        > /etc/dpkg/dpkg.cfg.d/01-onespike-nodoc \
 && apt-get -o DPkg::Lock::Timeout=600 update -qq \
 && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
        libmicrohttpd12 libjansson4 libturbojpeg0 libgdal32 libopenblas0-pthread >/dev/null \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --gid 10001 onespike \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin onespike
COPY --from=build /out/bin/onespike-serve /usr/local/bin/onespike-serve
COPY --from=build /out/models/ucm.safetensors /models/ucm.safetensors
# Every shared library resolves (a missing runtime package fails the build, not the pod).
RUN ! ldd /usr/local/bin/onespike-serve | grep -F 'not found' && onespike-serve --version
# ONESPIKE_WORKERS unset: one worker per online CPU of the host. Under a CPU limit set it to the
# limit (deploy/deployment.yaml does). OPENBLAS_NUM_THREADS=1: the workers call BLAS
# single-threaded anyway; this keeps OpenBLAS from starting its own idle thread pool.
ENV ONESPIKE_LISTEN=0.0.0.0 \
    ONESPIKE_PORT=8080 \
    ONESPIKE_MODEL=ucm=/models/ucm.safetensors \
    OPENBLAS_NUM_THREADS=1
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080
# The probe needs no curl: the binary GETs a loopback URL and exits 0 on 200. It checks port
# 8080; a container started with another ONESPIKE_PORT needs its own health check.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/onespike-serve", "--probe", "http://127.0.0.1:8080/v2/health/ready"]
# SIGTERM drains (ready turns 503, received requests finish within ONESPIKE_DRAIN_MS), exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/onespike-serve"]
