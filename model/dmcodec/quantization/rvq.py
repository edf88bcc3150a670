"""Residual vector quantisation: each level quantises what the previous levels left over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from .codebook import EuclideanCodebook


@dataclass
class QuantizerOutput:
    """What a training forward pass returns.

    quantized: sum of the used levels' vectors [B, D, F] (straight-through gradient).
    codes: [n_q, B, F].
    commit_loss: mean squared distance between the encoder output and each level's input.
    levels: each used level's own quantized vectors [B, D, F], for distillation targets.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    levels: list[torch.Tensor]


class ResidualVectorQuantizer(nn.Module):
    """`n_q` EMA codebooks applied in sequence to the latent [B, D, F].

    Args:
        dim: latent dimension.
        n_q: number of levels.
        codebook_size: codes per level.
        decay, kmeans_iters, dead_code_threshold: see `EuclideanCodebook`.
    """

    def __init__(self, dim: int, n_q: int, codebook_size: int, decay: float = 0.99,
                 kmeans_iters: int = 50, dead_code_threshold: float = 2.0):
        super().__init__()
        self.n_q = n_q
        self.codebook_size = codebook_size
        self.levels = nn.ModuleList(
            EuclideanCodebook(dim, codebook_size, decay, kmeans_iters, dead_code_threshold) for _ in range(n_q)
        )

    def codebooks(self, n_q: int | None = None) -> list[EuclideanCodebook]:
        """The first `n_q` levels' codebooks (all by default), coarse to fine."""
        return cast(list[EuclideanCodebook], list(self.levels[:n_q]))

    @property
    def initialized(self) -> bool:
        return all(bool(level.inited.item()) for level in self.codebooks())

    def _check_n_q(self, n_q: int | None) -> int:
        n_q = self.n_q if n_q is None else n_q
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in 1..{self.n_q}, got {n_q}")
        return n_q

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Latent [B, D, F] -> codes [n_q, B, F] int64."""
        n_q = self._check_n_q(n_q)
        residual = x.transpose(1, 2).reshape(-1, x.shape[1])  # [B * F, D]
        codes = []
        for level in self.codebooks(n_q):
            index = level.encode(residual)
            residual = residual - level.decode(index)
            codes.append(index)
        return torch.stack(codes).reshape(n_q, x.shape[0], x.shape[2])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [n_q, B, F] (n_q <= the model's) -> latent [B, D, F]."""
        self._check_n_q(codes.shape[0])
        first, *finer = self.codebooks(codes.shape[0])
        quantized = first.decode(codes[0])
        for level, index in zip(finer, codes[1:]):
            quantized = quantized + level.decode(index)
        return quantized.transpose(1, 2)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Initialise every level by k-means on the residuals of latent frames x [B, D, F]."""
        residual = x.transpose(1, 2).reshape(-1, x.shape[1]).float()
        for level in self.codebooks():
            level.init_from_data(residual)
            residual = residual - level.decode(level.encode(residual))

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        """Training pass over latent [B, D, F]: quantise, update the codebooks, return losses.

        Always in fp32, also under autocast: nearest-code search in reduced precision would pick
        other codes than inference does."""
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(x.float(), n_q)

    def _forward(self, x: torch.Tensor, n_q: int | None) -> QuantizerOutput:
        n_q = self._check_n_q(n_q)
        if self.training and not self.initialized:
            self.init_from_data(x.detach())
        flat = x.transpose(1, 2).reshape(-1, x.shape[1])  # [B * F, D]
        residual = flat
        total = torch.zeros_like(flat)
        codes, levels, losses = [], [], []
        for level in self.codebooks(n_q):
            index = level.encode(residual.detach())
            quantized = level.decode(index)
            if self.training:
                level.update(residual.detach(), index)
            losses.append(F.mse_loss(residual, quantized.detach()))
            # Straight-through: the forward value is the code vector, the gradient flows to x.
            straight = residual + (quantized - residual).detach()
            total = total + straight
            levels.append(straight)
            # Carries no gradient (straight - straight), so the encoder's gradient is that of
            # the summed output, as in the release's training.
            residual = residual - straight
            codes.append(index)
        shape = (x.shape[0], x.shape[2])
        to_conv = lambda t: t.reshape(*shape, -1).transpose(1, 2)
        return QuantizerOutput(
            quantized=to_conv(total),
            codes=torch.stack(codes).reshape(n_q, *shape),
            commit_loss=torch.stack(losses).mean(),
            levels=[to_conv(level) for level in levels],
        )
