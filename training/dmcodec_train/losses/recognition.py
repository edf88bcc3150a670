"""The recognition loss: decoded speech must look like the original to a speech recogniser.

Both go through a frozen Whisper encoder (`teachers/whisper_encoder.py`, torch weights read from
the CTranslate2 model), and the L1 distance between its final features is the loss. The mel and
periodicity losses judge the sound; this judges what a recogniser hears in it, which is what the
WER against the originals' ASR measures. The campaign uses Whisper base here and evaluates with
tiny.en, so the codec is not trained against the very model that scores it.

The log-mel floor is 5 decades under the original's peak, not Whisper's 8: the synthetic corpus
has digital silence, and at 8 decades a hiss at -50 dB in the pauses cost Whisper base 60% of what
a whole codec's error does (0.36 against 0.61 on eight training clips); at 5 decades, 30%.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..teachers.asr import whisper_path
from ..teachers.whisper_encoder import WhisperEncoder

FLOOR_DECADES = 5.0


def _fit(mask: torch.Tensor, length: int) -> torch.Tensor:
    """[B, n] -> [B, length]: cut, or padded with False."""
    return F.pad(mask, (0, max(0, length - mask.shape[1])))[:, :length]


class RecognitionLoss(nn.Module):
    """Args: model: "base", "tiny.en" or a CTranslate2 Whisper directory (`teachers.asr.whisper_path`);
    items: how many clips of each batch it reads (0: all; the encoder's backward pass costs far more
    per clip than the codec's)."""

    def __init__(self, model: str, items: int = 0):
        super().__init__()
        self.encoder = WhisperEncoder.from_ct2(whisper_path(model))
        self.items = items

    def forward(self, decoded: torch.Tensor, original: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """decoded, original: [B, samples] at 16 kHz; frame_mask: [B, F] at 50 Hz, False on padding
        -> the mean L1 distance of their features over the valid frames."""
        if self.items:
            decoded, original, frame_mask = decoded[: self.items], original[: self.items], frame_mask[: self.items]
        # Past a clip's end both are silenced: whatever the decoder makes of the padding would
        # otherwise reach the valid frames through the convolutions' edge and then attention.
        keep = _fit(frame_mask.repeat_interleave(-(-original.shape[-1] // frame_mask.shape[1]), dim=1),
                    original.shape[-1])
        decoded, original = decoded * keep, original * keep
        with torch.no_grad():
            original_mel, peak = self.encoder.log_mel(original, floor_decades=FLOOR_DECADES)
            # The encoder's frames are the codec's 50 Hz frames (one more where a clip ends mid-frame).
            valid = _fit(frame_mask, -(-original_mel.shape[-1] // 2))
            target = self.encoder(original_mel, valid)  # [B, F', dim]
        decoded_mel, _ = self.encoder.log_mel(decoded, peak, FLOOR_DECADES)
        distance = (self.encoder(decoded_mel, valid) - target).abs().mean(-1)  # [B, F']
        return (distance * valid).sum() / valid.sum().clamp(min=1)
