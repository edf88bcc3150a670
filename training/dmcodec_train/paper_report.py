"""`dmcodec-train paper report`: a sweep's figures beside the paper's, and the paired tests.

`OUT/<table>.md` holds:
- per variant, our mean and spread over seeds of each metric, beside the paper's published
  figures for the same row (arXiv v1, cited as such);
- the paired one-sided tests (`significance.py`) of the reference variant against every other,
  per metric, with the p-value and the number of utterances.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from .significance import EXACT_UP_TO, MIN_DIFFERING, paired_test
from .sweep import Sweep, read_results
from .tables import format_cell

# (header, score key, format); word error rates are percentages, as in the paper's tables.
METRICS = [("WER", "wer", ".2f"), ("WIL", "wil", ".2f"), ("RVQ-1 WER", "rvq1_wer", ".2f"),
           ("ViSQOL", "visqol", ".2f"), ("STOI", "stoi", ".3f"),
           ("PESQ-wb", "pesq", ".2f"), ("Mel dist.", "mel_distance", ".3f"),
           ("F0 RMSE (cents)", "f0_rmse_cents", ".0f"), ("V/UV err. %", "vuv_error", ".1f")]
PAPER_METRICS = [("WER", "wer", ".2f"), ("WIL", "wil", ".2f"), ("ViSQOL", "visqol", ".2f"), ("STOI", "stoi", ".3f")]
PAPER = "arXiv 2410.15017 v1"


def _spread(values: list[float], spec: str) -> str:
    """Mean, and ± the standard deviation over seeds where there are several."""
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return "-"
    mean = format(float(np.mean(finite)), spec)
    return mean if len(finite) == 1 else f"{mean} ± {format(float(np.std(finite, ddof=1)), spec)}"


def _per_utterance(runs: list[dict], metric: str, seeds: set[int]) -> list[float] | None:
    """A variant's score per utterance, averaged over `seeds` (same clips, so the pairs hold)."""
    rows = [run["model"]["per_utterance"].get(metric) for run in runs if run["seed"] in seeds]
    if not rows or any(row is None for row in rows):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an utterance NaN in every seed stays NaN
        return list(np.nanmean(np.asarray(rows, dtype=np.float64), axis=0))


def report(out: str | Path, reference: str | None = None) -> Path:
    """Write `OUT/<table>.md` from the sweep's results; returns its path.

    Args:
        reference: the variant tested against every other; default: the table's reference
            (`Table.reference`) where the sweep ran it, else the sweep's last variant in the
            table's order (the paper lists its recipes after the baselines).
    """
    out = Path(out)
    sweep, table, results = read_results(out)
    ran = [variant.name for variant in sweep.selected]  # in the table's order
    reference = reference or (table.reference if table.reference in ran else ran[-1])
    if reference not in ran:
        raise ValueError(f"{reference!r} is not among this sweep's variants ({', '.join(ran)})")
    lines = [f"# {table.name}: {table.title}", "", _setup(sweep, results), "",
             f"## Our figures (mean ± standard deviation over seeds) and the paper's ({PAPER})", ""]
    ours = " | ".join(h for h, _, _ in METRICS)
    theirs = " | ".join(f"paper {h}" for h, _, _ in PAPER_METRICS)
    lines += [f"| variant | seeds | {ours} | paper's row | {theirs} |",
              "|---|---|" + "---|" * len(METRICS) + "---|" + "---|" * len(PAPER_METRICS)]
    first = next(iter(results.values()), None)
    if first:
        original = first[0]["original"]["scores"]
        lines.append("| originals (ASR on the input) | - | " + " | ".join(
            format_cell(original.get(k), s) if k in ("wer", "wil") else "-" for _, k, s in METRICS)
            + " | ground truth | "
            + " | ".join(format_cell(table.published_originals.get(k), s) for _, k, s in PAPER_METRICS)
            + " |")
    for variant in table.variants:
        runs = results.get(variant.name)
        if variant not in sweep.selected:
            continue
        cells = (" | ".join(_spread([r["model"]["scores"].get(k) for r in runs], s) for _, k, s in METRICS)
                 if runs else " | ".join("not run yet" if i == 0 else "" for i in range(len(METRICS))))
        paper = " | ".join(format_cell(variant.published.get(k), s) for _, k, s in PAPER_METRICS)
        lines.append(f"| {variant.name} | {len(runs or [])}/{len(sweep.seeds)} | {cells} | "
                     f"{variant.paper_row or '(none: not in the paper)'} | {paper} |")
    lines += ["", *_significance(table, results, reference, sweep)]
    path = out / f"{table.name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _setup(sweep: Sweep, results: dict[str, list[dict]]) -> str:
    start = f"from `{sweep.init_from}`" if sweep.init_from else "from random weights"
    clips = next((len(r[0]["original"]["per_utterance"]["id"]) for r in results.values()), 0)
    return (f"Each variant: preset `{sweep.base}` with the variant's overrides, {sweep.steps} steps {start}, "
            f"seeds {list(sweep.seeds)}; each run's last weights (not its best dev checkpoint) "
            f"scored on {clips} utterances of the `{sweep.eval_split}` split of "
            f"`{sweep.manifest}`{' (Whisper for WER/WIL)' if sweep.asr else ' (no ASR)'}. The paper's figures "
            "come from its own setup (LibriSpeech, its teachers, its training length): compare the ranking of "
            "the rows, not the values across the two columns.")


def _significance(table, results: dict[str, list[dict]], reference: str, sweep: Sweep) -> list[str]:
    import scipy

    head = [f"## Paired tests: {reference} against each other variant", "",
            "One-sided Wilcoxon signed-rank test per utterance (H1: "
            f"{reference} is better in the metric's own direction), on each variant's per-utterance scores "
            "averaged over the seeds both variants have finished. Cells: p-value, the median gain per utterance "
            "(positive: the reference is better), and (utterances compared / whose scores differed); "
            f"\"too few\" where fewer than {MIN_DIFFERING} differ, since no outcome could then reach p < 0.05. "
            f"Exact p up to {EXACT_UP_TO} differing utterances without tied magnitudes, else the normal "
            f"approximation (scipy {scipy.__version__}). WER and WIL are tested per clip, unweighted, while the "
            "table above gives them over the corpus (weighted by words), so their signs can differ. "
            "The paper's Table 2 does not name its test; this is this package's choice (`significance.py`).", ""]
    chosen = results.get(reference)
    if not chosen:
        return [*head, f"{reference} has not finished: no tests yet."]
    lines = [*head]
    rows = []
    compared = 0
    for variant in table.variants:
        runs = results.get(variant.name)
        if variant.name == reference or not runs:
            continue
        seeds = {r["seed"] for r in chosen} & {r["seed"] for r in runs}
        cells = []
        for _, key, spec in METRICS:
            ours, theirs = _per_utterance(chosen, key, seeds), _per_utterance(runs, key, seeds)
            if ours is None or theirs is None:
                cells.append("-")
                continue
            test = paired_test(key, ours, theirs)
            counts = f"({test.utterances}/{test.differing})"
            if not test.utterances:
                cells.append("-")  # undefined on every clip (e.g. PESQ without speech)
            elif not test.conclusive:
                cells.append(f"too few {counts}")
            else:
                compared += 1
                cells.append(f"{format_cell(test.p_value, '.3g')}, {test.median_gain:+{spec}} {counts}")
        rows.append(f"| {variant.name} (seeds {sorted(seeds) or '-'}) | " + " | ".join(cells) + " |")
    headers = [h for h, _, _ in METRICS]
    lines += ["| baseline | " + " | ".join(headers) + " |", "|---|" + "---|" * len(headers), *rows]
    if compared > 1:
        lines += ["", f"The p-values are per comparison, not corrected for the {compared} made here: at a "
                  f"family-wise 0.05 (Bonferroni), read p < {0.05 / compared:.2g} as significant."]
    return lines
