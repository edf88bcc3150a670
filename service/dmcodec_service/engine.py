"""The model side of the service: loading, warm-up, and batch functions for the batcher."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from dmcodec import Tokenizer, WindowPolicy
from dmcodec.isolation import run_isolated
from dmcodec.signals import speech_like
from dmcodec.windows import Window

from .settings import ServiceSettings


@dataclass
class DecodeItem:
    codes: np.ndarray  # [n_q, frames] int64
    num_samples: int | None


class Engine:
    """A loaded tokenizer and the two batch operations the batcher calls."""

    def __init__(self, settings: ServiceSettings):
        self.device = settings.resolved_device()
        started = time.monotonic()
        policy = WindowPolicy(window_frames=settings.window_frames, context_frames=settings.context_frames,
                              workers=settings.workers, threads_per_window=settings.threads_per_window,
                              solo_threads=settings.solo_threads)
        self.tokenizer = Tokenizer.from_pretrained(settings.checkpoint, device=self.device, backend=settings.backend,
                                                   precision=settings.precision, policy=policy,
                                                   min_agreement=settings.min_code_agreement)
        self.codec = self.tokenizer.codec
        self.load_seconds = time.monotonic() - started

    @property
    def config(self):
        return self.codec.config

    def model_info(self) -> dict[str, Any]:
        return self.tokenizer.model_info()

    def warm_up(self) -> None:
        """One encode and decode, so the first request does not pay for lazy initialisation."""
        clip = speech_like(1.0, self.config.sample_rate, seed=0)
        codes = self.tokenizer.encode_arrays([clip])[0]
        self.tokenizer.decode(codes, clip.size)

    def process(self, op: str, key: Hashable, payloads: Sequence[Any],
                abandoned: Sequence[Callable[[], bool]]) -> list[Any]:
        """Run one group; results are per-item values or exceptions (one bad request fails alone).
        Requests abandoned meanwhile stop between windows."""
        operations: dict[str, Callable[[Hashable, Any], list[np.ndarray]]] = {
            "encode": self._encode, "decode": self._decode, "decode_window": self._decode_window}
        run = operations[op]
        return run_isolated(lambda items: run(key, items), list(zip(payloads, abandoned)))

    def close(self) -> None:
        self.tokenizer.close()

    def _encode(self, n_q: Hashable, items: Sequence[tuple[np.ndarray, Callable[[], bool]]]) -> list[np.ndarray]:
        assert isinstance(n_q, int)  # the encode route keys jobs by their number of levels
        return self.tokenizer.encode_arrays([clip for clip, _ in items], n_q, lambda i: items[i][1]())

    def _decode_window(self, key: Hashable,
                       items: Sequence[tuple[tuple[np.ndarray, Window], Callable[[], bool]]]) -> list[np.ndarray]:
        return [self.tokenizer.decode_window(codes, window) for (codes, window), _ in items]

    def _decode(self, key: Hashable, items: Sequence[tuple[DecodeItem, Callable[[], bool]]]) -> list[np.ndarray]:
        return self.tokenizer.decode_many([(item.codes, item.num_samples) for item, _ in items],
                                          lambda i: items[i][1]())
