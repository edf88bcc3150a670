"""Training: a tiny model overfits one clip, a resumed run equals an uninterrupted one, the
whole CLI pipeline runs from corpus to served and evaluated checkpoint, and DDP runs under torchrun."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from helpers import running_server

from dmcodec import load_checkpoint
from dmcodec_train.data.manifest import read_manifest
from dmcodec_train.state import load_state

CLI = [sys.executable, "-m", "dmcodec_train.cli"]


def _run(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    # Runs given by name live in `cwd/runs`, where the runs root says.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "DMCODEC_RUNS": str(cwd / "runs")}
    result = subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_pipeline_from_corpus_to_served_and_evaluated_checkpoint(tmp_path):
    """The CLI a user runs: corpus -> teachers -> train -> resume -> compact state -> resume elsewhere ->
    pitch targets -> export -> serve -> eval."""
    _run("corpus", "corpus", "--utterances", "8", "--seed", "11", "--workers", "2",
         "--voice", "espeak:en+f3", "--voice", "espeak:en-us+m3", "--voice", "flite:rms", cwd=tmp_path)
    manifest = tmp_path / "corpus" / "manifest.jsonl"
    _run("teachers", str(manifest), "features", cwd=tmp_path)
    _run("train", str(manifest), "features", "run", "--preset", "tiny", "--set", "steps=6", "--threads", "1",
         cwd=tmp_path)
    resumed = _run("train", str(manifest), "features", "run", "--preset", "tiny", "--set", "steps=10",
                   "--threads", "1", cwd=tmp_path)
    assert "resuming" in resumed.stdout and json.loads(resumed.stdout.strip().splitlines()[-1])["step"] == 10
    # `run` is a name: the run lives under $DMCODEC_RUNS, not in the working folder.
    run = tmp_path / "runs" / "run"
    assert not (tmp_path / "run").exists() and len((run / "metrics.csv").read_text().splitlines()) == 11
    assert list((run / "tensorboard").iterdir())

    # A stint's end on a machine that is handed back: the compact state, then a new run goes on from
    # it (here one that writes its own compact state over it at its end, as a campaign does).
    _run("state", "export", "run", "state", cwd=tmp_path)
    continued = _run("train", str(manifest), "features", "moved", "--resume-from", "state", "--set", "steps=12",
                     "--threads", "1", "--export-state", "state", cwd=tmp_path)
    assert "continuing state at step 10" in continued.stdout
    assert json.loads(continued.stdout.strip().splitlines()[-1])["step"] == 12
    assert json.loads((tmp_path / "state" / "state.json").read_text())["step"] == 12
    # Pitch targets alone, for a run without distillation.
    _run("pitch", str(manifest), "pitch-only", cwd=tmp_path)
    pitched = _run("train", str(manifest), "pitch-only", "pitched", "--preset", "tiny", "--set", "steps=2",
                   "--set", "loss.distillation=0", "--set", "loss.pitch=1", "--threads", "1", cwd=tmp_path)
    assert math.isfinite(json.loads(pitched.stdout.strip().splitlines()[-1])["pitch_f0"])

    _run("export", "run", "served", "--fp16", cwd=tmp_path)
    _run("export", "run", "release/model.pt", cwd=tmp_path)
    served, release = load_checkpoint(tmp_path / "served"), load_checkpoint(tmp_path / "release" / "model.pt")
    assert served.metadata["training"]["steps"] == 10 and served.metadata["weights_dtype"] == "float16"
    for (name, a), b in zip(release.model.state_dict().items(), served.model.state_dict().values()):
        assert torch.allclose(a, b.to(a.dtype), atol=1e-2, rtol=1e-2), name

    wav = read_manifest(manifest, "test")[0].path
    with running_server(tmp_path / "served", tmp_path / "server.log") as (url, _), open(wav, "rb") as audio:
        response = httpx.post(f"{url}/v1/encode", files={"file": ("a.wav", audio, "audio/wav")})
    assert response.status_code == 200 and response.json()["model"]["name"] == "tiny-step10"

    evaluated = _run("eval", str(manifest), "served", "runs/run/best", "--out", "eval", "--limit", "1",
                     "--opus", "6", "--title", "tiny", cwd=tmp_path)
    assert "| original |" in evaluated.stdout and "| tiny-step10 |" in evaluated.stdout
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert [r["name"] for r in results][:2] == ["original", "tiny-step10"]
    scores = results[1]["scores"]
    assert 0 <= scores["stoi"] <= 1 and scores["bitrate_kbps"] == pytest.approx(8 * 6 * 50 / 1000)
    assert len(results[1]["levels"]) == 8
    assert results[-1]["name"] == "opus-6kbps" and results[-1]["scores"]["bitrate_kbps"] == 6
    assert 0.5 < results[-1]["scores"]["stoi"] <= 1  # the anchor, scored on the same clip

    # A quick probe: signal measures only, no Whisper.
    _run("eval", str(manifest), "served", "--out", "probe", "--limit", "1", "--no-asr", "--no-visqol",
         "--pitch-probe", "4", cwd=tmp_path)
    probe = json.loads((tmp_path / "probe" / "results.json").read_text())
    assert "wer" not in probe[0]["scores"] and "wer" not in probe[1]["scores"]
    assert probe[0]["scores"]["pitch_probe_cents"] > 0 and probe[1]["scores"]["pitch_probe_cents"] > 0
    # The originals' own periodicity is the ceiling; an untrained codec's output hardly repeats.
    assert probe[0]["scores"]["periodicity"] > 0.7 > probe[1]["scores"]["periodicity"]
    assert probe[1]["scores"]["pesq"] == pytest.approx(scores["pesq"]) and math.isnan(probe[1]["scores"]["visqol"])


def test_sigterm_saves_the_step_under_way_and_the_same_command_resumes(train_corpus, tmp_path):
    """A preempted job (or a lease's end) stops with its state saved, not at the last checkpoint,
    and says so with a non-zero exit, so that a job runner does not take it for finished."""
    manifest, _ = train_corpus
    command = [*CLI, "train", str(manifest), "-", str(tmp_path / "run"), "--preset", "tiny", "--threads", "1",
               "--set", "loss.distillation=0", "--set", "log_every=1", "--set", "checkpoint_every=100000",
               "--set", "validate_every=100000"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen([*command, "--set", "steps=100000"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    metrics, deadline = tmp_path / "run" / "metrics.csv", time.monotonic() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):  # the header and two steps
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[1][-3000:]
        time.sleep(0.2)
    job.send_signal(signal.SIGTERM)
    out, err = job.communicate(timeout=300)
    assert job.returncode == 143, err[-3000:]
    stopped = json.loads(out.strip().splitlines()[-1])["step"]
    assert stopped >= 2 and f"stopped by SIGTERM at step {stopped}, state saved" in err
    assert load_state(tmp_path / "run")["step"] == stopped  # no checkpoint was due: saved on the signal
    resumed = subprocess.run([*command, "--set", f"steps={stopped + 1}"], env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {tmp_path / 'run'} at step {stopped}" in resumed.stdout


def test_ddp_under_torchrun_with_two_processes(train_corpus, tmp_path):
    manifest, features = train_corpus
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "dmcodec_train.cli", "train", str(manifest), str(features), str(tmp_path / "ddp"),
         "--preset", "tiny", "--set", "steps=4", "--set", "adversarial_start=2", "--device", "cpu", "--threads", "1"],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 4
    assert len((tmp_path / "ddp" / "metrics.csv").read_text().splitlines()) == 5  # rank 0 alone logs
