"""SEANet encoder and decoder (the convolutional halves of the codec).

Layers sit in one `nn.Sequential` named `model`, in the release's order, so state-dict keys
such as `encoder.model.13.lstm.weight_ih_l0` match the official checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from .conv import SConv1d, SConvTranspose1d
from .lstm import SLSTM


def _activation(name: str) -> nn.Module:
    try:
        cls = getattr(nn, name)
    except AttributeError:
        raise ValueError(f"unknown activation {name!r} (expected a torch.nn class such as 'ELU')") from None
    return cls(alpha=1.0) if name == "ELU" else cls()


class ResidualUnit(nn.Module):
    """act -> conv(k, dilation) to dim/2 -> act -> conv(1) back to dim, plus a 1x1 conv shortcut."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, activation: str):
        super().__init__()
        hidden = dim // 2
        self.block = nn.Sequential(
            _activation(activation),
            SConv1d(dim, hidden, kernel_size, dilation=dilation),
            _activation(activation),
            SConv1d(hidden, dim, 1),
        )
        self.shortcut = SConv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


def _residual_units(dim: int, n: int, kernel_size: int, dilation_base: int, activation: str) -> list[nn.Module]:
    return [ResidualUnit(dim, kernel_size, dilation_base**j, activation) for j in range(n)]


class SEANetEncoder(nn.Module):
    """Waveform [B, 1, T] -> latent [B, dimension, ceil(T / hop)].

    Args:
        n_filters: channels after the first convolution; each of the len(strides) downsampling
            steps doubles them.
        strides: the decoder's upsampling ratios; the encoder downsamples by them in reverse.
        dimension: latent channels.
        lstm_layers: depth of the LSTM after the last downsampling (0 for none).
        bidirectional: bidirectional LSTM (its output is projected back by the last conv).
    """

    def __init__(self, n_filters: int, strides: list[int], dimension: int, lstm_layers: int,
                 bidirectional: bool, dilation_base: int = 2, residual_kernel_size: int = 3,
                 n_residual_layers: int = 1, activation: str = "ELU", channels: int = 1,
                 kernel_size: int = 7, last_kernel_size: int = 7):
        super().__init__()
        width = n_filters
        layers: list[nn.Module] = [SConv1d(channels, width, kernel_size)]
        for ratio in reversed(strides):
            layers += _residual_units(width, n_residual_layers, residual_kernel_size, dilation_base, activation)
            layers += [_activation(activation), SConv1d(width, width * 2, kernel_size=ratio * 2, stride=ratio)]
            width *= 2
        if lstm_layers:
            layers.append(SLSTM(width, lstm_layers, bidirectional=bidirectional))
            if bidirectional:
                width *= 2
        layers += [_activation(activation), SConv1d(width, dimension, last_kernel_size)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SEANetDecoder(nn.Module):
    """Latent [B, dimension, F] -> waveform [B, 1, F * hop]. Mirrors the encoder, with a
    unidirectional LSTM right after the input convolution."""

    def __init__(self, n_filters: int, strides: list[int], dimension: int, lstm_layers: int,
                 dilation_base: int = 2, residual_kernel_size: int = 3, n_residual_layers: int = 1,
                 activation: str = "ELU", channels: int = 1, kernel_size: int = 7, last_kernel_size: int = 7):
        super().__init__()
        width = n_filters * 2 ** len(strides)
        layers: list[nn.Module] = [SConv1d(dimension, width, kernel_size)]
        if lstm_layers:
            layers.append(SLSTM(width, lstm_layers, bidirectional=False))
        for ratio in strides:
            layers += [_activation(activation),
                       SConvTranspose1d(width, width // 2, kernel_size=ratio * 2, stride=ratio)]
            width //= 2
            layers += _residual_units(width, n_residual_layers, residual_kernel_size, dilation_base, activation)
        layers += [_activation(activation), SConv1d(width, channels, last_kernel_size)]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)
