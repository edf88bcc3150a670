"""The training data: generated texts, the synthetic corpus and its splits, manifest readers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import TRAIN_TEST_VOICES

from dmcodec.audio import write_wav
from dmcodec.signals import speech_like
from dmcodec_train.data.augment import Augmentation
from dmcodec_train.data.corpus import CorpusSpec, build_corpus
from dmcodec_train.data.manifest import Utterance, from_folder, from_librispeech, read_manifest, write_manifest
from dmcodec_train.data.recordings import alsa, pocketsphinx
from dmcodec_train.data.texts import generate_sentences
from dmcodec_train.data.voices import ALL_VOICES, TEST_VOICES


def test_texts_are_distinct_varied_and_seeded():
    texts = generate_sentences(500, seed=4)
    assert len(set(texts)) == 500
    assert texts == generate_sentences(500, seed=4)
    assert texts[:50] != generate_sentences(50, seed=5)
    words = {w.strip(".,?;").lower() for t in texts for w in t.split()}
    assert len(words) > 200  # a grammar, not a handful of sentences


def test_corpus_is_deterministic_and_splits_by_text_and_voice(train_corpus, tmp_path):
    manifest, _ = train_corpus
    rows = read_manifest(manifest)
    by_split = {s: [r for r in rows if r.split == s] for s in ("train", "dev", "test")}
    assert all(by_split.values())
    assert {r.speaker for r in by_split["test"]} <= set(TEST_VOICES)
    assert not {r.speaker for r in by_split["train"] + by_split["dev"]} & set(TEST_VOICES)
    texts = {s: {r.transcript for r in rs} for s, rs in by_split.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["dev"]
    for row in rows:
        audio, rate = sf.read(row.path)
        assert rate == 16000 and abs(len(audio) / rate - row.duration) < 1e-3 and np.abs(audio).max() > 0.01
    # Same seed, another worker count: the same corpus, sample for sample.
    voices = [v for v in ALL_VOICES if v.id in TRAIN_TEST_VOICES]
    again = build_corpus(tmp_path / "again", CorpusSpec(utterances=12, seed=3, dev_fraction=0.17, test_fraction=0.17),
                         workers=1, voices=voices, progress=False)
    assert [(r.id, r.transcript, r.speaker) for r in read_manifest(again)] == \
        [(r.id, r.transcript, r.speaker) for r in rows]
    first = rows[-1]
    again = tmp_path / "again" / "audio" / "train" / f"{first.id}.wav"
    assert np.array_equal(sf.read(first.path)[0], sf.read(again)[0])
    record = json.loads((manifest.parent / "corpus.json").read_text())
    assert record["utterances"][0]["voice"] and "rate" in record["utterances"][0]


def test_augmentation_is_seeded_and_changes_the_signal():
    clip = speech_like(2.0, 16000, seed=1)
    strong = Augmentation(noise_probability=1.0, reverb_probability=1.0)
    a, record = strong.apply(clip, 16000, np.random.default_rng(7))
    b, _ = strong.apply(clip, 16000, np.random.default_rng(7))
    assert np.array_equal(a, b) and {"rt60_s", "noise", "peak_dbfs"} <= set(record)
    assert np.abs(a).max() == pytest.approx(10 ** (record["peak_dbfs"] / 20), rel=1e-3)
    assert np.corrcoef(a, clip)[0, 1] < 0.99


def test_manifest_round_trips_and_reads_folders_and_librispeech(tmp_path):
    rows = [Utterance("a", "/x/a.wav", 1.5, "hello there", "s1", "train"),
            Utterance("b", "/x/b.wav", 2.0, "", "s2", "test")]
    for name in ("m.jsonl", "m.parquet"):
        write_manifest(rows, tmp_path / name)
        assert read_manifest(tmp_path / name) == rows
        assert [r.id for r in read_manifest(tmp_path / name, "test")] == ["b"]
    with pytest.raises(ValueError, match="split"):
        Utterance("c", "c.wav", 1.0, split="validation")

    folder = tmp_path / "folder" / "alice"
    folder.mkdir(parents=True)
    write_wav(folder / "one.wav", speech_like(0.5, 16000), 16000)
    (folder / "one.txt").write_text("the first clip\n")
    sf.write(folder / "two.flac", speech_like(0.25, 16000), 16000)
    found = from_folder(tmp_path / "folder")
    assert [(u.id, u.transcript, u.speaker) for u in found] == [("alice/one", "the first clip", "alice"),
                                                                 ("alice/two", "", "alice")]
    assert found[0].duration == pytest.approx(0.5)

    chapter = tmp_path / "libri" / "103" / "1240"
    chapter.mkdir(parents=True)
    for n in range(2):
        sf.write(chapter / f"103-1240-000{n}.flac", speech_like(0.3, 16000, seed=n), 16000)
    (chapter / "103-1240.trans.txt").write_text("103-1240-0000 CHAPTER ONE\n103-1240-0001 MISSUS RACHEL\n")
    libri = from_librispeech(tmp_path / "libri", "dev")
    assert [(u.id, u.transcript, u.speaker, u.split) for u in libri] == [
        ("103-1240-0000", "CHAPTER ONE", "103", "dev"), ("103-1240-0001", "MISSUS RACHEL", "103", "dev")]


def test_packaged_recordings_become_a_test_split_with_their_transcripts(tmp_path):
    alsa_dir = tmp_path / "alsa"
    alsa_dir.mkdir()
    for name in ("Front_Left", "Noise", "Rear_Center"):
        write_wav(alsa_dir / f"{name}.wav", speech_like(0.4, 48000), 48000)
    assert [(u.id, u.transcript, u.split) for u in alsa(alsa_dir)] == [
        ("alsa/Front_Left", "front left", "test"), ("alsa/Rear_Center", "rear center", "test")]

    cards = tmp_path / "sphinx" / "cards"
    cards.mkdir(parents=True)
    write_wav(cards / "001.wav", speech_like(0.5, 16000), 16000)
    (cards / "cards.transcription").write_text("<s> ten of  clubs  </s> (001)\n\n")
    found = pocketsphinx(tmp_path / "sphinx")
    assert [(u.id, u.transcript, u.speaker) for u in found] == [
        ("pocketsphinx-cards/001", "ten of clubs", "pocketsphinx-cards")]
    assert found[0].duration == pytest.approx(0.5)
    (cards / "cards.transcription").write_text("<s> ten of clubs </s> (002)\n")
    with pytest.raises(ValueError, match="002"):
        pocketsphinx(tmp_path / "sphinx")
    (cards / "cards.transcription").write_text("ten of clubs\n")
    with pytest.raises(ValueError, match="line 1"):
        pocketsphinx(tmp_path / "sphinx")


def test_crops_align_audio_with_teacher_frames_at_any_file_rate(train_corpus, tmp_path):
    import soxr

    from dmcodec_train.data.batches import CropSampler
    from dmcodec_train.teachers.store import FeatureStore

    manifest, features = train_corpus
    store = FeatureStore(features)
    utterance = read_manifest(manifest, "train")[0]
    original, _ = sf.read(utterance.path, dtype="float32")
    sf.write(tmp_path / "hi.wav", soxr.resample(original, 16000, 22050), 22050)
    resampled = Utterance(utterance.id, str(tmp_path / "hi.wav"), utterance.duration, split="train")
    a = CropSampler([utterance], store, 40, 320, 16000, seed=1).batch(3, 2)
    b = CropSampler([resampled], store, 40, 320, 16000, seed=1).batch(3, 2)
    assert a.audio.shape == b.audio.shape == (2, 1, 40 * 320)
    assert torch.equal(a.speech, b.speech) and torch.equal(a.lm_mask, b.lm_mask)
    for x, y in zip(a.audio, b.audio):
        assert np.corrcoef(x[0, 2000:-2000], y[0, 2000:-2000])[0, 1] > 0.99
    # A crop's teacher frames are the stored frames at the crop's offset.
    frames = store.index["items"][utterance.id]["frames"]
    full = store.get(utterance.id)["speech"]
    offsets = [next(o for o in range(frames) if torch.equal(full[o:o + 5], crop[:5])) for crop in a.speech]
    for crop, offset in zip(a.audio, offsets):
        expected = original[offset * 320:(offset + 40) * 320]
        assert np.allclose(crop[0, :len(expected)].numpy(), expected, atol=1e-6)


def test_mel_loss_takes_bands_per_scale_and_keeps_short_ffts_off_the_floor():
    from dmcodec_train.mel import MultiScaleMelLoss

    speech = torch.from_numpy(speech_like(1.0, 16000, seed=4))[None, None]
    uniform = MultiScaleMelLoss(16000, (1024, 128), 80)
    scaled = MultiScaleMelLoss(16000, (1024, 128), (80, 10))
    assert [m.filters.shape[0] for m in scaled.scales] == [80, 10]
    floor = float(torch.log(torch.tensor(1e-5)))
    # 80 bands over a 128-point FFT's 65 bins: many bands are empty (at the log floor); 10 are not.
    assert float((uniform.scales[1](speech) <= floor).float().mean()) > 0.1
    assert float((scaled.scales[1](speech) <= floor).float().mean()) == 0.0
    assert float(scaled(speech, speech)) == 0.0 and float(scaled(speech, 0.5 * speech)) > 0.5
    with pytest.raises(ValueError, match="2 FFT sizes"):
        MultiScaleMelLoss(16000, (1024, 128), (80,))


def test_opus_anchor_round_trips_in_line_and_improves_with_bitrate():
    from dmcodec_train.evaluation.opus import opus_roundtrip

    clip = speech_like(2.0, 16000, seed=3)
    errors = {}
    for kbps in (6, 24):
        out = opus_roundtrip(clip, 16000, kbps)
        assert out.shape == clip.shape and out.dtype == np.float32
        lags = np.arange(-40, 41)
        best = lags[np.argmax([np.dot(np.roll(out, -lag), clip) for lag in lags])]
        assert abs(best) <= 2  # pre-skip removed: the decoded clip lines up with the original
        errors[kbps] = float(np.mean((out - clip) ** 2))
    assert errors[24] < errors[6] < float(np.mean(clip**2))
