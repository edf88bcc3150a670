"""The LSTM between the SEANet convolutions, in convolutional [B, C, T] layout."""

from __future__ import annotations

import torch
from torch import nn


class SLSTM(nn.Module):
    """A residual LSTM over time.

    In inference each batch item runs through the LSTM on its own. CPU and GPU LSTM kernels
    change their reduction order with the batch size (1e-7 differences that flip near-tie
    codes), so running items one by one is what keeps a clip's tokens independent of which
    other clips share its batch. On CPU this costs about 10%: the recurrent matmuls are
    memory-bound either way. Training keeps the batched kernel.

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

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        # x: [T, B, C] -> [T, B, C * directions]
        y, _ = self.lstm(x)
        skip = x.repeat(1, 1, 2) if self.bidirectional else x
        return y + skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, C, T] -> [B, C * directions, T]
        x = x.permute(2, 0, 1)
        if self.training or x.shape[1] == 1:
            y = self._run(x)
        else:
            y = torch.cat([self._run(x[:, b : b + 1]) for b in range(x.shape[1])], dim=1)
        return y.permute(1, 2, 0)
