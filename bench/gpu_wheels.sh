#!/usr/bin/env bash
# Collects into wheelhouse/ (git-ignored) the wheels `bench/gpu.py` needs beyond torch and
# numpy (bench/gpu_requirements.txt, with their dependencies), for CPython 3.10-3.13 on x86-64
# Linux, so that a CUDA machine with torch and no network can run it. Then, there:
#   pip install --no-index --find-links wheelhouse -r bench/gpu_requirements.txt
#   PYTHONPATH=model:service python bench/gpu.py
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf wheelhouse && mkdir wheelhouse
for version in 3.10 3.11 3.12 3.13; do
    python3 -m pip download --quiet --dest wheelhouse --only-binary=:all: --python-version "$version" \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        -r bench/gpu_requirements.txt numpy
done
rm -f wheelhouse/numpy-*.whl  # torch's installation has its own; kept in the list only for resolving
du -sh wheelhouse
