"""Whisper's audio encoder in torch, with weights from a CTranslate2 Whisper model, so that a loss
can send gradients through it (CTranslate2 itself only runs forward).

The front end is Whisper's log-mel (400-point STFT, hop 160, 80 bands, floored 8 decades under a
reference maximum); the encoder is two convolutions (the second halves the rate to 50 Hz), sinusoid
positions, pre-norm transformer blocks and a final layer norm, as in the released models.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .ct2 import read_ct2_variables

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
FLOOR_DECADES = 8.0


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None) -> torch.Tensor:  # [B, T, dim]
        batch, frames, dim = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(batch, frames, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attend)  # [B, heads, T, dim / heads]
        x = x + self.out(attended.transpose(1, 2).reshape(batch, frames, dim))
        return x + self.mlp(self.mlp_norm(x))


class WhisperEncoder(nn.Module):
    """Args: n_mels, dim, heads, layers: the model's shape; max_frames: positions (1500 = 30 s)."""

    def __init__(self, n_mels: int, dim: int, heads: int, layers: int, max_frames: int = 1500):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, dim, 3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(max_frames, dim))
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        # The front end's constants, rebuilt at load rather than kept with the weights.
        self.register_buffer("mel_filters", torch.zeros(n_mels, N_FFT // 2 + 1), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    @classmethod
    def from_ct2(cls, path: str | Path) -> WhisperEncoder:
        """The encoder of a CTranslate2 Whisper directory (or its model.bin), frozen, in eval mode."""
        from faster_whisper.feature_extractor import FeatureExtractor

        weights = {name[len("encoder/"):]: value for name, value in read_ct2_variables(path, "encoder/").items()}
        if "conv1/weight" not in weights:
            raise ValueError(f"{path}: no Whisper encoder in this CTranslate2 model")
        quantized = [name for name in weights if name.endswith("weight_scale")]
        if quantized:
            raise ValueError(f"{path}: int8-quantized weights ({quantized[0]}); convert the model in float16 "
                             "or float32")
        dim, n_mels, _ = weights["conv1/weight"].shape
        layers = len({name.split("/")[0] for name in weights if re.fullmatch(r"layer_\d+", name.split("/")[0])})
        # Built on the meta device, then given the weights: no random initialisation, which would
        # also move the global RNG and so change the rest of a training run.
        with torch.device("meta"):
            encoder = cls(n_mels, dim, int(weights["num_heads"]), layers,
                          weights["position_encodings/encodings"].shape[0])

        state = {"conv1.weight": weights["conv1/weight"], "conv1.bias": weights["conv1/bias"],
                 "conv2.weight": weights["conv2/weight"], "conv2.bias": weights["conv2/bias"],
                 "positions": weights["position_encodings/encodings"],
                 "norm.weight": weights["layer_norm/gamma"], "norm.bias": weights["layer_norm/beta"],
                 }
        for i in range(layers):
            prefix = f"layer_{i}"
            for ours, theirs in (("attn_norm", "self_attention/layer_norm"), ("mlp_norm", "ffn/layer_norm")):
                state[f"blocks.{i}.{ours}.weight"] = weights[f"{prefix}/{theirs}/gamma"]
                state[f"blocks.{i}.{ours}.bias"] = weights[f"{prefix}/{theirs}/beta"]
            for ours, theirs in (("qkv", "self_attention/linear_0"), ("out", "self_attention/linear_1"),
                                 ("mlp.0", "ffn/linear_0"), ("mlp.2", "ffn/linear_1")):
                state[f"blocks.{i}.{ours}.weight"] = weights[f"{prefix}/{theirs}/weight"]
                state[f"blocks.{i}.{ours}.bias"] = weights[f"{prefix}/{theirs}/bias"]
        encoder.load_state_dict({name: value.float() for name, value in state.items()}, assign=True)
        encoder.mel_filters = torch.from_numpy(FeatureExtractor.get_mel_filters(SAMPLE_RATE, N_FFT, n_mels)).float()
        encoder.window = torch.hann_window(N_FFT)
        return encoder.requires_grad_(False).eval()

    def log_mel(self, audio: torch.Tensor, peak: torch.Tensor | None = None,
                floor_decades: float = FLOOR_DECADES) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, samples] at 16 kHz -> (Whisper's log-mel [B, n_mels, samples // 160], the [B] log10
        peaks each row was floored under).

        A row is floored `floor_decades` (Whisper: 8) under its own peak, or under the given one:
        decoded audio is floored like the original it is compared with."""
        spectrum = torch.stft(audio.float(), N_FFT, HOP, window=self.window, return_complex=True)
        power = spectrum[..., :-1].abs() ** 2  # Whisper drops the STFT's last frame
        log_mel = torch.log10((self.mel_filters @ power).clamp(min=1e-10))
        peak = log_mel.detach().amax(dim=(1, 2)) if peak is None else peak
        log_mel = torch.maximum(log_mel, (peak - floor_decades)[:, None, None])
        return (log_mel + 4.0) / 4.0, peak

    def forward(self, mel: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """[B, n_mels, frames] log-mel -> [B, ceil(frames / 2), dim] features at 50 Hz (at most 30 s).

        valid: [B, ceil(frames / 2)], False on padding, which attention then ignores (the
        convolutions still see one frame across the edge)."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        if x.shape[1] > self.positions.shape[0]:
            raise ValueError(f"{x.shape[1]} frames; the encoder has positions for {self.positions.shape[0]}")
        x = x + self.positions[: x.shape[1]]
        attend = None if valid is None else valid[:, None, None, :]
        for block in self.blocks:
            x = block(x, attend)
        return self.norm(x)
