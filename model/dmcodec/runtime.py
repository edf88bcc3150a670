"""Process-wide settings that decide which codes a device computes.

Entry points (the service, the CLI, the bulk actors, the evaluation harness) call
`configure_determinism` once, before any model runs; a library user on CUDA should too.
"""

from __future__ import annotations

import torch


def configure_determinism(device: str | torch.device) -> None:
    """On CUDA, fp32 means fp32: TF32 convolutions and matmuls, and autotuned kernels, would
    re-draw codes with the hardware generation or the run. No effect on CPU."""
    if torch.device(device).type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def determinism_configured(device: str | torch.device) -> bool:
    if torch.device(device).type != "cuda":
        return True
    return not (torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
                or torch.backends.cudnn.benchmark or not torch.backends.cudnn.deterministic)
