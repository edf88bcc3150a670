"""Weight-normalised 1-d convolutions with the SEANet padding rule.

Every convolution of the codec goes through this file, so the padding that decides the
frame count (F = ceil(T / hop)) and the output length lives in one place.

Attribute names (`conv.conv`, `convtr.convtr`) follow the release's state-dict keys.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm


def right_padding_for_full_frames(length: int, kernel_size: int, stride: int, padding_total: int) -> int:
    """Samples to add on the right so the last output frame sees a complete window.

    That is (n_frames - 1) * stride + kernel_size - padding_total - length with
    n_frames = ceil((length - kernel_size + padding_total) / stride) + 1, written in integer
    arithmetic only, so that an ONNX export keeps it as a function of the input length.
    """
    return (kernel_size - padding_total - length) % stride


def reflect_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflect padding that also works when the input is not longer than the padding.

    Such short inputs are first extended with zeros (then the zeros are cut off again), which
    is what the released models were trained with.
    """
    length = x.shape[-1]
    widest = max(left, right)
    if length > widest:
        return F.pad(x, (left, right), mode="reflect")
    filler = widest - length + 1
    padded = F.pad(F.pad(x, (0, filler)), (left, right), mode="reflect")
    return padded[..., : padded.shape[-1] - filler]


class NormConv1d(nn.Module):
    """A Conv1d whose weight is weight-normalised (gain `g` and direction `v` per output channel)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class NormConvTranspose1d(nn.Module):
    """A weight-normalised ConvTranspose1d."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.convtr = weight_norm(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convtr(x)


class SConv1d(nn.Module):
    """Non-causal convolution with reflect padding: T samples in give ceil(T / stride) out.

    Args:
        in_channels, out_channels, kernel_size, stride, dilation: as for `nn.Conv1d`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = NormConv1d(in_channels, out_channels, kernel_size, stride, dilation)
        self.kernel_size = (kernel_size - 1) * dilation + 1  # effective, with dilation
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, C_in, T] -> [B, C_out, ceil(T / stride)]
        padding_total = self.kernel_size - self.stride
        extra = right_padding_for_full_frames(x.shape[-1], self.kernel_size, self.stride, padding_total)
        right = padding_total // 2
        left = padding_total - right
        return self.conv(reflect_pad(x, left, right + extra))


class SConvTranspose1d(nn.Module):
    """Non-causal transposed convolution: F frames in give F * stride samples out."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.convtr = NormConvTranspose1d(in_channels, out_channels, kernel_size, stride)
        self.trim_total = kernel_size - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, C_in, F] -> [B, C_out, F * stride]
        y = self.convtr(x)
        right = self.trim_total // 2
        left = self.trim_total - right
        return y[..., left : y.shape[-1] - right]


def fold_weight_norm(module: nn.Module) -> int:
    """Replace every weight-norm parametrisation below `module` by its plain weight.

    The folded weight is computed once with the same kernel the parametrisation runs on every
    call, so outputs stay bit-identical while each forward pass saves the renormalisation.
    Returns the number of folded layers.
    """
    targets = [sub for sub in module.modules() if parametrize.is_parametrized(sub, "weight")]
    for sub in targets:
        parametrize.remove_parametrizations(sub, "weight", leave_parametrized=True)
    return len(targets)
