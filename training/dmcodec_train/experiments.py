"""The DM-Codec paper's experiments (arXiv 2410.15017, Tables 1 and 3-6) as named variants.

A variant is a set of dotted-key overrides on a base training preset (the same keys as `train
--set`) plus the options of `dmcodec-train teachers` its feature folder needs. Resolving a table
gives each variant's complete TrainConfig, so `dmcodec-train paper show TABLE` prints exactly
what a run of that row trains with, and a sweep runner (issue 32, point 3) can train each
variant by name: `train MANIFEST FEATURES RUN --preset BASE --set k=v ...`, on features computed
with the variant's `teachers` options (the trainer refuses features of other teacher layers).

The paper's own figures are not included: none is quoted here from memory, since a wrong
number would mislead a comparison more than a missing one. Compare against the paper's tables
directly. Where the paper's exact row set is not certain (Table 4's LM+SM combinations, Table
5's alternative teachers), the variants cover a grid that contains the paper's main recipe and
the docstrings say so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import TrainConfig

DEFAULT_BASE = "paper"
# Teacher names a variant may use besides the shipped defaults ("default": the MiniLM wheel for
# the LM, "whisper": the Whisper encoder stand-in for speech) are folders under this root.
TEACHERS_ROOT = Path(os.environ.get("DMCODEC_TEACHERS", Path.home() / ".cache" / "dmcodec" / "teachers"))


@dataclass(frozen=True)
class Variant:
    """One row of a table.

    Args:
        name: short, unique in its table (part of the run's name).
        note: what the row is, in the paper's terms.
        overrides: dotted-key overrides on the base preset, e.g. {"loss.lm": 0.0}.
        lm_teacher, speech_teacher: the teachers (`default`, `whisper`, or a model folder name
            under the teachers root: the paper's `bert-base-uncased`, `hubert-base-ls960`).
    """

    name: str
    note: str
    overrides: dict[str, Any] = field(default_factory=dict)
    lm_teacher: str = "default"
    speech_teacher: str = "whisper"


@dataclass(frozen=True)
class Table:
    """Args: name: `table1` ...; title: what it varies; variants: its rows, in the paper's order."""

    name: str
    title: str
    variants: tuple[Variant, ...]


def _tag(levels: str) -> str:
    """A level spec in a variant's name: "1:8" -> "1-8" (names become run folder names)."""
    return levels.replace(":", "-")


def _weights(speech: float, lm: float) -> dict[str, float]:
    return {"loss.speech": speech, "loss.lm": lm}


TABLE1 = Table("table1", "Baselines and DM-Codec: what is distilled", (
    Variant("no-distillation", "EnCodec-style baseline: reconstruction only", {"loss.distillation": 0.0}),
    Variant("speech-rvq1", "SpeechTokenizer-style baseline: the speech model into RVQ-1 only",
            {**_weights(1.0, 0.0), "speech_levels": "1"}),
    Variant("lm", "DM-Codec, LM-guided only: the LM into RVQ-1", _weights(0.0, 1.0)),
    Variant("lm+speech", "DM-Codec, LM and speech model: the LM into RVQ-1, the speech model into "
            "RVQ-1:8, weighted 0.5 / 0.5", _weights(0.5, 0.5)),
))

# lambda_SM from 1.0 down to 0.0 in steps of 0.1, lambda_LM = 1 - lambda_SM.
TABLE3 = Table("table3", "Distillation weights lambda_SM / lambda_LM", tuple(
    Variant(f"sm{sm:.1f}-lm{1 - sm:.1f}", f"lambda_SM = {sm:.1f}, lambda_LM = {1 - sm:.1f}",
            _weights(sm, round(1 - sm, 1)))
    for sm in (round(1 - k / 10, 1) for k in range(11))
))

# The LM alone into each target, then LM + speech model over {RVQ-1, RVQ-1:8, RVQ-8} x
# {RVQ-1, RVQ-1:8}: a grid that holds the paper's combinations (its main recipe is lm1+sm1:8).
TABLE4 = Table("table4", "Distillation targets: which RVQ levels each teacher distils into", (
    *(Variant(f"lm{_tag(levels)}", f"the LM alone into RVQ-{levels}", {**_weights(0.0, 1.0), "lm_levels": levels})
      for levels in ("1", "1:8", "8")),
    *(Variant(f"lm{_tag(lm)}+sm{_tag(sm)}", f"the LM into RVQ-{lm}, the speech model into RVQ-{sm}",
              {**_weights(0.5, 0.5), "lm_levels": lm, "speech_levels": sm})
      for lm in ("1", "1:8", "8") for sm in ("1", "1:8")),
))

# The shipped teachers, then the paper's (BERT-base, HuBERT-base; local folders under the
# teachers root), each swapped in alone and together. The paper's further alternatives are not
# listed from memory: any local Hugging Face folder under the root works as a Variant here.
TABLE5 = Table("table5", "Teacher models (LM and speech model)", (
    Variant("minilm+whisper", "the teachers that ship here: all-MiniLM-L6-v2 and the Whisper tiny.en encoder",
            _weights(0.5, 0.5)),
    Variant("bert+whisper", "the paper's LM, bert-base-uncased", _weights(0.5, 0.5), lm_teacher="bert-base-uncased"),
    Variant("minilm+hubert", "the paper's speech model, hubert-base-ls960", _weights(0.5, 0.5),
            speech_teacher="hubert-base-ls960"),
    Variant("bert+hubert", "the paper's teachers", _weights(0.5, 0.5), lm_teacher="bert-base-uncased",
            speech_teacher="hubert-base-ls960"),
))

# The same choice for both teachers. "9th" is the paper's layer 9 of BERT-base's 12, written as
# a relative depth so that a 6-layer teacher takes the layer at the same depth (its 5th).
TABLE6 = Table("table6", "Teacher layers", tuple(
    Variant(name, note, {**_weights(0.5, 0.5), "lm_layers": spec, "speech_layers": spec})
    for name, note, spec in (("average", "the mean of all layers (the paper's choice)", "average"),
                             ("last", "the last layer", "last"),
                             ("9th", "the paper's 9th of 12 layers, at the same depth on any teacher", "depth:0.75"))
))

TABLES = {table.name: table for table in (TABLE1, TABLE3, TABLE4, TABLE5, TABLE6)}


def get_table(name: str) -> Table:
    if name not in TABLES:
        raise ValueError(f"no experiment table {name!r} (tables: {sorted(TABLES)})")
    return TABLES[name]


def teacher_options(variant: Variant, config: TrainConfig, root: Path = TEACHERS_ROOT) -> dict[str, str]:
    """The `dmcodec-train teachers` options that compute this variant's features."""
    def where(name: str, shipped: str) -> str:
        return name if name == shipped else str(root / name)

    return {"lm_teacher": where(variant.lm_teacher, "default"),
            "speech_teacher": where(variant.speech_teacher, "whisper"),
            "lm_layers": config.lm_layers, "speech_layers": config.speech_layers}


def resolve(table: str, base: str = DEFAULT_BASE, root: Path = TEACHERS_ROOT) -> list[dict[str, Any]]:
    """Each variant of `table` on the preset `base`: its name, note, teachers' options and the
    full training config (named `<table>-<variant>`), as plain JSON-ready dicts."""
    rows = []
    for variant in get_table(table).variants:
        config = TrainConfig.load(base, {**variant.overrides, "name": f"{table}-{variant.name}"})
        rows.append({"name": variant.name, "note": variant.note, "overrides": variant.overrides,
                     "teachers": teacher_options(variant, config, root), "config": config.to_dict()})
    return rows
