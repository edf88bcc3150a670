"""The smoke sweep of issue 32 (point 5), the way a researcher runs it: `paper list`, `paper run`
of two table-1 variants on the tiny preset, killed during the second variant and run again, then
`paper report`."""

from __future__ import annotations

import os
import subprocess
import sys
import time

CLI = [sys.executable, "-m", "dmcodec_train.cli"]


def test_a_sweep_lists_runs_survives_a_kill_resumes_and_reports(tmp_path, train_corpus):
    manifest, _ = train_corpus
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "DMCODEC_RUNS": str(tmp_path / "runs")}

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*CLI, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert not check or result.returncode == 0, result.stderr[-3000:]
        return result

    assert "no-distillation" in cli("paper", "list").stdout
    out = tmp_path / "sweep"
    run = ["paper", "run", "table1", str(out), "--manifest", str(manifest), "--preset", "tiny", "--steps", "6",
           "--variant", "no-distillation", "--variant", "lm", "--eval-limit", "2", "--threads", "1"]

    # Killed once the first variant is scored: the second is then computing its teachers' features
    # (no-distillation needs none) or training.
    first, second = out / "results" / "no-distillation-seed0.json", out / "results" / "lm-seed0.json"
    process = subprocess.Popen([*CLI, *run], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 900
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    process.kill()
    _, stderr = process.communicate()
    assert first.exists(), stderr[-3000:]
    assert not second.exists(), "the sweep finished before it could be interrupted"
    scored = (first.stat().st_mtime_ns, first.read_text())

    # Other settings on the same folder are refused, before any work.
    refused = cli(*run[:-4], "--eval-limit", "3", "--threads", "1", check=False)
    assert refused.returncode == 2 and "other settings (eval_limit)" in refused.stderr

    resumed = cli(*run)
    assert "[1/2] no-distillation-seed0: done" in resumed.stderr
    assert "[2/2] lm-seed0: training" in resumed.stderr
    assert (first.stat().st_mtime_ns, first.read_text()) == scored  # neither trained nor scored again
    assert second.exists() and (out / "runs" / "lm-seed0" / "final").is_dir()

    report = cli("paper", "report", str(out)).stdout
    assert report == (out / "table1.md").read_text()
    lines = report.splitlines()
    for variant, paper_row in (("no-distillation", "EnCodec"), ("lm", "DM-Codec, LM-guided")):
        row = next(line for line in lines if line.startswith(f"| {variant} | 1/1 |"))
        assert paper_row in row and "not run yet" not in row
    # The reference is the sweep's last variant (the paper's recipe was not run): lm against the baseline.
    assert "## Paired tests: lm against each other variant" in report
    assert any(line.startswith("| no-distillation |") and "(2/" in line for line in lines)
