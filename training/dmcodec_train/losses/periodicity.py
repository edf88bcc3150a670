"""The periodicity loss: where the original is voiced, the decoded waveform must repeat itself
at the original's pitch period as well as the original does.

The mel losses restore the spectral envelope but say little about the excitation under it.
Measured on the campaign's checkpoints (docs/evaluation.md, "Where the voicing goes"): the
decoded speech of voiced frames correlates with itself one original period later at a median
0.1-0.4, where the originals reach 0.84-0.92 and Opus at 4 kbps 0.70-0.81, and Praat calls 40%
of the voiced frames unvoiced. This loss asks for that correlation directly, on the codec's
frames, with the pitch targets the pitch head already reads (`dmcodec-train teachers`).
"""

from __future__ import annotations

import itertools
import math

import torch

# The correlation window: 1.5 codec frames at 16 kHz, so that neighbouring frames' windows
# overlap and every sample is counted, and at least one period of the lowest pitch (60 Hz).
WINDOW_S = 0.03


def periodicity(audio: torch.Tensor, period: torch.Tensor, hop: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised correlation of each frame's window with the same window one period later.

    Args:
        audio: [B, T] samples.
        period: [B, F] the lag in samples (fractional: the later window is linearly interpolated).
        hop: samples per frame; frame f's window is centred on sample f * hop + hop / 2.
        window: the window's length in samples.

    Returns:
        (r [B, F] in [-1, 1]; inside [B, F] bool, False where a window or its lagged copy runs
        past the audio's ends: r is 0 there).
    """
    batch, length = audio.shape
    frames = period.shape[1]
    starts = torch.arange(frames, device=audio.device) * hop + hop // 2 - window // 2  # [F]
    offsets = torch.arange(window, device=audio.device)  # [W]
    whole = period.floor()
    fraction = (period - whole)[..., None]  # [B, F, 1]
    lagged_starts = starts + whole.long()  # [B, F]
    inside = (starts >= 0) & (lagged_starts + window < length)  # [B, F]: the +1 of the interpolation fits
    index = (starts[:, None] + offsets).expand(batch, frames, window).clamp(0, length - 1)  # [B, F, W]
    lagged = (lagged_starts[..., None] + offsets).clamp(0, length - 2)  # [B, F, W]

    def take(positions: torch.Tensor) -> torch.Tensor:  # [B, F, W] -> the samples there
        return audio.gather(1, positions.reshape(batch, -1)).view(batch, frames, window)

    now = take(index)
    later = (1 - fraction) * take(lagged) + fraction * take(lagged + 1)
    now = now - now.mean(-1, keepdim=True)
    later = later - later.mean(-1, keepdim=True)
    # The energies' product is clamped, not offset: silence gives r = 0 without bending loud frames.
    energy = ((now**2).sum(-1) * (later**2).sum(-1)).clamp(min=1e-12)
    r = (now * later).sum(-1) / energy.sqrt()
    return torch.where(inside, r, 0.0), inside


def periods(log_f0: torch.Tensor, voiced: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """The pitch period in samples [B, F] from log-F0 (natural log of Hz); 1 where unvoiced (any
    finite lag: those frames are left out)."""
    return torch.where(voiced, sample_rate / log_f0.clamp(min=math.log(1.0)).exp(), 1.0)


def split_bands(audio: torch.Tensor, edges: tuple[float, ...], sample_rate: int) -> torch.Tensor:
    """The audio cut into frequency bands: [B, T] -> [B * bands, T], band k holding
    edges[k] <= f < edges[k + 1] Hz (a mask on the whole crop's spectrum: differentiable, and
    sharp enough for a correlation)."""
    length = audio.shape[-1]
    spectrum = torch.fft.rfft(audio.float(), n=length)  # [B, T // 2 + 1]
    frequencies = torch.fft.rfftfreq(length, 1.0 / sample_rate).to(audio.device)
    masks = torch.stack([(frequencies >= low) & (frequencies < high) for low, high in itertools.pairwise(edges)])
    bands = torch.fft.irfft(spectrum[:, None, :] * masks, n=length)  # [B, bands, T]
    return bands.reshape(-1, length)


def periodicity_loss(fake: torch.Tensor, real: torch.Tensor, log_f0: torch.Tensor, voiced: torch.Tensor,
                     mask: torch.Tensor, hop: int, sample_rate: int, bands: tuple[float, ...] = ()) -> torch.Tensor:
    """How far the decoded audio's periodicity falls short of the original's, averaged over the
    frames voiced in the original: mean(max(0, r_real - r_fake)). A breathy original asks for no
    more periodicity than it has.

    Over the whole band, the cheapest way up is to move energy into the lowest harmonics, which
    repeat best: measured, 1-2 kHz lost 1.6-3.3 dB more than without the loss, and STOI and
    PESQ fell (evaluation.md, "The campaign's fourth stint"). With band edges, each band's
    periodicity is measured on its own and must reach the original's in that band, so moving
    energy between bands gains nothing.

    Args:
        fake, real: [B, T] the decoded and the original audio.
        log_f0, voiced: [B, F] the original's pitch targets (natural log of Hz; voicing).
        mask: [B, F] False past a clip's end.
        hop, sample_rate: the codec's.
        bands: band edges in Hz, e.g. (60, 1000, 2000, 4000, 8000) for four bands; () for the
            whole band at once.
    """
    lag = periods(log_f0.float(), voiced, sample_rate)
    counted = voiced & mask
    if bands:
        count = len(bands) - 1
        fake, real = split_bands(fake, bands, sample_rate), split_bands(real, bands, sample_rate)
        lag, counted = lag.repeat_interleave(count, 0), counted.repeat_interleave(count, 0)
    window = round(WINDOW_S * sample_rate)
    with torch.no_grad():
        target, inside = periodicity(real.float(), lag, hop, window)
    r, _ = periodicity(fake.float(), lag, hop, window)
    counted = counted & inside
    shortfall = torch.where(counted, (target - r).clamp(min=0.0), 0.0)
    return shortfall.sum() / counted.sum().clamp(min=1)
