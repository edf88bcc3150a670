"""Model configuration, read from and written to the release's `config.json` key names."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class CodecConfig:
    """Every size of the codec. Field names are the keys of the official DM-Codec /
    SpeechTokenizer `config.json`, so one file format serves both releases and ours.

    Args:
        n_filters: width of the first SEANet stage; each downsampling doubles it.
        strides: decoder upsampling ratios (the encoder uses them reversed); their product is the hop.
        dimension: latent and codebook dimension.
        semantic_dimension: output of the distillation transform (the teacher's feature size).
        bidirectional: whether the encoder LSTM is bidirectional (the decoder's never is).
        dilation_base, residual_kernel_size, n_residual_layers: residual block shape.
        lstm_layers: LSTM depth at the encoder's end and the decoder's start.
        activation: a `torch.nn` activation class name.
        sample_rate: audio rate the model was trained on.
        codebook_size, n_q: entries per codebook and number of residual levels.
        extra: keys of the file this class does not use (training settings), kept on save.
    """

    n_filters: int = 64
    strides: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    dimension: int = 1024
    semantic_dimension: int = 768
    bidirectional: bool = True
    dilation_base: int = 2
    residual_kernel_size: int = 3
    n_residual_layers: int = 1
    lstm_layers: int = 2
    activation: str = "ELU"
    sample_rate: int = 16000
    codebook_size: int = 1024
    n_q: int = 8
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.strides = [int(s) for s in self.strides]
        problems = []
        for name in ("n_filters", "dimension", "semantic_dimension", "sample_rate", "codebook_size", "n_q"):
            if int(getattr(self, name)) <= 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)!r}")
        if not self.strides or any(s <= 0 for s in self.strides):
            problems.append(f"strides must be positive integers, got {self.strides!r}")
        if self.lstm_layers < 0 or self.n_residual_layers < 0:
            problems.append("lstm_layers and n_residual_layers must be >= 0")
        if problems:
            raise ValueError("invalid codec config: " + "; ".join(problems))

    @property
    def hop_length(self) -> int:
        return math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def bits_per_code(self) -> float:
        return math.log2(self.codebook_size)

    def levels(self, n_q: int | None = None) -> int:
        """`n_q` checked against this model's levels (None: all of them); ValueError otherwise."""
        if n_q is None:
            return self.n_q
        if isinstance(n_q, bool) or not isinstance(n_q, int) or not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be an integer in 1..{self.n_q}, got {n_q!r}")
        return n_q

    def bitrate(self, n_q: int | None = None) -> float:
        """Bits per second at `n_q` levels (all by default)."""
        return (n_q or self.n_q) * self.bits_per_code * self.frame_rate

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodecConfig:
        known = {f.name for f in fields(cls)} - {"extra"}
        # The release's config names the rate twice (training used `sampling_rate`).
        data = dict(data)
        if "sample_rate" not in data and "sampling_rate" in data:
            data["sample_rate"] = data["sampling_rate"]
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known and k != "extra"}
        extra.update(data.get("extra") or {})
        return cls(**kwargs, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**extra, **data}

    @classmethod
    def from_json(cls, path: str | Path) -> CodecConfig:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of config keys")
        return cls.from_dict(data)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


PRESETS: dict[str, dict[str, Any]] = {
    # The published DM-Codec / SpeechTokenizer size (103.7 M parameters).
    "paper": {},
    # Same architecture, sized to train on a 2-core CPU and serve there many times faster than
    # real time: half the filters, a 128-d latent, one LSTM layer (13.3 M parameters, a 33 MB
    # fp16 checkpoint). The semantic dimension matches the bundled MiniLM teacher (384).
    "small": {"n_filters": 32, "dimension": 128, "semantic_dimension": 384, "lstm_layers": 1},
    # Test-sized: seconds to build and run.
    "tiny": {"n_filters": 8, "dimension": 32, "semantic_dimension": 16, "lstm_layers": 1, "codebook_size": 64},
}


def preset(name: str, **overrides: Any) -> CodecConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return CodecConfig(**{**PRESETS[name], **overrides})
