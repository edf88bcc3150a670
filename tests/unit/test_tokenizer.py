"""Batch invariance, windowing and audio handling of the high-level tokenizer."""

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import clips

from dmcodec import Tokenizer, WindowPolicy, defaults, load_checkpoint
from dmcodec.audio import AudioError
from dmcodec.executor import available_cores
from dmcodec.layouts import LayoutError, encode_layout
from dmcodec.signals import speech_like
from dmcodec.windows import plan_windows


@pytest.fixture(scope="module")
def small_tokenizer(small_checkpoint):
    return Tokenizer.from_pretrained(small_checkpoint)


def one_by_one(tokenizer, items, n_q=None):
    return [tokenizer.encode_arrays([clip], n_q)[0] for clip in items]


@pytest.mark.parametrize("mode", ["single", "fixed"])
def test_batched_equals_one_by_one_for_mixed_lengths(small_checkpoint, mode):
    tokenizer = Tokenizer.from_pretrained(small_checkpoint, policy=WindowPolicy(batch_mode=mode, max_batch_items=3))
    # Three clips share a length, so fixed mode really runs several items (and padding) at once.
    items = clips([2.0, 0.9, 3.3, 2.0, 1.0001, 0.02, 2.0])
    batched = tokenizer.encode_arrays(items)
    alone = one_by_one(tokenizer, items)
    reordered = tokenizer.encode_arrays(items[::-1])[::-1]
    for b, a, r, clip in zip(batched, alone, reordered, items):
        assert b.shape == (8, -(-clip.size // 320))
        assert np.array_equal(b, a) and np.array_equal(b, r)
    # Codes are spread over the codebooks, so equality is not vacuous.
    assert all(len(np.unique(level)) > 20 for level in batched[0][:4])


def test_codes_equal_the_plain_model_for_a_single_window(small_tokenizer):
    clip = clips([1.7], seed=5)[0]
    # The same computation as the tokenizer's window: the model alone, at threads_per_window threads
    # (the thread count is part of what fixes the codes).
    threads = torch.get_num_threads()
    torch.set_num_threads(small_tokenizer.policy.threads_per_window)
    try:
        direct = small_tokenizer.model.encode(torch.from_numpy(clip)[None, None])[:, 0].numpy()
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(small_tokenizer.encode_arrays([clip])[0], direct)


def test_long_audio_windows_are_batch_invariant_and_close_to_whole(small_checkpoint):
    policy = WindowPolicy(window_frames=100, context_frames=20, batch_mode="fixed", max_batch_items=4,
                          max_batch_frames=400)
    tokenizer = Tokenizer.from_pretrained(small_checkpoint, policy=policy)
    long_clip, other = clips([9.3, 6.1], seed=20)
    windows = plan_windows(-(-long_clip.size // 320), policy)
    assert len(windows) == 8 and windows[-1].stop == -(-long_clip.size // 320)
    batched = tokenizer.encode_arrays([long_clip, other])
    assert np.array_equal(batched[0], tokenizer.encode_arrays([long_clip])[0])
    assert np.array_equal(batched[1], tokenizer.encode_arrays([other])[0])
    whole = tokenizer.model.encode(torch.from_numpy(long_clip)[None, None])[:, 0].numpy()
    # The windowed codes approximate encoding in one piece (the BiLSTM sees 0.4 s of context).
    assert (batched[0][0] == whole[0]).mean() > 0.5


def test_decode_returns_exactly_num_samples_and_is_batch_invariant(small_tokenizer):
    items = clips([1.23, 0.5, 1.23], seed=30)
    encoded = small_tokenizer.encode_arrays(items)
    pairs = [(codes, clip.size) for codes, clip in zip(encoded, items)]
    together = small_tokenizer.decode_many(pairs)
    for audio, (codes, n) in zip(together, pairs):
        assert audio.shape == (n,) and audio.dtype == np.float32
        assert np.array_equal(audio, small_tokenizer.decode(codes, n))
    assert small_tokenizer.decode(encoded[0][:2]).shape == (encoded[0].shape[1] * 320,)
    with pytest.raises(ValueError, match="num_samples"):
        small_tokenizer.decode(encoded[0], items[0].size + 320)


def test_any_rate_and_channels_become_16k_mono(small_tokenizer, tmp_path):
    stereo = np.stack([clips([1.0])[0]] * 2, axis=1)
    stereo = np.interp(np.arange(0, stereo.shape[0], 16000 / 44100), np.arange(stereo.shape[0]), stereo[:, 0])
    stereo = np.stack([stereo, stereo * 0.5], axis=1).astype(np.float32)
    for fmt, ext in [("FLAC", "flac"), ("OGG", "ogg"), ("WAV", "wav"), ("MP3", "mp3")]:
        path = tmp_path / f"a.{ext}"
        sf.write(path, stereo, 44100, format=fmt)
        encoded = small_tokenizer.encode(path)
        assert encoded.sample_rate == 16000 and abs(encoded.duration_s - 1.0) < 0.08, fmt
        assert encoded.codes.shape[1] == -(-encoded.num_samples // 320)
    from_array = small_tokenizer.encode(stereo, sample_rate=44100)
    assert from_array.num_samples == 16000


def test_bad_audio_is_a_clear_error(small_tokenizer, tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunkjunk")
    with pytest.raises(AudioError, match="not a readable audio file"):
        small_tokenizer.encode(tmp_path / "junk.wav")
    with pytest.raises(AudioError, match="empty"):
        small_tokenizer.encode(b"")
    sf.write(tmp_path / "silent.wav", np.zeros((0, 1), dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="no samples"):
        small_tokenizer.encode(tmp_path / "silent.wav")
    with pytest.raises(AudioError, match="NaN"):
        small_tokenizer.encode(np.array([0.0, np.nan], dtype=np.float32), sample_rate=16000)


def test_metadata_describes_the_codes(small_tokenizer, small_checkpoint):
    encoded = small_tokenizer.encode(clips([0.5])[0], sample_rate=16000, n_q=3)
    data = encoded.to_json()
    assert data["n_q"] == 3 and len(data["codes"]) == 3 and data["frames"] == 25
    assert data["codebook_size"] == 1024 and data["frame_rate"] == 50 and data["num_samples"] == 8000
    assert data["model"]["sha256"] == load_checkpoint(small_checkpoint).sha256
    windowing = data["windowing"]
    assert {k: windowing[k] for k in ("window_frames", "context_frames", "batch_size", "intra_op_threads")} == {
        "window_frames": defaults.WINDOW_FRAMES, "context_frames": defaults.CONTEXT_FRAMES, "batch_size": 1,
        "intra_op_threads": defaults.THREADS_PER_WINDOW}  # on CPU: windows pinned to one thread, unpadded
    assert windowing["solo_threads"] in (1, available_cores()) and isinstance(windowing["dynamic_batches"], bool)
    assert data["model"]["backend"] == small_tokenizer.backend.name and data["model"]["precision"] == "fp32"


def test_decoding_window_by_window_gives_the_samples_of_decoding_whole(small_checkpoint):
    policy = WindowPolicy(window_frames=100, context_frames=20)
    with Tokenizer.from_pretrained(small_checkpoint, policy=policy) as tokenizer:
        codes = tokenizer.encode_arrays([speech_like(7.3, seed=31)])[0]
        pieces = [tokenizer.decode_window(codes, w) for w in plan_windows(codes.shape[1], policy)]
        assert len(pieces) > 4
        assert np.array_equal(np.concatenate(pieces), tokenizer.decode(codes))


def test_batch_first_api_gives_each_clip_the_codes_and_audio_it_has_alone(small_tokenizer):
    clips = [speech_like(s, seed=70 + i) for i, s in enumerate((1.3, 2.6, 0.45))]
    lengths = [c.size for c in clips]
    wav = torch.zeros(3, 1, max(lengths))
    for row, clip in enumerate(clips):
        wav[row, 0, : clip.size] = torch.from_numpy(clip)
        wav[row, 0, clip.size :] = 0.5  # what lies past a clip's length must not matter
    codes, frame_lengths = small_tokenizer.encode_batch(wav, torch.tensor(lengths), n_q=4, pad_value=-1)
    assert codes.dtype == torch.long and codes.shape == (3, 4, 130) and frame_lengths.tolist() == [65, 130, 23]
    for row, clip in enumerate(clips):
        alone = small_tokenizer.encode_arrays([clip], 4)[0]
        assert torch.equal(codes[row, :, : frame_lengths[row]], torch.from_numpy(alone))
        assert (codes[row, :, frame_lengths[row] :] == -1).all()
    audio, audio_lengths = small_tokenizer.decode_batch(codes.clamp(min=0), frame_lengths, lengths)
    assert audio.shape == (3, max(lengths)) and audio_lengths.tolist() == lengths
    for row, clip in enumerate(clips):
        alone = small_tokenizer.decode(codes[row, :, : frame_lengths[row]].numpy(), clip.size)
        assert np.array_equal(audio[row, : clip.size].numpy(), alone) and (audio[row, clip.size :] == 0).all()
    with pytest.raises(ValueError, match="lengths"):
        small_tokenizer.encode_batch(wav[:, 0], [10, 20])


@pytest.mark.parametrize("layout", ["flat", "delay", "first"])
def test_batches_in_any_layout_hold_each_clips_ids_and_decode_to_the_same_audio(tiny_checkpoint, layout):
    clips_ = [speech_like(s, seed=80 + i) for i, s in enumerate((0.5, 1.1, 0.03))]
    lengths = [c.size for c in clips_]
    wav = torch.zeros(3, max(lengths))
    for row, clip in enumerate(clips_):
        wav[row, : clip.size] = torch.from_numpy(clip)
    with Tokenizer.from_pretrained(tiny_checkpoint) as tokenizer:
        vocabulary = tokenizer.vocabulary
        ids, sizes = tokenizer.encode_batch(wav, lengths, n_q=None if layout == "first" else 3, layout=layout)
        codes, frames = tokenizer.encode_batch(wav, lengths, n_q=1 if layout == "first" else 3)
        assert ids.ndim == (3 if layout == "delay" else 2) and ids.dtype == torch.long
        for row in range(3):
            alone = encode_layout(codes[row, :, : frames[row]].numpy(), layout, vocabulary)
            assert np.array_equal(ids[row, ..., : sizes[row]].numpy(), alone)
            assert (ids[row, ..., sizes[row] :] == vocabulary.pad_token_id).all()
        audio, audio_lengths = tokenizer.decode_batch(ids, sizes, lengths, layout=layout)
        reference, reference_lengths = tokenizer.decode_batch(codes, frames, lengths)
        assert torch.equal(audio, reference) and audio_lengths.tolist() == reference_lengths.tolist() == lengths
        if layout != "delay":  # a sequence's right padding is pads, which decoding drops without lengths
            assert torch.equal(tokenizer.decode_batch(ids, None, lengths, layout=layout)[0], reference)
        spoiled = ids.clone()
        spoiled[0, ..., 1] = vocabulary.eos_token_id
        with pytest.raises(LayoutError, match="got the eos id"):
            tokenizer.decode_batch(spoiled, sizes, lengths, layout=layout)
