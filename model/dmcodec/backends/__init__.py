"""Inference backends: what computes the encoder and decoder of a loaded checkpoint.

`torch` is the reference. `onnxruntime` runs ONNX graphs exported from the same checkpoint
(CPU, or CUDA where its provider is installed). Whatever the backend, the nearest-code search
runs in this package's fp32 quantizer, so codes differ only where the encoder's output does.
Reduced precision is opt-in and checked against fp32 codes (`dmcodec.backends.agreement`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..checkpoint import LoadedCodec

BACKENDS = ("torch", "onnxruntime")
PRECISIONS = {"torch": ("fp32", "tf32", "bf16", "fp16"), "onnxruntime": ("fp32", "int8")}


class Backend(Protocol):
    """`threads`: intra-op threads of the call on CPU (0: the thread's current setting). Whether
    the results depend on it is measured, not assumed (`dmcodec.backends.selection`)."""

    name: str
    precision: str
    device: torch.device

    def latent(self, wav: torch.Tensor, threads: int = 0) -> np.ndarray:
        """Audio [B, 1, T] -> the encoder's output [B, D, ceil(T / hop)] float32."""

    def encode(self, wav: torch.Tensor, n_q: int, threads: int = 0) -> np.ndarray:
        """Audio [B, 1, T] -> codes [n_q, B, ceil(T / hop)] int64."""

    def decode(self, codes: torch.Tensor, threads: int = 0) -> np.ndarray:
        """Codes [n_q, B, F] -> audio [B, F * hop] float32. The caller has checked the codes
        (`Tokenizer.check_codes` runs on every clip before its windows are batched)."""


def create_backend(codec: LoadedCodec, name: str = "torch", precision: str = "fp32", threads: int = 1,
                   cache_dir: str | Path | None = None) -> Backend:
    """The backend `name` at `precision` for a loaded checkpoint (ONNX graphs are exported once
    and cached; see `dmcodec.backends.onnx`). `threads`: intra-op threads of a model call that
    does not ask for its own count."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    if precision not in PRECISIONS[name]:
        raise ValueError(f"backend {name} supports precisions {PRECISIONS[name]}, not {precision!r}")
    if name == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend(codec.model, precision, threads)
    from .onnx import OnnxBackend

    return OnnxBackend(codec, precision, threads, cache_dir)
