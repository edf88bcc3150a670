"""Training batches: random crops of audio with the teacher features of the same frames.

Which utterances and offsets a step uses is a pure function of (seed, step, rank), so a resumed
run sees exactly the batches an uninterrupted one would have seen, with no sampler state to save.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import soundfile as sf
import torch

from dmcodec.audio import prepare

from ..teachers.store import FeatureStore
from .manifest import Utterance


@dataclass
class Batch:
    """audio [B, 1, T]; lm, speech [B, F, D]; lm_mask, frame_mask [B, F] (False past a clip's end);
    log_f0 [B, F] (natural log of Hz, 0 where unvoiced) and voiced [B, F]: the pitch targets (all
    unvoiced where the store holds none)."""

    audio: torch.Tensor
    lm: torch.Tensor
    lm_mask: torch.Tensor
    speech: torch.Tensor
    frame_mask: torch.Tensor
    log_f0: torch.Tensor
    voiced: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)))


class CropSampler:
    """Args:
        utterances: the training rows (all must have features in `store`).
        store: precomputed teacher features and/or pitch targets, or None for audio-only
            batches. What the store lacks comes as empty teacher tensors [B, F, 0] with every
            frame masked out of the LM loss, and all-unvoiced pitch targets.
        segment_frames: crop length in codec frames (crops start on frame boundaries).
        hop_length, sample_rate: the codec's.
        seed: the run's seed.
    """

    def __init__(self, utterances: list[Utterance], store: FeatureStore | None, segment_frames: int,
                 hop_length: int, sample_rate: int, seed: int):
        missing = [u.id for u in utterances if store is not None and u.id not in store]
        if missing:
            raise ValueError(f"{len(missing)} utterances have no teacher features or pitch targets "
                             f"(e.g. {missing[:3]}); run `dmcodec-train teachers` (or `pitch`) on this manifest")
        if not utterances:
            raise ValueError("no training utterances")
        self.utterances = utterances
        self.store = store
        self.segment_frames = segment_frames
        self.hop = hop_length
        self.sample_rate = sample_rate
        self.seed = seed
        # Longer utterances hold more crops: draw them in proportion to their length.
        lengths = np.array([max(u.duration, 1e-3) for u in utterances])
        self.weights = lengths / lengths.sum()

    def batch(self, step: int, batch_size: int, rank: int = 0) -> Batch:
        rng = np.random.default_rng([self.seed, step, rank])
        picks = rng.choice(len(self.utterances), size=batch_size, p=self.weights)
        items = [self._crop(self.utterances[i], rng) for i in picks]
        return Batch(*(torch.stack(parts) for parts in zip(*items)))

    def _crop(self, utterance: Utterance, rng: np.random.Generator):
        frames = (self.store.frames(utterance.id) if self.store is not None
                  else math.ceil(utterance.duration * self.sample_rate / self.hop))
        start = int(rng.integers(0, max(frames - self.segment_frames, 0) + 1))
        stop = start + self.segment_frames
        audio = np.zeros(self.segment_frames * self.hop, np.float32)
        rate = sf.info(utterance.path).samplerate
        # The crop in the file's own rate; other rates are resampled (LibriSpeech and the
        # synthetic corpus are 16 kHz already, so their crops are read as they are).
        scale = rate / self.sample_rate
        samples, _ = sf.read(utterance.path, start=int(start * self.hop * scale), stop=int(stop * self.hop * scale),
                             dtype="float32", always_2d=True)
        samples = prepare(samples, rate, self.sample_rate)[: len(audio)]
        audio[: len(samples)] = samples
        valid = min(stop, frames) - start
        features = {"lm": torch.zeros(valid, 0), "lm_mask": torch.zeros(valid, dtype=torch.bool),
                    "speech": torch.zeros(valid, 0), "log_f0": torch.zeros(valid),
                    "voiced": torch.zeros(valid, dtype=torch.bool)}
        if self.store is not None:
            features.update(self.store.get(utterance.id, start, stop))
        pad = self.segment_frames - valid
        frame_mask = torch.zeros(self.segment_frames, dtype=torch.bool)
        frame_mask[:valid] = True

        def padded(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t, t.new_zeros(pad, *t.shape[1:])]) if pad else t

        return (torch.from_numpy(audio)[None], padded(features["lm"]), padded(features["lm_mask"]),
                padded(features["speech"]), frame_mask, padded(features["log_f0"]), padded(features["voiced"]))
