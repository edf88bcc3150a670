"""Choosing a backend: any mode other than fp32 torch is measured against it first.

A speech-LM trained on one replica's tokens must be able to trust another replica's, so a
backend or precision that re-draws too many codes on the calibration set is refused. `auto`
takes ONNX Runtime (faster on CPU) where it passes that gate and falls back to fp32 torch,
with the reason, where it does not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..checkpoint import LoadedCodec
from ..executor import WindowExecutor
from . import Backend, create_backend
from .agreement import Agreement, AgreementError, calibration_clips, code_agreement

log = logging.getLogger("dmcodec")


@dataclass(frozen=True)
class Selection:
    """The backend to serve and what was measured to choose it.

    agreement: its codes against fp32 torch on the calibration set (None: it is fp32 torch).
    solo_threads: threads a window running alone may use, verified to give bit-identical codes
        (0: no more than the policy's threads per window).
    fallback: why `auto` did not get ONNX Runtime (None when it did, or when not asked).
    batch_invariant: encoding windows of one length together gives each exactly the codes it
        gets alone, at any batch size (checked bit for bit), so they may share a model call
        without padding to a fixed batch shape.
    """

    backend: Backend
    agreement: Optional[Agreement]
    solo_threads: int = 0
    fallback: Optional[str] = None
    batch_invariant: bool = False


def _encode_clip(backend: Backend, clip: np.ndarray, n_q: int, threads: int) -> np.ndarray:
    # samples [T] -> wav [1, 1, T] -> codes [n_q, 1, F] -> [n_q, F]
    wav = torch.from_numpy(clip)[None, None].to(backend.device)
    return backend.encode(wav, n_q, threads)[:, 0]


def select_backend(codec: LoadedCodec, name: str = "torch", precision: str = "fp32", *, threads: int = 1,
                   solo_threads: int = 0, min_agreement: float = 0.999,
                   cache_dir: str | Path | None = None) -> Selection:
    """The backend `name` (or `auto`) at `precision`, measured on the calibration clips (each
    encoded whole, with `threads` intra-op threads) against fp32 torch. Raises AgreementError
    when fewer than `min_agreement` of its code positions match.

    solo_threads: also try this many threads for a lone window; granted only to a backend that
    claims thread invariance and whose codes at that count equal its codes at `threads` on
    every calibration position."""
    if name == "auto":
        return _auto(codec, precision, threads, solo_threads, min_agreement, cache_dir)
    reference = create_backend(codec)
    if (name, precision) == ("torch", "fp32"):
        return Selection(reference, None)
    candidate = create_backend(codec, name, precision, threads, cache_dir)
    clips, n_q = calibration_clips(codec.config.sample_rate), codec.config.n_q
    with WindowExecutor(reference.device.type, threads, workers=1) as executor:
        expected = executor.map(lambda clip, _: _encode_clip(reference, clip, n_q, 0), clips)
        measured = executor.map(lambda clip, _: _encode_clip(candidate, clip, n_q, threads), clips)
        agreement = code_agreement(expected, measured)
        if agreement.overall < min_agreement:
            raise AgreementError(
                f"backend {name} at {precision} keeps only {agreement.overall:.4%} of fp32 torch codes on the "
                f"calibration set (per level: {', '.join(f'{x:.3f}' for x in agreement.per_level)}); at least "
                f"{min_agreement:.2%} is required - use fp32, or lower the threshold knowingly")
        # The invariance checks only for a backend that passed, and only where they can hold.
        granted, invariant = 0, False
        if candidate.thread_invariant and reference.device.type == "cpu":
            if solo_threads > threads:
                solo = executor.map(lambda clip, _: _encode_clip(candidate, clip, n_q, solo_threads), clips)
                if all(np.array_equal(a, b) for a, b in zip(measured, solo)):
                    granted = solo_threads
                else:
                    log.warning("backend %s gives other codes at %d threads than at %d: lone windows keep %d",
                                name, solo_threads, threads, threads)
            rate = codec.config.sample_rate
            invariant = executor.map(lambda _, __: _batch_invariant(candidate, clips, n_q, threads, rate), [None])[0]
    return Selection(candidate, agreement, granted, batch_invariant=invariant)


def _batch_invariant(backend: Backend, clips: list[np.ndarray], n_q: int, threads: int, sample_rate: int,
                     seconds: float = 0.5) -> bool:
    """Whether half-second crops of the calibration clips get the same codes alone as in
    batches of 3 and of 8 (torch's kernels fail this: FINDINGS measured 0.4% of codes)."""
    size = int(seconds * sample_rate)
    crops = np.stack([clip[i * size : (i + 1) * size] for clip in clips for i in range(2)])[:8]
    wav = torch.from_numpy(crops)[:, None]  # [8, 1, T]
    alone = [backend.encode(wav[i : i + 1], n_q, threads)[:, 0] for i in range(len(crops))]
    for batch in (3, 8):
        together = backend.encode(wav[:batch], n_q, threads)  # [n_q, B, F]
        if not all(np.array_equal(together[:, i], alone[i]) for i in range(batch)):
            log.warning("backend %s gives other codes in a batch than alone: windows run one by one", backend.name)
            return False
    return True


def _auto(codec: LoadedCodec, precision: str, threads: int, solo_threads: int, min_agreement: float,
          cache_dir: str | Path | None) -> Selection:
    device = next(codec.model.parameters()).device
    if device.type != "cpu" or precision != "fp32":
        # On a GPU torch is the fast path; reduced precisions are opt-in per backend.
        return select_backend(codec, "torch", precision, threads=threads, min_agreement=min_agreement)
    try:
        return select_backend(codec, "onnxruntime", "fp32", threads=threads, solo_threads=solo_threads,
                              min_agreement=min_agreement, cache_dir=cache_dir)
    except AgreementError as err:
        reason = str(err)
    except ImportError as err:
        reason = f"onnxruntime is not installed ({err.name}); pip install 'dmcodec[onnx]'"
    except Exception as err:  # any export or session failure leaves torch, which always works
        reason = f"onnxruntime failed to start: {type(err).__name__}: {err}"
    log.warning("backend auto: serving fp32 torch instead of onnxruntime: %s", reason)
    return replace(select_backend(codec, "torch", "fp32", threads=threads), fallback=reason)
