"""The evaluation's measures: pitch on signals whose pitch we know, RVQ-1 alone on the same codes."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import harmonic_tone as _voiced

from dmcodec_train.evaluation.metrics import periodicity_score, pitch_errors

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


def test_periodicity_reads_how_much_of_the_voicing_survives():
    tone, rng = _voiced(150.0), np.random.default_rng(3)
    noise = rng.standard_normal(RATE).astype(np.float32) * 0.05
    assert periodicity_score(tone, tone, RATE) > 0.99
    assert abs(periodicity_score(tone, noise, RATE)) < 0.1
    half = periodicity_score(tone, tone + noise * 1.4, RATE)  # about equal energies
    assert 0.3 < half < 0.7, half
    # Another pitch does not repeat at the reference's period; nothing voiced: nothing to read.
    assert periodicity_score(tone, _voiced(150.0 * 2 ** (3 / 12)), RATE) < 0.5
    assert np.isnan(periodicity_score(noise, tone, RATE))


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


class _Listener:
    """A stand-in for Whisper: keeps every clip it is given and hears its length in words, so
    that clips that sound alike to the metrics still differ in what it transcribes."""

    def __init__(self):
        self.heard: list[np.ndarray] = []

    def transcribe(self, audio: np.ndarray) -> tuple[str, list]:
        self.heard.append(audio)
        return " ".join(["word"] * (1 + int(np.abs(audio).sum() * 10) % 7)), []


def test_the_evaluation_scores_rvq1_alone_from_the_same_codes(train_corpus, tiny_checkpoint):
    """The RVQ-1 column is what a separate `--n-q 1` evaluation would transcribe: the first
    level of the same codes, decoded alone (one encode serves both)."""
    from dmcodec.tokenizer import Tokenizer
    from dmcodec_train.evaluation.harness import evaluate

    manifest, _ = train_corpus
    listener = _Listener()
    _, model = evaluate(manifest, [tiny_checkpoint], split="test", limit=2, recognizer=listener,
                        visqol=False, progress=False, rvq1=True)
    originals, decoded, first = listener.heard[:2], listener.heard[2:4], listener.heard[4:]
    assert len(first) == 2
    with Tokenizer.from_pretrained(tiny_checkpoint) as tokenizer:
        alone = tokenizer.decode_many([(c, len(a)) for c, a in zip(tokenizer.encode_arrays(originals, 1), originals)])
    for heard, expected, full in zip(first, alone, decoded):
        np.testing.assert_allclose(heard, expected, atol=1e-6)
        assert not np.allclose(heard, full, atol=1e-3)  # the first level alone, not all eight

    _, alone_row = evaluate(manifest, [tiny_checkpoint], split="test", limit=2, n_q=1, recognizer=_Listener(),
                            visqol=False, progress=False)
    for key in ("wer", "wil", "wer_vs_original_asr"):
        assert model.scores[f"rvq1_{key}"] == alone_row.scores[key]
    assert model.per_utterance["rvq1_wer"] == alone_row.per_utterance["wer"]
    assert model.per_utterance["rvq1_wil"] == alone_row.per_utterance["wil"]
    assert len(alone_row.per_utterance["wil"]) == 2
    # Asked for nothing else, the row has no RVQ-1 column; with n_q=1 there is nothing to add.
    assert "rvq1_wer" not in evaluate(manifest, [tiny_checkpoint], split="test", limit=1, recognizer=_Listener(),
                                      visqol=False, progress=False)[1].scores
    assert "rvq1_wer" not in alone_row.scores
