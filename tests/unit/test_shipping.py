"""The shipping rule: a candidate ships only when it beats the shipped model on every measure of
every held-out set, read from the results files `dmcodec-train eval` writes."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from dmcodec_train.evaluation.harness import Result, write_report
from dmcodec_train.shipping import MEASURES, beats_on_every_measure, compare, to_markdown

KEYS = [key for _, key, _ in MEASURES]
SHIPPED = {"stoi": 0.85, "pesq": 1.25, "wer_vs_original_asr": 22.8, "f0_rmse_cents": 240.0, "vuv_error": 25.5}


def _model(name: str, scores: dict[str, float], clips: int = 8, step: float = 0.0) -> Result:
    """A row whose per-clip scores sit around its means (each clip `step` apart)."""
    per_clip = {k: [v + step * (i - clips / 2) for i in range(clips)] for k, v in scores.items()}
    return Result(name, dict(scores), per_utterance=per_clip)


def _results(tmp_path, folder: str, *models: Result, clips: int = 8, clip_set: str = ""):
    """results.json of an eval run over `clips` clips of `clip_set` (default: the folder's name)."""
    original = Result("original", {}, per_utterance={"id": [f"{clip_set or folder}-{i}" for i in range(clips)]})
    return write_report([original, *models], tmp_path / folder)[0]


def test_a_candidate_better_everywhere_ships_and_one_worse_anywhere_does_not(tmp_path):
    better = {"stoi": 0.86, "pesq": 1.3, "wer_vs_original_asr": 20.0, "f0_rmse_cents": 200.0, "vuv_error": 9.0}
    test = _results(tmp_path, "test", _model("shipped", SHIPPED), _model("good", better))
    # Another run over the same clips can hold the candidate: the rows are joined.
    other_run = _results(tmp_path, "test-b", _model("worse-voicing", {**better, "vuv_error": 26.0}), clip_set="test")
    real = _results(tmp_path, "real", _model("shipped", SHIPPED, 5), _model("good", better, 5),
                    _model("worse-voicing", better, 5), clips=5)

    sets = {"test": [test, other_run], "real": [real]}
    good = compare(sets, "shipped", "good")
    assert [(c.held_out, c.measure) for c in good] == [(s, k) for s in ("test", "real") for k in KEYS]
    assert all(c.better for c in good) and beats_on_every_measure(good)
    assert good[0].test is not None and good[0].test.differing == 8 and good[0].test.p_value < 0.01
    assert "good beats shipped on every measure" in to_markdown(good, "shipped", "good")

    worse = compare(sets, "shipped", "worse-voicing")
    assert [c.measure for c in worse if not c.better] == ["vuv_error"] and not beats_on_every_measure(worse)
    table = to_markdown(worse, "shipped", "worse-voicing")
    assert "| test | V/UV err. % | 25.5 | 26.0 | **no** |" in table
    assert table.strip().endswith("does not beat shipped on: test V/UV err. %. It does not ship.")


def test_a_tie_or_a_missing_measure_keeps_the_shipped_model(tmp_path):
    no_pitch = {k: v for k, v in SHIPPED.items() if k != "f0_rmse_cents"}
    path = _results(tmp_path, "test", _model("shipped", SHIPPED), _model("same", SHIPPED),
                    _model("unvoiced", {**no_pitch, "stoi": 0.9}))
    same = compare({"test": [path]}, "shipped", "same")
    assert not any(c.better for c in same) and not beats_on_every_measure(same)
    assert all(c.test is not None and c.test.differing == 0 for c in same)
    unvoiced = {c.measure: c for c in compare({"test": [path]}, "shipped", "unvoiced")}
    assert math.isnan(unvoiced["f0_rmse_cents"].candidate) and not unvoiced["f0_rmse_cents"].better
    assert unvoiced["f0_rmse_cents"].test is None  # no per-clip scores to pair
    assert not beats_on_every_measure([])


def test_results_of_other_clips_or_without_the_row_are_refused(tmp_path):
    a = _results(tmp_path, "a", _model("shipped", SHIPPED))
    b = _results(tmp_path, "b", _model("cand", SHIPPED))
    with pytest.raises(ValueError, match="other clips"):
        compare({"test": [a, b]}, "shipped", "cand")
    with pytest.raises(ValueError, match=r"no row 'cand'.*shipped"):
        compare({"test": [a]}, "shipped", "cand")


def test_a_candidate_does_not_gain_by_leaving_its_worst_clips_undefined(tmp_path):
    shipped = _model("shipped", SHIPPED, clips=4)
    shipped.per_utterance["f0_rmse_cents"] = [100.0, 200.0, 300.0, 400.0]  # mean 250
    devoiced = _model("devoiced", SHIPPED, clips=4)
    devoiced.per_utterance["f0_rmse_cents"] = [110.0, 210.0, float("nan"), float("nan")]  # its own mean 160
    devoiced.scores["f0_rmse_cents"] = 160.0
    path = _results(tmp_path, "test", shipped, devoiced, clips=4)
    f0 = {c.measure: c for c in compare({"test": [path]}, "shipped", "devoiced")}["f0_rmse_cents"]
    assert (f0.baseline, f0.candidate) == (150.0, 160.0) and not f0.better  # over the two clips both define


def test_malformed_or_ambiguous_results_are_refused_with_the_file_named(tmp_path):
    not_results = tmp_path / "config.json"
    not_results.write_text('{"name": "x"}')
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    for path, message in ((not_results, "a list of named rows"), (broken, "not JSON")):
        with pytest.raises(ValueError, match=message) as error:
            compare({"test": [path]}, "shipped", "cand")
        assert str(path) in str(error.value)
    a = _results(tmp_path, "a", _model("shipped", SHIPPED), _model("cand", SHIPPED), clip_set="x")
    b = _results(tmp_path, "b", _model("cand", {**SHIPPED, "stoi": 0.9}), clip_set="x")
    with pytest.raises(ValueError, match="distinct --name"):
        compare({"test": [a, b]}, "shipped", "cand")


def test_the_command_prints_the_table_and_exits_1_when_the_candidate_does_not_ship(tmp_path):
    better = {"stoi": 0.86, "pesq": 1.3, "wer_vs_original_asr": 20.0, "f0_rmse_cents": 200.0, "vuv_error": 9.0}
    path = _results(tmp_path, "test", _model("dmcodec-small-cpu", SHIPPED), _model("good", better),
                    _model("bad", {**better, "pesq": 1.2}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dmcodec_train.cli", "compare", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    shipped = run("good", "--held-out", f"test={path}", "--out", str(tmp_path / "verdict.md"))
    assert shipped.returncode == 0 and "it may ship" in shipped.stdout
    assert (tmp_path / "verdict.md").read_text().strip() == shipped.stdout.strip()
    refused = run("bad", "--held-out", f"test={path}")
    assert refused.returncode == 1 and "does not beat dmcodec-small-cpu on: test PESQ-wb" in refused.stdout
    malformed = run("good", "--held-out", str(path))
    assert malformed.returncode == 2 and "NAME=RESULTS.json" in malformed.stderr
    missing = run("nobody", "--held-out", f"test={path}")
    assert missing.returncode == 2 and "no row 'nobody'" in missing.stderr and "Traceback" not in missing.stderr
