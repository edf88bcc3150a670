#!/usr/bin/env bash
# Installs the service into ./.venv and starts it on http://127.0.0.1:8000 with the bundled
# default checkpoint. Configure with DMCODEC_* variables (see README, Operations).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[serve]'
exec .venv/bin/dmcodec-serve
