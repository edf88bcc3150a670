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
