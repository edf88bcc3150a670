"""The installed console scripts, as a user types them."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dmcodec_service.local import free_port

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("command", [["dmcodec-serve"], ["dmcodec", "serve"]])
def test_serve_binds_the_port_its_flag_names(command, tiny_checkpoint, tmp_path):
    port = free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (closed in the finally)
    process = subprocess.Popen([str(BIN / command[0]), *command[1:], "--port", str(port), "--host", "127.0.0.1",
                                "--checkpoint", str(tiny_checkpoint), "--workers", "1"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        info = httpx.get(f"http://127.0.0.1:{port}/v1/info", timeout=5).json()
        assert info["model"]["name"] == "untrained-tiny"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) in (0, -signal.SIGTERM)
        log.close()


def test_help_and_a_wrong_value_exit_without_starting_a_server():
    shown = subprocess.run([str(BIN / "dmcodec-serve"), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "--max-queue-size" in shown.stdout
    wrong = subprocess.run([str(BIN / "dmcodec"), "serve", "--max-queue-size", "many"], capture_output=True,
                           text=True, timeout=60)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "max_queue_size" in wrong.stderr
