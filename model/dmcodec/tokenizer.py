"""Clips of any length, rate and batch composition -> codes that depend on the clip alone.

Floating-point kernels (convolutions, LSTMs, matmuls) pick their algorithm and reduction
order from the tensor shapes, batch size included: the same clip run alone or beside another
differs by ~1e-7, enough to flip near-tie codes. So the rule here is that a clip's
computation always has the same tensor shapes, whatever else is being encoded:

1. Windows. A clip of up to `window_frames` frames is encoded in one piece. A longer one is
   cut into cores of `window_frames - 2 * context_frames` frames, each encoded with up to
   `context_frames` of real neighbouring audio on both sides, whose codes are then dropped.
   Memory is bounded by the window, whatever the clip's length, and the geometry is a
   function of the clip alone.
2. Batch shapes. In `single` mode (the CPU default) every window runs alone: on CPU this is
   as fast per second of audio as batching. In `fixed` mode (the GPU default) windows of
   exactly equal length run together in batches padded with silent windows to one fixed size
   per length, so the batch shape never depends on the traffic. No padding ever enters a
   window itself.
3. Threads. CPU kernels also split their work by the intra-op thread count (1 vs 2 threads
   changed 0.7% of codes here), so on CPU every window is computed with exactly
   `threads_per_window` threads, and `workers` windows run side by side. Codes then do not
   depend on the machine's core count either; throughput scales with cores.
Decoding uses the same windows over frames.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .audio import AudioSource, load_audio, prepare
from .backends import Backend, create_backend
from .backends.agreement import AgreementError, calibration_clips, code_agreement
from .checkpoint import LoadedCodec


@dataclass(frozen=True)
class WindowPolicy:
    """How audio is cut and batched.

    Args:
        window_frames: the longest piece encoded at once (50 frames = 1 s at 16 kHz).
        context_frames: frames of real audio on each side of a core, encoded and dropped.
        batch_mode: `single`, `fixed` or `auto` (single on CPU, fixed on GPU); see above.
        threads_per_window: intra-op threads of each CPU window - part of what defines the codes.
        workers: CPU windows computed in parallel (0: available cores / threads_per_window).
        max_batch_items: windows per model call in `fixed` mode.
        max_batch_frames: total frames per model call in `fixed` mode (bounds memory).
    """

    window_frames: int = 1000
    context_frames: int = 50
    batch_mode: str = "auto"
    threads_per_window: int = 1
    workers: int = 0
    max_batch_items: int = 8
    max_batch_frames: int = 4000

    def __post_init__(self) -> None:
        if self.context_frames < 0 or self.window_frames <= 2 * self.context_frames:
            raise ValueError("window_frames must exceed 2 * context_frames >= 0")
        if self.max_batch_items < 1 or self.max_batch_frames < self.window_frames:
            raise ValueError("max_batch_items must be >= 1 and max_batch_frames >= window_frames")
        if self.workers < 0 or self.threads_per_window < 1:
            raise ValueError("workers must be >= 0 and threads_per_window >= 1")
        if self.batch_mode not in ("auto", "single", "fixed"):
            raise ValueError(f"batch_mode must be auto, single or fixed, got {self.batch_mode!r}")

    def batch_size(self, window_frames: int, device: torch.device) -> int:
        """Windows per model call for windows of this length (padded up to it in fixed mode)."""
        mode = self.batch_mode
        if mode == "auto":
            mode = "single" if device.type == "cpu" else "fixed"
        if mode == "single":
            return 1
        return max(1, min(self.max_batch_items, self.max_batch_frames // window_frames))


@dataclass(frozen=True)
class Window:
    """Frames [start, stop) of one clip, computed from frames [outer_start, outer_stop)."""

    start: int
    stop: int
    outer_start: int
    outer_stop: int


def plan_windows(num_frames: int, policy: WindowPolicy) -> list[Window]:
    if num_frames <= policy.window_frames:
        return [Window(0, num_frames, 0, num_frames)]
    core = policy.window_frames - 2 * policy.context_frames
    windows = []
    for start in range(0, num_frames, core):
        stop = min(start + core, num_frames)
        windows.append(Window(start, stop, max(0, start - policy.context_frames),
                              min(num_frames, stop + policy.context_frames)))
    return windows


@dataclass
class EncodedAudio:
    """Codes for one clip and everything needed to decode or cite them."""

    codes: np.ndarray  # [n_q, frames] int64
    sample_rate: int
    num_samples: int
    frame_rate: float
    codebook_size: int
    model: dict[str, Any]
    windowing: dict[str, int]

    @property
    def n_q(self) -> int:
        return int(self.codes.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate

    def to_json(self) -> dict[str, Any]:
        return {
            "codes": self.codes.tolist(),
            "n_q": self.n_q,
            "frames": int(self.codes.shape[1]),
            "codebook_size": self.codebook_size,
            "frame_rate": self.frame_rate,
            "sample_rate": self.sample_rate,
            "num_samples": self.num_samples,
            "duration_s": self.duration_s,
            "model": self.model,
            "windowing": self.windowing,
        }


@dataclass
class _Job:
    clip: int
    window: Window
    data: torch.Tensor  # audio [1, T] or codes [n_q, F]


class Tokenizer:
    """Encode and decode clips with a loaded checkpoint, batch-invariantly.

    Args:
        codec: a checkpoint from `load_checkpoint`.
        policy: window and batch sizes.
        backend, precision: what computes the encoder and decoder (`dmcodec.backends`); fp32
            torch is the reference. Any other mode is measured against it on a calibration set
            first and refused when fewer than `min_agreement` of its codes are equal.
        min_agreement: share of code positions that must match fp32 torch.
    """

    def __init__(self, codec: LoadedCodec, policy: WindowPolicy | None = None, backend: str = "torch",
                 precision: str = "fp32", min_agreement: float = 0.999):
        self.codec = codec
        self.model = codec.model
        self.policy = policy or WindowPolicy()
        self.device = next(self.model.parameters()).device
        if self.device.type == "cuda":
            # fp32 means fp32: TF32 convolutions/matmuls and autotuned kernels would re-draw
            # codes with the hardware generation or the run.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        workers = self.policy.workers or max(1, len(os.sched_getaffinity(0)) // self.policy.threads_per_window)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="dmcodec-window") \
            if self.device.type == "cpu" else None
        self._threads_lock = threading.Lock()
        self._active_calls = 0
        self._saved_threads = torch.get_num_threads()
        self.backend: Backend = create_backend(codec, "torch")
        self.agreement = None
        if (backend, precision) != ("torch", "fp32"):
            self._switch_backend(create_backend(codec, backend, precision, self.policy.threads_per_window),
                                 min_agreement)

    def _switch_backend(self, candidate: Backend, min_agreement: float) -> None:
        """Measure `candidate` against fp32 torch on the calibration clips; adopt it or refuse."""
        clips = calibration_clips(self.sample_rate)
        reference = self.encode_arrays(clips)
        self.backend = candidate
        self.agreement = code_agreement(reference, self.encode_arrays(clips))
        if self.agreement.overall < min_agreement:
            raise AgreementError(
                f"backend {candidate.name} at {candidate.precision} keeps only {self.agreement.overall:.4%} of "
                f"fp32 torch codes on the calibration set (per level: "
                f"{', '.join(f'{x:.3f}' for x in self.agreement.per_level)}); at least {min_agreement:.2%} "
                "is required - use fp32, or lower the threshold knowingly")

    # -- identity ---------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.model.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.model.config.hop_length

    def model_info(self) -> dict[str, Any]:
        info = {"name": self.codec.name, "sha256": self.codec.sha256,
                "backend": self.backend.name, "precision": self.backend.precision, "device": str(self.device)}
        if self.agreement is not None:
            info["code_agreement"] = self.agreement.overall
        return info

    def windowing_info(self) -> dict[str, Any]:
        frames = self.policy.window_frames
        return {"window_frames": frames, "context_frames": self.policy.context_frames,
                "batch_size": self.policy.batch_size(frames, self.device),
                "intra_op_threads": self.policy.threads_per_window if self._pool else 0}

    # -- batching ---------------------------------------------------------------------------
    def _batches(self, jobs: list[_Job], dim: int) -> Iterator[tuple[list[_Job], torch.Tensor]]:
        """(jobs, stacked tensor) for groups of identical shape, stacked along `dim` and padded
        with zero items to the policy's batch size for that shape."""
        by_shape: dict[tuple[int, ...], list[_Job]] = defaultdict(list)
        for job in jobs:
            by_shape[tuple(job.data.shape)].append(job)
        for group in by_shape.values():
            size = self.policy.batch_size(group[0].window.outer_stop - group[0].window.outer_start, self.device)
            for i in range(0, len(group), size):
                chunk = group[i : i + size]
                data = [job.data for job in chunk]
                data += [torch.zeros_like(data[0])] * (size - len(chunk))
                yield chunk, torch.stack(data, dim=dim).to(self.device)

    @contextlib.contextmanager
    def _fixed_threads(self) -> Iterator[None]:
        """torch's thread count is process-wide: set it to `threads_per_window` while any call
        of this tokenizer runs (calls may overlap, e.g. in the service); restore it after the last."""
        with self._threads_lock:
            if self._active_calls == 0:
                self._saved_threads = torch.get_num_threads()
                torch.set_num_threads(self.policy.threads_per_window)
            self._active_calls += 1
        try:
            yield
        finally:
            with self._threads_lock:
                self._active_calls -= 1
                if self._active_calls == 0:
                    torch.set_num_threads(self._saved_threads)

    def _map(self, jobs: list[_Job], dim: int, compute) -> list[tuple[list[_Job], torch.Tensor]]:
        """(jobs, compute(stacked inputs)) for every batch. On CPU the batches run on the worker
        pool with `threads_per_window` intra-op threads each. The thread count is process-wide in torch: other
        torch work running in this process meanwhile also runs single-threaded."""
        batches = list(self._batches(jobs, dim))
        if self._pool is None:
            return [(chunk, compute(data)) for chunk, data in batches]
        with self._fixed_threads():
            outputs = list(self._pool.map(lambda batch: compute(batch[1]), batches))
        return [(chunk, out) for (chunk, _), out in zip(batches, outputs)]

    # -- encoding ---------------------------------------------------------------------------
    def encode_arrays(self, clips: Sequence[np.ndarray], n_q: int | None = None) -> list[np.ndarray]:
        """Mono float32 clips at the model's rate -> codes [n_q, ceil(T / hop)] each."""
        hop = self.hop_length
        jobs, frames = [], []
        for index, clip in enumerate(clips):
            if clip.ndim != 1 or clip.size == 0:
                raise ValueError(f"clip {index}: expected non-empty mono samples, got shape {clip.shape}")
            audio = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))
            frames.append(self.model.num_frames(audio.numel()))
            for window in plan_windows(frames[-1], self.policy):
                piece = audio[window.outer_start * hop : window.outer_stop * hop]
                jobs.append(_Job(index, window, piece[None]))
        n_q = n_q or self.model.config.n_q
        out = [np.zeros((n_q, f), dtype=np.int64) for f in frames]
        # wav [B, 1, T] -> codes [n_q, B, F]
        for batch, codes in self._map(jobs, 0, lambda wav: self.backend.encode(wav, n_q)):
            for b, job in enumerate(batch):
                w = job.window
                out[job.clip][:, w.start : w.stop] = codes[:, b, w.start - w.outer_start : w.stop - w.outer_start]
        return out

    def encode(self, source: AudioSource | np.ndarray, sample_rate: int | None = None,
               n_q: int | None = None) -> EncodedAudio:
        """One file, bytes or array ([T] or [T, C] at `sample_rate`) -> `EncodedAudio`."""
        return self.encode_many([source], sample_rate, n_q)[0]

    def encode_many(self, sources: Sequence[AudioSource | np.ndarray], sample_rate: int | None = None,
                    n_q: int | None = None) -> list[EncodedAudio]:
        clips = [self.load(source, sample_rate) for source in sources]
        codes = self.encode_arrays(clips, n_q)
        return [self.wrap(c, clip.size) for c, clip in zip(codes, clips)]

    def load(self, source: AudioSource | np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """Any supported input -> mono float32 at the model's rate."""
        if isinstance(source, np.ndarray):
            if sample_rate is None:
                raise ValueError("sample_rate is required for array input")
            return prepare(source, sample_rate, self.sample_rate)
        return load_audio(source, self.sample_rate)[0]

    def wrap(self, codes: np.ndarray, num_samples: int) -> EncodedAudio:
        config = self.model.config
        return EncodedAudio(codes=codes, sample_rate=config.sample_rate, num_samples=int(num_samples),
                            frame_rate=config.frame_rate, codebook_size=config.codebook_size,
                            model=self.model_info(), windowing=self.windowing_info())

    # -- decoding ---------------------------------------------------------------------------
    def check_codes(self, codes: np.ndarray, num_samples: int | None = None) -> None:
        """Raise ValueError unless codes [n_q, F] fit this model (and `num_samples`, if given)."""
        codes = np.asarray(codes)
        if codes.ndim != 2:
            raise ValueError(f"expected codes of shape [n_q, frames], got {codes.shape}")
        self.model.check_codes(torch.from_numpy(codes.astype(np.int64, copy=False))[:, None])
        if num_samples is not None:
            frames = codes.shape[1]
            if not (frames - 1) * self.hop_length < num_samples <= frames * self.hop_length:
                raise ValueError(f"num_samples={num_samples} does not fit {frames} frames "
                                 f"(expected {(frames - 1) * self.hop_length + 1}..{frames * self.hop_length})")

    def decode_many(self, items: Sequence[tuple[np.ndarray, int | None]]) -> list[np.ndarray]:
        """(codes [n_q, F], num_samples or None) pairs -> float32 audio at the model's rate.

        Each clip is exactly `num_samples` long (F * hop when None). Clips with different
        n_q are decoded in separate batches, like different lengths.
        """
        hop = self.hop_length
        jobs, lengths = [], []
        for index, (codes, num_samples) in enumerate(items):
            self.check_codes(codes, num_samples)
            codes_t = torch.from_numpy(np.asarray(codes, dtype=np.int64))
            lengths.append(num_samples or codes_t.shape[1] * hop)
            for window in plan_windows(codes_t.shape[1], self.policy):
                jobs.append(_Job(index, window, codes_t[:, window.outer_start : window.outer_stop]))
        out = [np.zeros(-(-n // hop) * hop, dtype=np.float32) for n in lengths]
        # codes [n_q, B, F] -> audio [B, F * hop]
        for batch, audio in self._map(jobs, 1, self.backend.decode):
            for b, job in enumerate(batch):
                w = job.window
                out[job.clip][w.start * hop : w.stop * hop] = audio[b, (w.start - w.outer_start) * hop :
                                                                    (w.stop - w.outer_start) * hop]
        return [clip[:n] for clip, n in zip(out, lengths)]

    def decode(self, codes: np.ndarray, num_samples: int | None = None) -> np.ndarray:
        return self.decode_many([(codes, num_samples)])[0]
