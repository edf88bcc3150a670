"""The DM-Codec paper's experiments (arXiv 2410.15017, Tables 1 and 3-6) as named variants.

A variant is a set of dotted-key overrides on a base training preset (the same keys as `train
--set`) plus the options of `dmcodec-train teachers` its feature folder needs. Resolving a table
gives each variant's complete TrainConfig, so `dmcodec-train paper show TABLE` prints exactly
what a run of that row trains with, and a sweep runner (issue 32, point 3) can train each
variant by name: `train MANIFEST FEATURES RUN --preset BASE --set k=v ...`, on features computed
with the variant's `teachers` options (the trainer refuses features of other teacher layers).

Each row that the paper prints carries its published figures (arXiv v1, Tables 1 and 3-6;
`docs/paper-figures.md` says where they were read and how far they were checked), so a sweep's
report can put them beside ours. Rows of our own (the teachers that ship here) have none.
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
        paper_row: the row of the paper's table this variant reproduces ("" where it has none).
        published: that row's figures as the paper prints them (v1; `docs/paper-figures.md`
            gives the source), keyed like the evaluation's scores: wer, wil (percent), visqol, stoi.
    """

    name: str
    note: str
    overrides: dict[str, Any] = field(default_factory=dict)
    lm_teacher: str = "default"
    speech_teacher: str = "whisper"
    paper_row: str = ""
    published: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """Args: name: `table1` ...; title: what it varies; variants: its rows, in the paper's order;
    reference: the variant the paired tests compare with every other: the paper's recipe, except
        in table 5, whose paper rows need teachers that do not ship here (there: the shipped pair);
    published_originals: the paper's ground-truth row (ASR on the original audio)."""

    name: str
    title: str
    variants: tuple[Variant, ...]
    reference: str
    published_originals: dict[str, float] = field(default_factory=dict)

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise ValueError(f"{self.name} has no variant {name!r} (variants: {[v.name for v in self.variants]})")


def _tag(levels: str) -> str:
    """A level spec in a variant's name: "1:8" -> "1-8" (names become run folder names)."""
    return levels.replace(":", "-")


def _weights(speech: float, lm: float) -> dict[str, float]:
    return {"loss.speech": speech, "loss.lm": lm}


def _figures(wer: float, wil: float | None = None, visqol: float | None = None,
             stoi: float | None = None) -> dict[str, float]:
    named = {"wer": wer, "wil": wil, "visqol": visqol, "stoi": stoi}
    return {key: value for key, value in named.items() if value is not None}


# The LM into RVQ-1 and the speech model into RVQ-1, equally weighted: the combined recipe of
# Tables 3, 5 and 6. The paper does not say so in words; its figures do (their 0.5 / 0.5 row,
# their BERT + HuBERT row and their combined average-layer row all print Table 4's RVQ-1 / RVQ-1
# figures, 4.18 / 6.84 / 3.13 / 0.933), while Table 1's best row distils the speech model into
# RVQ-1:8.
_COMBINED = {**_weights(0.5, 0.5), "speech_levels": "1"}
_LM_ONLY = _weights(0.0, 1.0)

TABLE1 = Table("table1", "Baselines and DM-Codec: what is distilled", (
    Variant("no-distillation", "EnCodec-style baseline: reconstruction only", {"loss.distillation": 0.0},
            paper_row="EnCodec (the official checkpoint, not this recipe)",
            published=_figures(4.53, 7.17, 3.08, 0.920)),
    Variant("speech-rvq1", "SpeechTokenizer-style baseline: the speech model into RVQ-1 only",
            {**_weights(1.0, 0.0), "speech_levels": "1"},
            paper_row="SpeechTokenizer", published=_figures(4.49, 7.10, 3.09, 0.923)),
    Variant("lm", "DM-Codec, LM-guided only: the LM into RVQ-1", _LM_ONLY,
            paper_row="DM-Codec, LM-guided", published=_figures(4.36, 7.06, 3.18, 0.935)),
    Variant("lm+speech", "DM-Codec, LM and speech model: the LM into RVQ-1, the speech model into "
            "RVQ-1:8, weighted 0.5 / 0.5", _weights(0.5, 0.5),
            paper_row="DM-Codec, combined", published=_figures(4.05, 6.61, 3.26, 0.937)),
), reference="lm+speech", published_originals=_figures(3.78, 6.03))

# lambda_SM from 1.0 down to 0.0 in steps of 0.1, lambda_LM = 1 - lambda_SM; the paper prints WER only.
_TABLE3_WER = (4.83, 4.63, 4.44, 4.23, 4.76, 4.18, 4.54, 4.34, 4.07, 4.33, 4.36)
TABLE3 = Table("table3", "Distillation weights lambda_SM / lambda_LM", tuple(
    Variant(f"sm{sm:.1f}-lm{1 - sm:.1f}", f"lambda_SM = {sm:.1f}, lambda_LM = {1 - sm:.1f}",
            {**_COMBINED, **_weights(sm, round(1 - sm, 1))},
            paper_row=f"{sm:.1f} / {1 - sm:.1f}", published=_figures(wer))
    for sm, wer in zip((round(1 - k / 10, 1) for k in range(11)), _TABLE3_WER)
), reference="sm0.5-lm0.5", published_originals=_figures(3.78, 6.03))

# The LM alone into each target, then the paper's five LM + speech model combinations.
TABLE4 = Table("table4", "Distillation targets: which RVQ levels each teacher distils into", (
    *(Variant(f"lm{_tag(levels)}", f"the LM alone into RVQ-{levels}", {**_LM_ONLY, "lm_levels": levels},
              paper_row=f"LM RVQ-{levels}", published=figures)
      for levels, figures in (("1", _figures(4.36, 7.06, 3.18, 0.935)), ("1:8", _figures(4.23, 6.94, 3.12, 0.929)),
                              ("8", _figures(4.44, 7.22, 3.28, 0.935)))),
    *(Variant(f"lm{_tag(lm)}+sm{_tag(sm)}", f"the LM into RVQ-{lm}, the speech model into RVQ-{sm}",
              {**_weights(0.5, 0.5), "lm_levels": lm, "speech_levels": sm},
              paper_row=f"LM RVQ-{lm}, SM RVQ-{sm}", published=figures)
      for lm, sm, figures in (("1", "1", _figures(4.18, 6.84, 3.13, 0.933)),
                              ("1:8", "1", _figures(4.59, 7.34, 3.21, 0.937)),
                              ("8", "1", _figures(4.49, 7.24, 3.30, 0.938)),
                              ("1", "1:8", _figures(4.05, 6.61, 3.26, 0.937)),
                              ("1", "8", _figures(4.39, 7.08, 3.33, 0.939)))),
), reference="lm1+sm1-8", published_originals=_figures(3.78, 6.03))

# The teachers that ship here, then the paper's: BERT-base or ELECTRA as the LM, HuBERT-base or
# wav2vec 2.0 base as the speech model (local folders under the teachers root; the paper does not
# name its ELECTRA size: `electra-base-discriminator` is this package's guess, any folder works).
_BERT, _ELECTRA, _HUBERT, _WAV2VEC2 = ("bert-base-uncased", "electra-base-discriminator", "hubert-base-ls960",
                                       "wav2vec2-base-960h")
TABLE5 = Table("table5", "Teacher models (LM and speech model)", (
    Variant("minilm", "the LM that ships here, all-MiniLM-L6-v2, alone", _LM_ONLY),
    Variant("minilm+whisper", "the teachers that ship here: all-MiniLM-L6-v2 and the Whisper tiny.en encoder",
            _COMBINED),
    Variant("bert", "the paper's LM, bert-base-uncased, alone", _LM_ONLY, lm_teacher=_BERT,
            paper_row="BERT", published=_figures(4.36, 7.06, 3.18, 0.935)),
    Variant("electra", "ELECTRA alone", _LM_ONLY, lm_teacher=_ELECTRA,
            paper_row="ELECTRA", published=_figures(4.12, 6.63, 3.10, 0.936)),
    Variant("bert+hubert", "the paper's teachers", _COMBINED, lm_teacher=_BERT, speech_teacher=_HUBERT,
            paper_row="BERT + HuBERT", published=_figures(4.18, 6.84, 3.13, 0.933)),
    Variant("bert+wav2vec2", "BERT and wav2vec 2.0", _COMBINED, lm_teacher=_BERT, speech_teacher=_WAV2VEC2,
            paper_row="BERT + wav2vec 2.0", published=_figures(4.13, 6.77, 3.15, 0.942)),
    Variant("electra+wav2vec2", "ELECTRA and wav2vec 2.0", _COMBINED, lm_teacher=_ELECTRA,
            speech_teacher=_WAV2VEC2, paper_row="ELECTRA + wav2vec 2.0", published=_figures(4.70, 7.51, 3.14, 0.933)),
    Variant("electra+hubert", "ELECTRA and HuBERT", _COMBINED, lm_teacher=_ELECTRA, speech_teacher=_HUBERT,
            paper_row="ELECTRA + HuBERT", published=_figures(4.67, 7.58, 2.94, 0.932)),
), reference="minilm+whisper", published_originals=_figures(3.78, 6.03))

# LM-guided and combined, each from the average of all layers, the last layer, and the 9th.
# "9th" is the paper's layer 9 of BERT-base's 12, written as a relative depth so that a 6-layer
# teacher takes the layer at the same depth (its 5th). The LM-guided rows leave the speech
# teacher's layers alone (it is not distilled there).
_LAYERS = (("average", "the mean of all layers (the paper's choice)", "average"),
           ("last", "the last layer", "last"),
           ("9th", "the paper's 9th of 12 layers, at the same depth on any teacher", "depth:0.75"))
TABLE6 = Table("table6", "Teacher layers", (
    *(Variant(f"lm-{name}", f"LM-guided, {note}", {**_LM_ONLY, "lm_layers": spec},
              paper_row=f"LM-guided, {name}", published=figures)
      for (name, note, spec), figures in zip(_LAYERS, (_figures(4.36, 7.06, 3.18, 0.935),
                                                       _figures(4.62, 7.56, 2.95, 0.926),
                                                       _figures(4.75, 7.80, 2.88, 0.925)))),
    *(Variant(f"lm+sm-{name}", f"combined, {note}", {**_COMBINED, "lm_layers": spec, "speech_layers": spec},
              paper_row=f"combined, {name}", published=figures)
      for (name, note, spec), figures in zip(_LAYERS, (_figures(4.18, 6.84, 3.13, 0.933),
                                                       _figures(4.68, 7.55, 3.03, 0.933),
                                                       _figures(4.52, 7.43, 3.00, 0.933)))),
), reference="lm+sm-average", published_originals=_figures(3.78, 6.03))

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
