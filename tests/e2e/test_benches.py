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


def test_gpu_training_script_packs_trains_returns_parts_and_joins(train_corpus, tmp_path):
    """What a GPU lease runs, on CPU: pack the corpus as Opus, train the whole codec (as on the
    device) to a time budget, return the weights in parts small enough to come back, and join
    them here."""
    manifest, _ = train_corpus
    script = str(REPO / "scripts" / "gpu_train.py")

    def call(*args: str) -> dict:
        result = subprocess.run([sys.executable, script, *args], cwd=tmp_path, capture_output=True, text=True,
                                timeout=600, env={**os.environ, "OUT": str(tmp_path / "out")})
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return json.loads(result.stdout[result.stdout.index("{"):])

    packed = call("pack", str(manifest), "--out", "pack", "--no-wheels", "--dev-utterances", "2")
    assert packed["utterances"] > 2 and 0 < packed["size_mb"] < 2
    assert all(path.suffix == ".ogg" for path in (tmp_path / "pack" / "audio").rglob("*.*"))
    summary = call("run", "--pack", "pack", "--dry-run", "--budget", "45", "--part-mb", "0.5")
    assert summary["steps"] > 6 and summary["dev_mel_after"] < summary["dev_mel_before"]
    parts = [tmp_path / "out" / name for name in summary["parts"]]
    assert len(parts) > 1 and all(p.stat().st_size <= 2**19 for p in parts)
    assert call("join", "out", "joined")["checkpoint"].endswith("joined")
    from dmcodec.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "joined").name.endswith(f"step{summary['steps']}")

    parts[0].write_bytes(b"x" + parts[0].read_bytes()[1:])
    failed = subprocess.run([sys.executable, script, "join", "out", "broken"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert failed.returncode != 0 and "sha256" in failed.stderr
