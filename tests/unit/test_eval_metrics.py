"""The evaluation's pitch measure on signals whose pitch we know."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import harmonic_tone as _voiced

from dmcodec_train.evaluation.metrics import pitch_errors

RATE = 16000


def test_same_pitch_scores_zero_error():
    scores = pitch_errors(_voiced(150.0), _voiced(150.0), RATE)
    assert scores["f0_rmse_cents"] == pytest.approx(0.0, abs=1.0)
    assert scores["vuv_error"] == pytest.approx(0.0, abs=3.0)


def test_a_semitone_off_scores_a_hundred_cents():
    scores = pitch_errors(_voiced(150.0), _voiced(150.0 * 2 ** (1 / 12)), RATE)
    assert scores["f0_rmse_cents"] == pytest.approx(100.0, abs=5.0)


def test_noise_in_place_of_a_voice_counts_as_voicing_errors():
    noise = np.random.default_rng(0).standard_normal(RATE).astype(np.float32) * 0.05
    scores = pitch_errors(_voiced(150.0), noise, RATE)
    assert scores["vuv_error"] > 80.0


def _gliding_tones(count: int, seed: int) -> list[np.ndarray]:
    """One-second tones, each gliding between two random pitches in 90-300 Hz."""
    rng = np.random.default_rng(seed)
    return [_voiced(np.geomspace(*rng.uniform(90.0, 300.0, 2), RATE)) for _ in range(count)]


def test_the_latent_pitch_probe_reads_pitch_where_a_representation_has_it():
    from dmcodec_train.evaluation.pitch_probe import PitchProbe, log_mel_features, pitch_targets

    rng = np.random.default_rng(1)
    train, test = ([(a, *pitch_targets(a, RATE, 320)) for a in _gliding_tones(n, seed)]
                   for n, seed in ((40, 2), (8, 3)))
    noise = lambda log_f0: rng.standard_normal((len(log_f0), 8)).astype(np.float32)
    carrying = lambda log_f0: np.concatenate([log_f0[:, None] + 0.001 * noise(log_f0)[:, :1], noise(log_f0)], 1)
    probe = PitchProbe(steps=300)

    def score(featurize) -> float:
        return probe.cents([(featurize(a, f0), f0, v) for a, f0, v in train],
                           [(featurize(a, f0), f0, v) for a, f0, v in test])

    assert score(lambda a, f0: carrying(f0)) < 30.0
    assert score(lambda a, f0: noise(f0)) > 150.0  # the spread of the pitches: nothing is read
    mel = score(lambda a, f0: log_mel_features(a, RATE, 320))
    assert mel < 100.0 and mel == score(lambda a, f0: log_mel_features(a, RATE, 320))  # seeded
