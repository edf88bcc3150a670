"""The shipping rule: a candidate replaces the shipped model only when it beats it on every
measure of every held-out set (the campaign's rule, issue 30).

The measures are those a listener and a speech-LM pipeline feel: intelligibility (STOI),
quality (wideband PESQ), words (WER against what the ASR heard in the originals), pitch (F0 RMSE)
and voicing (V/UV error). "Beats" is on the set's mean, strictly: a tie keeps the shipped model.
Each row also carries the paired test of `significance.py` where the results hold per-clip
scores, so that a win by one clip's words on a small set reads as what it is.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .significance import PairedTest, better_direction, defined_pairs, paired_test
from .tables import format_cell

# (column, score key, format)
MEASURES = (("STOI", "stoi", ".3f"), ("PESQ-wb", "pesq", ".2f"), ("WER vs orig. ASR", "wer_vs_original_asr", ".1f"),
            ("F0 RMSE (cents)", "f0_rmse_cents", ".0f"), ("V/UV err. %", "vuv_error", ".1f"))


@dataclass(frozen=True)
class Comparison:
    """One measure on one held-out set: both models' means, whether the candidate's is better,
    and the paired test (None where the results lack that measure's per-clip scores)."""

    held_out: str
    measure: str
    baseline: float
    candidate: float
    test: PairedTest | None

    @property
    def better(self) -> bool:
        if math.isnan(self.baseline) or math.isnan(self.candidate):
            return False
        return better_direction(self.measure) * (self.candidate - self.baseline) > 0


def _rows(paths: list[Path]) -> tuple[list[str], dict[str, dict]]:
    """The clip ids and the model rows (by name) of one held-out set's results, which may come
    from several `dmcodec-train eval` runs over the same clips."""
    ids: list[str] | None = None
    rows: dict[str, dict] = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not JSON ({err})") from None
        if not isinstance(data, list) or not all(isinstance(row, dict) and "name" in row and "scores" in row
                                                 for row in data):
            raise ValueError(f"{path}: not the results.json of `dmcodec-train eval` (a list of named rows)")
        original = next((row for row in data if row["name"] == "original"), None)
        clip_ids = (original or {}).get("per_utterance", {}).get("id")
        if clip_ids is None:
            raise ValueError(f"{path}: not the results.json of `dmcodec-train eval` (no originals' row)")
        if ids is not None and clip_ids != ids:
            raise ValueError(f"{path}: scored other clips than {paths[0]}; a comparison needs the same clips")
        ids = clip_ids
        for row in data:
            if row["name"] == "original":
                continue
            if row["name"] in rows and rows[row["name"]]["scores"] != row["scores"]:
                raise ValueError(f"{path}: a row {row['name']!r} that scores otherwise than another file's "
                                 "(two models of one name?); export them under distinct --name")
            rows[row["name"]] = row
    return ids or [], rows


def _row(rows: dict[str, dict], name: str, held_out: str) -> dict:
    if name not in rows:
        raise ValueError(f"{held_out}: no row {name!r} (rows: {', '.join(sorted(rows))})")
    return rows[name]


def _score(row: dict, key: str) -> float:
    value = row["scores"].get(key)
    return math.nan if value is None else float(value)  # results files write NaN as null


def compare(held_out: dict[str, list[Path]], baseline: str, candidate: str) -> list[Comparison]:
    """Every measure of every held-out set, candidate against baseline.

    Args:
        held_out: each set's name and its results.json files (from `dmcodec-train eval`).
        baseline, candidate: the models' row names (their checkpoints' names).
    """
    comparisons = []
    for name, paths in held_out.items():
        _, rows = _rows(paths)
        base, cand = _row(rows, baseline, name), _row(rows, candidate, name)
        for _, key, _ in MEASURES:
            per_clip = (cand.get("per_utterance", {}).get(key), base.get("per_utterance", {}).get(key))
            test = paired_test(key, *per_clip) if None not in per_clip else None
            means = (_score(base, key), _score(cand, key))
            if test is not None and key != "wer_vs_original_asr":
                # Over the clips both define: a model must not gain by leaving its worst clips
                # undefined (no voiced frame: no F0 error). The WER stays the corpus figure.
                base_clips, cand_clips = defined_pairs(per_clip[1], per_clip[0])
                means = (float(base_clips.mean()), float(cand_clips.mean())) if len(base_clips) else (math.nan,) * 2
            comparisons.append(Comparison(name, key, *means, test))
    return comparisons


def beats_on_every_measure(comparisons: list[Comparison]) -> bool:
    return bool(comparisons) and all(c.better for c in comparisons)


def to_markdown(comparisons: list[Comparison], baseline: str, candidate: str) -> str:
    """One row per held-out set and measure, then the verdict."""
    spec = {key: fmt for _, key, fmt in MEASURES}
    label = {key: column for column, key, _ in MEASURES}
    lines = [f"| held-out set | measure | {baseline} | {candidate} | better? | one-sided p (clips differing) |",
             "|---|---|---|---|---|---|"]
    for c in comparisons:
        p = "-" if c.test is None or math.isnan(c.test.p_value) else f"{c.test.p_value:.3f} ({c.test.differing})"
        lines.append(f"| {c.held_out} | {label[c.measure]} | {format_cell(c.baseline, spec[c.measure])} | "
                     f"{format_cell(c.candidate, spec[c.measure])} | {'yes' if c.better else '**no**'} | {p} |")
    losses = [f"{c.held_out} {label[c.measure]}" for c in comparisons if not c.better]
    verdict = (f"{candidate} beats {baseline} on every measure of every held-out set: it may ship."
               if beats_on_every_measure(comparisons)
               else f"{candidate} does not beat {baseline} on: {', '.join(losses)}. It does not ship.")
    return "\n".join(lines) + "\n\n" + verdict + "\n"
