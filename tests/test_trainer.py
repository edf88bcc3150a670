"""Training: a tiny model overfits one clip, a resumed run equals an uninterrupted one, the
whole CLI pipeline runs from corpus to served and evaluated checkpoint, and DDP runs under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from server import running_server

from dmcodec import load_checkpoint
from dmcodec_train.config import TrainConfig
from dmcodec_train.data.manifest import read_manifest, write_manifest
from dmcodec_train.evaluation.harness import Result, to_markdown
from dmcodec_train.trainer import Trainer

CLI = [sys.executable, "-m", "dmcodec_train.cli"]


def _tiny(**overrides) -> TrainConfig:
    return TrainConfig.load("tiny", overrides)


def test_tiny_model_overfits_one_clip(train_corpus, tmp_path):
    manifest, features = train_corpus
    one = write_manifest(read_manifest(manifest, "train")[:1], tmp_path / "one.jsonl")
    config = _tiny(steps=150, adversarial_start=10**9, segment_seconds=1.0, batch_size=1, warmup_steps=5)
    trainer = Trainer(config, tmp_path / "run", one, features, progress=False)
    batch = trainer.sampler.batch(0, 1)  # one second of one clip, every step
    losses = [trainer.train_step(batch)["total"] for _ in range(config.steps)]
    start, end = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert end < 0.5 * start, (start, end)
    # Distillation is part of what falls: the heads learn the teachers' directions.
    assert trainer.train_step(batch)["distill_speech"] < 0.6
    # Codebooks settle instead of being re-drawn wholesale: with 50 frames per step for 64 codes
    # the release's dead-code threshold (2.0) would reset ~all codes at every step.
    for level in trainer.codec.quantizer.levels:
        assert float((level.cluster_size == 1.0).float().mean()) < 0.25


def _states_equal(a: dict, b: dict) -> list[str]:
    return [k for k in a if isinstance(a[k], torch.Tensor) and not torch.equal(a[k], b[k])]


def test_resumed_run_equals_uninterrupted_run(train_corpus, tmp_path):
    manifest, features = train_corpus
    # Cover the quantizer's warm-up, the discriminators' start, quantizer dropout and a
    # validation in both halves.
    config = _tiny(steps=8, quantizer_warmup=2, codebook_init_batches=2, adversarial_start=3,
                   quantizer_dropout=0.5, validate_every=3, checkpoint_every=4)
    straight = Trainer(config, tmp_path / "straight", manifest, features, progress=False)
    straight.fit()

    first = Trainer(config, tmp_path / "resumed", manifest, features, progress=False)
    first.fit(4)
    del first
    second = Trainer(config, tmp_path / "resumed", manifest, features, progress=False)
    assert second.resume() and second.step == 4
    second.fit()

    a, b = straight.state_dict(), second.state_dict()
    assert _states_equal(a["generator"], b["generator"]) == []
    assert _states_equal(a["discriminators"], b["discriminators"]) == []
    assert a["g_opt"]["state"][0]["exp_avg"].equal(b["g_opt"]["state"][0]["exp_avg"])
    assert torch.equal(a["rng_cpu"], b["rng_cpu"]) and a["best_dev_mel"] == b["best_dev_mel"]
    rows = lambda run: (run / "metrics.csv").read_text().splitlines()
    drop_speed = lambda line: line.rsplit(",", 1)[0]
    assert [drop_speed(r) for r in rows(tmp_path / "straight")] == [drop_speed(r) for r in rows(tmp_path / "resumed")]


def _run(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_pipeline_from_corpus_to_served_and_evaluated_checkpoint(tmp_path):
    """The CLI a user runs: corpus -> teachers -> train -> resume -> export -> serve -> eval."""
    _run("corpus", "corpus", "--utterances", "8", "--seed", "11", "--workers", "2",
         "--voice", "espeak:en+f3", "--voice", "espeak:en-us+m3", "--voice", "flite:rms", cwd=tmp_path)
    manifest = tmp_path / "corpus" / "manifest.jsonl"
    _run("teachers", str(manifest), "features", cwd=tmp_path)
    _run("train", str(manifest), "features", "run", "--preset", "tiny", "--set", "steps=6", "--threads", "1",
         cwd=tmp_path)
    resumed = _run("train", str(manifest), "features", "run", "--preset", "tiny", "--set", "steps=10",
                   "--threads", "1", cwd=tmp_path)
    assert "resuming" in resumed.stdout and json.loads(resumed.stdout.strip().splitlines()[-1])["step"] == 10
    assert len((tmp_path / "run" / "metrics.csv").read_text().splitlines()) == 11
    assert list((tmp_path / "run" / "tensorboard").iterdir())

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

    evaluated = _run("eval", str(manifest), "served", "run/best", "--out", "eval", "--limit", "1",
                     "--title", "tiny", cwd=tmp_path)
    assert "| original |" in evaluated.stdout and "| tiny-step10 |" in evaluated.stdout
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert [r["name"] for r in results][:2] == ["original", "tiny-step10"]
    scores = results[1]["scores"]
    assert 0 <= scores["stoi"] <= 1 and scores["bitrate_kbps"] == pytest.approx(8 * 6 * 50 / 1000)
    assert len(results[1]["levels"]) == 8


def test_report_table_formats_each_metric_like_the_paper():
    """Word error rates are percentages with one decimal whatever their size; a metric that
    was not computed (ViSQOL left out, or the originals' own row) is a dash."""
    rows = [Result("original", {"wer": 6.25, "wil": 12.1}),
            Result("m", {"wer": 18.75, "wil": 34.0, "wer_vs_original_asr": 18.75, "visqol": float("nan"),
                         "stoi": 0.80512, "pesq": 1.1079, "mel_distance": 0.6581, "bitrate_kbps": 4.0},
                   [{"usage": 0.171, "perplexity": 114.6}])]
    table = to_markdown(rows, "t").splitlines()
    assert table[4] == "| original | 6.2 | 12.1 | - | - | - | - | - | - |"
    assert table[5] == "| m | 18.8 | 34.0 | 18.8 | - | 0.805 | 1.11 | 0.658 | 4.0 |"
    assert table[-1] == "| m | 0.17 / 115 |"


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


def test_new_run_starts_from_a_shipped_checkpoint(train_corpus, tmp_path):
    manifest, features = train_corpus
    config = _tiny(steps=3, adversarial_start=10**9, validate_every=10**9)
    donor = Trainer(config, tmp_path / "donor", manifest, features, progress=False)
    donor.fit()
    shipped = donor.export(tmp_path / "shipped")

    heir = Trainer(config, tmp_path / "heir", manifest, features, progress=False)
    heir.init_from(shipped)
    assert heir.step == 0
    assert _states_equal(donor.codec.state_dict(), heir.codec.state_dict()) == []
    assert heir.codec.quantizer.initialized
    heir.fit(2)  # and it trains on from there

    other = Trainer(_tiny(codec={"n_filters": 4}), tmp_path / "other", manifest, features, progress=False)
    with pytest.raises(ValueError, match="another architecture"):
        other.init_from(shipped)


def test_quantizer_warm_up_trains_an_autoencoder_then_fits_codebooks_to_its_latents(train_corpus, tmp_path):
    manifest, features = train_corpus
    config = _tiny(steps=4, quantizer_warmup=2, codebook_init_batches=3, adversarial_start=10**9)
    trainer = Trainer(config, tmp_path / "run", manifest, features, progress=False)
    for _ in range(2):
        logs = trainer.train_step(trainer.sampler.batch(trainer.step, config.batch_size))
        assert logs["commitment"] == 0.0 and not trainer.codec.quantizer.initialized
    assert np.isnan(trainer.validate())  # nothing to encode with yet
    trainer.fit_codebooks()  # what the first quantized step does
    # Fitted to three batches of latents that vary over time, level 1 uses many of its 64 codes.
    assert int((trainer.codec.quantizer.levels[0].cluster_size > 0).sum()) > 32
    logs = trainer.train_step(trainer.sampler.batch(trainer.step, config.batch_size))
    assert logs["commitment"] > 0.0 and np.isfinite(trainer.validate())
