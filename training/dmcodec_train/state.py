"""The training state on disk: everything needed to continue a run exactly where it stopped.

`<run>/state.pt` holds the codec, the distillation heads, the discriminators, both optimisers
and schedulers, the torch RNG state and the step (the data position follows from the step).
Only tensors, numbers and strings are stored, so it loads with `weights_only=True`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

STATE_NAME = "state.pt"


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Write atomically: a crash while saving leaves the previous state intact."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / STATE_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: no training state to resume from")
    return torch.load(path, map_location="cpu", weights_only=True)
