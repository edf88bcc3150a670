"""The smoke sweep of issue 32 (point 5), the way a researcher runs it: `paper list`, `paper run`
of two table-1 variants on the tiny preset, killed while the second variant trains and run
again, then `paper report`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

CLI = [sys.executable, "-m", "dmcodec_train.cli"]


@pytest.mark.timeout(1500)
def test_a_sweep_lists_runs_survives_a_kill_mid_training_resumes_and_reports(tmp_path, train_corpus):
    manifest, _ = train_corpus
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "DMCODEC_RUNS": str(tmp_path / "runs")}

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*CLI, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert not check or result.returncode == 0, result.stderr[-3000:]
        return result

    listing = cli("paper", "list").stdout
    assert "no-distillation" in listing and "lm+speech: " in listing and "(reference of the paired tests)" in listing
    out = tmp_path / "sweep"
    # Variants typed against the table's order: the sweep runs (and reports) them in its order.
    run = ["paper", "run", "table1", str(out), "--manifest", str(manifest), "--preset", "tiny", "--steps", "12",
           "--variant", "lm", "--variant", "no-distillation", "--eval-limit", "2", "--threads", "1"]

    # Killed once the second variant (lm, which needs teacher features) has saved a training state:
    # 12 steps checkpoint every step, so the kill lands mid-run.
    first, second = out / "results" / "no-distillation-seed0.json", out / "results" / "lm-seed0.json"
    saved = out / "runs" / "lm-seed0" / "state.pt"
    log = tmp_path / "first-attempt.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen([*CLI, *run], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 600
            while not saved.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            process.kill()
            process.wait()
    assert first.exists() and saved.exists(), log.read_text()[-3000:]
    assert not second.exists(), "the sweep finished before it could be interrupted"
    scored = (first.stat().st_mtime_ns, first.read_text())

    # Other settings on a started folder are refused, before any work.
    refused = cli(*run[:-4], "--eval-limit", "3", "--threads", "1", check=False)
    assert refused.returncode == 2 and "other settings (eval_limit)" in refused.stderr

    resumed = cli(*run)
    assert "[1/2] no-distillation-seed0: done" in resumed.stderr
    step = re.search(r"\[2/2\] lm-seed0: resuming at step (\d+) of 12", resumed.stderr)
    assert step and 1 <= int(step.group(1)) <= 12, resumed.stderr[-3000:]
    assert (first.stat().st_mtime_ns, first.read_text()) == scored  # neither trained nor scored again
    assert second.exists() and (out / "runs" / "lm-seed0" / "final").is_dir()
    scores = json.loads(second.read_text())["model"]
    assert scores["scores"]["rvq1_wer"] >= 0 and len(scores["per_utterance"]["rvq1_wer"]) == 2  # RVQ-1 alone too

    report = cli("paper", "report", str(out)).stdout
    assert report == (out / "table1.md").read_text() and report in resumed.stdout
    lines = report.splitlines()
    for variant, paper_row in (("no-distillation", "EnCodec"), ("lm", "DM-Codec, LM-guided")):
        row = next(line for line in lines if line.startswith(f"| {variant} | 1/1 |"))
        assert paper_row in row and "not run yet" not in row
    # The paper's recipe (lm+speech) was not run, so the reference is the last variant in the
    # table's order, whatever order they were typed in: lm against the baseline, on 2 clips (too
    # few for any test to mean anything, and the report says so).
    assert "## Paired tests: lm against each other variant" in report
    tests = next(line for line in lines if line.startswith("| no-distillation (seeds [0]) |"))
    assert "(2/" in tests and "too few" in tests
