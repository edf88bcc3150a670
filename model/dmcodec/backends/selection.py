"""Choosing a backend: any mode other than fp32 torch is measured against it first.

A speech-LM trained on one replica's tokens must be able to trust another replica's, so a
backend or precision that re-draws too many codes on the calibration set is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..checkpoint import LoadedCodec
from ..executor import WindowExecutor
from . import Backend, create_backend
from .agreement import Agreement, AgreementError, calibration_clips, code_agreement


@dataclass(frozen=True)
class Selection:
    """The backend to serve, and its measured agreement with fp32 torch (None: it is fp32 torch)."""

    backend: Backend
    agreement: Optional[Agreement]


def _encode_clip(backend: Backend, clip: np.ndarray, n_q: int) -> np.ndarray:
    # samples [T] -> wav [1, 1, T] -> codes [n_q, 1, F] -> [n_q, F]
    wav = torch.from_numpy(clip)[None, None].to(backend.device)
    return backend.encode(wav, n_q)[:, 0]


def select_backend(codec: LoadedCodec, name: str = "torch", precision: str = "fp32", *, threads: int = 1,
                   min_agreement: float = 0.999, cache_dir: str | Path | None = None) -> Selection:
    """The backend `name` at `precision`, measured on the calibration clips (each encoded whole,
    with `threads` intra-op threads) against fp32 torch. Raises AgreementError when fewer than
    `min_agreement` of its code positions match."""
    reference = create_backend(codec)
    if (name, precision) == ("torch", "fp32"):
        return Selection(reference, None)
    candidate = create_backend(codec, name, precision, threads, cache_dir)
    clips, n_q = calibration_clips(codec.config.sample_rate), codec.config.n_q
    with WindowExecutor(reference.device.type, threads, workers=1) as executor:
        expected = executor.map(lambda clip: _encode_clip(reference, clip, n_q), clips)
        measured = executor.map(lambda clip: _encode_clip(candidate, clip, n_q), clips)
    agreement = code_agreement(expected, measured)
    if agreement.overall < min_agreement:
        raise AgreementError(
            f"backend {name} at {precision} keeps only {agreement.overall:.4%} of fp32 torch codes on the "
            f"calibration set (per level: {', '.join(f'{x:.3f}' for x in agreement.per_level)}); at least "
            f"{min_agreement:.2%} is required - use fp32, or lower the threshold knowingly")
    return Selection(candidate, agreement)
