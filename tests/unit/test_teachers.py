"""Distillation teachers: word-time alignment, the LM teacher's layer average, speech teachers
(a tiny random HuBERT and wav2vec2 saved by the test, and the bundled Whisper encoder), and
the precomputed feature shards."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from dmcodec.signals import speech_like
from dmcodec_train.data.manifest import read_manifest
from dmcodec_train.teachers.asr import Word
from dmcodec_train.teachers.lm import LMTeacher, align_to_frames, transcript_words
from dmcodec_train.teachers.speech import HFSpeechTeacher, WhisperEncoderTeacher, to_frames
from dmcodec_train.teachers.store import FeatureStore


def test_alignment_places_each_word_on_the_frames_where_it_is_spoken():
    # Three words at known times on a 1-second clip at 50 Hz (frame f spans [f, f+1) * 20 ms).
    words = [Word("the", 0.10, 0.30), Word("red", 0.30, 0.52), Word("box", 0.70, 0.95)]
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    aligned, mask = align_to_frames(words, features, 50, 50.0)
    centres = (np.arange(50) + 0.5) / 50
    for f, t in enumerate(centres):
        expected = 0 if 0.10 <= t < 0.30 else 1 if 0.30 <= t < 0.52 else 2 if 0.70 <= t < 0.95 else None
        if expected is None:
            assert not mask[f] and aligned[f].abs().sum() == 0, f
        else:
            assert mask[f] and torch.equal(aligned[f], features[expected]), f
    assert int(mask.sum()) == 10 + 11 + 12  # frames 5-14, 15-25, 35-46


@pytest.fixture(scope="module")
def lm_teacher():
    return LMTeacher()


def test_lm_teacher_averages_all_hidden_layers_per_word(lm_teacher):
    words = ["The", "photosynthesis", "ship"]
    features = lm_teacher.word_features(words)
    assert features.shape == (3, 384) == (3, lm_teacher.dim)
    encoded = lm_teacher.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        hidden = lm_teacher.model(**encoded, output_hidden_states=True).hidden_states
    assert len(hidden) == 7  # embeddings + 6 layers of MiniLM-L6; the layers are averaged
    mean = torch.stack(hidden[1:]).mean(0)[0]
    pieces = [i for i, w in enumerate(encoded.word_ids(0)) if w == 1]
    assert len(pieces) > 1  # a word of several pieces: their mean
    assert torch.allclose(features[1], mean[pieces].mean(0), atol=1e-5)
    # Contextual: the same word in another sentence gets another feature.
    other = lm_teacher.word_features(["A", "big", "ship"])
    assert not torch.allclose(features[2], other[2], atol=1e-3)


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2"])
def test_any_local_hf_speech_model_is_a_teacher(kind, tmp_path):
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

    config_cls, model_cls = (HubertConfig, HubertModel) if kind == "hubert" else (Wav2Vec2Config, Wav2Vec2Model)
    config = config_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    torch.manual_seed(0)
    model_cls(config).save_pretrained(tmp_path / kind)
    teacher = HFSpeechTeacher(tmp_path / kind)
    audio = speech_like(1.3, 16000, seed=2)
    frames = -(-len(audio) // 320)
    features = teacher.features(audio, frames)
    assert features.shape == (frames, 32) and teacher.dim == 32
    with torch.no_grad():
        hidden = teacher.model(torch.from_numpy(audio)[None], output_hidden_states=True).hidden_states
    native = torch.stack(hidden[1:]).mean(0)[0]
    assert abs(native.shape[0] - frames) <= 2  # HuBERT/wav2vec2 run at 50 Hz too
    assert torch.allclose(features.mean(0), native.mean(0), atol=0.05)


def test_frame_resampling_keeps_values_when_counts_match_and_interpolates_otherwise():
    x = torch.arange(10.0)[:, None].repeat(1, 3)
    assert torch.equal(to_frames(x, 10), x)
    y = to_frames(x, 20)
    assert y.shape == (20, 3) and y[0, 0] == 0 and y[-1, 0] == 9 and torch.all(y[1:, 0] >= y[:-1, 0])


def test_whisper_encoder_stand_in_gives_50hz_features():
    teacher = WhisperEncoderTeacher()
    audio = speech_like(2.5, 16000, seed=4)
    features = teacher.features(audio, 125)
    assert features.shape == (125, teacher.dim) == (125, 384)
    assert features.std() > 0.05
    # Padding-free windows: the first second's features do not depend on what follows.
    head = teacher.features(audio[:16000], 50)
    assert torch.corrcoef(torch.stack([head.flatten(), features[:50].flatten()]))[0, 1] > 0.5


def test_precomputed_shards_hold_aligned_features_for_every_utterance(train_corpus):
    manifest, features = train_corpus
    store = FeatureStore(features)
    assert store.dims == {"lm": 384, "speech": 384}
    for utterance in read_manifest(manifest):
        frames = store.index["items"][utterance.id]["frames"]
        assert frames == -(-round(utterance.duration * 16000) // 320)
        item = store.get(utterance.id)
        assert item["lm"].shape == (frames, 384) and item["speech"].shape == (frames, 384)
        # Speech is mostly words: most frames carry an LM feature, silence at the ends does not.
        assert 0.3 < item["lm_mask"].float().mean() <= 1.0
        assert not item["lm_mask"][0] or not item["lm_mask"][-1] or item["lm_mask"].all()
    asr = {}
    for shard in sorted(features.glob("shard-*.json")):
        asr.update({k: v["asr"] for k, v in json.loads(shard.read_text()).items()})
    assert sum(bool(text) for text in asr.values()) == len(asr)
    part = store.get(utterance.id, 5, 15)
    assert torch.equal(part["speech"], store.get(utterance.id)["speech"][5:15])
    # The pitch targets sit beside the teachers' features, on the same frames.
    assert store.has_pitch and store.pitch["items"][utterance.id]["frames"] == store.frames(utterance.id)
    assert torch.equal(part["voiced"], store.get(utterance.id)["voiced"][5:15])
    voiced = torch.cat([store.get(u.id)["voiced"] for u in read_manifest(manifest)])
    assert 0.2 < voiced.float().mean() < 0.9  # speech: voiced vowels, unvoiced consonants and pauses


def test_transcript_words_take_their_times_from_the_asr():
    recognised = [Word("Where", 0.0, 0.3), Word("did", 0.3, 0.5), Word("race", 0.5, 0.9),
                  Word("carry", 0.9, 1.3), Word("apples?", 1.5, 2.0)]
    timed = transcript_words("Where did Grace carry a basket of apples?", recognised)
    assert [w.text for w in timed] == "Where did Grace carry a basket of apples?".split()
    assert (timed[0].start, timed[0].end) == (0.0, 0.3) and (timed[3].start, timed[3].end) == (0.9, 1.3)
    assert (timed[2].start, timed[2].end) == (0.5, 0.9)  # misrecognised word: the gap between neighbours
    # "a basket of" share the gap between "carry" (ends 1.3) and "apples" (starts 1.5).
    assert [round(w.start, 4) for w in timed[4:7]] == [1.3, 1.3667, 1.4333] and timed[7].start == 1.5
    assert all(w.start == w.end == 0 for w in transcript_words("no speech heard", []))


def test_transcripts_are_the_same_in_every_run_even_when_whisper_samples(train_corpus):
    # Reversed speech makes Whisper's beam decode look wrong, so it falls back to sampling (at
    # temperatures up to 1.0): unseeded, such a clip reads differently in each run, and so
    # would the evaluation's WER. Two recognisers stand for two runs.
    from dmcodec.audio import load_audio
    from dmcodec_train.teachers.asr import Recognizer

    manifest, _ = train_corpus
    longest = max((u for u in read_manifest(manifest) if u.speaker == "espeak:en-us+m1"), key=lambda u: u.duration)
    clip = load_audio(longest.path, 16000)[0][::-1].copy()

    def run() -> tuple[list[float], str, str]:
        recognizer = Recognizer(threads=2)
        segments = list(recognizer.model.transcribe(clip, language="en", condition_on_previous_text=False)[0])
        return [s.temperature for s in segments], " ".join(s.text for s in segments), recognizer.transcribe(clip)[0]

    first = run()
    assert max(first[0], default=0.0) > 0, "Whisper did not sample on this clip"
    assert run() == first


def test_loading_whisper_keeps_the_processs_torch_thread_count():
    # CTranslate2 sets the process's OpenMP thread count to its own: a trainer or sweep held to
    # one thread ran torch on every core after its first scoring pass (4x slower steps).
    # (Only once torch has run a parallel region, as a trainer has, does CTranslate2's count stick.)
    probe = ("import torch; torch.set_num_threads(1); torch.randn(1 << 20).sum(); "
             "from dmcodec_train.teachers.asr import Recognizer; Recognizer(); print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}, check=True)
    assert out.stdout.split()[-1] == "1"
