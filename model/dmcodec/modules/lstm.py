"""The LSTM between the SEANet convolutions, in convolutional [B, C, T] layout."""

from __future__ import annotations

import torch
from torch import nn


class SLSTM(nn.Module):
    """A residual LSTM over time.

    Args:
        dimension: channels in; hidden size per direction.
        num_layers: stacked LSTM layers.
        bidirectional: if true, the output has 2 * dimension channels and the skip connection
            repeats the input to match.
    """

    def __init__(self, dimension: int, num_layers: int = 2, bidirectional: bool = False):
        super().__init__()
        self.bidirectional = bidirectional
        self.lstm = nn.LSTM(dimension, dimension, num_layers, bidirectional=bidirectional)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, C, T] -> [B, C * directions, T]
        x = x.permute(2, 0, 1)  # [T, B, C]
        y, _ = self.lstm(x)
        skip = x.repeat(1, 1, 2) if self.bidirectional else x
        return (y + skip).permute(1, 2, 0)
