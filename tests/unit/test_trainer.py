"""Training: a tiny model overfits one clip, a resumed run equals an uninterrupted one, the
whole CLI pipeline runs from corpus to served and evaluated checkpoint, and DDP runs under torchrun."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

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
    # The logs agree too, but for the speed.
    rows = lambda run: [{k: v for k, v in row.items() if k != "steps_per_s"}
                        for row in csv.DictReader((run / "metrics.csv").read_text().splitlines())]
    assert rows(tmp_path / "straight") == rows(tmp_path / "resumed")


def test_a_run_name_lives_under_the_runs_root_and_a_path_stays_a_path(monkeypatch, tmp_path):
    from dmcodec_train.runs import resolve_run

    monkeypatch.setenv("DMCODEC_RUNS", str(tmp_path / "runs"))
    assert resolve_run("v2") == tmp_path / "runs" / "v2"
    for path in ("./v2", "runs/v2", "/data/v2", "state.pt"):
        assert resolve_run(path) == Path(path)
    assert resolve_run("~/v2") == Path.home() / "v2"
    monkeypatch.delenv("DMCODEC_RUNS")
    assert resolve_run("v2") == Path.home() / ".cache" / "dmcodec" / "runs" / "v2"


def test_report_table_formats_each_metric_like_the_paper():
    """Word error rates are percentages with one decimal whatever their size; a metric that
    was not computed (ViSQOL left out, or the originals' own row) is a dash."""
    rows = [Result("original", {"wer": 6.25, "wil": 12.1}),
            Result("m", {"wer": 18.75, "wil": 34.0, "wer_vs_original_asr": 18.75, "rvq1_wer_vs_original_asr": 52.5,
                         "visqol": float("nan"),
                         "stoi": 0.80512, "pesq": 1.1079, "mel_distance": 0.6581, "f0_rmse_cents": 245.4,
                         "vuv_error": 25.53, "periodicity": 0.2349, "pitch_probe_cents": 196.2, "bitrate_kbps": 4.0},
                   [{"usage": 0.171, "perplexity": 114.6}])]
    table = to_markdown(rows, "t").splitlines()
    assert table[4] == "| original | 6.2 | 12.1 | - | - | - | - | - | - | - | - | - | - | - |"
    assert table[5] == "| m | 18.8 | 34.0 | 18.8 | 52.5 | - | 0.805 | 1.11 | 0.658 | 245 | 25.5 | 0.23 | 196 | 4.0 |"
    assert table[-1] == "| m | 0.17 / 115 |"


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


def test_decoder_only_stage_keeps_the_tokens_and_needs_no_teachers(train_corpus, tmp_path):
    """train_parts=decoder: started from a checkpoint, the adversarial steps move the decoder
    only; the encoder, codebooks and so every token stay bit-identical."""
    manifest, features = train_corpus
    donor = Trainer(_tiny(steps=3, adversarial_start=10**9, validate_every=10**9), tmp_path / "donor",
                    manifest, features, progress=False)
    donor.fit()
    shipped = donor.export(tmp_path / "shipped")

    config = _tiny(steps=3, train_parts="decoder", adversarial_start=0, quantizer_dropout=0.5,
                   validate_every=10**9)
    stage = Trainer(config, tmp_path / "stage", manifest, None, progress=False)
    stage.init_from(shipped)
    before = {k: v.clone() for k, v in stage.codec.state_dict().items()}
    logs = stage.fit()
    assert "adversarial" in logs and "distill_lm" not in logs
    after = stage.codec.state_dict()
    moved = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"decoder"}
    clip = torch.from_numpy(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1)[None, None]
    assert torch.equal(donor.codec.encode(clip), stage.codec.encode(clip))

    with pytest.raises(ValueError, match="teacher features"):
        Trainer(_tiny(), tmp_path / "whole", manifest, None, progress=False)
    # Without distillation the whole codec trains with no teacher features and no heads.
    plain = Trainer(_tiny(steps=5, adversarial_start=10**9, validate_every=10**9, checkpoint_every=100,
                          **{"loss.distillation": 0}), tmp_path / "plain", manifest, None, progress=False)
    logs = plain.fit(time_limit_s=0)  # a lease's end: stops after the step under way and saves it
    assert "distill_lm" not in logs and len(plain.generator.heads) == 0 and np.isfinite(logs["total"])
    assert plain.step == 1 and (tmp_path / "plain" / "state.pt").exists()
    # A calibration leg (the GPU script's) leaves the saved state alone.
    saved = (tmp_path / "plain" / "state.pt").stat().st_mtime_ns
    plain.fit(steps=2, save_at_end=False)
    assert plain.step == 2 and (tmp_path / "plain" / "state.pt").stat().st_mtime_ns == saved
    with pytest.raises(ValueError, match="train_parts"):
        _tiny(train_parts="encoder")
