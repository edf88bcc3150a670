"""The paired tests and the sweep report (issue 32, points 3-4), on results files written here:
the statistics must find a real difference, find none where there is none, and respect each
metric's direction; the report must put our spread over seeds beside the paper's figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dmcodec_train.config import TrainConfig
from dmcodec_train.data.manifest import Utterance, write_manifest
from dmcodec_train.experiments import TABLE1
from dmcodec_train.paper_report import report
from dmcodec_train.significance import paired_test
from dmcodec_train.sweep import SETTINGS, Sweep, check, job_name, run_sweep, schedule_notes


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
    cells = _test_cells(text, "| no-distillation (seeds [0, 1]) |")
    assert set(cells) == {"WER", "STOI"}  # PESQ undefined on every clip: no test
    assert all(p < 1e-6 and gain > 0 for p, gain in cells.values())
    assert cells["WER"][1] == pytest.approx(5, abs=0.3) and cells["STOI"][1] == pytest.approx(0.02, abs=0.002)
    assert "Wilcoxon signed-rank" in text and "one-sided" in text.lower() and "Bonferroni" in text
    # Tested the other way round, the same data is nowhere near significant, and the gain is a loss.
    cells = _test_cells(report(tmp_path, "no-distillation").read_text(), "| lm+speech (seeds [0, 1]) |")
    assert set(cells) == {"WER", "STOI"} and all(p > 0.99 and gain < 0 for p, gain in cells.values())


def _test_cells(text: str, row_start: str) -> dict[str, tuple[float, float]]:
    """The tests' row of one baseline: {metric: (p-value, median gain)} where a test ran."""
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| baseline |")).strip("|").split("|")[1:]
    row = next(line for line in lines if line.startswith(row_start)).strip("|").split("|")[1:]
    cells = {}
    for metric, cell in zip(header, row):
        if "," in cell:
            p_value, rest = cell.split(",")
            cells[metric.strip()] = (float(p_value), float(rest.split()[0]))
    return cells


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


def test_clips_that_differ_between_results_files_are_refused_rather_than_paired(tmp_path):
    _write_sweep(tmp_path)
    path = tmp_path / "results" / "lm+speech-seed1.json"
    record = json.loads(path.read_text())
    record["original"]["per_utterance"]["id"][3] = "another-clip"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"lm\+speech-seed1\.json scored other clips"):
        report(tmp_path)


def test_too_few_differing_clips_are_marked_not_tested():
    few = paired_test("wer", [10.0, 20.0, 30.0, 40.0, 50.0, 60.0], [10.0, 20.0, 30.0, 44.0, 56.0, 63.0])
    assert (few.utterances, few.differing, few.conclusive) == (6, 3, False)
    assert (few.method, few.p_value) == ("exact", pytest.approx(0.5 ** 3))  # the best three clips can do
    enough = paired_test("wer", [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0, 6.0, 8.0, 10.0])
    assert enough.conclusive and enough.p_value == pytest.approx(0.5 ** 5)
    # Tied magnitudes: all 2^n sign flips, not a normal approximation that would claim p ~ 0.04
    # from three clips.
    tied = paired_test("wer", [40.0, 50.0, 60.0], [45.0, 55.0, 65.0])
    assert (tied.method, tied.p_value) == ("permutation", pytest.approx(0.5 ** 3))
    # Clips scored alike (zero differences) do not turn the enumeration into sampling: the same
    # exact p on every call.
    better, worse = [40.0, 50.0, 60.0, 70.0, 80.0, 10.0, 10.0], [45.0, 55.0, 65.0, 75.0, 85.0, 10.0, 10.0]
    with_zeros = [paired_test("wer", better, worse) for _ in range(3)]
    assert {t.method for t in with_zeros} == {"permutation"}
    assert [t.p_value for t in with_zeros] == [pytest.approx(0.5 ** 5)] * 3
    many = paired_test("stoi", [0.9] * 30, [0.8] * 30)
    assert many.method == "normal" and many.p_value < 1e-6


def test_a_sweep_is_one_sweep_however_its_options_are_typed():
    typed = Sweep("table1", "/m.jsonl", "tiny", 4, variants=("lm", "no-distillation"))
    assert typed.variants == ("no-distillation", "lm") == tuple(v.name for v in typed.selected)
    assert typed == Sweep("table1", "/m.jsonl", "tiny", 4, variants=("no-distillation", "lm"))
    with pytest.raises(ValueError, match="seed 1 given more than once"):
        Sweep("table1", "/m.jsonl", "tiny", 4, seeds=(0, 1, 1))
    with pytest.raises(ValueError, match="variant lm given more than once"):
        Sweep("table1", "/m.jsonl", "tiny", 4, variants=("lm", "lm"))
    with pytest.raises(ValueError, match="eval-limit must be at least 1"):
        Sweep("table1", "/m.jsonl", "tiny", 4, eval_limit=0)
    # A short sweep checkpoints at least every tenth of its steps, whatever the preset says.
    assert Sweep("table1", "/m.jsonl", "paper", 1000).config(TABLE1.variants[0], 0).checkpoint_every == 100


def test_a_sweep_that_has_not_started_takes_new_settings_and_an_edited_recipe_is_refused(tmp_path):
    first = Sweep("table1", "/m.jsonl", "tiny", 4, variants=("lm",), eval_limit=2)
    first.claim(tmp_path)
    corrected = Sweep("table1", "/m.jsonl", "tiny", 4, variants=("lm",), eval_limit=3)
    corrected.claim(tmp_path)  # nothing trained or scored yet: the folder is simply re-claimed
    assert Sweep.load(tmp_path) == corrected
    (tmp_path / "runs" / "lm-seed0").mkdir(parents=True)
    corrected.claim(tmp_path)  # the same settings resume
    settings = json.loads((tmp_path / SETTINGS).read_text())
    settings["recipes"]["lm-seed0"]["config"]["lr"] *= 2  # as if the preset had been edited since
    (tmp_path / SETTINGS).write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="the recipes its preset and table resolve to"):
        corrected.claim(tmp_path)


def test_a_sweep_is_checked_before_it_claims_its_folder(tmp_path, tiny_checkpoint):
    manifest = write_manifest([Utterance("a", "a.wav", 1.0, split="train"), Utterance("b", "b.wav", 1.0, split="dev")],
                              tmp_path / "manifest.jsonl")
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match="no 'test' utterances to score"):
        check(Sweep("table1", str(manifest), "tiny", 4, variants=("lm",)))
    with pytest.raises(ValueError, match=r"variant lm distils, but preset 'small-cpu-v2' sets loss\.distillation=0"):
        check(Sweep("table1", str(manifest), "small-cpu-v2", 4, variants=("no-distillation", "lm"), eval_split="dev"))
    check(Sweep("table1", str(manifest), "small-cpu-v2", 4, variants=("no-distillation",), eval_split="dev"))
    with pytest.raises(ValueError, match=r"teacher folders not found: .*bert-base-uncased"):
        check(Sweep("table5", str(manifest), "tiny", 4, variants=("bert",), eval_split="dev",
                    teachers_root=str(tmp_path / "teachers")))
    with pytest.raises(ValueError, match="has another architecture than preset 'small-cpu-distill'"):
        check(Sweep("table1", str(manifest), "small-cpu-distill", 4, variants=("lm",), eval_split="dev",
                    init_from=str(tiny_checkpoint)))
    with pytest.raises(ValueError, match="no 'test' utterances"):
        run_sweep(Sweep("table1", str(manifest), "tiny", 4, variants=("lm",)), out)
    assert not out.exists()  # refused before the folder was claimed


def test_a_corrected_corpus_before_any_training_drops_the_features_of_the_old_one(tmp_path):
    Sweep("table1", "/old.jsonl", "tiny", 4, variants=("lm",)).claim(tmp_path)
    (tmp_path / "features" / "lm-default-average_speech-whisper-average").mkdir(parents=True)
    Sweep("table1", "/old.jsonl", "tiny", 4, variants=("lm",), eval_limit=3).claim(tmp_path)
    assert (tmp_path / "features").is_dir()  # the scoring changed, not what the features come from
    Sweep("table1", "/new.jsonl", "tiny", 4, variants=("lm",), eval_limit=3).claim(tmp_path)
    assert not (tmp_path / "features").exists()
    # Seeds in any order, as a list or a tuple, are one sweep: it resumes.
    Sweep("table1", "/new.jsonl", "tiny", 4, seeds=[1, 0], variants=("lm",)).claim(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "lm-seed0.json").write_text("{}")
    Sweep("table1", "/new.jsonl", "tiny", 4, seeds=(0, 1), variants=("lm",)).claim(tmp_path)


def test_schedule_notes_say_what_a_short_sweep_never_reaches():
    paper = TrainConfig.load("paper", {"steps": 500})
    notes = schedule_notes(paper, from_checkpoint=False)
    assert any("never reaches its peak" in n for n in notes)
    small = TrainConfig.load("small-cpu", {"steps": 500})
    assert any("bypass the quantizer" in n for n in schedule_notes(small, from_checkpoint=True))
    assert not schedule_notes(TrainConfig.load("small-cpu-distill", {"steps": 500}), from_checkpoint=True)
