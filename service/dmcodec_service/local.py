"""Run the service in a subprocess on 127.0.0.1: for tests, benchmarks and local bulk jobs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(process: subprocess.Popen, health_url: str, log_path: Path, timeout: float) -> None:
    """Poll `health_url` until it answers 200; raise with the log's tail if the process exits
    or `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(health_url, timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not ready in {timeout} s: {log_path.read_text()[-2000:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def local_server(checkpoint: Optional[Path], log_path: Path, ready_timeout: float = 180,
                 python: str = sys.executable, port: Optional[int] = None, env: Optional[dict[str, str]] = None,
                 popen: Optional[dict[str, Any]] = None, **settings) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start `python -m dmcodec_service` on `port` (default: a free one) and wait until it is ready.

    Yields (base URL, process); on exit sends SIGTERM (the service drains) and waits.
    `python` is the interpreter whose environment runs it; `env` adds variables to this
    process's (e.g. OTEL_*). Keyword settings become DMCODEC_<NAME> environment variables.
    """
    port = port or free_port()
    env = {**os.environ, **(env or {}), "DMCODEC_PORT": str(port), "DMCODEC_HOST": "127.0.0.1"}
    if checkpoint:
        env["DMCODEC_CHECKPOINT"] = str(checkpoint)
    env.update({f"DMCODEC_{k.upper()}": str(v) for k, v in settings.items()})
    with open(log_path, "ab") as log:
        process = subprocess.Popen([python, "-m", "dmcodec_service"], env=env, stdout=log, stderr=log, **(popen or {}))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, f"{url}/v2/health/ready", Path(log_path), ready_timeout)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
