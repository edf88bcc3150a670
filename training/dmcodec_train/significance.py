"""Paired significance tests between two models scored on the same utterances (the paper's Table 2).

The test is the one-sided Wilcoxon signed-rank test on the per-utterance differences:
- paired, because both models coded the same clips, and a clip's difficulty moves both scores;
- signed-rank rather than a t-test, because per-clip WER is discrete and heavy-tailed (most
  short clips score 0, a few score 100) and STOI/PESQ differences are not normal either;
- one-sided, because the question is whether the chosen variant is *better* than a baseline,
  in each metric's own direction.
Clips where the two models score the same carry no sign and are dropped (Wilcoxon's own
treatment), so the report gives both the utterances compared and those that differed. The
p-value is exact: from the signed-rank distribution up to 50 differing clips without tied
magnitudes, else from all sign flips up to 16 of them; beyond that, the normal approximation with
the tie correction. The choice is made here rather than left to the scipy version's default.
With fewer than `MIN_DIFFERING` differing clips no outcome can reach p < 0.05 (the smallest
one-sided exact p is 0.5 ** n).

The paper's Table 2 marks "significantly better" per metric without naming its test or printing
p-values; this is this package's choice, stated in every report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Which way is better, per score key of the evaluation harness.
LOWER_IS_BETTER = {"wer", "wil", "rvq1_wer", "rvq1_wil", "wer_vs_original_asr", "mel_distance", "f0_rmse_cents",
                   "vuv_error"}
HIGHER_IS_BETTER = {"stoi", "pesq", "visqol", "periodicity"}
MIN_DIFFERING = 5
EXACT_UP_TO = 50
PERMUTE_UP_TO = 16


@dataclass(frozen=True)
class PairedTest:
    """metric: the score key; utterances: pairs with both scores defined; differing: pairs whose
    scores differ (the test's sample); p_value: NaN when no pair differs; median_gain: the chosen
    model's median improvement over the baseline, in the metric's units, positive = better;
    method: "exact", "permutation" or "normal" (see the module's notes); "" when no pair differs."""

    metric: str
    utterances: int
    differing: int
    p_value: float
    median_gain: float
    method: str = ""

    @property
    def conclusive(self) -> bool:
        """Whether enough clips differ for any outcome to reach p < 0.05."""
        return self.differing >= MIN_DIFFERING


def better_direction(metric: str) -> int:
    """+1 where a higher score is better, -1 where a lower one is."""
    if metric in HIGHER_IS_BETTER:
        return 1
    if metric in LOWER_IS_BETTER:
        return -1
    raise ValueError(f"no known direction for metric {metric!r}")


def defined_pairs(chosen: list, baseline: list) -> tuple[np.ndarray, np.ndarray]:
    """The two per-utterance score lists kept where both are defined (neither NaN nor None)."""
    a, b = np.asarray(chosen, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    defined = ~(np.isnan(a) | np.isnan(b))
    return a[defined], b[defined]


def paired_test(metric: str, chosen: list[float], baseline: list[float]) -> PairedTest:
    """Is `chosen` better than `baseline` on `metric`? Both list one score per utterance, in the
    same order; NaN scores (no speech for PESQ, no voiced frames for F0) drop their pair."""
    from scipy.stats import PermutationMethod, wilcoxon

    if len(chosen) != len(baseline):
        raise ValueError(f"{metric}: {len(chosen)} scores against {len(baseline)}: not the same utterances")
    a, b = defined_pairs(chosen, baseline)
    gain = better_direction(metric) * (a - b)
    differing = int(np.count_nonzero(gain))
    if differing == 0:
        return PairedTest(metric, len(gain), 0, math.nan, 0.0)
    # Only the differing clips go in: the exact and normal methods drop zeros themselves, but the
    # sign-flip enumeration would count 2 ** len(gain) arrangements and fall back to sampling.
    nonzero = gain[gain != 0]
    tied = len(np.unique(np.abs(nonzero))) < differing
    if differing <= EXACT_UP_TO and not tied:
        method, how = "exact", "exact"
    elif differing <= PERMUTE_UP_TO:
        method, how = PermutationMethod(n_resamples=2 ** differing), "permutation"  # all sign flips
    else:
        method, how = "asymptotic", "normal"
    p_value = float(wilcoxon(nonzero, zero_method="wilcox", alternative="greater", method=method).pvalue)
    return PairedTest(metric, len(gain), differing, p_value, float(np.median(gain)), how)
