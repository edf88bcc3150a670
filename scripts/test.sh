#!/usr/bin/env bash
# Installs what the tests need into ./.venv, then runs them. Arguments go to pytest,
# e.g. scripts/test.sh -m "not slow" or scripts/test.sh tests/test_service.py
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[serve,dev]'
# The reference implementation for the compatibility test and benchmark. --no-deps: it
# declares torchaudio, accelerate and more, which only its trainer imports.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps speechtokenizer==1.0.1
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests (exit 5): the suite is missing or deselected" >&2
    exit 1
fi
exit "$status"
