"""Every default of inference, in one place: which checkpoint, which backend and precision, how
audio is cut into windows and batched. The library, the command line, the bulk engines, the Ray
actors and the service settings all read them from here, so that the same audio and model give
the same tokens whichever entry point computes them (a window's geometry and the backend are
part of what decides the codes).

The model's own numbers (levels, codebook size, frame rate, hop, sample rate) are not defaults:
they come from the loaded checkpoint's config.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

# What computes the encoder and decoder (`dmcodec.backends.selection`). `auto` takes ONNX Runtime
# on CPU only where its codes equal fp32 torch's on every calibration position, else fp32 torch.
BACKEND: Final = "auto"
PRECISION: Final = "fp32"
# The share of fp32 torch codes an explicitly requested backend or precision must keep at start-up
# (`auto` asks for all of them).
MIN_AGREEMENT = 0.999

# Windows (`dmcodec.windows`): a clip of up to WINDOW_FRAMES frames is encoded in one piece; longer
# ones in cores of WINDOW_FRAMES - 2 * CONTEXT_FRAMES frames with CONTEXT_FRAMES of real audio
# on each side.
WINDOW_FRAMES = 1000
CONTEXT_FRAMES = 50
BATCH_MODE: Final = "auto"
THREADS_PER_WINDOW = 1
WORKERS = 0  # CPU windows at once; 0: available cores / THREADS_PER_WINDOW
SOLO_THREADS = 0  # threads of a lone window on a thread-invariant backend; 0: available cores
# Windows per model call, and frames per model call: a call's activations grow with its frames
# (measured on the bundled checkpoint with ONNX Runtime: ~0.3 GB for 1,000 frames, 2.5 GB for
# 4,000), so on CPU a call holds at most one full window, and short windows share it.
MAX_BATCH_ITEMS = 8
MAX_BATCH_FRAMES = {"cpu": 1000, "cuda": 4000}

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
