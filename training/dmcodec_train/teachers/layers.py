"""Which of a teacher's hidden layers become its feature: one small spec, parsed in one place.

Specs (the same for the LM and the speech teacher):
    "average"     the mean of all transformer layers (the paper's choice, the default)
    "last"        the last layer
    "index:K"     layer K, 1-based over the transformer layers (the embeddings are not a layer):
                  the paper's "9th" is "index:9" of BERT-base's 12
    "depth:R"     the layer at relative depth R in (0, 1]: round(R * layers), halves rounded up,
                  at least 1. "depth:0.75" is layer 9 of 12 and layer 5 of 6 (4.5 rounds up),
                  so a 6-layer teacher stands at the depth the paper's 9th of 12 does.
The spec is validated against the teacher's layer count when the teacher loads, recorded in the
feature folder's index and in the run's config; the trainer refuses features of another spec.
"""

from __future__ import annotations

import math

import torch

DEFAULT = "average"


def parse(spec: str) -> tuple[str, float | int | None]:
    """A spec -> (kind, value): ("average", None), ("last", None), ("index", K), ("depth", R).

    Raises ValueError for anything else, so a typo fails before any teacher runs.
    """
    kind, sep, raw = spec.strip().partition(":")
    if kind in ("average", "last") and not sep:
        return kind, None
    try:
        if kind == "index" and int(raw) >= 1:
            return kind, int(raw)
        if kind == "depth" and 0 < float(raw) <= 1:
            return kind, float(raw)
    except ValueError:
        pass
    raise ValueError(f"bad layer spec {spec!r}: expected 'average', 'last', 'index:K' (K >= 1) "
                     "or 'depth:R' (0 < R <= 1)")


def resolve(spec: str, num_layers: int, teacher: str = "teacher") -> list[int]:
    """The 1-based layers `spec` selects from a teacher with `num_layers` transformer layers.

    Args:
        spec: a layer spec (see the module docstring).
        num_layers: the teacher's transformer layers (hidden states less the embeddings).
        teacher: its name, for the error message.
    """
    kind, value = parse(spec)
    if kind == "average":
        return list(range(1, num_layers + 1))
    if kind == "last":
        return [num_layers]
    if kind == "depth":
        return [max(1, math.floor(value * num_layers + 0.5))]
    if value > num_layers:
        raise ValueError(f"layer spec {spec!r}: {teacher} has {num_layers} layers (index:1 to index:{num_layers})")
    return [value]


def select(hidden_states: tuple[torch.Tensor, ...] | list[torch.Tensor], layers: list[int]) -> torch.Tensor:
    """The mean of the chosen layers of a Hugging Face `hidden_states` (embeddings first, then
    one tensor per layer, each [B, T, D]) -> [B, T, D]."""
    return torch.stack([hidden_states[k] for k in layers]).mean(0)
