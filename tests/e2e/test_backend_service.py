"""Inference backends: ONNX Runtime graphs exported once per checkpoint and cached, batch
invariance and windows as with torch, code agreement measured and enforced, the precision
policy at the service's start-up, and the mode in every response."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from helpers import clips, running_server


def test_service_reports_backend_and_refuses_a_mode_below_the_threshold(tiny_checkpoint, tmp_path):
    with running_server(tiny_checkpoint, tmp_path / "ok.log", backend="onnxruntime",
                        min_code_agreement=0.0) as (url, _):
        info = httpx.get(f"{url}/v1/info").json()["model"]
        encoded = httpx.post(f"{url}/v1/encode", files={"file": ("a.wav", _wav_bytes(), "audio/wav")}).json()
    assert info["backend"] == encoded["model"]["backend"] == "onnxruntime"
    assert info["precision"] == "fp32" and 0 <= info["code_agreement"] <= 1

    env = {**os.environ, "DMCODEC_CHECKPOINT": str(tiny_checkpoint), "DMCODEC_BACKEND": "onnxruntime",
           "DMCODEC_PRECISION": "int8", "DMCODEC_MIN_CODE_AGREEMENT": "1.0", "DMCODEC_PORT": "1"}
    result = subprocess.run([sys.executable, "-m", "dmcodec_service"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    assert "of fp32 torch codes on the calibration set" in result.stderr


def _wav_bytes() -> bytes:
    from dmcodec.audio import wav_bytes

    return wav_bytes(clips([1.5], seed=8)[0], 16000)
