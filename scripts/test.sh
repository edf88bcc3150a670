#!/usr/bin/env bash
# Installs what the tests need into ./.venv, then runs them. Arguments go to pytest,
# e.g. scripts/test.sh -m "not slow" or scripts/test.sh tests/test_service.py
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[serve,dev,bulk]'
# The reference implementation for the compatibility test and benchmark. --no-deps: it
# declares torchaudio, accelerate and more, which only its trainer imports.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps speechtokenizer==1.0.1
# Prometheus and promtool for the monitoring tests (Debian's package), where we may install it.
if ! command -v prometheus >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) \
        >/dev/null || echo "warning: could not install prometheus; its tests will be skipped" >&2
fi
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests (exit 5): the suite is missing or deselected" >&2
    exit 1
fi
exit "$status"
