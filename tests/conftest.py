"""Shared fixtures: checkpoints the tests create, speech-like audio files, a synthetic corpus.

Tiers: `unit/` (no subprocess of ours), `service/` (the app in-process), `e2e/` (real servers,
signals, browsers, Prometheus, installs; marked `e2e` here, so `-m "not e2e"` leaves them out).
Shared helpers live in `helpers.py`. Tests write only under pytest's temporary folders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))

from helpers import TRAIN_TEST_VOICES  # noqa: E402

from dmcodec import load_checkpoint  # noqa: E402
from dmcodec.audio import write_wav  # noqa: E402
from dmcodec.init import create_untrained  # noqa: E402
from dmcodec.signals import speech_like  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def runs_root(tmp_path_factory) -> Iterator[Path]:
    """Runs given by name go here, never to the user's ~/.cache/dmcodec/runs."""
    root = tmp_path_factory.mktemp("runs")
    previous = os.environ.get("DMCODEC_RUNS")
    os.environ["DMCODEC_RUNS"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("DMCODEC_RUNS", None)
    else:
        os.environ["DMCODEC_RUNS"] = previous


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny untrained model whose codebooks were fitted to its own latents (no all-zero codes)."""
    return create_untrained(tmp_path_factory.mktemp("ckpt") / "tiny", "tiny", seed=1, seconds=12.0)


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    return create_untrained(tmp_path_factory.mktemp("ckpt") / "small", "small", seed=2, seconds=30.0)


@pytest.fixture(scope="session")
def tiny_codec(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="session")
def wav_dir(tmp_path_factory) -> Path:
    """Speech-like WAV files of assorted lengths at 16 kHz."""
    root = tmp_path_factory.mktemp("wavs")
    for i, seconds in enumerate([0.7, 1.3, 2.0, 3.1]):
        write_wav(root / f"clip{i}.wav", speech_like(seconds, 16000, seed=10 + i), 16000)
    return root


@pytest.fixture(scope="session")
def bulk_corpus(tmp_path_factory) -> Path:
    """Ten speech-like WAVs in two folders and one broken file."""
    root = tmp_path_factory.mktemp("bulk-corpus")
    for i in range(10):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        write_wav(sub / f"utt{i}.wav", speech_like(0.5 + 0.37 * i, seed=200 + i), 16000)
    (root / "b" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt not really")
    return root


@pytest.fixture(scope="session")
def train_corpus(tmp_path_factory) -> tuple[Path, Path]:
    """A 12-utterance synthetic corpus and its real teacher features: (manifest, features)."""
    from dmcodec_train.data.corpus import CorpusSpec, build_corpus
    from dmcodec_train.data.voices import ALL_VOICES
    from dmcodec_train.teachers.asr import Recognizer
    from dmcodec_train.teachers.lm import LMTeacher
    from dmcodec_train.teachers.precompute import precompute
    from dmcodec_train.teachers.speech import WhisperEncoderTeacher

    root = tmp_path_factory.mktemp("train-corpus")
    voices = [v for v in ALL_VOICES if v.id in TRAIN_TEST_VOICES]
    manifest = build_corpus(root / "corpus", CorpusSpec(utterances=12, seed=3, dev_fraction=0.17, test_fraction=0.17),
                            workers=2, voices=voices, progress=False)
    features = root / "features"
    precompute(manifest, features, WhisperEncoderTeacher(), LMTeacher(), Recognizer(beam_size=1, compute_type="int8"),
               splits=("train", "dev", "test"), shard_size=5, progress=False)
    return manifest, features


def pytest_collection_modifyitems(config, items):
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        if e2e in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)
