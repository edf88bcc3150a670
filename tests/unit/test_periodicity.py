"""The periodicity loss: the correlation one pitch period later on the codec's frames, the loss
over the original's voiced frames, its gradient, and the trainer that adds it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import harmonic_tone

from dmcodec_train.config import TrainConfig
from dmcodec_train.losses.periodicity import WINDOW_S, periodicity, periodicity_loss, split_bands
from dmcodec_train.teachers.pitch import precompute_pitch
from dmcodec_train.trainer import Trainer

RATE, HOP, FRAMES = 16000, 320, 50
WINDOW = round(WINDOW_S * RATE)


def _tone(f0: float) -> torch.Tensor:
    return torch.from_numpy(harmonic_tone(f0))[None]  # [1, T]: one second


def _targets(f0: float, voiced: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log_f0, voiced, mask) [1, F] for one second at one pitch."""
    return (torch.full((1, FRAMES), math.log(f0)), torch.full((1, FRAMES), voiced),
            torch.ones(1, FRAMES, dtype=torch.bool))


def test_a_tone_repeats_at_its_own_fractional_period_and_noise_does_not():
    f0 = 153.0  # a period of 104.58 samples: the lag is interpolated
    period = torch.full((1, FRAMES), RATE / f0)
    r, inside = periodicity(_tone(f0), period, HOP, WINDOW)
    assert r.shape == inside.shape == (1, FRAMES)
    # The first window starts before the audio and the last ones' lagged copies run past its end.
    assert not inside[0, 0] and inside[0, 1:-2].all() and not inside[0, -1]
    assert (r[inside] > 0.995).all() and (r[~inside] == 0).all()
    # Half a period off: the waveform is upside down against itself, near enough.
    r_half, _ = periodicity(_tone(f0), period * 1.5, HOP, WINDOW)
    assert r_half[inside].mean() < 0.0
    rounded, _ = periodicity(_tone(f0), period.round(), HOP, WINDOW)
    assert rounded[inside].mean() < r[inside].mean()  # the interpolation earns its place
    noise = torch.from_numpy(np.random.default_rng(0).standard_normal((1, RATE)).astype(np.float32))
    r_noise, _ = periodicity(noise, period, HOP, WINDOW)
    assert r_noise[inside].abs().mean() < 0.1
    silence, _ = periodicity(torch.zeros(1, RATE), period, HOP, WINDOW)
    assert torch.isfinite(silence).all() and (silence == 0).all()


def test_the_loss_is_the_shortfall_on_the_original_voiced_frames():
    f0, tone = 120.0, _tone(120.0)
    log_f0, voiced, mask = _targets(f0)
    noise = torch.from_numpy(0.1 * np.random.default_rng(1).standard_normal((1, RATE)).astype(np.float32))
    assert float(periodicity_loss(tone, tone, log_f0, voiced, mask, HOP, RATE)) == 0.0
    lost = float(periodicity_loss(noise, tone, log_f0, voiced, mask, HOP, RATE))
    assert 0.9 < lost < 1.1  # the tone's ~1.0 less the noise's ~0
    # Frames unvoiced in the original, or past the clip's end, are not counted.
    assert float(periodicity_loss(noise, tone, *_targets(f0, voiced=False)[:2], mask, HOP, RATE)) == 0.0
    half = mask.clone()
    half[:, FRAMES // 2:] = False
    mixed = torch.cat([tone[:, : RATE // 2], noise[:, RATE // 2:]], 1)
    assert float(periodicity_loss(mixed, tone, log_f0, voiced, half, HOP, RATE)) < 0.05
    assert float(periodicity_loss(mixed, tone, log_f0, voiced, mask, HOP, RATE)) > 0.3
    # A breathy original asks for no more than it has: a cleaner decoding costs nothing.
    breathy = tone + noise
    assert float(periodicity_loss(tone, breathy, log_f0, voiced, mask, HOP, RATE)) == 0.0
    assert float(periodicity_loss(breathy, tone, log_f0, voiced, mask, HOP, RATE)) > 0.1


def test_bands_split_the_audio_and_keep_energy_moves_from_paying():
    f0, tone = 125.0, _tone(125.0)
    edges = (0.0, 1000.0, 2000.0, 4000.0, 8001.0)
    bands = split_bands(tone, edges, RATE)
    assert bands.shape == (4, RATE) and torch.allclose(bands.sum(0), tone[0], atol=1e-5)
    # The tone's harmonics up to 1 kHz (the 1st to 7th) hold most of its energy.
    energy = bands.pow(2).sum(-1)
    assert energy[0] > 0.9 * energy.sum()

    # A decoding that turns 1-2 kHz into noise and makes up with louder low harmonics: over the
    # whole band it still looks periodic; band by band it does not.
    noise = torch.from_numpy(np.random.default_rng(4).standard_normal((1, RATE)).astype(np.float32))
    mid_noise = split_bands(noise, edges, RATE)[1] * bands[1].norm() / split_bands(noise, edges, RATE)[1].norm()
    cheat = (2.0 * bands[0] + mid_noise + bands[2] + bands[3])[None]
    log_f0, voiced, mask = _targets(f0)
    whole = float(periodicity_loss(cheat, tone, log_f0, voiced, mask, HOP, RATE))
    banded = float(periodicity_loss(cheat, tone, log_f0, voiced, mask, HOP, RATE, edges))
    assert whole < 0.05 and banded > 0.2, (whole, banded)
    assert float(periodicity_loss(tone, tone, log_f0, voiced, mask, HOP, RATE, edges)) == 0.0


@pytest.mark.parametrize("bands", [[1000], "60,1000", [2000, 1000], 4000, [-5, 100]])
def test_band_edges_that_make_no_bands_are_refused(bands):
    with pytest.raises(ValueError, match="increasing band edges"):
        TrainConfig.load("tiny", {"periodicity_bands": bands})


def test_its_gradient_makes_noise_periodic():
    log_f0, voiced, mask = _targets(200.0)
    tone = _tone(200.0)
    fake = torch.nn.Parameter(0.1 * torch.randn(1, RATE, generator=torch.Generator().manual_seed(2)))
    optimizer = torch.optim.Adam([fake], lr=3e-3)
    losses = []
    for _ in range(60):
        loss = periodicity_loss(fake, tone, log_f0, voiced, mask, HOP, RATE)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0], losses[::10]


def test_the_trainer_adds_it_also_when_only_the_decoder_trains(train_corpus, tiny_checkpoint, tmp_path):
    manifest, _ = train_corpus
    pitch = tmp_path / "pitch"
    precompute_pitch(manifest, pitch, progress=False)
    overrides = {"steps": 2, "adversarial_start": 10**9, "validate_every": 10**9, "loss.distillation": 0,
                 "loss.periodicity": 10.0}
    trainer = Trainer(TrainConfig.load("tiny", overrides), tmp_path / "run", manifest, pitch, progress=False)
    logs = trainer.train_step(trainer.sampler.batch(0, 4))
    assert np.isfinite(logs["periodicity"]) and 0 < logs["periodicity"] <= 2.0
    assert "pitch_f0" not in logs  # the periodicity loss does not bring the pitch head
    banded = Trainer(TrainConfig.load("tiny", {**overrides, "periodicity_bands": [60, 1000, 2000, 4000, 8000]}),
                     tmp_path / "banded", manifest, pitch, progress=False)
    assert banded.config.periodicity_bands == (60, 1000, 2000, 4000, 8000)
    assert np.isfinite(banded.train_step(banded.sampler.batch(0, 4))["periodicity"])

    decoder = Trainer(TrainConfig.load("tiny", {**overrides, "train_parts": "decoder"}), tmp_path / "dec", manifest,
                      pitch, progress=False)
    decoder.init_from(tiny_checkpoint)
    batch = decoder.sampler.batch(0, 4)
    before = decoder.codec.quantizer.encode(decoder.codec.encoder(batch.audio))
    assert batch.voiced.any() and np.isfinite(decoder.train_step(batch)["periodicity"])
    assert torch.equal(decoder.codec.quantizer.encode(decoder.codec.encoder(batch.audio)), before)

    with pytest.raises(ValueError, match="pitch targets"):
        Trainer(TrainConfig.load("tiny", overrides), tmp_path / "x", manifest, None, progress=False)
