"""Least-squares GAN losses and feature matching over the discriminators' outputs."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .discriminators import Outputs


def discriminator_loss(real: Outputs, fake: Outputs) -> torch.Tensor:
    """LSGAN: real logits pushed to 1, generated ones to 0 (fake must come from detached audio)."""
    losses = [torch.mean((1 - r) ** 2) + torch.mean(f**2) for (r, _), (f, _) in zip(real, fake)]
    return torch.stack(losses).mean()


def generator_loss(fake: Outputs) -> torch.Tensor:
    """LSGAN: the generator wants its logits at 1."""
    return torch.stack([torch.mean((1 - f) ** 2) for f, _ in fake]).mean()


def feature_matching_loss(real: Outputs, fake: Outputs) -> torch.Tensor:
    """L1 between the critics' feature maps on real and generated audio, each map's distance
    divided by the mean magnitude of its real features so that all layers weigh alike."""
    losses = []
    for (_, real_features), (_, fake_features) in zip(real, fake):
        for r, f in zip(real_features, fake_features):
            r = r.detach()
            losses.append(F.l1_loss(f, r) / (r.abs().mean() + 1e-5))
    return torch.stack(losses).mean()
