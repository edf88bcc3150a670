"""The compact resumable state: a tiny run exported (fp16, no optimiser, no pickle) and resumed
in a new run that carries on with the same step, recipe, data position and RNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dmcodec_train.compact import export_compact, read_compact, resume_from_compact, run_figures
from dmcodec_train.config import TrainConfig
from dmcodec_train.schedule import lr_factor
from dmcodec_train.trainer import Trainer


def _no_nan(constant: str) -> None:
    raise AssertionError(f"{constant} in state.json: not JSON")


def test_a_run_goes_on_from_its_compact_state(train_corpus, tmp_path, monkeypatch):
    manifest, features = train_corpus
    config = TrainConfig.load("tiny", {"steps": 9, "adversarial_start": 3, "quantizer_dropout": 0.5,
                                       "validate_every": 3, "rewarm_steps": 4, "loss.pitch": 1.0})
    first = Trainer(config, tmp_path / "first", manifest, features, progress=False)
    first.fit(5)
    out = export_compact(first.state_dict(), tmp_path / "state", run_figures(tmp_path / "first"))
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "state.json", "weights.safetensors"]
    record = json.loads((out / "state.json").read_text(), parse_constant=_no_nan)
    assert record["step"] == 5 and record["figures"]["dev_mel"]["step"] == 3 and record["critics"]
    assert "--resume-from" in (out / "README.md").read_text()

    # fp16 weights, fp32 codebooks; codec, distillation and pitch heads, critics; no optimiser.
    tensors = load_file(str(out / "weights.safetensors"))
    assert {k.split(".")[1] for k in tensors if k.startswith("generator.")} == {"codec", "heads", "pitch_head"}
    assert any(k.startswith("discriminators.") for k in tensors)
    for key, tensor in tensors.items():
        if tensor.is_floating_point():
            assert tensor.dtype == (torch.float32 if ".quantizer." in key else torch.float16), key

    # A new machine: the recipe from the state, a fresh trainer, no pickle loaded.
    resumed_config = TrainConfig.from_dict(read_compact(out)["config"])
    assert resumed_config == config
    second = Trainer(resumed_config, tmp_path / "second", manifest, features, progress=False)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a compact state loads without torch.load"))
    assert resume_from_compact(second, out) == []
    monkeypatch.undo()
    assert second.step == 5 and second.rewarm_from == 5
    assert second.data_position() == first.data_position()
    assert torch.equal(second.sampler.batch(second.step, 2).audio, first.sampler.batch(first.step, 2).audio)
    assert torch.equal(torch.get_rng_state(), first.state_dict()["rng_cpu"])
    assert second.g_sched.get_last_lr()[0] == pytest.approx(config.lr * lr_factor(config, 5) / 4)
    old, new = first.generator.state_dict(), second.generator.state_dict()
    for key, value in old.items():
        if ".quantizer." in f".{key}":
            assert torch.equal(value, new[key]), key  # the codes do not move
        else:
            assert torch.allclose(value.float(), new[key], rtol=1e-3, atol=1e-4), key
    assert second.best_dev_mel == float("inf")  # this machine's RUN/best is written at its first validation

    logs = second.fit()
    assert second.step == 9 and np.isfinite(logs["total"]) and np.isfinite(logs["pitch_f0"])
    lrs = [float(row.split(",")[1]) for row in (tmp_path / "second" / "metrics.csv").read_text().splitlines()[1:]]
    # The rate ramps up again over rewarm_steps (4) from step 5, under the schedule it follows.
    assert lrs == pytest.approx([config.lr * lr_factor(config, step, 5) for step in (6, 7, 8, 9)])
    assert lrs[0] == pytest.approx(config.lr * lr_factor(config, 6) / 2)

    # Another recipe reuses what fits: without the pitch target the head is left out, said so.
    plain = Trainer(TrainConfig.from_dict({**record["config"], "loss": {**record["config"]["loss"], "pitch": 0}}),
                    tmp_path / "plain", manifest, features, progress=False)
    assert resume_from_compact(plain, out) == ["pitch_head in the state is not used by this run"]
    wider = Trainer(TrainConfig.load("tiny", {"codec": {"n_filters": 4}}), tmp_path / "wider", manifest, features,
                    progress=False)
    with pytest.raises(ValueError, match="do not fit"):
        resume_from_compact(wider, out)


def test_a_recipe_that_adds_or_drops_a_critic_goes_on_from_the_state(train_corpus, tmp_path):
    """Stint 3 of the campaign adds the multi-period critics to a state trained with the STFT
    critic alone: the state's critics carry over, the new ones start fresh, each said."""
    manifest, features = train_corpus
    config = TrainConfig.load("tiny", {"steps": 6, "adversarial_start": 0, "periods": [2]})
    first = Trainer(config, tmp_path / "first", manifest, features, progress=False)
    first.fit(2)
    out = export_compact(first.state_dict(), tmp_path / "state")
    recipe = read_compact(out)["config"]

    more = Trainer(TrainConfig.from_dict({**recipe, "periods": [2, 3, 5]}), tmp_path / "more", manifest, features,
                   progress=False)
    assert resume_from_compact(more, out) == ["critic mpd.1 starts fresh (not in the state)",
                                              "critic mpd.2 starts fresh (not in the state)"]
    before, after = first.discriminators.state_dict(), more.discriminators.state_dict()
    for key in [k for k in before if k.startswith(("families.mstftd.", "families.mpd.discriminators.0."))]:
        assert torch.allclose(after[key], before[key].half().float()), key
    assert np.isfinite(more.fit(4)["total"])

    fewer = Trainer(TrainConfig.from_dict({**recipe, "periods": []}), tmp_path / "fewer", manifest, features,
                    progress=False)
    assert resume_from_compact(fewer, out) == ["critic mpd.0 in the state is not used by this run"]
    wider = Trainer(TrainConfig.from_dict({**recipe, "discriminator_width": 0.1}), tmp_path / "wider", manifest,
                    features, progress=False)
    with pytest.raises(ValueError, match="critics do not fit"):
        resume_from_compact(wider, out)
