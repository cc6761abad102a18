#!/usr/bin/env bash
# Install what is missing (Debian 12), build, and start onespike-serve on 127.0.0.1:8080.
#   scripts/serve.sh                      serve the shipped model as "ucm"
#   MODEL=path/to/m.safetensors [MODEL_NAME=name] scripts/serve.sh   serve another model file
# Extra arguments go to onespike-serve (e.g. --port 9090 --workers 4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d build-release ] || meson setup build-release -Dtests=false >/dev/null
meson compile -C build-release >/dev/null
SHIPPED=models/ucm-msresnet18-t1.safetensors
model=${MODEL:-$SHIPPED}
if [ -z "$model" ] || [ ! -f "$model" ]; then
    echo "no model to serve: set MODEL=path/to/model.safetensors, or train one with" >&2
    echo "  build-release/tools/onespike-train fit --data DIR --out models/m.safetensors" >&2
    exit 1
fi
# The shipped model answers as "ucm" (as in the container and the manifests); another file by
# its own name unless MODEL_NAME says otherwise.
if [ "$model" = "$SHIPPED" ]; then name=${MODEL_NAME:-ucm}; else name=${MODEL_NAME:-$(basename "$model" .safetensors)}; fi
echo "serving $model as \"$name\" on http://127.0.0.1:${ONESPIKE_PORT:-8080}" >&2
exec build-release/server/onespike-serve --model "$name=$model" "$@"
