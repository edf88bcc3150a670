"""Teacher layer selection (issue 32, point 1): the spec's parsing and resolution, the teachers
taking the chosen layers, the features' key naming the choice, and the trainer refusing
features of another choice."""

from __future__ import annotations

import json
import re

import pytest
import torch

from dmcodec_train.config import TrainConfig
from dmcodec_train.teachers import layers
from dmcodec_train.teachers.precompute import _claim
from dmcodec_train.teachers.store import KEY, FeatureStore, features_key
from dmcodec_train.trainer import Trainer


@pytest.mark.parametrize(("spec", "count", "expected"), [
    ("average", 12, list(range(1, 13))),
    ("average", 6, [1, 2, 3, 4, 5, 6]),
    ("last", 12, [12]),
    ("last", 6, [6]),
    ("index:9", 12, [9]),
    ("index:1", 6, [1]),
    ("depth:0.75", 12, [9]),  # the paper's 9th of BERT-base's 12
    ("depth:0.75", 6, [5]),  # 4.5 rounds up: the same relative depth on a 6-layer teacher
    ("depth:1", 6, [6]),
    ("depth:0.01", 6, [1]),  # never the embeddings
    (" last ", 6, [6]),
])
def test_a_spec_resolves_against_the_teachers_layer_count(spec, count, expected):
    assert layers.resolve(spec, count) == expected


def test_an_index_past_the_teachers_layers_names_its_count():
    with pytest.raises(ValueError, match="MiniLM has 6 layers"):
        layers.resolve("index:9", 6, "MiniLM")
    assert layers.resolve("index:9", 12) == [9]


@pytest.mark.parametrize("spec", ["", "mean", "index:0", "index:x", "index:2.5", "depth:0", "depth:1.5",
                                  "depth:", "last:1", "average:3"])
def test_malformed_specs_are_refused_before_any_teacher_runs(spec):
    with pytest.raises(ValueError, match="bad layer spec"):
        layers.parse(spec)


def test_select_takes_the_mean_of_the_chosen_hidden_states():
    hidden = [torch.full((1, 2, 3), float(k)) for k in range(7)]  # embeddings (0) + 6 layers
    assert torch.equal(layers.select(hidden, [6]), hidden[6])
    assert torch.allclose(layers.select(hidden, layers.resolve("average", 6)), torch.full((1, 2, 3), 3.5))


def test_the_lm_teacher_takes_the_chosen_layer():
    from dmcodec_train.teachers.lm import LMTeacher

    words = ["The", "photosynthesis", "ship"]
    teacher = LMTeacher(layers="index:2")
    assert teacher.num_layers == 6 and teacher.chosen == [2]
    encoded = teacher.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        hidden = teacher.model(**encoded, output_hidden_states=True).hidden_states
    first = [i for i, w in enumerate(encoded.word_ids(0)) if w == 0]
    assert torch.allclose(teacher.word_features(words)[0], hidden[2][0, first].mean(0), atol=1e-5)
    with pytest.raises(ValueError, match="has 6 layers"):
        LMTeacher(layers="index:9")


def _index(lm: str | None = "average", speech: str | None = "average") -> dict:
    teachers = {"lm": {"name": "minilm", "dim": 4}, "speech": {"name": "whisper", "dim": 4},
                "asr": "faster-whisper", "lm_text": "transcript"}
    for name, spec in (("lm", lm), ("speech", speech)):
        if spec is not None:
            teachers[name]["layers"] = spec
    return {"frame_rate": 50.0, "hop_length": 320, "sample_rate": 16000, "teachers": teachers, "items": {}}


def test_the_features_key_differs_by_layer_spec_and_old_folders_read_as_average():
    assert features_key(_index("average")) != features_key(_index("last"))
    assert features_key(_index(speech="index:3")) != features_key(_index())
    assert features_key(_index(None, None)) == features_key(_index())


def test_a_feature_folder_refuses_to_be_completed_with_another_choice(tmp_path):
    _claim(tmp_path, features_key(_index()))
    _claim(tmp_path, features_key(_index()))  # the same choice resumes
    with pytest.raises(ValueError, match="another choice"):
        _claim(tmp_path, features_key(_index(lm="depth:0.75")))
    # A folder written before key.json existed is judged by its index.
    (tmp_path / KEY).unlink()
    (tmp_path / "index.json").write_text(json.dumps(_index(None, None)))
    _claim(tmp_path, features_key(_index()))
    with pytest.raises(ValueError, match="another choice"):
        _claim(tmp_path, features_key(_index(speech="last")))


def test_the_trainer_refuses_features_of_other_layers(tmp_path):
    features = tmp_path / "features"
    features.mkdir()
    (features / "index.json").write_text(json.dumps(_index(lm="last")))
    assert FeatureStore(features).layers("lm") == "last"
    with pytest.raises(ValueError, match="lm features of layers 'last', the run asks for 'average'"):
        Trainer(TrainConfig.load("tiny"), tmp_path / "run", tmp_path / "none.jsonl", features, progress=False)
    with pytest.raises(ValueError, match="speech features of layers 'average', the run asks for 'index:9'"):
        Trainer(TrainConfig.load("tiny", {"lm_layers": "last", "speech_layers": "index:9"}), tmp_path / "run",
                tmp_path / "none.jsonl", features, progress=False)


def test_the_config_records_the_layers_and_refuses_a_bad_spec():
    config = TrainConfig.load("tiny", {"lm_layers": "depth:0.75"})
    assert config.to_dict()["lm_layers"] == "depth:0.75" and config.speech_layers == "average"
    with pytest.raises(ValueError, match="bad layer spec"):
        TrainConfig.load("tiny", {"speech_layers": "ninth"})


def test_real_features_record_their_layers_and_a_run_of_another_choice_is_refused(train_corpus, tmp_path):
    from types import SimpleNamespace

    from dmcodec_train.teachers.lm import LMTeacher
    from dmcodec_train.teachers.precompute import precompute

    manifest, features = train_corpus
    store = FeatureStore(features)
    assert store.layers("lm") == store.layers("speech") == "average"
    assert json.loads((features / KEY).read_text()) == features_key(store.index)
    # Recomputing into the folder with the LM's last layer is refused before any teacher runs.
    speech = SimpleNamespace(**{k: store.index["teachers"]["speech"][k] for k in ("name", "dim", "layers")})
    with pytest.raises(ValueError, match="another choice"):
        precompute(manifest, features, speech, LMTeacher(layers="last"), None, splits=("train", "dev", "test"),
                   progress=False)
    with pytest.raises(ValueError, match=re.escape("lm features of layers 'average', the run asks for 'depth:0.75'")):
        Trainer(TrainConfig.load("tiny", {"lm_layers": "depth:0.75"}), tmp_path / "run", manifest, features,
                progress=False)
    Trainer(TrainConfig.load("tiny"), tmp_path / "run", manifest, features, progress=False)  # the matching run
