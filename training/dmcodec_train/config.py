"""Training configuration: one JSON file per preset (`presets/*.json`), overridable per run."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dmcodec.config import CodecConfig, preset

from .teachers import layers as layer_specs

PRESET_DIR = Path(__file__).parent / "presets"
TRAIN_PARTS = ("codec", "decoder")


@dataclass
class LossWeights:
    """Weights of the generator's loss terms (the discriminators' loss is unweighted)."""

    mel: float = 45.0
    waveform: float = 1.0
    adversarial: float = 1.0
    feature_matching: float = 2.0
    commitment: float = 10.0
    distillation: float = 10.0
    lm: float = 0.5  # share of the distillation weight for the LM teacher
    speech: float = 0.5  # and for the speech teacher
    pitch: float = 0.0  # the pitch target (log-F0 L1 in octaves + voicing BCE); 0: no pitch head
    periodicity: float = 0.0  # the decoded audio's periodicity where the original is voiced (`losses/periodicity.py`)
    recognition: float = 0.0  # Whisper encoder features of decoded vs original audio (`losses/recognition.py`)


@dataclass
class TrainConfig:
    """Everything that defines a run, saved next to its checkpoints.

    codec_preset / codec: the model (a `dmcodec` preset plus overrides of its config keys).
    steps: optimiser steps. segment_seconds, batch_size: random crops per step (per process).
    lr, betas, warmup_steps, min_lr_ratio: Adam with linear warm-up, then cosine decay to
        lr * min_lr_ratio at `steps`. grad_clip: max gradient norm (0 disables).
    adversarial_start: step at which the discriminators join (before it: reconstruction,
        commitment and distillation only - the warm-up option). discriminator_width scales
        the critics' channels; periods / stft_n_ffts / msd_scales set their shapes.
    lm_levels, speech_levels: the RVQ levels each teacher distils into ("1", "1:8", "8").
    lm_layers, speech_layers: the teachers' hidden layers the features were taken from
        ("average", "last", "index:K", "depth:R"; `teachers/layers.py`). The features are
        computed before training (`dmcodec-train teachers --lm-layers ...`); these record the
        choice, and the trainer refuses a feature folder computed with another.
    pitch_levels: the RVQ levels the pitch head reads (with loss.pitch > 0; the targets come
        from the feature folder's `pitch.json`).
    periodicity_bands: with loss.periodicity > 0, band edges in Hz in which the periodicity is
        measured separately (e.g. [60, 1000, 2000, 4000, 8000]); empty: the whole band.
    recognition_model, recognition_items: with loss.recognition > 0, the Whisper whose encoder
        judges the decoded audio ("base", "tiny.en" or a CTranslate2 directory; the evaluation's
        ASR is tiny.en, so "base" keeps the judge and the examiner apart) and how many clips of
        each batch it reads (0: all).
    quantizer_warmup: steps that train encoder and decoder without the quantizer. A randomly
        initialised encoder's output is a near-constant offset with tiny variation over time;
        codebooks fitted to it collapse to a few codes and the commitment loss then holds the
        encoder there (measured: 1 code in use at level 1 after 500 steps). After the warm-up
        the latent carries the signal, and k-means over `codebook_init_batches` batches of it
        starts the codebooks.
    quantizer_dropout: probability that a step trains with a random number of levels.
    mel_n_ffts, n_mels: the mel loss's FFT sizes and its bands (one count, or one per FFT size).
    dead_code_threshold: a code whose EMA usage count (per step) falls below this is re-drawn
        from the batch. The release's 2.0 suits its batches (thousands of frames per step over
        many GPUs); with a few hundred frames per step and 1024 codes the average count is below
        1, and 2.0 would re-draw almost every code at every step, so small presets lower it.
    validate_every, checkpoint_every, log_every: in steps. dev_utterances: dev set size used.
    mixed_precision: bf16 autocast on CUDA (ignored on CPU); the quantizer stays fp32.
    rewarm_steps: after resuming from a compact state (no optimiser moments), the learning rate
        ramps up again over this many steps while Adam's moments re-estimate themselves.
    train_parts: "codec" trains encoder, quantizer, decoder and distillation heads; "decoder"
        keeps the encoder and the codebooks frozen, so a run started from a checkpoint keeps
        its tokens exactly while the decoder learns (no distillation, no teacher features).
    """

    name: str = "run"
    seed: int = 0
    codec_preset: str = "small"
    codec: dict[str, Any] = field(default_factory=dict)
    steps: int = 10000
    segment_seconds: float = 1.0
    batch_size: int = 8
    lr: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    disc_lr: float = 2e-4
    adversarial_start: int = 0
    discriminator_width: float = 1.0
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    msd_scales: int = 3
    stft_n_ffts: tuple[int, ...] = (1024, 512, 256)
    mel_n_ffts: tuple[int, ...] = (1024, 512, 256, 128)
    n_mels: int | tuple[int, ...] = 80
    lm_levels: str = "1"
    speech_levels: str = "1:8"
    lm_layers: str = layer_specs.DEFAULT
    speech_layers: str = layer_specs.DEFAULT
    pitch_levels: str = "1:8"
    periodicity_bands: tuple[float, ...] = ()
    recognition_model: str = "base"
    recognition_items: int = 0
    quantizer_warmup: int = 0
    codebook_init_batches: int = 1
    quantizer_dropout: float = 0.0
    dead_code_threshold: float = 2.0
    loss: LossWeights = field(default_factory=LossWeights)
    validate_every: int = 500
    checkpoint_every: int = 250
    log_every: int = 25
    dev_utterances: int = 32
    mixed_precision: bool = True
    rewarm_steps: int = 100
    train_parts: str = "codec"

    def codec_config(self) -> CodecConfig:
        return preset(self.codec_preset, **self.codec)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}")
        data = dict(data)
        if isinstance(data.get("loss"), dict):
            data["loss"] = LossWeights(**data["loss"])
        for key in ("betas", "periods", "stft_n_ffts", "mel_n_ffts", "n_mels", "periodicity_bands"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        config = cls(**data)
        layer_specs.parse(config.lm_layers)
        layer_specs.parse(config.speech_layers)
        bands = config.periodicity_bands
        if bands and (not isinstance(bands, tuple) or len(bands) < 2
                      or not all(isinstance(b, (int, float)) for b in bands)
                      or any(low >= high for low, high in itertools.pairwise(bands)) or bands[0] < 0):
            raise ValueError(f"periodicity_bands must be two or more increasing band edges in Hz, such as "
                             f"[60,1000,2000,4000]; got {bands!r}")
        items = config.recognition_items
        if not isinstance(items, int) or isinstance(items, bool) or items < 0:
            raise ValueError(f"recognition_items must be a count of clips (0: all), got {config.recognition_items!r}")
        if config.train_parts not in TRAIN_PARTS:
            raise ValueError(f"train_parts must be one of {TRAIN_PARTS}, got {config.train_parts!r}")
        return config

    @classmethod
    def load(cls, name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """A preset name (`paper`, `small`, `tiny`) or a JSON file, with dotted-key overrides
        such as {"steps": 100, "loss.distillation": 0}. A preset may start from another with
        `"extends": "<preset>"` and list only what it changes."""
        return cls.from_dict(with_overrides(_preset_data(name_or_path), overrides or {}))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _preset_data(name_or_path: str | Path, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.json"
    if not path.exists():
        choices = sorted(p.stem for p in PRESET_DIR.glob("*.json"))
        raise ValueError(f"no training preset {name_or_path!r} (presets: {choices}, or a .json file)")
    data = json.loads(path.read_text())
    base = data.pop("extends", None)
    if base is None:
        return data
    if base in seen:
        raise ValueError(f"presets extend each other in a circle: {[*seen, base]}")
    return _merge(_preset_data(base, (*seen, str(name_or_path))), data)


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` on top; nested dicts (the loss weights) merge key by key."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def with_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of `data` (a config as a dict) with dotted-key overrides applied."""
    data = json.loads(json.dumps(data))
    for key, value in overrides.items():
        target = data
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return data


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """["steps=100", "loss.lm=0"] -> {"steps": 100, "loss.lm": 0}; values are JSON, else strings."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"override {pair!r} is not key=value")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out
