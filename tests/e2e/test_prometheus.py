"""A real Prometheus server scrapes the real service on 127.0.0.1 with the project's rules."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from helpers import REPO, running_server

from dmcodec_service.local import free_port

PROMETHEUS = shutil.which("prometheus")
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus binary missing (Debian package "
                                "'prometheus'; scripts/test.sh installs it)")


def query(url: str, promql: str) -> list[dict]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"prometheus exited: {log.read_text()[-2000:]}"
        try:
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"prometheus not ready: {log.read_text()[-2000:]}")


def wait_for(url: str, promql: str, expected: float, timeout: float = 60) -> float:
    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        result = query(url, promql)
        if result:
            value = float(result[0]["value"][1])
            if value == pytest.approx(expected):
                return value
        time.sleep(0.5)
    raise AssertionError(f"{promql} = {value}, expected {expected}")


def test_prometheus_scrapes_the_service_metrics_and_loads_the_rules(tiny_checkpoint, wav_dir, tmp_path):
    with running_server(tiny_checkpoint, tmp_path / "service.log") as (service, _):
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "dmcodec", "static_configs": [
                {"targets": [service.removeprefix("http://")]}]}],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 (closed in the finally)
        prometheus = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                       f"--storage.tsdb.path={tmp_path / 'data'}",
                                       f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, prometheus, tmp_path / "prometheus.log")
            wait_for(url, 'up{job="dmcodec"}', 1)
            clips = sorted(wav_dir.glob("*.wav"))
            seconds = 0.0
            for clip in clips:
                answer = httpx.post(f"{service}/v1/encode", files={"file": (clip.name, clip.read_bytes())}).json()
                seconds += answer["duration_s"]
            assert httpx.post(f"{service}/v1/encode", content=b"x", headers={"content-type": "text/plain"}
                              ).status_code == 415
            wait_for(url, 'dmcodec_requests_total{route="/v1/encode",status="200"}', len(clips))
            wait_for(url, 'dmcodec_requests_total{route="/v1/encode",status="415"}', 1)
            wait_for(url, 'dmcodec_audio_seconds_total{op="encode"}', seconds)
            wait_for(url, 'dmcodec_batch_size_requests_sum{op="encode"}', len(clips))
            wait_for(url, "dmcodec_ready", 1)
            assert query(url, "dmcodec_model_info")[0]["metric"]["name"] == "untrained-tiny"
            # The recording rules evaluate against the scraped series.
            wait_for(url, "dmcodec:error_ratio:rate5m", 0)
            rules = httpx.get(f"{url}/api/v1/rules").json()["data"]["groups"]
            alerts = {r["name"] for g in rules for r in g["rules"] if r["type"] == "alerting"}
            assert {"DMCodecHighErrorRate", "DMCodecNotReady", "DMCodecQueueSaturated"} <= alerts
            assert all(r["health"] == "ok" for g in rules for r in g["rules"]), rules
        finally:
            prometheus.terminate()
            prometheus.wait(30)
            log.close()
