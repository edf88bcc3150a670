"""Pitch targets for training: Praat's log-F0 and voicing on the codec's 50 Hz frames, computed
once per utterance and stored beside the teachers' features (or alone, for runs without them).

Layout added to a feature folder:
    pitch-00000.safetensors   per utterance: `<id>/log_f0` [F] fp32 (natural log of Hz, 0 where
                              unvoiced), `<id>/voiced` [F] uint8 (F = the codec's frames)
    pitch.json                the tracker's settings, frame rate, and which shard holds each id
A shard is written to a temporary name and renamed, so an interrupted run resumes at the first
missing shard; the index lists what the shards on disk hold.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from tqdm import tqdm

from dmcodec.audio import load_audio
from dmcodec.checkpoint import write_safetensors

from ..data.manifest import Utterance
from ..files import write_json_atomically
from ..pitch import F0_RANGE_HZ, TIME_STEP_S, frame_pitch
from .store import INDEX, PITCH_INDEX, manifest_shards


def precompute_pitch(manifest: str | Path, out: str | Path, hop_length: int = 320, sample_rate: int = 16000,
                     splits: tuple[str, ...] = ("train", "dev"), shard_size: int = 128,
                     progress: bool = True) -> Path:
    """Pitch targets for every utterance of `splits` in `manifest`; returns `out/pitch.json`.

    Args:
        manifest: the corpus manifest.
        out: a feature folder; it may already hold the teachers' features (their frame rate
            must then be this one) or not exist yet (a pitch-only folder).
        hop_length, sample_rate: the codec's (320 at 16 kHz: 50 Hz frames).
        splits: which rows to cover.
        shard_size: utterances per shard.
    """
    out = Path(out)
    if (out / INDEX).exists():
        teachers = json.loads((out / INDEX).read_text())
        if (teachers["hop_length"], teachers["sample_rate"]) != (hop_length, sample_rate):
            raise ValueError(f"{out}: its teacher features are at hop {teachers['hop_length']} and "
                             f"{teachers['sample_rate']} Hz, not {hop_length} and {sample_rate}")
    out.mkdir(parents=True, exist_ok=True)
    shards = manifest_shards(manifest, splits, shard_size)
    bar = tqdm(total=sum(len(shard) for shard in shards), desc="pitch", unit="utt", disable=not progress)
    names = []
    for number, shard in enumerate(shards):
        names.append(f"pitch-{number:05d}.safetensors")
        if not (out / names[-1]).exists():
            _write_shard(shard, out / names[-1], hop_length, sample_rate)
        bar.update(len(shard))
    bar.close()
    items = {}
    for name in names:
        with safe_open(str(out / name), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (a safetensors handle is not a dict)
                utterance_id, _, field = key.rpartition("/")
                if field == "voiced":
                    items[utterance_id] = {"shard": name, "frames": handle.get_slice(key).get_shape()[0]}
    index = {"tracker": "praat-ac", "f0_range_hz": list(F0_RANGE_HZ), "time_step_s": TIME_STEP_S,
             "frame_rate": sample_rate / hop_length, "hop_length": hop_length, "sample_rate": sample_rate,
             "items": items}
    write_json_atomically(out / PITCH_INDEX, index)
    return out / PITCH_INDEX


def _write_shard(shard: list[Utterance], path: Path, hop_length: int, sample_rate: int) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for utterance in shard:
        audio = load_audio(utterance.path, sample_rate)[0]
        log_f0, voiced = frame_pitch(audio, sample_rate, hop_length, -(-len(audio) // hop_length))
        tensors[f"{utterance.id}/log_f0"] = torch.from_numpy(log_f0)
        tensors[f"{utterance.id}/voiced"] = torch.from_numpy(voiced.astype(np.uint8))
    tmp = path.with_suffix(".tmp")
    write_safetensors(tensors, tmp)
    os.replace(tmp, path)
