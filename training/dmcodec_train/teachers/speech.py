"""Speech teachers: self-supervised speech models' features at the codec's frame rate.

`HFSpeechTeacher` loads any local Hugging Face HuBERT / wav2vec2 checkpoint and takes the chosen
transformer layers (`layers.py`; by default their mean, as the paper does).
`WhisperEncoderTeacher` uses the Whisper encoder (CTranslate2, 50 Hz) as a stand-in when no SSL
model is at hand; it exposes only its output, so it counts as a teacher of one layer and every
spec selects that layer.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from . import layers as layer_specs


def to_frames(features: torch.Tensor, num_frames: int) -> torch.Tensor:
    """[n, dim] at the teacher's rate -> [num_frames, dim] by linear interpolation over time
    (teachers' frame counts differ from the codec's by their receptive-field edges)."""
    if features.shape[0] == num_frames:
        return features
    return F.interpolate(features.t()[None], size=num_frames, mode="linear", align_corners=False)[0].t()


class HFSpeechTeacher:
    """Args: path: a local HuBERT / wav2vec2 (or any `AutoModel` audio encoder) directory;
    device: where it runs; layers: a layer spec (`layers.py`), checked against the model here."""

    def __init__(self, path: str | Path, device: str = "cpu", layers: str = layer_specs.DEFAULT):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoConfig, AutoModel

        path = Path(path)
        self.name = path.name
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
        self.device = device
        self.dim = int(config.hidden_size)
        self.num_layers = int(config.num_hidden_layers)
        self.layers = layers
        self.chosen = layer_specs.resolve(layers, self.num_layers, f"speech teacher {self.name}")
        # wav2vec2-large style models expect zero-mean unit-variance input; HuBERT-base does not.
        self.normalize = (path / "preprocessor_config.json").exists() and '"do_normalize": true' in (
            path / "preprocessor_config.json").read_text()

    @torch.inference_mode()
    def features(self, audio: np.ndarray, num_frames: int) -> torch.Tensor:
        """Audio [T] at 16 kHz -> [num_frames, dim], the mean of the chosen layers."""
        wav = torch.from_numpy(audio.astype(np.float32))
        if self.normalize:
            wav = (wav - wav.mean()) / (wav.std() + 1e-7)
        outputs = self.model(wav[None].to(self.device), output_hidden_states=True)
        layers = layer_specs.select(outputs.hidden_states, self.chosen)[0].float().cpu()
        return to_frames(layers, num_frames)


class WhisperEncoderTeacher:
    """The Whisper encoder's output (50 Hz for 16 kHz input), over windows of at most 30 s.

    Windows are not padded to Whisper's 30 s: the encoder accepts shorter input, which makes
    it six times cheaper on short clips and keeps a clip's features free of padding.
    """

    window_s = 30.0
    num_layers = 1  # CTranslate2 returns the encoder's output only

    def __init__(self, path: str | Path | None = None, device: str = "cpu", threads: int | None = None,
                 layers: str = layer_specs.DEFAULT):
        from .asr import default_whisper_path, load_whisper

        layer_specs.resolve(layers, self.num_layers, "the Whisper encoder")  # a typo fails here too
        self.layers = layers
        path = Path(path) if path else default_whisper_path()
        self.name = f"whisper-encoder:{path.parent.name if path.name == 'model' else path.name}"
        self.whisper = load_whisper(path, device, threads=threads)
        self.dim = int(self._encode(np.zeros(16000, np.float32)).shape[-1])

    def _encode(self, window: np.ndarray) -> torch.Tensor:
        # The feature extractor's STFT adds one frame; an even count keeps the stride-2 conv exact.
        mel = self.whisper.feature_extractor(window, padding=0)
        mel = mel[:, : 2 * (-(-len(window) // 320))]
        output = self.whisper.encode(np.ascontiguousarray(mel))
        return torch.from_numpy(np.array(output)[0].astype(np.float32))  # [frames, dim]

    def features(self, audio: np.ndarray, num_frames: int) -> torch.Tensor:
        step = int(self.window_s * 16000)
        pieces = []
        for start in range(0, max(len(audio), 1), step):
            window = audio[start:start + step].astype(np.float32)
            frames = -(-len(window) // 320)
            pieces.append(self._encode(window)[:frames])
        return to_frames(torch.cat(pieces), num_frames)
