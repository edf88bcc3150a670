"""The pitch target: a small head reads log-F0 and voicing from the quantized latent.

The mel losses reward the spectral envelope long before the harmonics, and v1's tokens carry
little pitch (a probe reads it from them at 196 cents median error, from a log-mel at 59). A
head that must predict the pitch from the tokens makes the encoder and the codebooks keep it,
the way the distillation heads make them keep phonetic content.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# The head predicts log-F0 around a typical speaking pitch, so that it starts near the targets.
_CENTRE_LOG_HZ = math.log(150.0)


class PitchHead(nn.Module):
    """Two 1-D convolutions (kernel 3: a frame and its neighbours) from the latent [B, D, F]
    to log-F0 [B, F] (natural log of Hz) and a voicing logit [B, F].

    Args:
        codec_dim: the latent's channels.
        hidden: the hidden convolution's channels.
    """

    def __init__(self, codec_dim: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(codec_dim, hidden, 3, padding=1), nn.GELU(),
                                 nn.Conv1d(hidden, 2, 3, padding=1))

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(latent)  # [B, 2, F]
        return out[:, 0] + _CENTRE_LOG_HZ, out[:, 1]


def pitch_loss(log_f0: torch.Tensor, voicing_logit: torch.Tensor, target_log_f0: torch.Tensor,
               voiced: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-F0 L1 over the frames voiced in the target, voicing BCE over all valid frames).

    The L1 is in octaves (1.0 = 1200 cents), so its size reads directly as a pitch error.

    Args:
        log_f0, voicing_logit: the head's predictions [B, F].
        target_log_f0: natural log of Hz [B, F] (anything where unvoiced).
        voiced: [B, F] bool, the target's voicing.
        mask: [B, F] bool, False past a clip's end.
    """
    log_f0, voicing_logit = log_f0.float(), voicing_logit.float()
    counted = voiced & mask
    # where(), not a product with the mask: an unvoiced frame's target may be anything, even -inf.
    octaves = torch.where(counted, (log_f0 - target_log_f0).abs() / math.log(2.0), 0.0)
    f0 = octaves.sum() / counted.sum().clamp(min=1)
    valid = mask.float()
    bce = F.binary_cross_entropy_with_logits(voicing_logit, voiced.float(), reduction="none")
    return f0, (bce * valid).sum() / valid.sum().clamp(min=1.0)
