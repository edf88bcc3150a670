"""Images, compose, Kubernetes manifests, alert rules and dashboards: linted and validated
here, since no container engine or cluster runs on these machines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from helpers import REPO

from dmcodec_service.local import local_server

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
BIN = Path(sys.executable).parent


PROMTOOL = shutil.which("promtool")


def test_image_environment_builds_and_serves(tmp_path, monkeypatch, wav_dir):
    """docker/install.sh, as the Dockerfile runs it, into a fresh venv; then that venv serves."""
    venv, cache = tmp_path / "venv", tmp_path / "cache"
    monkeypatch.setenv("DMCODEC_CACHE", str(cache))
    monkeypatch.delenv("DMCODEC_CHECKPOINT", raising=False)
    env = {**os.environ, "VENV": str(venv)}
    env.pop("TORCH_INDEX_URL", None)  # this machine's pip finds the CPU wheel locally
    install = subprocess.run(["bash", str(REPO / "docker" / "install.sh")], env=env, capture_output=True,
                             text=True, timeout=1200)
    assert install.returncode == 0, install.stdout + install.stderr
    bundled = REPO / "model" / "dmcodec" / "checkpoints" / "default"
    assert "checkpoints/default" in install.stdout and not (cache / "untrained-small").exists()
    code = ("import dmcodec, dmcodec_service, fastapi, uvicorn, prometheus_client; "
            "from dmcodec.defaults import resolve_checkpoint; print(resolve_checkpoint())")
    check = subprocess.run([str(venv / "bin" / "python"), "-c", code], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert not (venv / "bin" / "pytest").exists()  # the serving image carries no dev tools
    with local_server(None, tmp_path / "server.log", python=str(venv / "bin" / "python")) as (url, _):
        files = {"file": ("a.wav", (wav_dir / "clip0.wav").read_bytes())}
        name = json.loads((bundled / "config.json").read_text())["dmcodec"]["name"]
        assert httpx.post(f"{url}/v1/encode", files=files).json()["model"]["name"] == name
