"""The paired tests and the sweep report (issue 32, points 3-4), on results files written here:
the statistics must find a real difference, find none where there is none, and respect each
metric's direction; the report must put our spread over seeds beside the paper's figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dmcodec_train.experiments import TABLE1
from dmcodec_train.paper_report import report
from dmcodec_train.significance import paired_test
from dmcodec_train.sweep import Sweep, job_name


def test_a_consistent_gain_is_significant_in_the_metrics_own_direction():
    rng = np.random.default_rng(0)
    baseline = rng.uniform(0.7, 0.9, 40)
    better = baseline + rng.uniform(0.005, 0.02, 40)
    assert paired_test("stoi", list(better), list(baseline)).p_value < 1e-6
    assert paired_test("stoi", list(baseline), list(better)).p_value > 0.99
    # WER: lower is better, so the same numbers read the other way round.
    assert paired_test("wer", list(baseline), list(better)).p_value < 1e-6
    test = paired_test("wer", list(better), list(baseline))
    assert test.p_value > 0.99 and test.median_gain < 0 and test.utterances == test.differing == 40


def test_noise_alone_is_not_significant_and_ties_or_nans_drop_their_pair():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=60), rng.normal(size=60)
    assert paired_test("pesq", list(a), list(b)).p_value > 0.05
    tied = paired_test("wer", [0.0, 0.0, 50.0, math.nan], [0.0, 0.0, 50.0, 10.0])
    assert (tied.utterances, tied.differing) == (3, 0) and math.isnan(tied.p_value)
    with pytest.raises(ValueError, match="not the same utterances"):
        paired_test("wer", [1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="no known direction"):
        paired_test("bitrate_kbps", [1.0], [2.0])


def _write_sweep(out, seeds=(0, 1), variants=("no-distillation", "lm+speech")):
    """A finished table-1 sweep of two variants: lm+speech 0.02 STOI and 5 WER points better
    on every one of 30 clips, in every seed."""
    sweep = Sweep("table1", "/data/manifest.jsonl", "tiny", 4, tuple(seeds), variants=tuple(variants))
    sweep.claim(out)
    rng = np.random.default_rng(2)
    base_stoi, base_wer = rng.uniform(0.7, 0.9, 30), rng.uniform(10, 40, 30)
    for variant in variants:
        gain = 1.0 if variant == "lm+speech" else 0.0
        for seed in seeds:
            stoi = base_stoi + 0.02 * gain + rng.normal(0, 0.001, 30)
            wer = base_wer - 5 * gain + rng.normal(0, 0.1, 30)
            per = {"stoi": list(stoi), "wer": list(wer), "pesq": [math.nan] * 30}
            record = {"variant": variant, "seed": seed, "steps": 4,
                      "original": {"scores": {"wer": 3.5, "wil": 6.0},
                                   "per_utterance": {"id": [f"u{i}" for i in range(30)]}},
                      "model": {"name": variant, "scores": {"stoi": float(np.mean(stoi)), "wer": float(np.mean(wer))},
                                "per_utterance": per}}
            path = out / "results" / f"{job_name(TABLE1.variant(variant), seed)}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
    return sweep


def test_the_report_puts_our_spread_beside_the_papers_row_and_tests_the_reference(tmp_path):
    _write_sweep(tmp_path)
    text = report(tmp_path).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| lm+speech |"))
    assert "2/2" in row and " ± " in row  # two seeds: mean ± sd
    assert "DM-Codec, combined" in row and "4.05" in row and "0.937" in row  # the paper's figures, cited
    assert "ground truth" in text and "3.78" in text
    test_row = next(line for line in text.splitlines() if line.startswith("| no-distillation |") and "(30/30)" in line)
    p_values = [float(cell.split()[0]) for cell in test_row.strip("|").split("|")[1:] if "(30/30)" in cell]
    assert p_values and all(p < 1e-6 for p in p_values)
    assert "Wilcoxon signed-rank" in text and "one-sided" in text.lower()
    # Tested the other way round, the same data is nowhere near significant.
    reverse = report(tmp_path, "no-distillation").read_text()
    test_row = next(line for line in reverse.splitlines() if line.startswith("| lm+speech |") and "(30/30)" in line)
    assert all(float(cell.split()[0]) > 0.99 for cell in test_row.strip("|").split("|")[1:] if "(30/30)" in cell)


def test_an_unfinished_sweep_reports_what_is_missing_and_a_changed_sweep_is_refused(tmp_path):
    sweep = _write_sweep(tmp_path, seeds=(0, 1), variants=("no-distillation", "lm+speech"))
    (tmp_path / "results" / "lm+speech-seed0.json").unlink()
    (tmp_path / "results" / "lm+speech-seed1.json").unlink()
    text = report(tmp_path).read_text()
    assert "| no-distillation | 2/2 |" in text and "| lm+speech | 0/2 | not run yet |" in text
    assert "lm+speech has not finished" in text  # the default reference, the paper's recipe
    changed = Sweep("table1", sweep.manifest, "tiny", 4, (0, 1), variants=("no-distillation", "lm"))
    with pytest.raises(ValueError, match="other settings \\(variants\\)"):
        changed.claim(tmp_path)
    with pytest.raises(ValueError, match="'lm' is not among this sweep's variants"):
        report(tmp_path, "lm")
    with pytest.raises(ValueError, match=r"no sweep\.json"):
        report(tmp_path / "results")
