"""The codec: SEANet encoder -> residual VQ -> SEANet decoder, plus the distillation head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import CodecConfig
from .modules import SEANetDecoder, SEANetEncoder, fold_weight_norm
from .quantization import ResidualVectorQuantizer


@dataclass
class CodecOutput:
    """A training forward pass.

    audio: reconstruction [B, 1, T'] (T' = F * hop).
    codes: [n_q, B, F].
    commit_loss: scalar.
    levels: each RVQ level's quantized vectors [B, D, F] (distillation targets pick from these).
    """

    audio: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    levels: list[torch.Tensor]


class DMCodec(nn.Module):
    """DM-Codec (SpeechTokenizer architecture). Module and buffer names follow the release, so
    its state dicts load after `dmcodec.checkpoint` maps the weight-norm key names.

    Args:
        config: all sizes; `CodecConfig()` is the published model.
    """

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = SEANetEncoder(c.n_filters, c.strides, c.dimension, c.lstm_layers, c.bidirectional,
                                     c.dilation_base, c.residual_kernel_size, c.n_residual_layers, c.activation)
        self.decoder = SEANetDecoder(c.n_filters, c.strides, c.dimension, c.lstm_layers,
                                     c.dilation_base, c.residual_kernel_size, c.n_residual_layers, c.activation)
        self.quantizer = ResidualVectorQuantizer(c.dimension, c.n_q, c.codebook_size)
        # Projects RVQ features into the teachers' space for the distillation losses.
        self.transform = (nn.Linear(c.dimension, c.semantic_dimension)
                          if c.dimension != c.semantic_dimension else nn.Identity())

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def num_frames(self, num_samples: int) -> int:
        return -(-num_samples // self.hop_length)

    def _check_audio(self, wav: torch.Tensor) -> None:
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected audio of shape [B, 1, T], got {tuple(wav.shape)}")
        if wav.shape[-1] == 0:
            raise ValueError("empty audio: T must be at least 1 sample")

    @torch.inference_mode()
    def encode(self, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Waveform [B, 1, T] at `sample_rate` -> codes [n_q, B, ceil(T / hop)] int64.

        Items of one batch must share T; for clips of any lengths, use `dmcodec.Tokenizer`,
        which groups them so that each clip's codes equal those of encoding it alone.
        """
        self._check_audio(wav)
        return self.quantizer.encode(self.encoder(wav), n_q)

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [n_q, B, F] (the first n_q levels) -> waveform [B, 1, F * hop]."""
        self.check_codes(codes)
        return self.decoder(self.quantizer.decode(codes))

    def check_codes(self, codes: torch.Tensor) -> None:
        """Raise ValueError unless codes are [n_q, B, F] integers in range, 1 <= n_q <= config.n_q."""
        if codes.dim() != 3:
            raise ValueError(f"expected codes of shape [n_q, B, F], got {tuple(codes.shape)}")
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise ValueError(f"codes must be integers, got {codes.dtype}")
        n_q, _, frames = codes.shape
        if not 1 <= n_q <= self.config.n_q:
            raise ValueError(f"codes have {n_q} levels; this model has 1..{self.config.n_q}")
        if frames == 0:
            raise ValueError("codes have no frames")
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= self.config.codebook_size:
            raise ValueError(f"codes must lie in 0..{self.config.codebook_size - 1}, found {low}..{high}")

    def forward(self, wav: torch.Tensor, n_q: int | None = None) -> CodecOutput:
        """Training pass: reconstruction, codes, commitment loss and per-level features."""
        self._check_audio(wav)
        quantized = self.quantizer(self.encoder(wav), n_q)
        return CodecOutput(self.decoder(quantized.quantized), quantized.codes,
                           quantized.commit_loss, quantized.levels)

    def for_inference(self) -> DMCodec:
        """Eval mode, no gradients, weight norm folded into plain weights (same outputs, faster)."""
        fold_weight_norm(self)  # before requires_grad_: folded weights then stay parameters
        return self.eval().requires_grad_(False)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
