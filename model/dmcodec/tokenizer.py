"""Clips of any length, rate and batch composition -> codes that depend on the clip alone.

Floating-point kernels pick their algorithm and reduction order from the tensor shapes, batch
size included: the same clip run alone or beside another differs by ~1e-7, enough to flip
near-tie codes. So a clip's computation always has the same tensor shapes, whatever else is
being encoded: the window plan (`dmcodec.windows`) cuts it by its own length alone, batches
hold windows of one shape padded with silent windows to a fixed size per shape, and every CPU
window runs with pinned intra-op threads (`dmcodec.executor`).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from . import defaults
from .audio import AudioSource, load_audio, prepare
from .backends import Backend
from .backends.agreement import Agreement
from .backends.selection import select_backend
from .batches import clip_rows, stack_padded, unpadded
from .checkpoint import LoadedCodec, load_checkpoint
from .executor import WindowExecutor, available_cores
from .layouts import SEQUENCE_LAYOUTS, check_layout, decode_layout, encode_layout, layout_levels
from .runtime import determinism_configured
from .tokens import EncodedAudio, TokenMetadata
from .vocabulary import Vocabulary
from .windows import Window, WindowPolicy, plan_windows


@dataclass
class _Job:
    clip: int
    window: Window
    data: torch.Tensor  # audio [1, T] or codes [n_q, F]


class Tokenizer:
    """Encode and decode clips with a loaded checkpoint, batch-invariantly.

    Build one with `Tokenizer.from_pretrained`. Close it (or use it as a context manager) to
    stop its worker threads.

    Args:
        codec: a checkpoint from `load_checkpoint`.
        policy: window and batch sizes, threads per window.
        backend, precision: what computes the encoder and decoder (`dmcodec.backends`); fp32
            torch is the reference. `auto` (the default): onnxruntime where its codes equal
            torch's on every calibration position, else torch (the reason is in
            `model_info()`). Any other mode is measured against fp32 torch on the calibration
            set and refused when fewer than `min_agreement` of its codes are equal.
        min_agreement: share of code positions an explicitly chosen backend or precision must
            keep.
    """

    def __init__(self, codec: LoadedCodec, policy: Optional[WindowPolicy] = None, backend: str = defaults.BACKEND,
                 precision: str = defaults.PRECISION, min_agreement: float = defaults.MIN_AGREEMENT):
        self.codec = codec
        self.model = codec.model
        self.policy = policy or WindowPolicy()
        self.device = next(self.model.parameters()).device
        if not determinism_configured(self.device):
            warnings.warn("CUDA may use TF32 or autotuned kernels, which re-draw codes: call "
                          "dmcodec.runtime.configure_determinism(device) before building a tokenizer",
                          RuntimeWarning, stacklevel=2)
        selected = select_backend(codec, backend, precision, threads=self.policy.threads_per_window,
                                  solo_threads=self.policy.solo_threads or available_cores(),
                                  min_agreement=min_agreement)
        self.requested_backend = backend
        self.backend: Backend = selected.backend
        self.agreement: Optional[Agreement] = selected.agreement
        self.fallback = selected.fallback
        # Windows of one length share an encoder call, as many as fit the policy's limits, only
        # where the backend was checked to give each the latent it gets alone (no fixed-shape
        # padding).
        self.dynamic_batches = (selected.batch_invariant and self.device.type == "cpu"
                                and self.policy.batch_mode == "auto")
        self.executor = WindowExecutor(self.device.type, self.policy.threads_per_window, self.policy.workers,
                                       selected.solo_threads)

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path | LoadedCodec | None = None, *, device: str = "cpu",
                        backend: str = defaults.BACKEND, precision: str = defaults.PRECISION,
                        policy: Optional[WindowPolicy] = None,
                        min_agreement: float = defaults.MIN_AGREEMENT) -> Tokenizer:
        """The one way to build a tokenizer.

        Args:
            checkpoint: a checkpoint directory or weights file, or one already loaded; None:
                $DMCODEC_CHECKPOINT, else the trained default bundled in the package.
            device: cpu, cuda, cuda:N.
            backend, precision, policy, min_agreement: as for the class.
        """
        if not isinstance(checkpoint, LoadedCodec):
            checkpoint = load_checkpoint(defaults.resolve_checkpoint(checkpoint), device=device)
        return cls(checkpoint, policy, backend, precision, min_agreement)

    def close(self) -> None:
        self.executor.close()

    def __enter__(self) -> Tokenizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity ---------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.model.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.model.config.hop_length

    @property
    def vocabulary(self) -> Vocabulary:
        """The ids of the layouts other than `codes` (dmcodec.layouts)."""
        return Vocabulary.from_config(self.model.config)

    def model_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.codec.name, "sha256": self.codec.sha256, "backend": self.backend.name,
                                "precision": self.backend.precision, "device": str(self.device)}
        if self.agreement is not None:
            info["code_agreement"] = self.agreement.overall
        if self.requested_backend != self.backend.name:
            info["backend_requested"] = self.requested_backend
        if self.fallback is not None:
            info["backend_fallback"] = self.fallback
        return info

    def windowing_info(self) -> dict[str, Any]:
        frames = self.policy.window_frames
        return {"window_frames": frames, "context_frames": self.policy.context_frames,
                "batch_size": self.policy.batch_size(frames, self.device.type),
                "intra_op_threads": self.policy.threads_per_window if self.executor.pins_threads else 0,
                "solo_threads": self.executor.solo_threads if self.executor.pins_threads else 0,
                "dynamic_batches": self.dynamic_batches}

    # -- batching ---------------------------------------------------------------------------
    def _batches(self, jobs: list[_Job], dim: int, dynamic: bool) -> Iterator[tuple[list[_Job], torch.Tensor]]:
        """(jobs, stacked tensor) for groups of identical shape, stacked along `dim` and padded
        with zero items to the policy's batch size for that shape - or, `dynamic`, up to the
        policy's batch limits and not padded."""
        by_shape: dict[tuple[int, ...], list[_Job]] = defaultdict(list)
        for job in jobs:
            by_shape[tuple(job.data.shape)].append(job)
        for group in by_shape.values():
            frames = group[0].window.outer_frames
            size = (self.policy.items_per_call(frames, self.device.type) if dynamic
                    else self.policy.batch_size(frames, self.device.type))
            for i in range(0, len(group), size):
                chunk = group[i : i + size]
                data = [job.data for job in chunk]
                if not dynamic:
                    data += [torch.zeros_like(data[0])] * (size - len(chunk))
                yield chunk, torch.stack(data, dim=dim).to(self.device)

    def _map(self, jobs: list[_Job], dim: int, compute: Callable[[torch.Tensor, int], np.ndarray],
             abandoned: Optional[Callable[[int], bool]], dynamic: bool = False) -> list[tuple[list[_Job], np.ndarray]]:
        """(jobs, compute(stacked inputs)) for every batch, on the executor; batches whose clips
        are all abandoned by the time their turn comes are skipped."""
        def run(batch: tuple[list[_Job], torch.Tensor], threads: int) -> Optional[np.ndarray]:
            if abandoned is not None and all(abandoned(job.clip) for job in batch[0]):
                return None
            # More threads were verified for one window per call, not for a batch of them.
            return compute(batch[1], threads if len(batch[0]) == 1 else self.policy.threads_per_window)

        batches = list(self._batches(jobs, dim, dynamic))
        outputs = self.executor.map(run, batches)
        return [(chunk, out) for (chunk, _), out in zip(batches, outputs) if out is not None]

    # -- encoding ---------------------------------------------------------------------------
    def encode_arrays(self, clips: Sequence[np.ndarray], n_q: Optional[int] = None,
                      abandoned: Optional[Callable[[int], bool]] = None) -> list[np.ndarray]:
        """Mono float32 clips at the model's rate -> codes [n_q, ceil(T / hop)] int64 each.

        `abandoned(i)` may turn true while this runs (a client left): clip i's remaining windows
        are then skipped, and its codes are incomplete - for the caller to throw away."""
        levels = self.model.config.levels(n_q)
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
        out = [np.zeros((levels, f), dtype=np.int64) for f in frames]
        # wav [B, 1, T] -> codes [n_q, B, F]
        # Only the encoder batches dynamically: the decode path was not checked for it.
        for batch, codes in self._map(jobs, 0, lambda wav, threads: self.backend.encode(wav, levels, threads),
                                      abandoned, self.dynamic_batches):
            for b, job in enumerate(batch):
                out[job.clip][:, job.window.start : job.window.stop] = codes[:, b, job.window.core]
        return out

    def encode(self, source: AudioSource | np.ndarray, sample_rate: Optional[int] = None,
               n_q: Optional[int] = None, layout: str = "codes") -> EncodedAudio:
        """One file, bytes or array ([T] or [T, C] at `sample_rate`) -> `EncodedAudio`, to be
        written in `layout` (dmcodec.layouts)."""
        return self.encode_many([source], sample_rate, n_q, layout)[0]

    def encode_many(self, sources: Sequence[AudioSource | np.ndarray], sample_rate: Optional[int] = None,
                    n_q: Optional[int] = None, layout: str = "codes") -> list[EncodedAudio]:
        clips = [self.load(source, sample_rate) for source in sources]
        codes = self.encode_arrays(clips, layout_levels(layout, n_q))
        return [self.wrap(c, clip.size, layout) for c, clip in zip(codes, clips)]

    def encode_batch(self, wav: torch.Tensor, lengths: Optional[torch.Tensor | Sequence[int]] = None,
                     n_q: Optional[int] = None, pad_value: Optional[int] = None,
                     layout: str = "codes") -> tuple[torch.Tensor, torch.Tensor]:
        """A training loop's batch -> tokens, each clip's exactly as if it were encoded alone.

        Args:
            wav: [B, T] or [B, 1, T] float, at the model's sample rate, on any device.
            lengths: valid samples per clip [B] (default: all T); what lies beyond is ignored.
            n_q: levels to return (default: all; `first` keeps one).
            pad_value: what is written past each clip's end (default: 0 for codes, else the
                vocabulary's pad id).
            layout: `codes`, or a layout of vocabulary ids (dmcodec.layouts).
        Returns:
            tokens: LongTensor on the model's device: codes [B, n_q, F] (F = the longest clip's
                frames); `delay` ids [B, n_q, F + n_q - 1]; `flat` and `first` ids [B, L] (bos,
                ids, eos).
            lengths: LongTensor [B], each clip's length along the last axis (for codes its frames,
                ceil(length / hop_length)).
        """
        encoded = self.encode_arrays(clip_rows(wav, lengths), layout_levels(layout, n_q))
        tokens = [encode_layout(codes, layout, self.vocabulary) for codes in encoded]
        if pad_value is None:
            pad_value = 0 if layout == "codes" else self.vocabulary.pad_token_id
        sizes = torch.tensor([t.shape[-1] for t in tokens], dtype=torch.long, device=self.device)
        return stack_padded(tokens, pad_value, torch.long).to(self.device), sizes

    def decode_batch(self, tokens: torch.Tensor, frame_lengths: Optional[torch.Tensor | Sequence[int]] = None,
                     num_samples: Optional[torch.Tensor | Sequence[int]] = None,
                     layout: str = "codes") -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens as `encode_batch` returns them -> (wav FloatTensor [B, T], lengths LongTensor [B])
        on the model's device, each clip decoded exactly as alone.

        Args:
            tokens: codes [B, n_q, F], or ids in `layout` ([B, n_q, W] for delay, [B, L] for flat
                and first).
            frame_lengths: each clip's length along the last axis (default: all of it; `flat` and
                `first` rows may instead end in pads).
            num_samples: each clip's samples (default: its frames * hop_length); T is the longest,
                and the rest of each row is zeros.
            layout: as for `encode_batch`.
        Raises:
            ValueError (a LayoutError naming the position for ids no codes encode to).
        """
        ndim = 2 if check_layout(layout) in SEQUENCE_LAYOUTS else 3
        if tokens.ndim != ndim:
            raise ValueError(f"expected {layout} tokens of {ndim} dimensions with the batch first, "
                             f"got {tuple(tokens.shape)}")
        rows = unpadded(tokens, frame_lengths)
        samples = [None] * len(rows) if num_samples is None else [int(n) for n in num_samples]
        codes = [decode_layout(row, layout, self.vocabulary) for row in rows]
        audio = self.decode_many(list(zip(codes, samples)))
        out = stack_padded(audio, 0.0, torch.float32)
        return out.to(self.device), torch.tensor([a.size for a in audio], dtype=torch.long, device=self.device)

    def load(self, source: AudioSource | np.ndarray, sample_rate: Optional[int] = None) -> np.ndarray:
        """Any supported input -> mono float32 at the model's rate."""
        if isinstance(source, np.ndarray):
            if sample_rate is None:
                raise ValueError("sample_rate is required for array input")
            return prepare(source, sample_rate, self.sample_rate)
        return load_audio(source, self.sample_rate)[0]

    def metadata(self, codes: np.ndarray, num_samples: int, layout: str = "codes") -> TokenMetadata:
        """Of codes [n_q, F] (as they are: `first` wants them cut to one level), to be written in `layout`."""
        config = self.model.config
        return TokenMetadata(n_q=int(codes.shape[0]), frames=int(codes.shape[1]),
                             codebook_size=config.codebook_size, frame_rate=float(config.frame_rate),
                             sample_rate=config.sample_rate, num_samples=int(num_samples),
                             model_name=self.codec.name, model_sha256=self.codec.sha256,
                             backend=self.backend.name, precision=self.backend.precision,
                             layout=check_layout(layout), **self.vocabulary.token_fields())

    def wrap(self, codes: np.ndarray, num_samples: int, layout: str = "codes") -> EncodedAudio:
        """Codes [n_q, F] of a clip of `num_samples` -> EncodedAudio to be written in `layout`."""
        encoded = EncodedAudio(codes, self.metadata(codes, num_samples), self.model_info(), self.windowing_info())
        return encoded.with_layout(layout)

    # -- decoding ---------------------------------------------------------------------------
    def check_codes(self, codes: np.ndarray, num_samples: Optional[int] = None) -> None:
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

    def decode_many(self, items: Sequence[tuple[np.ndarray, Optional[int]]],
                    abandoned: Optional[Callable[[int], bool]] = None) -> list[np.ndarray]:
        """(codes [n_q, F], num_samples or None) pairs -> float32 audio at the model's rate.

        Each clip is exactly `num_samples` long (F * hop when None). Clips with different
        n_q are decoded in separate batches, like different lengths. `abandoned`: as for
        `encode_arrays`.
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
        for batch, audio in self._map(jobs, 1, self._decode_window_batch, abandoned):
            for b, job in enumerate(batch):
                w = job.window
                out[job.clip][w.start * hop : w.stop * hop] = audio[b, w.core.start * hop : w.core.stop * hop]
        return [clip[:n] for clip, n in zip(out, lengths)]

    def _decode_window_batch(self, codes: torch.Tensor, threads: int) -> np.ndarray:
        # Always the policy's threads: onnxruntime's transposed convolutions sum overlapping
        # outputs in an order that follows the thread split (measured: the audio, not the codes,
        # differs by an ulp), and a stream must equal the whole file whatever the load.
        return self.backend.decode(codes, self.policy.threads_per_window)

    def decode(self, codes: np.ndarray, num_samples: Optional[int] = None) -> np.ndarray:
        return self.decode_many([(codes, num_samples)])[0]

    def decode_window(self, codes: np.ndarray, window: Window) -> np.ndarray:
        """Audio of frames [window.start, window.stop) of the clip `codes` [n_q, F] (a window of
        `plan_windows(F, self.policy)`), computed exactly as `decode_many` computes it: decoding
        the plan's windows one after another and joining them gives the same samples, with
        memory bounded by one window. The caller has checked the codes."""
        piece = torch.from_numpy(np.asarray(codes[:, window.outer_start : window.outer_stop], dtype=np.int64))
        ((_, audio),) = self._map([_Job(0, window, piece)], 1, self._decode_window_batch, None)
        hop = self.hop_length
        return audio[0, window.core.start * hop : window.core.stop * hop]
