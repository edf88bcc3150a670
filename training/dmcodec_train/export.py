"""Export a run's codec from its training state: our serving format or the release's state dict."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dmcodec.checkpoint import save_checkpoint, save_release_checkpoint
from dmcodec.model import DMCodec

from .config import TrainConfig
from .state import load_state


def codec_from_state(state: dict) -> tuple[DMCodec, TrainConfig]:
    config = TrainConfig.from_dict(json.loads(state["config"]))
    codec = DMCodec(config.codec_config())
    prefix = "codec."
    codec.load_state_dict({k[len(prefix):]: v for k, v in state["generator"].items() if k.startswith(prefix)})
    return codec.eval(), config


def export_run(run: str | Path, out: str | Path, dtype: torch.dtype = torch.float32,
               name: str | None = None) -> Path:
    """`out` ending in .pt: the release format (+ config.json beside it); else a serving folder."""
    state = load_state(run)
    codec, config = codec_from_state(state)
    out = Path(out)
    if out.suffix in (".pt", ".pth"):
        return save_release_checkpoint(codec, out)
    record = {"trained": True, "steps": int(state["step"]), "preset": config.name,
              "best_dev_mel": float(state["best_dev_mel"])}
    return save_checkpoint(codec, out, name=name or f"{config.name}-step{int(state['step'])}",
                           training=record, dtype=dtype)
