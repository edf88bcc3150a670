"""Tokens and their metadata: one schema, rendered the same way everywhere, and token files.

The flat field names below are the schema (see docs/tokens.md). They are the keys of `.npy`
side indexes, the Parquet and Ray columns of bulk jobs, and, as `X-DMCodec-<Name>` headers,
the metadata of `.npy` HTTP responses. The JSON form (HTTP encode responses, `.json` token
files) nests the `model_*` fields as a `model` object (`model.sha256` is `model_sha256`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np

SCHEMA_VERSION = 1
HEADER_PREFIX = "X-DMCodec-"


@dataclass(frozen=True)
class TokenMetadata:
    """Everything needed to decode or cite a clip's codes, except the codes."""

    n_q: int  # levels, coarse to fine
    frames: int  # frames per level: ceil(num_samples / hop_length)
    codebook_size: int
    frame_rate: float  # frames per second
    sample_rate: int  # the model's rate; num_samples counts at it
    num_samples: int  # length of the audio after conversion to the model's rate, mono
    model_name: str
    model_sha256: str  # sha256 of the weights file: tokens compare only between equal hashes
    backend: str
    precision: str
    schema_version: int = SCHEMA_VERSION

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate

    def flat(self) -> dict[str, Any]:
        """The schema's fields (and duration_s) as a flat dict of plain values."""
        return {**asdict(self), "duration_s": self.duration_s}

    def headers(self) -> dict[str, str]:
        """`X-DMCodec-Model-Sha256: ...` and so on, one header per flat field."""
        return {header_name(name): str(value) for name, value in self.flat().items()}

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> TokenMetadata:
        """The inverse of `flat()` (extra keys, duration_s among them, are ignored); values are
        converted to the schema's types, so header strings parse too."""
        kinds = {f.name: f.type for f in fields(cls)}
        converters = {"int": int, "float": float, "str": str}
        try:
            return cls(**{name: converters[str(kind)](values[name]) for name, kind in kinds.items()
                          if name in values})
        except (TypeError, ValueError) as err:
            raise ValueError(f"not token metadata: {err}") from None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> TokenMetadata:
        lowered = {k.lower(): v for k, v in headers.items()}
        return cls.from_flat({f.name: lowered[header_name(f.name).lower()] for f in fields(cls)
                              if header_name(f.name).lower() in lowered})


def header_name(field_name: str) -> str:
    """n_q -> X-DMCodec-N-Q, model_sha256 -> X-DMCodec-Model-Sha256."""
    return HEADER_PREFIX + "-".join(part.capitalize() for part in field_name.split("_"))


@dataclass
class EncodedAudio:
    """Codes for one clip, with what identifies the model and how the clip was windowed.

    Args:
        codes: [n_q, frames] int64.
        metadata: the schema's fields.
        model: the JSON `model` object (name, sha256, backend, precision, device and, for a
            mode other than fp32 torch, its measured code_agreement).
        windowing: window_frames, context_frames, batch_size, intra_op_threads.
    """

    codes: np.ndarray
    metadata: TokenMetadata
    model: dict[str, Any]
    windowing: dict[str, Any]

    @property
    def n_q(self) -> int:
        return self.metadata.n_q

    @property
    def num_samples(self) -> int:
        return self.metadata.num_samples

    @property
    def sample_rate(self) -> int:
        return self.metadata.sample_rate

    @property
    def duration_s(self) -> float:
        return self.metadata.duration_s

    def to_json(self) -> dict[str, Any]:
        flat = self.metadata.flat()
        plain = {k: v for k, v in flat.items() if not k.startswith("model_")}
        return {"codes": self.codes.tolist(), **plain, "model": self.model, "windowing": self.windowing}


def codes_to_uint16(codes: np.ndarray) -> np.ndarray:
    if codes.size and (codes.min() < 0 or codes.max() > np.iinfo(np.uint16).max):
        raise ValueError("codes do not fit in uint16")
    return codes.astype(np.uint16)


def save_tokens(path: str | Path, encoded: EncodedAudio) -> None:
    """By the suffix: `.npz`, the codes (uint16) with every metadata field as its own array;
    `.npy`, the codes alone (the metadata go to a side index); anything else, JSON."""
    path = Path(path)
    if path.suffix == ".npz":
        arrays: dict[str, Any] = {name: np.asarray(value) for name, value in encoded.metadata.flat().items()}
        np.savez(path, codes=codes_to_uint16(encoded.codes), **arrays)
    elif path.suffix == ".npy":
        np.save(path, codes_to_uint16(encoded.codes))
    else:
        path.write_text(json.dumps(encoded.to_json()))


def load_tokens(path: str | Path) -> tuple[np.ndarray, int | None]:
    """Read a token file -> (codes [n_q, frames] int64, num_samples or None for a bare `.npy`)."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                codes = archive["codes"]
                num_samples = int(archive["num_samples"]) if "num_samples" in archive else None
        elif path.suffix == ".npy":
            codes = np.load(path, allow_pickle=False)
            num_samples = None
        else:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or "codes" not in data:
                raise ValueError("expected a JSON object with a 'codes' field")
            codes = np.asarray(data["codes"])
            num_samples = data.get("num_samples")
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: not a readable token file ({err})") from err
    if codes.dtype.kind not in "iu":
        raise ValueError(f"{path}: codes must be integers, got {codes.dtype}")
    return codes.astype(np.int64), num_samples


def made_by(path: str | Path) -> str | None:
    """The sha256 of the model that made a `.npz` or `.json` token file, when it says."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return str(archive["model_sha256"]) if "model_sha256" in archive else None
        if path.suffix == ".json":
            model = json.loads(path.read_text()).get("model") or {}
            return model.get("sha256") if isinstance(model, dict) else None
    except (OSError, ValueError, AttributeError):
        return None
    return None
