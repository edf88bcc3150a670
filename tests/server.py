"""Start the real service (uvicorn, in a subprocess) on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(checkpoint: Path, log_path: Path, **settings):
    """Yields (base_url, process). Settings become DMCODEC_* environment variables."""
    port = free_port()
    env = {**os.environ, "DMCODEC_CHECKPOINT": str(checkpoint), "DMCODEC_PORT": str(port),
           "DMCODEC_HOST": "127.0.0.1", "DMCODEC_TORCH_THREADS": "2"}
    env.update({f"DMCODEC_{k.upper()}": str(v) for k, v in settings.items()})
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "dmcodec_service"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready in time: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def scrape(url: str) -> dict[tuple, float]:
    """GET /metrics, parsed by prometheus_client -> {(sample name, sorted label pairs): value}."""
    families = text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}


def value(samples: dict[tuple, float], metric: str, **labels) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)
