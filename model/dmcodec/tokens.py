"""Token files: JSON (codes with all metadata) and compact `.npy` (uint16 [n_q, frames])."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .tokenizer import EncodedAudio


def codes_to_uint16(codes: np.ndarray) -> np.ndarray:
    if codes.size and (codes.min() < 0 or codes.max() > np.iinfo(np.uint16).max):
        raise ValueError("codes do not fit in uint16")
    return codes.astype(np.uint16)


def save_tokens(path: str | Path, encoded: EncodedAudio) -> None:
    """`.npy`: the codes alone (see `metadata` for the rest); anything else: JSON."""
    path = Path(path)
    if path.suffix == ".npy":
        np.save(path, codes_to_uint16(encoded.codes))
    else:
        path.write_text(json.dumps(encoded.to_json()))


def metadata(encoded: EncodedAudio) -> dict[str, Any]:
    """Everything of the JSON form except the codes."""
    data = encoded.to_json()
    data.pop("codes")
    return data


def load_tokens(path: str | Path) -> tuple[np.ndarray, int | None]:
    """Read a token file -> (codes [n_q, frames] int64, num_samples or None for `.npy`)."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            codes = np.load(path, allow_pickle=False)
            num_samples = None
        else:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or "codes" not in data:
                raise ValueError("expected a JSON object with a 'codes' field")
            codes = np.asarray(data["codes"])
            num_samples = data.get("num_samples")
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable token file ({err})") from err
    if codes.dtype.kind not in "iu":
        raise ValueError(f"{path}: codes must be integers, got {codes.dtype}")
    return codes.astype(np.int64), num_samples
