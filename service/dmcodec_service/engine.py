"""The model side of the service: loading, warm-up, what the routes ask of the model, and the
batch function the batcher calls. Routes talk to the engine, never to the tokenizer."""

from __future__ import annotations

import time
from typing import Any, Optional, Sequence

import numpy as np

from dmcodec import Tokenizer
from dmcodec.config import CodecConfig
from dmcodec.isolation import run_isolated
from dmcodec.signals import speech_like
from dmcodec.tokens import EncodedAudio
from dmcodec.vocabulary import Vocabulary
from dmcodec.windows import Window, plan_windows

from .jobs import Abandoned, ModelJob
from .settings import ServiceSettings


class Engine:
    """A loaded tokenizer, built from the service settings."""

    def __init__(self, settings: ServiceSettings):
        self.device = settings.resolved_device()
        started = time.monotonic()
        self.tokenizer = Tokenizer.from_pretrained(settings.checkpoint, device=self.device, backend=settings.backend,
                                                   precision=settings.precision, policy=settings.window_policy(),
                                                   min_agreement=settings.min_code_agreement)
        self.codec = self.tokenizer.codec
        self.load_seconds = time.monotonic() - started

    @property
    def config(self) -> CodecConfig:
        return self.codec.config

    def model_info(self) -> dict[str, Any]:
        return self.tokenizer.model_info()

    def windowing_info(self) -> dict[str, Any]:
        return self.tokenizer.windowing_info()

    def levels(self, n_q: Optional[int]) -> int:
        """`n_q` checked against the model (None: all levels); ValueError otherwise."""
        return self.config.levels(n_q)

    def check_codes(self, codes: np.ndarray, num_samples: Optional[int]) -> None:
        self.tokenizer.check_codes(codes, num_samples)

    def windows(self, frames: int) -> list[Window]:
        """The windows a clip of `frames` frames is decoded in (the streamed decode's pieces)."""
        return plan_windows(frames, self.tokenizer.policy)

    @property
    def vocabulary(self) -> Vocabulary:
        """The ids of the token layouts other than codes (dmcodec.layouts)."""
        return self.tokenizer.vocabulary

    def wrap(self, codes: np.ndarray, num_samples: int, layout: str = "codes") -> EncodedAudio:
        """Codes [n_q, frames] of a clip -> its tokens and metadata, to be written in `layout`."""
        return self.tokenizer.wrap(codes, num_samples, layout)

    def warm_up(self) -> None:
        """One encode and decode, so the first request does not pay for lazy initialisation."""
        clip = speech_like(1.0, self.config.sample_rate, seed=0)
        codes = self.tokenizer.encode_arrays([clip])[0]
        self.tokenizer.decode(codes, clip.size)

    def process(self, jobs: Sequence[ModelJob], abandoned: Abandoned) -> list[Any]:
        """Run one group of jobs (equal `group`); results are per-job values or exceptions (one
        bad request fails alone). Requests abandoned meanwhile stop between windows."""
        run = type(jobs[0]).run
        pairs = list(zip(jobs, abandoned))
        return run_isolated(lambda items: run(self.tokenizer, [job for job, _ in items], [gone for _, gone in items]),
                            pairs)

    def close(self) -> None:
        self.tokenizer.close()
