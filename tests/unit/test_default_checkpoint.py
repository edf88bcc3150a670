"""The shipped default checkpoint: it is what the service loads, it is trained, and it still
reconstructs speech it never heard as well as the model card says. A change in the model code
(padding, LSTM, quantizer, weight loading) that degrades it fails here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dmcodec import load_checkpoint
from dmcodec.defaults import BUNDLED, resolve_checkpoint

pystoi = pytest.importorskip("pystoi")

# Held-out voices (never in the training corpus) reading sentences that are not in it either.
SENTENCES = (
    ("espeak:en+f3", "Please bring the green folder to the meeting on Thursday morning."),
    ("flite:awb", "The river was calm, and the boats drifted slowly past the old mill."),
    ("espeak:en-us+m7", "Seven tall windows looked out over a quiet, snowy square."),
)
# Measured on the shipped checkpoint (model card): mean STOI 0.855 with 8 levels, 0.851 with the
# first 4, 0.814 with RVQ-1 alone. The margin absorbs float noise across CPUs and synthesiser
# versions, not a real regression (the previous, 5,500-step release scored 0.841 / 0.837 / 0.804
# and would fail).
STOI_FLOOR = 0.835
STOI_FLOOR_FIRST_LEVELS = {4: 0.83, 1: 0.795}


@pytest.fixture(scope="module")
def codec():
    return load_checkpoint(BUNDLED).model


@pytest.fixture(scope="module")
def speech() -> list[np.ndarray]:
    from dmcodec_train.data.voices import ALL_VOICES

    voices = {v.id: v for v in ALL_VOICES}
    return [voices[voice].synthesize(text) for voice, text in SENTENCES]


def _stoi(codec, audio: np.ndarray, n_q: int | None = None) -> float:
    with torch.no_grad():
        wav = torch.from_numpy(audio)[None, None]
        decoded = codec.decode(codec.encode(wav, n_q))[0, 0, : audio.size].numpy()
    return float(pystoi.stoi(audio, decoded, 16000, extended=False))


def test_service_default_is_the_bundled_trained_checkpoint(monkeypatch):
    monkeypatch.delenv("DMCODEC_CHECKPOINT", raising=False)
    assert resolve_checkpoint() == BUNDLED
    meta = json.loads((BUNDLED / "config.json").read_text())["dmcodec"]
    assert meta["training"]["trained"] and meta["training"]["steps"] > 0
    assert meta["weights_dtype"] == "float16"
    assert (BUNDLED / "model.safetensors").stat().st_size < 40 * 2**20


def test_bundled_checkpoint_reconstructs_unseen_speech(codec, speech):
    scores = [_stoi(codec, audio) for audio in speech]
    assert np.mean(scores) >= STOI_FLOOR, scores


@pytest.mark.parametrize("n_q", sorted(STOI_FLOOR_FIRST_LEVELS))
def test_fewer_levels_still_reconstruct(codec, speech, n_q):
    scores = [_stoi(codec, audio, n_q) for audio in speech]
    assert np.mean(scores) >= STOI_FLOOR_FIRST_LEVELS[n_q], scores


def test_a_missing_default_is_an_error_not_a_random_model(monkeypatch, tmp_path):
    import dmcodec.defaults as defaults

    monkeypatch.delenv("DMCODEC_CHECKPOINT", raising=False)
    monkeypatch.setattr(defaults, "BUNDLED", tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match="bundled default checkpoint is missing"):
        defaults.resolve_checkpoint()
    assert not any(tmp_path.iterdir())
    monkeypatch.setenv("DMCODEC_CHECKPOINT", str(tmp_path / "mine"))
    assert defaults.resolve_checkpoint() == tmp_path / "mine"
