"""The PyPI `speechtokenizer` package (the code DM-Codec's release runs), for side-by-side checks.

Importing `speechtokenizer` runs its trainer's imports (torchaudio, accelerate, ...), which are
neither needed nor installable with CPU torch. Its model modules need only torch, numpy and
einops, so they are imported under a bare package entry that skips the package's __init__.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import torch

from .checkpoint import release_state_dict
from .model import DMCodec


def import_reference_class():
    """Return `speechtokenizer.model.SpeechTokenizer`, or raise ImportError with the fix."""
    if "speechtokenizer.model" in sys.modules:
        return sys.modules["speechtokenizer.model"].SpeechTokenizer
    spec = importlib.util.find_spec("speechtokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("speechtokenizer is not installed: pip install --no-deps speechtokenizer==1.0.1 einops")
    package = types.ModuleType("speechtokenizer")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("speechtokenizer", package)
    return importlib.import_module("speechtokenizer.model").SpeechTokenizer


def reference_twin(model: DMCodec) -> torch.nn.Module:
    """A `speechtokenizer` model holding exactly `model`'s weights, in eval mode."""
    twin = import_reference_class()(model.config.to_dict())
    twin.load_state_dict(release_state_dict(model))
    return twin.eval()
