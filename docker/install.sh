#!/usr/bin/env bash
# Builds the service's Python environment: the Dockerfile runs this, and so does a test, so
# that what the image installs is checked on machines without a container engine.
#   VENV             where to create the environment (default /opt/venv)
#   TORCH_INDEX_URL  where torch (the version in constraints.txt) comes from (a CPU or CUDA wheel index); unset: pip's default
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-/opt/venv}"
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --no-cache-dir --disable-pip-version-check --quiet)
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${pip[@]}" --index-url "$TORCH_INDEX_URL" -c "$src/constraints.txt" torch
fi
"${pip[@]}" -c "$src/constraints.txt" "$src[serve]"
# The trained default checkpoint ships inside the package: check that the install found it.
"$venv/bin/python" -c \
    "from dmcodec.defaults import resolve_checkpoint; print('default checkpoint:', resolve_checkpoint())"
# The default backend's graphs, exported once here beside the checkpoint, so that a replica
# (which runs as a user that cannot write there) starts without exporting them again.
"$venv/bin/dmcodec" export-onnx
