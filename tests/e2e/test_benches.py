"""The benchmark scripts run from a fresh clone: the GPU script's CPU dry run (what a GPU session
will run, on the same code paths) and the peer benchmark on a tiny config."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import REPO


def test_gpu_script_dry_run_measures_everything_it_will_on_a_gpu(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py"), "--dry-run"], cwd=tmp_path,
                            env={**os.environ, "OUT": str(tmp_path)}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert [row["batch"] for row in report["model"]] == [1, 2]
    assert all(row["encode_x_realtime"] > 0 and row["decode_x_realtime"] > 0 for row in report["model"])
    assert report["agreement_with_cpu_fp32"]["fp32"]["overall"] == 1.0  # CPU against itself
    assert report["batch_invariant"] is True
    assert [row["concurrency"] for row in report["service"]] == [1, 4]
    assert all(row["requests"] > 0 and row["errors"] == 0 for row in report["service"])


def test_peer_benchmark_prints_both_servers_and_the_ratios(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "bench" / "peer.py"), "--preset", "tiny", "--seconds", "2",
                             "--clip-seconds", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ours"]["backend_requested"] == "auto"
    assert [row["concurrency"] for row in report["levels"]] == [1, 16]
    for row in report["levels"]:
        assert row["peer"]["requests"] > 0 and row["ours"]["requests"] > 0
        assert row["peer"]["errors"] == 0 and row["ours"]["errors"] == 0
    assert "throughput" in result.stdout
