"""The reference backend: the PyTorch model, fp32 unless a reduced precision is asked for."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from ..executor import torch_threads
from ..model import DMCodec


class TorchBackend:
    """Args:
        model: a model prepared with `for_inference()`.
        precision: fp32; on CUDA also tf32 (TF32 matmuls/convs), bf16 or fp16 (autocast of the
            encoder and decoder). The quantizer always searches codes in fp32.
    """

    name = "torch"

    def __init__(self, model: DMCodec, precision: str = "fp32", threads: int = 1):
        self.model = model
        self.precision = precision
        self.threads = threads
        self.device = next(model.parameters()).device
        if precision != "fp32" and self.device.type != "cuda":
            raise ValueError(f"precision {precision} needs a CUDA device for the torch backend")

    @contextlib.contextmanager
    def _precision(self):
        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            with torch.autocast("cuda", dtype=dtype):
                yield
        elif self.precision == "tf32":
            # Process-wide flags, on for this call only: `configure_determinism` leaves them off,
            # so the fp32 codes of other calls never see TF32.
            previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
            try:
                yield
            finally:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous
        else:
            yield

    def _threads(self, threads: int):
        return torch_threads(threads if self.device.type == "cpu" else 0)

    @torch.inference_mode()
    def _latent(self, wav: torch.Tensor, threads: int) -> torch.Tensor:
        # wav [B, 1, T] -> latent [B, D, F] fp32
        with self._threads(threads), self._precision():
            return self.model.encoder(wav).float()

    def latent(self, wav: torch.Tensor, threads: int = 0) -> np.ndarray:
        return self._latent(wav, threads).cpu().numpy()

    @torch.inference_mode()
    def encode(self, wav: torch.Tensor, n_q: int, threads: int = 0) -> np.ndarray:
        # wav [B, 1, T] -> latent [B, D, F] -> codes [n_q, B, F]
        latent = self._latent(wav, threads)
        with self._threads(self.threads):  # the code search at one fixed count, whatever the encoder had
            return self.model.quantizer.encode(latent, n_q).cpu().numpy()

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor, threads: int = 0) -> np.ndarray:
        # codes [n_q, B, F] -> latent [B, D, F] -> audio [B, F * hop]
        latent = self.model.quantizer.decode(codes)
        with self._threads(threads), self._precision():
            audio = self.model.decoder(latent)
        return audio[:, 0].float().cpu().numpy()
