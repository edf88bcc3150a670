"""A training loop's padded batches <-> the per-clip arrays the tokenizer works on."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch


def clip_rows(wav: torch.Tensor, lengths: Optional[torch.Tensor | Sequence[int]]) -> list[np.ndarray]:
    """wav [B, T] or [B, 1, T] -> B float32 clips, clip b cut to lengths[b] samples (default T)."""
    if wav.ndim == 3 and wav.shape[1] == 1:
        wav = wav[:, 0]
    if wav.ndim != 2:
        raise ValueError(f"expected wav [B, T] or [B, 1, T], got {tuple(wav.shape)}")
    array = wav.detach().float().cpu().numpy()
    sizes = [array.shape[1]] * array.shape[0] if lengths is None else [int(n) for n in lengths]
    if len(sizes) != array.shape[0] or not all(0 < n <= array.shape[1] for n in sizes):
        raise ValueError(f"lengths must be {array.shape[0]} values in 1..{array.shape[1]}")
    return [array[row, :n] for row, n in enumerate(sizes)]


def stack_padded(rows: Sequence[np.ndarray], pad_value: float, dtype: torch.dtype) -> torch.Tensor:
    """Arrays [..., L_b] of one leading shape -> [B, ..., max L_b], each row padded on the right."""
    out = torch.full((len(rows), *rows[0].shape[:-1], max(r.shape[-1] for r in rows)), pad_value, dtype=dtype)
    for b, row in enumerate(rows):
        out[b, ..., : row.shape[-1]] = torch.from_numpy(row)
    return out


def unpadded(batch: torch.Tensor, lengths: Optional[torch.Tensor | Sequence[int]]) -> list[np.ndarray]:
    """[B, ..., L] -> B arrays [..., lengths[b]] (default L) on the CPU."""
    array = batch.detach().cpu().numpy()
    sizes = [array.shape[-1]] * array.shape[0] if lengths is None else [int(n) for n in lengths]
    if len(sizes) != array.shape[0]:
        raise ValueError(f"expected {array.shape[0]} lengths, got {len(sizes)}")
    return [array[b, ..., :n] for b, n in enumerate(sizes)]
