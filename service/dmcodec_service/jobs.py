"""The model work the batcher runs, one type per kind: what it carries, which jobs may share a
model call (its `group`), and how a group runs on the tokenizer.

A ValueError from `run` is the request's fault (audio or tokens the model cannot take): it is
answered with 422 and the job's `error_code`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Hashable, Optional, Protocol, Sequence, Union

import numpy as np

from dmcodec import Tokenizer
from dmcodec.windows import Window

Abandoned = Sequence[Callable[[], bool]]  # abandoned[i]() turns true once job i's result is unwanted


class ModelJob(Protocol):
    kind: ClassVar[str]  # the `op` label of the metrics
    error_code: ClassVar[str]

    @property
    def group(self) -> Hashable:
        """Jobs with equal groups run in one call of `run`."""

    @staticmethod
    def run(tokenizer: Tokenizer, jobs: Sequence, abandoned: Abandoned) -> list[np.ndarray]:
        """One result per job, in order."""


@dataclass(eq=False)
class EncodeJob:
    samples: np.ndarray  # [T] mono float32 at the model's rate
    n_q: int

    kind: ClassVar[str] = "encode"
    error_code: ClassVar[str] = "invalid_audio"

    @property
    def group(self) -> Hashable:
        return (EncodeJob, self.n_q)

    @staticmethod
    def run(tokenizer: Tokenizer, jobs: Sequence[EncodeJob], abandoned: Abandoned) -> list[np.ndarray]:
        # -> codes [n_q, frames] per job
        return tokenizer.encode_arrays([job.samples for job in jobs], jobs[0].n_q, lambda i: abandoned[i]())


@dataclass(eq=False)
class DecodeJob:
    codes: np.ndarray  # [n_q, frames] int64, checked against the model
    num_samples: Optional[int]

    kind: ClassVar[str] = "decode"
    error_code: ClassVar[str] = "invalid_tokens"

    @property
    def group(self) -> Hashable:
        return (DecodeJob, self.codes.shape[0])

    @staticmethod
    def run(tokenizer: Tokenizer, jobs: Sequence[DecodeJob], abandoned: Abandoned) -> list[np.ndarray]:
        # -> audio [num_samples] float32 per job
        return tokenizer.decode_many([(job.codes, job.num_samples) for job in jobs], lambda i: abandoned[i]())


@dataclass(eq=False)
class DecodeWindowJob:
    """One window of a streamed decode."""

    codes: np.ndarray  # [n_q, frames] of the whole clip, checked against the model
    window: Window

    kind: ClassVar[str] = "decode_window"
    error_code: ClassVar[str] = "invalid_tokens"

    @property
    def group(self) -> Hashable:
        return (DecodeWindowJob, self.codes.shape[0], self.window.outer_frames)

    @staticmethod
    def run(tokenizer: Tokenizer, jobs: Sequence[DecodeWindowJob], abandoned: Abandoned) -> list[np.ndarray]:
        # -> audio [window frames * hop] float32 per job
        return [tokenizer.decode_window(job.codes, job.window) for job in jobs]


AnyJob = Union[EncodeJob, DecodeJob, DecodeWindowJob]
