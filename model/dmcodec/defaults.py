"""Where the default checkpoint lives, and the untrained stand-in used until one is trained."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from .checkpoint import save_checkpoint
from .config import preset
from .init import init_weights
from .model import DMCodec
from .signals import speech_like

log = logging.getLogger(__name__)

BUNDLED = Path(__file__).parent / "checkpoints" / "default"
UNTRAINED_CACHE = Path(os.environ.get("DMCODEC_CACHE", Path.home() / ".cache" / "dmcodec")) / "untrained-small"


def resolve_checkpoint(explicit: str | Path | None = None) -> Path:
    """An explicit path, else $DMCODEC_CHECKPOINT, else the bundled default, else an untrained
    stand-in created on first use (with a warning: its tokens carry no meaning)."""
    if explicit:
        return Path(explicit)
    if os.environ.get("DMCODEC_CHECKPOINT"):
        return Path(os.environ["DMCODEC_CHECKPOINT"])
    if (BUNDLED / "config.json").exists():
        return BUNDLED
    if not (UNTRAINED_CACHE / "config.json").exists():
        log.warning("no trained checkpoint is bundled; creating an UNTRAINED random one at %s", UNTRAINED_CACHE)
        create_untrained(UNTRAINED_CACHE, "small", seed=0)
    return UNTRAINED_CACHE


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
