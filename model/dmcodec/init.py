"""Weight initialisation for a codec that starts from random weights: training from scratch and
the untrained stand-ins that tests and smoke runs use.

PyTorch's default conv initialisation scales each layer's output variance by about 1/3, and
ELU halves it again: through the encoder's main path the speech signal shrinks ~1000x in
amplitude while the biases add a constant offset. The latent then looks constant over time
(measured: time-std 0.001 against a 0.02 offset), codebooks fitted to it use one code, and
training does not recover within thousands of CPU steps. With such a latent every code is
nearly as close as the nearest one, so codes flip with float rounding (measured: ONNX Runtime
agreed with torch on 97-98% of codes of such a model, 100% after this initialisation). He
initialisation keeps the signal's scale from layer to layer, and zero biases keep the offset out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import save_checkpoint
from .config import preset
from .model import DMCodec
from .signals import speech_like

OUTPUT_GAIN = 0.01


def _convolutions(module: nn.Module) -> list[nn.Conv1d | nn.ConvTranspose1d]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]


@torch.no_grad()
def init_weights(codec: DMCodec) -> DMCodec:
    """He-normal (fan-in) weights and zero biases for every convolution, in place (through the
    weight-norm parametrisation). The decoder's output layer is then scaled by OUTPUT_GAIN: at
    He scale a fresh decoder is ~100x louder than speech (measured: output std 6.7 for input std
    0.06), and the first few hundred steps would go to turning it down."""
    for module in _convolutions(codec):
        weight = torch.empty_like(module.weight)
        nn.init.kaiming_normal_(weight, nonlinearity="relu")
        module.weight = weight
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    output = _convolutions(codec.decoder)[-1]
    output.weight = output.weight * OUTPUT_GAIN
    return codec


def create_untrained(directory: str | Path, preset_name: str, seed: int = 0, seconds: float = 60.0) -> Path:
    """An untrained checkpoint in `directory`: random weights, with codebooks fitted by k-means to
    the encoder's output on speech-like signals, so that every level uses many codes (all-zero
    codebooks would give all-zero codes)."""
    torch.manual_seed(seed)
    model = init_weights(DMCodec(preset(preset_name))).eval()
    clips = [speech_like(seconds / 6, model.sample_rate, seed=seed * 100 + i) for i in range(6)]
    with torch.no_grad():
        latents = model.encoder(torch.from_numpy(np.stack(clips))[:, None])
        model.quantizer.init_from_data(latents)
    return save_checkpoint(model, directory, name=f"untrained-{preset_name}",
                           training={"trained": False, "note": "random weights; codebooks fitted to "
                                     "speech-like signals; for tests and smoke runs only", "seed": seed})
