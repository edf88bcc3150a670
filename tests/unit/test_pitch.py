"""The pitch target: Praat's track on the codec's frames, the stored targets, crops that carry
them, the head's loss, and a tiny codec that learns to predict them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import harmonic_tone

from dmcodec.audio import write_wav
from dmcodec_train.config import TrainConfig
from dmcodec_train.data.batches import CropSampler
from dmcodec_train.data.manifest import Utterance, write_manifest
from dmcodec_train.losses.pitch import pitch_loss
from dmcodec_train.pitch import frame_pitch
from dmcodec_train.teachers.pitch import precompute_pitch
from dmcodec_train.teachers.store import FeatureStore
from dmcodec_train.trainer import Trainer

RATE, HOP = 16000, 320


def test_frame_targets_follow_the_pitch_on_the_codec_frames():
    # One second of a 150 Hz tone, then one of silence: frames 0-49 voiced, 50-99 not.
    audio = np.concatenate([harmonic_tone(150.0), np.zeros(RATE, np.float32)])
    log_f0, voiced = frame_pitch(audio, RATE, HOP, 100)
    assert log_f0.shape == voiced.shape == (100,) and log_f0.dtype == np.float32
    assert voiced[2:48].all() and not voiced[52:].any()
    assert 48 <= int(voiced.sum()) <= 52
    assert np.abs(log_f0[voiced] - math.log(150.0)).max() < 0.01  # under 17 cents
    assert (log_f0[~voiced] == 0).all()
    # A glide from 100 to 200 Hz: each frame reads the pitch of its own 20 ms.
    contour = np.geomspace(100.0, 200.0, 2 * RATE)
    log_f0, voiced = frame_pitch(harmonic_tone(contour, 2.0), RATE, HOP, 100)
    centres = np.log(contour[(np.arange(100) * HOP + HOP // 2)])
    assert voiced[3:97].all() and np.abs(log_f0[3:97] - centres[3:97]).max() < 0.02
    # Too short for Praat's window: unvoiced, not an error.
    assert not frame_pitch(harmonic_tone(150.0, 0.02), RATE, HOP, 1)[1].any()


@pytest.fixture(scope="module")
def tone_corpus(tmp_path_factory):
    """Four train clips at four pitches, each a tone then a pause: (manifest, utterances)."""
    root = tmp_path_factory.mktemp("tones")
    rows = []
    for i, f0 in enumerate((110.0, 160.0, 220.0, 300.0)):
        audio = np.concatenate([harmonic_tone(f0, 0.8), np.zeros(RATE // 2, np.float32)])
        write_wav(root / f"t{i}.wav", audio, RATE)
        rows.append(Utterance(f"t{i}", str(root / f"t{i}.wav"), len(audio) / RATE, split="train"))
    return write_manifest(rows, root / "manifest.jsonl"), rows


def test_a_pitch_only_feature_folder_feeds_crops_their_frames_targets(tone_corpus, tmp_path):
    manifest, rows = tone_corpus
    index = precompute_pitch(manifest, tmp_path / "pitch", shard_size=3, progress=False)
    store = FeatureStore(tmp_path / "pitch")
    assert index.name == "pitch.json" and store.has_pitch and not store.has_teachers and store.dims == {}
    assert sorted(store.pitch["items"]) == ["t0", "t1", "t2", "t3"]
    assert {item["shard"] for item in store.pitch["items"].values()} == {"pitch-00000.safetensors",
                                                                          "pitch-00001.safetensors"}
    item = store.get("t2")
    assert set(item) == {"log_f0", "voiced"} and item["voiced"].dtype == torch.bool
    assert store.frames("t2") == item["log_f0"].shape[0] == math.ceil(1.3 * RATE / HOP)
    assert abs(float(item["log_f0"][10]) - math.log(220.0)) < 0.01 and not item["voiced"][-5:].any()
    # A second run keeps the shards it finds.
    written = (tmp_path / "pitch" / "pitch-00000.safetensors").stat().st_mtime_ns
    precompute_pitch(manifest, tmp_path / "pitch", shard_size=3, progress=False)
    assert (tmp_path / "pitch" / "pitch-00000.safetensors").stat().st_mtime_ns == written

    # A crop carries the targets of its own frames; no teachers: empty features, no LM frames.
    batch = CropSampler(rows, store, 20, HOP, RATE, seed=0).batch(0, 4)
    assert batch.log_f0.shape == batch.voiced.shape == batch.frame_mask.shape == (4, 20)
    assert batch.lm.shape == (4, 20, 0) and not batch.lm_mask.any()
    assert batch.voiced.any()
    for log_f0, voiced in zip(batch.log_f0, batch.voiced):
        if voiced.any():  # a crop of one clip: that clip's pitch on every voiced frame
            pitch = min((110.0, 160.0, 220.0, 300.0), key=lambda f: abs(math.log(f) - float(log_f0[voiced].mean())))
            assert (log_f0[voiced] - math.log(pitch)).abs().max() < 0.01


def test_pitch_loss_is_the_octave_error_on_voiced_frames_and_bce_on_all():
    target = torch.log(torch.tensor([[100.0, 200.0, 0.0, 150.0]]))
    voiced = torch.tensor([[True, True, False, True]])
    mask = torch.tensor([[True, True, True, False]])  # the last frame is past the clip's end
    logits = torch.tensor([[20.0, 20.0, -20.0, -20.0]])
    f0, voicing = pitch_loss(target.clone(), logits, target, voiced, mask)
    assert float(f0) == 0.0 and float(voicing) < 1e-6
    octave_up = target + math.log(2.0)
    octave_up[0, 2] = 99.0  # an unvoiced frame's prediction does not count
    f0, _ = pitch_loss(octave_up, logits, target, voiced, mask)
    assert float(f0) == pytest.approx(1.0)
    _, voicing = pitch_loss(target, -logits, target, voiced, mask)
    assert float(voicing) == pytest.approx(20.0, abs=1e-3)


def test_a_tiny_codec_learns_the_pitch_target_from_its_tokens(train_corpus, tmp_path):
    manifest, features = train_corpus
    precompute_pitch(manifest, tmp_path / "pitch", progress=False)
    config = TrainConfig.load("tiny", {"steps": 40, "adversarial_start": 10**9, "validate_every": 10**9,
                                       "loss.distillation": 0, "loss.pitch": 5.0, "segment_seconds": 1.0})
    trainer = Trainer(config, tmp_path / "run", manifest, tmp_path / "pitch", progress=False)
    assert trainer.generator.pitch_head is not None and len(trainer.generator.heads) == 0
    batch = trainer.sampler.batch(0, config.batch_size)
    assert batch.voiced.float().mean() > 0.2  # speech: many voiced frames
    logs = [trainer.train_step(batch) for _ in range(config.steps)]
    first, last = logs[0], logs[-1]
    assert np.isfinite(last["total"]) and last["pitch_f0"] < 0.5 * first["pitch_f0"], (first, last)
    assert last["pitch_voicing"] < first["pitch_voicing"]
    assert "pitch_head.net.0.weight" in trainer.state_dict()["generator"]

    # The teachers' folder holds the pitch targets too (`teachers` stores them by default).
    both = Trainer(TrainConfig.load("tiny", {"loss.pitch": 1.0}), tmp_path / "both", manifest, features,
                   progress=False)
    assert both.sampler.store.has_pitch and both.sampler.store.has_teachers
    assert both.generator.pitch_head is not None and set(both.generator.heads) == {"lm", "speech"}
    with pytest.raises(ValueError, match="teacher features"):
        Trainer(TrainConfig.load("tiny", {"loss.pitch": 1.0}), tmp_path / "x", manifest, tmp_path / "pitch",
                progress=False)
    with pytest.raises(ValueError, match="pitch targets"):
        Trainer(TrainConfig.load("tiny", {"loss.pitch": 1.0, "loss.distillation": 0}), tmp_path / "y", manifest,
                None, progress=False)


def test_the_campaign_preset_adds_pitch_and_distillation_to_small_cpu_v2():
    base, pitch = TrainConfig.load("small-cpu-v2").to_dict(), TrainConfig.load("small-cpu-v2-pitch").to_dict()
    assert pitch["name"] == "small-cpu-v2-pitch" and base["loss"]["pitch"] == 0 and base["loss"]["distillation"] == 0
    assert pitch["loss"]["pitch"] > 0 and pitch["loss"]["distillation"] == 10.0
    assert (pitch["lm_levels"], pitch["speech_levels"]) == ("1", "1:8")
    changed = {k for k in base if base[k] != pitch[k]}
    assert changed == {"name", "loss"}
    assert {k for k in base["loss"] if base["loss"][k] != pitch["loss"][k]} == {"pitch", "distillation"}


def test_the_evaluation_reports_the_latent_pitch_probe(train_corpus, tiny_checkpoint):
    from dmcodec_train.evaluation.harness import evaluate
    from dmcodec_train.evaluation.pitch_probe import PitchProbe

    manifest, _ = train_corpus
    # Dev clips: the training voices (the probe cannot learn a held-out voice's range from two voices).
    rows = evaluate(manifest, [tiny_checkpoint], split="dev", visqol=False, progress=False, asr=False, probe_clips=8,
                    probe=PitchProbe(steps=300))
    reference, model = (row.scores["pitch_probe_cents"] for row in rows)
    # The originals' log-mel carries the pitch; an untrained tiny codec's tokens hardly do.
    assert 0 < reference < model, (reference, model)
    assert "pitch_probe_cents" not in evaluate(manifest, [tiny_checkpoint], split="test", limit=1, visqol=False,
                                               progress=False, asr=False)[1].scores
