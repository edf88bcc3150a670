#!/usr/bin/env bash
# Installs what the tests need into ./.venv, runs the checks (ruff, mypy, import contracts),
# then the tests: unit, in-process service and end-to-end (everything but `slow`). Arguments go
# to pytest, e.g. scripts/test.sh -m "not slow and not e2e" (the fast local tier) or
# scripts/test.sh tests/unit/test_tokenizer.py. DMCODEC_SKIP_CHECKS=1 skips the static checks.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[serve,otel,dev,bulk,pipelines,train,onnx]'
# The reference implementation for the compatibility test and benchmark. --no-deps: it
# declares torchaudio, accelerate and more, which only its trainer imports.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps speechtokenizer==1.0.1
# Debian packages, where we may install them: Prometheus and promtool for the monitoring tests,
# the speech synthesisers of the training corpus (espeak-ng, flite, festival + two voices), real
# recordings of human speech (alsa-utils' channel names, pocketsphinx-testdata's LibriVox
# readings), and Chromium for the playground's browser test (Playwright drives it; it never
# downloads a browser).
missing=()
for pair in prometheus:prometheus espeak-ng:espeak-ng flite:flite text2wave:festival \
            /usr/share/festival/voices/us/cmu_us_slt_arctic_hts:festvox-us-slt-hts \
            /usr/share/festival/voices/english/kal_diphone:festvox-kallpc16k chromium:chromium \
            /usr/share/sounds/alsa/Front_Center.wav:alsa-utils /usr/share/pocketsphinx/test/data:pocketsphinx-testdata; do
    probe=${pair%%:*}
    { command -v "$probe" >/dev/null || [ -e "$probe" ]; } || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}") \
        >/dev/null || echo "warning: could not install ${missing[*]}; tests that need them will fail or skip" >&2
fi
if [ "${DMCODEC_SKIP_CHECKS:-0}" != 1 ]; then
    echo "== ruff"; .venv/bin/ruff check model service training tests bench scripts
    echo "== mypy"; .venv/bin/mypy
    echo "== import contracts"; .venv/bin/lint-imports
fi
export HF_HUB_OFFLINE=1
status=0
.venv/bin/python -m pytest -m "not slow" "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests (exit 5): the suite is missing or deselected" >&2
    exit 1
fi
exit "$status"
