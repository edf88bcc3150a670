"""The paper's experiments as named variants (issue 32, point 2): every table's variants resolve
to valid TrainConfigs that differ from the base exactly where the table says, and `dmcodec-train
paper list / show` print them."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dmcodec_train.cli import app
from dmcodec_train.config import TrainConfig
from dmcodec_train.experiments import TABLES, resolve
from dmcodec_train.runs import is_run_name


def _changed(config: dict, base: dict) -> dict:
    """The config's keys (loss weights as loss.<key>) whose value differs from the base's."""
    def flat(d: dict) -> dict:
        return {**{k: v for k, v in d.items() if k != "loss"}, **{f"loss.{k}": v for k, v in d["loss"].items()}}

    a, b = flat(config), flat(base)
    return {k: a[k] for k in a if a[k] != b[k] and k != "name"}


def _rows(table: str, base: str = "paper") -> dict[str, dict]:
    return {row["name"]: row for row in resolve(table, base)}


@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize("base", ["paper", "tiny"])
def test_every_variant_resolves_to_a_valid_config_named_after_it(table, base):
    rows = resolve(table, base)
    assert len({row["name"] for row in rows}) == len(rows) == len(TABLES[table].variants)
    for row in rows:
        config = TrainConfig.from_dict(row["config"])  # round-trips: a valid, complete config
        assert config.name == f"{table}-{row['name']}" and is_run_name(config.name)
        assert config.codec_preset == TrainConfig.load(base).codec_preset


def test_table1_the_baselines_and_dm_codec():
    base = TrainConfig.load("paper").to_dict()
    rows = {name: _changed(row["config"], base) for name, row in _rows("table1").items()}
    assert rows["no-distillation"] == {"loss.distillation": 0.0}
    assert rows["speech-rvq1"] == {"loss.lm": 0.0, "loss.speech": 1.0, "speech_levels": "1"}
    assert rows["lm"] == {"loss.lm": 1.0, "loss.speech": 0.0}
    lm_speech = _rows("table1")["lm+speech"]["config"]
    assert (lm_speech["loss"]["lm"], lm_speech["loss"]["speech"], lm_speech["lm_levels"],
            lm_speech["speech_levels"]) == (0.5, 0.5, "1", "1:8")


def test_table3_the_eleven_weight_pairs_from_speech_only_to_lm_only():
    pairs = [(row["config"]["loss"]["speech"], row["config"]["loss"]["lm"]) for row in resolve("table3")]
    assert pairs == [(round(1 - k / 10, 1), round(k / 10, 1)) for k in range(11)]
    assert pairs[0] == (1.0, 0.0) and pairs[-1] == (0.0, 1.0)


def test_table4_the_distillation_targets():
    rows = _rows("table4")
    for levels in ("1", "1-8", "8"):
        config = rows[f"lm{levels}"]["config"]
        assert config["lm_levels"] == levels.replace("-", ":") and config["loss"]["speech"] == 0.0
    combos = [(r["config"]["lm_levels"], r["config"]["speech_levels"]) for n, r in rows.items() if "+sm" in n]
    assert combos == [("1", "1"), ("1:8", "1"), ("8", "1"), ("1", "1:8"), ("1", "8")]  # the paper's five


def test_table5_names_teachers_by_folder_and_keeps_the_shipped_ones(tmp_path):
    rows = {row["name"]: row for row in resolve("table5", "paper", tmp_path)}
    assert rows["minilm+whisper"]["teachers"]["lm_teacher"] == "default"
    assert rows["minilm+whisper"]["teachers"]["speech_teacher"] == "whisper"
    assert rows["bert+hubert"]["teachers"]["lm_teacher"] == str(tmp_path / "bert-base-uncased")
    assert rows["bert+hubert"]["teachers"]["speech_teacher"] == str(tmp_path / "hubert-base-ls960")
    # Among the LM-only rows and among the combined ones, only the teachers differ (they live in
    # the feature folder).
    for names in (("minilm", "bert", "electra"), ("minilm+whisper", "bert+hubert", "bert+wav2vec2",
                                                  "electra+wav2vec2", "electra+hubert")):
        assert len({json.dumps(rows[n]["config"] | {"name": ""}) for n in names}) == 1


def test_table6_the_teacher_layers_reach_both_the_config_and_the_teachers_options():
    rows = _rows("table6")
    assert [r["config"]["lm_layers"] for r in rows.values()] == ["average", "last", "depth:0.75"] * 2
    for name, row in rows.items():
        assert row["teachers"]["lm_layers"] == row["config"]["lm_layers"]
        combined = name.startswith("lm+sm")
        assert row["config"]["loss"]["speech"] == (0.5 if combined else 0.0)
        assert row["config"]["speech_layers"] == (row["config"]["lm_layers"] if combined else "average")


@pytest.mark.parametrize("table", sorted(TABLES))
def test_the_papers_rows_carry_its_figures_and_the_reference_is_a_variant(table):
    table = TABLES[table]
    table.variant(table.reference)
    assert table.published_originals == {"wer": 3.78, "wil": 6.03}
    for variant in table.variants:
        assert bool(variant.paper_row) == bool(variant.published)
        assert set(variant.published) <= {"wer", "wil", "visqol", "stoi"}
        assert all(3.5 < v < 5 for k, v in variant.published.items() if k == "wer")
    # The combined row the paper repeats across tables has one set of figures everywhere.
    same = (TABLES["table3"].variant("sm0.5-lm0.5"), TABLES["table4"].variant("lm1+sm1"))
    assert same[0].published["wer"] == same[1].published["wer"]


def test_cli_lists_the_tables_and_shows_a_tables_resolved_configs():
    result = CliRunner().invoke(app, ["paper", "list"])
    assert result.exit_code == 0, result.output
    for name in TABLES:
        assert f"{name}:" in result.output
    assert "sm0.5-lm0.5" in result.output
    result = CliRunner().invoke(app, ["paper", "show", "table3", "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 11 and rows[0]["config"]["codec_preset"] == "tiny"
    assert rows[3]["config"]["loss"] == TrainConfig.load("tiny", {"loss.speech": 0.7, "loss.lm": 0.3}).to_dict()["loss"]
    result = CliRunner().invoke(app, ["paper", "show", "table2"])
    assert result.exit_code == 2 and "no experiment table 'table2'" in result.output
