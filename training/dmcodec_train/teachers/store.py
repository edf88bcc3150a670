"""Reading a feature folder: the teachers' features and the pitch targets, by utterance id.

A folder holds the teachers' shards (`index.json`, written by `dmcodec-train teachers`), the
pitch targets' shards (`pitch.json`, by `teachers` or `dmcodec-train pitch`), or both. Both are
on the codec's frames, so a crop reads the same frames from each.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from ..data.manifest import Utterance, read_manifest
from . import layers as layer_specs

INDEX = "index.json"
PITCH_INDEX = "pitch.json"
KEY = "key.json"


def features_key(index: dict) -> dict:
    """What decides a folder's teacher features: the teachers (names, dims, layer specs, LM text)
    and the hop. Two folders of one key hold the same features; a folder written before layer
    specs were recorded held the average of all layers, and reads as "average".

    Args:
        index: a teachers' `index.json` as a dict (or a key itself).
    """
    teachers = json.loads(json.dumps(index["teachers"]))
    for info in teachers.values():
        if isinstance(info, dict):
            info.setdefault("layers", layer_specs.DEFAULT)
    return {"teachers": teachers, "hop_length": index["hop_length"]}


class FeatureStore:
    """Reads precomputed features by utterance id (shards are memory-mapped, opened lazily).

    Args:
        root: a folder with `index.json` (teachers), `pitch.json` (pitch targets) or both.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        teachers, pitch = self.root / INDEX, self.root / PITCH_INDEX
        if not teachers.exists() and not pitch.exists():
            raise FileNotFoundError(f"{self.root}: no {INDEX} or {PITCH_INDEX}; run `dmcodec-train teachers` "
                                    "(or `dmcodec-train pitch`) first")
        self.index = json.loads(teachers.read_text()) if teachers.exists() else {"teachers": {}, "items": {}}
        self.pitch = json.loads(pitch.read_text()) if pitch.exists() else None
        self.has_teachers = teachers.exists()
        # The indexes present: an utterance must be in each of them.
        self._indexes = [i for i, present in ((self.index, self.has_teachers), (self.pitch, self.pitch is not None))
                         if present]
        self._open: dict[str, object] = {}

    @property
    def has_pitch(self) -> bool:
        return self.pitch is not None

    def layers(self, teacher: str) -> str:
        """The layer spec the teacher's (`lm` or `speech`) features were taken with."""
        return features_key(self.index)["teachers"][teacher]["layers"]

    def require_layers(self, wanted: dict[str, str]) -> None:
        """Raise ValueError unless each teacher's features were taken from the layers `wanted`
        names, e.g. {"lm": "average", "speech": "last"} (a run's config)."""
        for teacher, spec in wanted.items():
            held = self.layers(teacher)
            if held != spec:
                raise ValueError(f"{self.root} holds {teacher} features of layers {held!r}, the run asks for "
                                 f"{spec!r}: compute them with `dmcodec-train teachers --{teacher}-layers {spec}` "
                                 f"into another folder, or --set {teacher}_layers={held}")

    @property
    def dims(self) -> dict[str, int]:
        return {name: info["dim"] for name, info in self.index["teachers"].items() if isinstance(info, dict)}

    def __contains__(self, utterance_id: str) -> bool:
        return all(utterance_id in index["items"] for index in self._indexes)

    def frames(self, utterance_id: str) -> int:
        """The utterance's length in codec frames."""
        return next(index["items"][utterance_id]["frames"] for index in self._indexes)

    def get(self, utterance_id: str, start: int = 0, stop: int | None = None) -> dict[str, torch.Tensor]:
        """Frames [start, stop) of what the folder holds: the teachers' `lm` [F, D] float32,
        `lm_mask` [F] bool and `speech` [F, D] float32; the pitch targets' `log_f0` [F] float32
        (natural log of Hz, 0 where unvoiced) and `voiced` [F] bool."""
        out = {}
        for index, names in ((self.index if self.has_teachers else None, ("lm", "lm_mask", "speech")),
                             (self.pitch, ("log_f0", "voiced"))):
            if index is None:
                continue
            handle = self._shard(index["items"][utterance_id]["shard"])
            for name in names:
                tensor = handle.get_slice(f"{utterance_id}/{name}")[start:stop]
                out[name] = tensor.bool() if name in ("lm_mask", "voiced") else tensor.float()
        return out

    def _shard(self, name: str):
        if name not in self._open:
            self._open[name] = safe_open(str(self.root / name), framework="pt")
        return self._open[name]


def manifest_shards(manifest: str | Path, splits: tuple[str, ...], shard_size: int) -> list[list[Utterance]]:
    """The manifest's utterances of `splits`, in order, in shards of `shard_size`: the unit a
    feature folder is written and resumed in."""
    utterances = [u for u in read_manifest(manifest) if u.split in splits]
    if not utterances:
        raise ValueError(f"{manifest}: no utterances in splits {splits}")
    return [utterances[i:i + shard_size] for i in range(0, len(utterances), shard_size)]
