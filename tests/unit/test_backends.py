"""Inference backends: ONNX Runtime graphs exported once per checkpoint and cached, batch
invariance and windows as with torch, code agreement measured and enforced, the precision
policy at the service's start-up, and the mode in every response."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from helpers import clips

from dmcodec import Tokenizer, WindowPolicy, defaults, load_checkpoint
from dmcodec.backends import create_backend
from dmcodec.backends.agreement import AgreementError, code_agreement
from dmcodec.backends.onnx import MIN_FRAMES, OnnxBackend, export_onnx, graph_dir
from dmcodec.backends.torch_backend import TorchBackend
from dmcodec.signals import speech_like


def test_graphs_are_exported_once_and_keyed_by_checkpoint_and_precision(tiny_checkpoint, small_checkpoint, tmp_path):
    tiny = load_checkpoint(tiny_checkpoint)
    directory = export_onnx(tiny)
    assert directory.parent == tiny_checkpoint / "onnx"
    assert {p.name for p in directory.iterdir()} == {"encoder.onnx", "decoder.onnx", "meta.json"}
    mtime = (directory / "encoder.onnx").stat().st_mtime_ns
    assert export_onnx(load_checkpoint(tiny_checkpoint)) == directory  # found, not re-exported
    assert (directory / "encoder.onnx").stat().st_mtime_ns == mtime
    assert graph_dir(load_checkpoint(small_checkpoint)).name != directory.name
    assert graph_dir(tiny, "int8") != directory

    # Where the checkpoint's folder cannot take the graphs (here: "onnx" is a file, which even
    # root cannot write into), they go to the cache instead.
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("model.safetensors", "config.json"):
        (blocked / name).write_bytes((tiny_checkpoint / name).read_bytes())
    (blocked / "onnx").write_text("not a folder")
    os.environ["DMCODEC_CACHE"] = str(tmp_path / "cache")
    try:
        cached = export_onnx(load_checkpoint(blocked))
    finally:
        del os.environ["DMCODEC_CACHE"]
    assert cached.parent == tmp_path / "cache" / "onnx" and (cached / "decoder.onnx").exists()


@pytest.mark.parametrize("mode", ["single", "fixed"])
def test_onnx_tokens_are_batch_invariant_and_windowed_like_torch(small_checkpoint, mode):
    codec = load_checkpoint(small_checkpoint)
    policy = WindowPolicy(batch_mode=mode, window_frames=200, context_frames=20, max_batch_items=3,
                          max_batch_frames=1000)
    onnx = Tokenizer.from_pretrained(codec, policy=policy, backend="onnxruntime", min_agreement=0.0)
    audio = clips([0.01, 0.3, 1.7, 2.2, 5.5, 1.7], seed=40)  # includes windows below MIN_FRAMES
    together = onnx.encode_arrays(audio)
    alone = [onnx.encode_arrays([a])[0] for a in audio]
    assert all(np.array_equal(x, y) for x, y in zip(together, alone))
    assert [c.shape[1] for c in together] == [-(-len(a) // 320) for a in audio]
    decoded = onnx.decode_many([(c, len(a)) for c, a in zip(together, audio)])
    assert [len(d) for d in decoded] == [len(a) for a in audio]
    assert all(np.array_equal(d, onnx.decode(c, len(a))) for d, c, a in zip(decoded, together, audio))
    # Windows too short for the graphs run in torch: identical codes there.
    torch_codes = Tokenizer.from_pretrained(codec, policy=policy).encode_arrays(audio[:1])[0]
    assert together[0].shape[1] < MIN_FRAMES and np.array_equal(together[0], torch_codes)


def test_onnx_decoder_matches_torch_audio(small_checkpoint):
    codec = load_checkpoint(small_checkpoint)
    codes = Tokenizer.from_pretrained(codec).encode_arrays(clips([2.0], seed=3))[0]
    reference = create_backend(codec, "torch").decode(__import__("torch").from_numpy(codes)[:, None])
    onnx = create_backend(codec, "onnxruntime").decode(__import__("torch").from_numpy(codes)[:, None])
    assert np.abs(reference - onnx).max() < 1e-4


def test_reduced_precision_is_measured_and_refused_below_the_threshold(small_checkpoint):
    codec = load_checkpoint(small_checkpoint)
    with pytest.raises(AgreementError, match=r"int8 keeps only .*% of fp32 torch codes"):
        Tokenizer.from_pretrained(codec, backend="onnxruntime", precision="int8", min_agreement=0.999)
    allowed = Tokenizer.from_pretrained(codec, backend="onnxruntime", precision="int8", min_agreement=0.0)
    assert 0 <= allowed.agreement.overall < 0.999 and len(allowed.agreement.per_level) == 8
    info = allowed.model_info()
    assert (info["backend"], info["precision"]) == ("onnxruntime", "int8")
    assert info["code_agreement"] == allowed.agreement.overall
    with pytest.raises(ValueError, match="needs a CUDA device"):
        Tokenizer.from_pretrained(codec, precision="bf16")
    with pytest.raises(ValueError, match="supports precisions"):
        Tokenizer.from_pretrained(codec, backend="onnxruntime", precision="bf16")


def test_agreement_counts_positions_per_level():
    a = [np.array([[1, 2, 3, 4], [5, 6, 7, 8]])]
    b = [np.array([[1, 2, 3, 0], [5, 0, 0, 8]])]
    result = code_agreement(a, b)
    assert result.overall == pytest.approx(5 / 8) and result.per_level == [0.75, 0.5] and result.positions == 8


@pytest.mark.parametrize("which", ["shipped", "random"])
def test_onnx_codes_agree_with_torch(which, request):
    """The default checkpoint, and random weights with codebooks fitted to their own latents,
    under onnxruntime: the start-up measurement passes the 99.9% threshold, and on the tests'
    clips the codes agree on >= 99.9% of positions, the first level exactly."""
    from dmcodec.defaults import BUNDLED

    codec = load_checkpoint(BUNDLED if which == "shipped" else request.getfixturevalue("small_checkpoint"))
    onnx = Tokenizer.from_pretrained(codec, backend="onnxruntime")  # raises AgreementError below 99.9%
    assert onnx.agreement.overall >= 0.999
    audio = clips([0.4, 1.3, 3.7, 6.2], seed=77)
    reference, candidate = Tokenizer.from_pretrained(codec).encode_arrays(audio), onnx.encode_arrays(audio)
    result = code_agreement(reference, candidate)
    assert result.overall >= 0.999, result.per_level
    assert all(np.array_equal(r[0], c[0]) for r, c in zip(reference, candidate))


def test_auto_serves_onnxruntime_only_with_every_code_of_torch_and_says_why_not(small_checkpoint, caplog,
                                                                                 monkeypatch):
    codec = load_checkpoint(small_checkpoint)
    auto = Tokenizer.from_pretrained(codec)  # auto is the default
    info = auto.model_info()
    assert info["backend"] == "onnxruntime" and info["backend_requested"] == "auto"
    assert "backend_fallback" not in info and auto.agreement.overall == 1.0

    # One code of the calibration set re-drawn: an explicit request passes the 99.9% gate, auto
    # serves fp32 torch instead and says why (logged and in the info).
    encode = OnnxBackend.encode

    def one_code_off(self, wav, n_q, threads=0):
        codes = encode(self, wav, n_q, threads)
        codes[-1, 0, 0] = (codes[-1, 0, 0] + 1) % codec.config.codebook_size
        return codes

    monkeypatch.setattr(OnnxBackend, "encode", one_code_off)
    assert 0.999 <= Tokenizer.from_pretrained(codec, backend="onnxruntime").agreement.overall < 1.0
    refused = Tokenizer.from_pretrained(codec, backend="auto")
    info = refused.model_info()
    assert info["backend"] == "torch" and info["backend_requested"] == "auto"
    assert "keeps only" in info["backend_fallback"] and refused.agreement is None
    assert any("serving fp32 torch instead of onnxruntime" in r.getMessage() for r in caplog.records)


def test_torch_gives_a_lone_window_every_core_exactly_where_its_latents_do_not_change(small_checkpoint,
                                                                                    monkeypatch):
    codec = load_checkpoint(small_checkpoint)
    policy = WindowPolicy(workers=2, solo_threads=2)
    wav = torch.from_numpy(speech_like(3.0, seed=8))[None, None]
    backend = TorchBackend(codec.model)
    invariant = np.array_equal(backend.latent(wav, 1), backend.latent(wav, 2))
    with Tokenizer.from_pretrained(codec, backend="torch", policy=policy) as measured:
        assert measured.windowing_info()["solo_threads"] == (2 if invariant else 1)
        lone = measured.encode_arrays([speech_like(3.0, seed=8)])[0]

    latent = TorchBackend.latent

    def last_bit_differs_at_two_threads(self, wav, threads=0):
        out = latent(self, wav, threads)
        return np.nextafter(out, np.inf) if threads == 2 else out

    monkeypatch.setattr(TorchBackend, "latent", last_bit_differs_at_two_threads)
    with Tokenizer.from_pretrained(codec, backend="torch", policy=policy) as pinned:
        assert pinned.windowing_info()["solo_threads"] == 1
        monkeypatch.undo()
        assert np.array_equal(pinned.encode_arrays([speech_like(3.0, seed=8)])[0], lone)


def test_a_lone_window_uses_every_core_and_gets_the_codes_it_gets_beside_others(small_checkpoint):
    """ONNX Runtime's codes at 1 and at 2 threads are checked equal at start-up; a window that
    runs alone then gets 2 threads, windows that run side by side 1 each - and every clip's
    codes are the same either way (and equal to a 1-thread-only tokenizer's)."""
    codec = load_checkpoint(small_checkpoint)
    elastic = Tokenizer.from_pretrained(codec, backend="onnxruntime",
                                        policy=WindowPolicy(workers=2, solo_threads=2))
    pinned = Tokenizer.from_pretrained(codec, backend="onnxruntime",
                                       policy=WindowPolicy(workers=2, solo_threads=1))
    assert elastic.windowing_info()["solo_threads"] == 2 and pinned.windowing_info()["solo_threads"] == 1
    assert elastic.windowing_info()["dynamic_batches"]  # checked batch-invariant at start-up
    seen: list[tuple[int, int]] = []
    encode = elastic.backend.encode
    elastic.backend.encode = lambda wav, n_q, threads=0: (seen.append((wav.shape[0], threads)),
                                                          encode(wav, n_q, threads))[1]
    audio = clips([1.1, 2.3, 3.1, 0.9, 2.3, 2.3], seed=5)
    alone = [elastic.encode_arrays([a])[0] for a in audio]
    assert seen == [(1, 2)] * 6
    seen.clear()
    together = elastic.encode_arrays(audio)
    assert (3, 1) in seen or (3, 2) in seen  # the three 2.3 s clips in one unpadded call
    assert 1 in {threads for _, threads in seen}  # some windows had company
    reference = pinned.encode_arrays(audio)
    assert all(np.array_equal(x, y) and np.array_equal(x, z) for x, y, z in zip(alone, together, reference))


def test_a_model_call_on_cpu_holds_at_most_a_window_of_frames_and_short_windows_share_it(small_checkpoint):
    """What bounds a request's memory on the default backend: the frames of one encoder call."""
    policy = WindowPolicy()
    assert policy.frames_per_call("cpu") == defaults.MAX_BATCH_FRAMES["cpu"] == policy.window_frames
    with Tokenizer.from_pretrained(small_checkpoint, backend="onnxruntime", policy=policy) as tokenizer:
        assert tokenizer.dynamic_batches
        calls: list[tuple[int, int]] = []
        latent, hop = tokenizer.backend.latent, tokenizer.hop_length
        tokenizer.backend.latent = lambda wav, threads=0: (calls.append((wav.shape[0], wav.shape[-1] // hop)),
                                                           latent(wav, threads))[1]
        short = [speech_like(5.0, seed=i) for i in range(6)]  # 250 frames each: four fit one call
        long = speech_like(50.0, seed=9)  # windows of 950 and 1000 frames: one per call
        together = tokenizer.encode_arrays([*short, long])
    assert max(items * frames for items, frames in calls) <= policy.window_frames
    assert max(items for items, _ in calls) == 4
    alone = Tokenizer.from_pretrained(small_checkpoint, backend="onnxruntime", policy=WindowPolicy(workers=1))
    assert all(np.array_equal(a, b) for a, b in zip(together, alone.encode_arrays([*short, long])))
