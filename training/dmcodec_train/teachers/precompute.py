"""Run the teachers once over a manifest and store their frame-aligned features in shards, so
that training reads features from disk and never runs a teacher.

Layout of the output folder:
    shard-00000.safetensors   per utterance: `<id>/lm` [F, D_lm] fp16, `<id>/lm_mask` [F] uint8,
                              `<id>/speech` [F, D_speech] fp16 (F = the codec's frames)
    shard-00000.json          per utterance: frames, ASR text and word times
    index.json                teachers, dims, layer specs, frame rate, and which shard holds each id
    key.json                  what decides the features (`store.features_key`), written first
    pitch-*.safetensors, pitch.json   the pitch targets (`teachers/pitch.py`), unless pitch=False
A shard is written to a temporary name and renamed, so an interrupted run resumes at the
first missing shard - only under the same key: a folder of other teachers, layers or LM text is
refused rather than completed with features of another choice.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from dmcodec.audio import load_audio
from dmcodec.checkpoint import write_safetensors

from ..data.manifest import Utterance
from ..files import write_json_atomically
from .asr import Recognizer
from .lm import LMTeacher, align_to_frames, transcript_words
from .pitch import precompute_pitch
from .speech import HFSpeechTeacher, WhisperEncoderTeacher
from .store import INDEX, KEY, features_key, manifest_shards


class SpeechTeacher(Protocol):
    name: str
    dim: int
    layers: str

    def features(self, audio: np.ndarray, num_frames: int) -> torch.Tensor: ...


def build_teachers(speech_teacher: str = "whisper", lm_teacher: str | Path | None = None,
                   whisper: str | Path | None = None, device: str = "cpu", speech_layers: str = "average",
                   lm_layers: str = "average") -> tuple[SpeechTeacher, LMTeacher, Recognizer]:
    """The speech teacher, the LM teacher and the ASR that `precompute` takes.

    Args:
        speech_teacher: "whisper" (the Whisper encoder of `whisper`) or a local HuBERT/wav2vec2 folder.
        lm_teacher: a local BERT-style folder (None: the MiniLM wheel).
        whisper: a CTranslate2 Whisper folder for the ASR and the Whisper stand-in (None: tiny.en).
    """
    speech = (WhisperEncoderTeacher(whisper, device, layers=speech_layers) if speech_teacher == "whisper"
              else HFSpeechTeacher(speech_teacher, device, speech_layers))
    recognizer = Recognizer(whisper, device, beam_size=1, compute_type="int8" if device == "cpu" else "default")
    return speech, LMTeacher(lm_teacher, device, lm_layers), recognizer


def precompute(manifest: str | Path, out: str | Path, speech: SpeechTeacher, lm: LMTeacher,
               recognizer: Recognizer, hop_length: int = 320, sample_rate: int = 16000,
               splits: tuple[str, ...] = ("train", "dev"), shard_size: int = 128, progress: bool = True,
               lm_text: str = "transcript", pitch: bool = True) -> Path:
    """Features for every utterance of `splits` in `manifest`; returns the index path.

    lm_text: "transcript" feeds the LM teacher the manifest's transcript (timed by the ASR's
    words), falling back to the ASR's text where a row has none; "asr" always uses the ASR
    text, as the paper does. pitch: also store the pitch targets (cheap beside the teachers).
    """
    if lm_text not in ("transcript", "asr"):
        raise ValueError(f"lm_text must be 'transcript' or 'asr', got {lm_text!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shards = manifest_shards(manifest, splits, shard_size)
    teachers = {"lm": {"name": lm.name, "dim": lm.dim, "layers": lm.layers},
                "speech": {"name": speech.name, "dim": speech.dim, "layers": speech.layers},
                "asr": "faster-whisper", "lm_text": lm_text}
    _claim(out, features_key({"teachers": teachers, "hop_length": hop_length}))
    bar = tqdm(total=sum(len(shard) for shard in shards), desc="teachers", unit="utt", disable=not progress)
    for number, shard in enumerate(shards):
        path = out / f"shard-{number:05d}.safetensors"
        if not path.exists():
            _write_shard(shard, path, speech, lm, recognizer, hop_length, sample_rate, lm_text)
        bar.update(len(shard))
    bar.close()
    items = {}
    for number in range(len(shards)):
        for utterance_id, record in json.loads((out / f"shard-{number:05d}.json").read_text()).items():
            items[utterance_id] = {"shard": f"shard-{number:05d}.safetensors", "frames": record["frames"]}
    index = {
        "frame_rate": sample_rate / hop_length,
        "hop_length": hop_length,
        "sample_rate": sample_rate,
        "teachers": teachers,
        "items": items,
    }
    write_json_atomically(out / INDEX, index)
    if pitch:
        precompute_pitch(manifest, out, hop_length, sample_rate, splits, shard_size, progress)
    return out / INDEX


def _claim(out: Path, key: dict) -> None:
    """Record `key` in `out`, or refuse if the folder already holds features of another key."""
    held = json.loads((out / KEY).read_text()) if (out / KEY).exists() else \
        features_key(json.loads((out / INDEX).read_text())) if (out / INDEX).exists() else None
    if held is not None and held != key:
        raise ValueError(f"{out} holds teacher features of another choice ({json.dumps(held)}); this run asks "
                         f"for {json.dumps(key)}: use another folder")
    (out / KEY).write_text(json.dumps(key, indent=1) + "\n")


def _write_shard(shard: list[Utterance], path: Path, speech: SpeechTeacher, lm: LMTeacher,
                 recognizer: Recognizer, hop_length: int, sample_rate: int, lm_text: str) -> None:
    audios = [load_audio(u.path, sample_rate)[0] for u in shard]
    transcripts = recognizer.transcribe_many(audios, rate=sample_rate)
    tensors: dict[str, torch.Tensor] = {}
    records = {}
    for utterance, audio, (text, words) in zip(shard, audios, transcripts):
        frames = -(-len(audio) // hop_length)
        timed = transcript_words(utterance.transcript, words) if lm_text == "transcript" and \
            utterance.transcript.strip() else words
        lm_features, lm_mask = align_to_frames(timed, lm.word_features([w.text for w in timed]), frames,
                                               sample_rate / hop_length)
        tensors[f"{utterance.id}/lm"] = lm_features.half()
        tensors[f"{utterance.id}/lm_mask"] = lm_mask.to(torch.uint8)
        tensors[f"{utterance.id}/speech"] = speech.features(audio, frames).half()
        records[utterance.id] = {"frames": frames, "asr": text, "words": [asdict(w) for w in words]}
    tmp = path.with_suffix(".tmp")
    write_safetensors({k: v.contiguous() for k, v in tensors.items()}, tmp)
    path.with_suffix(".json").write_text(json.dumps(records) + "\n")
    os.replace(tmp, path)
