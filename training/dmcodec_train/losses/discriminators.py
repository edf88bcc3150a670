"""The three discriminators of DM-Codec's GAN training: multi-period, multi-scale and
multi-scale STFT. Each takes a waveform [B, 1, T] and returns, per sub-discriminator, its
logits and its intermediate feature maps (for the feature-matching loss).

`width` scales every channel count, so a CPU run can use narrower critics with the same code.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

Outputs = list[tuple[torch.Tensor, list[torch.Tensor]]]  # per sub-discriminator: (logits, features)


def _scaled(channels: int, width: float) -> int:
    return max(4, round(channels * width))


def _features(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor, slope: float):
    """Convs with leaky ReLU, keeping every activation; then the logits layer, flattened."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), slope)
        features.append(x)
    return post(x).flatten(1), features


class PeriodDiscriminator(nn.Module):
    """Folds the waveform into [B, 1, T / period, period] and looks at each phase with 2-D convs."""

    def __init__(self, period: int, width: float = 1.0):
        super().__init__()
        self.period = period
        channels = [1] + [_scaled(c, width) for c in (32, 128, 512, 1024)]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (5, 1), (3, 1), padding=(2, 0)))
            for c_in, c_out in itertools.pairwise(channels)
        )
        self.convs.append(weight_norm(nn.Conv2d(channels[-1], channels[-1], (5, 1), padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, _, length = wav.shape
        pad = (-length) % self.period
        x = F.pad(wav, (0, pad), mode="reflect" if pad < length else "constant")
        x = x.reshape(batch, 1, -1, self.period)  # [B, 1, T / p, p]
        return _features(self.convs, self.post, x, 0.1)


class ScaleDiscriminator(nn.Module):
    """1-D grouped convolutions over the waveform (at one of several sample rates)."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        # (out channels, kernel, stride, groups): the HiFi-GAN layout.
        spec = [(128, 15, 1, 1), (128, 41, 2, 4), (256, 41, 2, 16), (512, 41, 4, 16),
                (1024, 41, 4, 16), (1024, 41, 1, 16), (1024, 5, 1, 1)]
        layers, c_in = [], 1
        for c_out, kernel, stride, groups in spec:
            c_out = _scaled(c_out, width)
            groups = min(groups, c_in, c_out) if c_in % groups == 0 and c_out % groups == 0 else 1
            layers.append(weight_norm(nn.Conv1d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups)))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.post = weight_norm(nn.Conv1d(c_in, 1, 3, padding=1))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _features(self.convs, self.post, wav, 0.1)


class STFTDiscriminator(nn.Module):
    """2-D convolutions over the complex spectrogram (real and imaginary parts as channels)."""

    def __init__(self, n_fft: int, width: float = 1.0, channels: int = 32):
        super().__init__()
        self.n_fft = n_fft
        self.hop = n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = _scaled(channels, width)
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(2, c, (3, 9), padding=(1, 4))),
            *[weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4), dilation=(d, 1)))
              for d in (1, 2, 4)],
            weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
        ])
        self.post = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = torch.stft(wav.squeeze(1).float(), self.n_fft, self.hop, window=self.window, return_complex=True)
        x = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, frames, bins]
        return _features(self.convs, self.post, x, 0.2)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, width) for p in periods)

    def forward(self, wav: torch.Tensor) -> Outputs:
        return [d(wav) for d in self.discriminators]


class MultiScaleDiscriminator(nn.Module):
    """The waveform at full rate and average-pooled by 2 and by 4."""

    def __init__(self, n_scales: int = 3, width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList(ScaleDiscriminator(width) for _ in range(n_scales))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, wav: torch.Tensor) -> Outputs:
        outputs = []
        for i, d in enumerate(self.discriminators):
            if i:
                wav = self.pool(wav)
            outputs.append(d(wav))
        return outputs


class MultiScaleSTFTDiscriminator(nn.Module):
    def __init__(self, n_ffts: tuple[int, ...] = (1024, 512, 256), width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, width) for n in n_ffts)

    def forward(self, wav: torch.Tensor) -> Outputs:
        return [d(wav) for d in self.discriminators]


class Discriminators(nn.Module):
    """All three families together; `forward` concatenates their sub-discriminators' outputs."""

    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), n_scales: int = 3,
                 stft_n_ffts: tuple[int, ...] = (1024, 512, 256), width: float = 1.0):
        super().__init__()
        self.families = nn.ModuleDict({
            "mpd": MultiPeriodDiscriminator(periods, width),
            "msd": MultiScaleDiscriminator(n_scales, width),
            "mstftd": MultiScaleSTFTDiscriminator(stft_n_ffts, width),
        })

    def forward(self, wav: torch.Tensor) -> Outputs:
        return [out for family in self.families.values() for out in family(wav)]
