"""The README's worked example ("A language model on the ids"), run as written: `dmcodec bulk
--layout flat` on a few clips, its Parquet shards through `datasets`, a small random GPT-2 over
the documented vocabulary trained on `input_ids` with a falling loss, and the ids it samples
decoded by a real server to audio of the expected length."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import readme_blocks, running_server

from dmcodec.audio import write_wav
from dmcodec.signals import speech_like

pytestmark = pytest.mark.timeout(300)
BIN = Path(sys.executable).parent
README_URL = "http://127.0.0.1:8000"  # the service the example names; the test's own is elsewhere


def test_the_language_model_example_runs_as_written(tiny_checkpoint, tiny_codec, tmp_path, monkeypatch):
    bash, python = readme_blocks("### A language model on the ids")
    assert bash[0] == "bash" and python[0] == "python" and README_URL in python[1]
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(8):  # short clips (20-38 frames): the LM's attention costs the square of the length
        write_wav(clips / f"clip{i}.wav", speech_like(0.4 + 0.05 * i, 16000, seed=300 + i), 16000)
    # The commands run from tmp_path: a relative PYTHONPATH (a checkout's model:service) must keep its meaning.
    paths = [str(Path(entry).resolve()) for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DMCODEC_CHECKPOINT", str(tiny_checkpoint))  # the default checkpoint of the commands
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")  # this environment's `dmcodec`
    for line in bash[1].splitlines():
        done = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]

    scope: dict = {}
    with running_server(tiny_checkpoint, tmp_path / "server.log") as (url, _):
        torch.manual_seed(0)
        exec(python[1].replace(README_URL, url), scope)
    rows, losses, sample, audio = scope["rows"], scope["losses"], scope["sample"], scope["audio"]
    assert len(rows) == 8 and rows[0]["model_sha256"] == tiny_codec.sha256 and rows[0]["layout"] == "flat"
    assert scope["model"].config.vocab_size == rows[0]["vocab_size"] == 8 * 64 + 3
    print(f"loss {losses[0]:.2f} -> {losses[-1]:.2f} in {len(losses)} steps")
    assert len(losses) == 40 and max(losses[-5:]) < min(losses[:5]) - 1.0  # it learns, beyond noise
    frames = (sample.shape[1] - 1) // scope["n_q"]  # after bos, whole frames of n_q ids
    assert sample.shape[1] == 1 + frames * 8 and frames == 50
    assert audio.size == frames * tiny_codec.config.hop_length
