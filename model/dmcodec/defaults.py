"""Where the default checkpoint lives, and the untrained stand-ins that tests and smoke runs use."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .checkpoint import save_checkpoint
from .config import preset
from .init import init_weights
from .model import DMCodec
from .signals import speech_like

BUNDLED = Path(__file__).parent / "checkpoints" / "default"


def resolve_checkpoint(explicit: str | Path | None = None) -> Path:
    """An explicit path, else $DMCODEC_CHECKPOINT, else the trained default bundled in the package.
    Never a silent stand-in: a service serving random weights would hand out meaningless tokens."""
    if explicit:
        return Path(explicit)
    if os.environ.get("DMCODEC_CHECKPOINT"):
        return Path(os.environ["DMCODEC_CHECKPOINT"])
    if not (BUNDLED / "config.json").exists():
        raise FileNotFoundError(f"the bundled default checkpoint is missing ({BUNDLED}): reinstall dmcodec, or "
                                "set DMCODEC_CHECKPOINT to a checkpoint (`dmcodec init` makes an untrained one)")
    return BUNDLED


def create_untrained(directory: str | Path, preset_name: str, seed: int = 0, seconds: float = 60.0) -> Path:
    """Random weights, with codebooks fitted by k-means to the encoder's output on speech-like
    signals, so that every level uses many codes (all-zero codebooks would give all-zero codes)."""
    torch.manual_seed(seed)
    model = init_weights(DMCodec(preset(preset_name))).eval()
    clips = [speech_like(seconds / 6, model.sample_rate, seed=seed * 100 + i) for i in range(6)]
    with torch.no_grad():
        latents = model.encoder(torch.from_numpy(np.stack(clips))[:, None])
        model.quantizer.init_from_data(latents)
    return save_checkpoint(model, directory, name=f"untrained-{preset_name}",
                           training={"trained": False, "note": "random weights; codebooks fitted to "
                                     "speech-like signals; for tests and smoke runs only", "seed": seed})
