"""DM-Codec's distillation: RVQ features, linearly projected, pulled toward teacher features."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def select_levels(levels: list[torch.Tensor], spec: str) -> torch.Tensor:
    """The RVQ features a teacher distils into, from the per-level features [B, D, F].

    spec: "1" (first level), "8" (the eighth), "1:8" (levels 1..8 summed; 1-based, inclusive).
    Levels past those computed this step (quantizer dropout) are left out of a range.
    """
    first, _, last = spec.partition(":")
    start, stop = int(first), int(last or first)
    if not 1 <= start <= stop:
        raise ValueError(f"bad level spec {spec!r}: expected 'k' or 'a:b' with 1 <= a <= b")
    chosen = levels[start - 1:stop]
    if not chosen:
        raise ValueError(f"level spec {spec!r} selects none of the {len(levels)} levels computed")
    return torch.stack(chosen).sum(0)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames of -log sigmoid(cos(student, teacher)).

    student, teacher: [B, F, D_teacher]; mask: [B, F] (1 where the teacher has a feature).
    """
    similarity = F.cosine_similarity(student.float(), teacher.float(), dim=-1)  # [B, F]
    per_frame = -F.logsigmoid(similarity)
    mask = mask.to(per_frame.dtype)
    return (per_frame * mask).sum() / mask.sum().clamp(min=1.0)


class DistillationHead(nn.Module):
    """Linear map from the codec's latent [B, D, F] into a teacher's space [B, F, D_teacher]."""

    def __init__(self, codec_dim: int, teacher_dim: int):
        super().__init__()
        self.proj = nn.Linear(codec_dim, teacher_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features.transpose(1, 2))
