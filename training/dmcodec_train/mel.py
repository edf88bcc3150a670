"""Log-mel spectrograms with torch.stft (no torchaudio), shared by the losses and the evaluation."""

from __future__ import annotations

import functools

import torch
from torch import nn


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=32)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """Triangular HTK-scale filters [n_mels, n_fft // 2 + 1], each normalised to unit area
    (Slaney-style), so that losses at different FFT sizes have comparable scale."""
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = _mel_to_hz(torch.linspace(0, float(_hz_to_mel(torch.tensor(sample_rate / 2.0))), n_mels + 2,
                                      dtype=torch.float64))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights = weights * (2.0 / (upper - lower))
    return weights.float()


class MelSpectrogram(nn.Module):
    """Waveform [B, 1, T] or [B, T] -> log mel magnitudes [B, n_mels, frames].

    Args:
        sample_rate: audio rate.
        n_fft: FFT size; the window has the same length, the hop is a quarter of it.
        n_mels: mel bands. Bands that an FFT this small cannot resolve come out empty and
            contribute nothing (the log floor keeps them finite).
    """

    def __init__(self, sample_rate: int, n_fft: int, n_mels: int = 80):
        super().__init__()
        self.n_fft = n_fft
        self.hop = n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(sample_rate, n_fft, n_mels), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        wav = wav.reshape(-1, wav.shape[-1])
        spec = torch.stft(wav.float(), self.n_fft, self.hop, window=self.window, center=True,
                          pad_mode="reflect", return_complex=True).abs()
        return torch.log(torch.clamp(self.filters @ spec, min=1e-5))


class MultiScaleMelLoss(nn.Module):
    """Mean over FFT sizes of the L1 distance between log mel spectrograms.

    Args:
        sample_rate: audio rate.
        n_ffts: the FFT sizes (the paper: 1024, 512, 256, 128).
        n_mels: mel bands, one count for every scale (the paper: 80) or one per scale. Fewer
            bands for the short FFTs (as descript-audio-codec does) keep each band wide enough
            to hold energy: 80 bands over the 65 bins of a 128-point FFT leave most bands empty
            or near the log floor, where the loss chases noise-level detail.
    """

    def __init__(self, sample_rate: int, n_ffts: tuple[int, ...] = (1024, 512, 256, 128),
                 n_mels: int | tuple[int, ...] = 80):
        super().__init__()
        bands = (n_mels,) * len(n_ffts) if isinstance(n_mels, int) else tuple(n_mels)
        if len(bands) != len(n_ffts):
            raise ValueError(f"n_mels has {len(bands)} entries for {len(n_ffts)} FFT sizes")
        self.scales = nn.ModuleList(MelSpectrogram(sample_rate, n, b) for n, b in zip(n_ffts, bands))

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses = [torch.nn.functional.l1_loss(mel(estimate), mel(target)) for mel in self.scales]
        return torch.stack(losses).mean()


def mel_distance(estimate: torch.Tensor, target: torch.Tensor, sample_rate: int) -> float:
    """The evaluation's mel distance: L1 between 80-band log mels at n_fft 1024 (lower is better)."""
    length = min(estimate.shape[-1], target.shape[-1])
    mel = MelSpectrogram(sample_rate, 1024, 80)
    with torch.no_grad():
        return float(torch.nn.functional.l1_loss(mel(estimate[..., :length]), mel(target[..., :length])))

