"""Where the default checkpoint lives, and the untrained stand-ins that tests and smoke runs use."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from .checkpoint import save_checkpoint
from .config import preset
from .init import init_weights
from .model import DMCodec
from .signals import speech_like

BUNDLED = Path(__file__).parent / "checkpoints" / "default"
# hf://ORG/REPO[@REVISION][/SUBFOLDER]; one slash after "hf:" too, as a Path collapses the two.
HUB_REFERENCE = re.compile(r"^hf:/+(?P<repo>[^/@]+/[^/@]+)(?:@(?P<revision>[^/]+))?(?:/(?P<subfolder>.+))?$")


def from_hub(reference: str) -> Path:
    """The local folder of a Hub checkpoint (`hf://ORG/REPO[@REVISION][/SUBFOLDER]`, e.g. the
    SpeechTokenizer release's `.pt` and `config.json` in a subfolder), downloaded once into the
    Hugging Face cache. HF_HUB_OFFLINE=1 uses the cache alone; HF_ENDPOINT names another hub."""
    match = HUB_REFERENCE.match(reference)
    if match is None:
        raise ValueError(f"{reference}: expected hf://ORG/REPO[@REVISION][/SUBFOLDER]")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise ValueError("hf:// checkpoints need huggingface_hub: pip install 'dmcodec[hub]'") from None
    subfolder = match["subfolder"]
    try:
        local = snapshot_download(match["repo"], revision=match["revision"],
                                  allow_patterns=[f"{subfolder}/*"] if subfolder else None)
    except LocalEntryNotFoundError:
        raise FileNotFoundError(f"{reference}: not in the Hugging Face cache, and downloads are off "
                                "(HF_HUB_OFFLINE)") from None
    except (HfHubHTTPError, OSError) as err:
        raise FileNotFoundError(f"{reference}: could not be downloaded ({err})") from None
    return Path(local) / subfolder if subfolder else Path(local)


def resolve_checkpoint(explicit: str | Path | None = None) -> Path:
    """An explicit path or Hub reference, else $DMCODEC_CHECKPOINT, else the trained default
    bundled in the package. Never a silent stand-in: a service serving random weights would
    hand out meaningless tokens."""
    reference = str(explicit or os.environ.get("DMCODEC_CHECKPOINT") or "")
    if HUB_REFERENCE.match(reference):
        return from_hub(reference)
    if reference:
        return Path(reference)
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
