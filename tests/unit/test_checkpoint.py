import json
import os
import pickle
import stat

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dmcodec import CheckpointError, Tokenizer, load_checkpoint, save_checkpoint, save_release_checkpoint
from dmcodec.signals import speech_like


def codes_of(path, **kwargs):
    return Tokenizer.from_pretrained(path, **kwargs).encode(speech_like(1.5, seed=3), 16000).codes


def test_our_format_holds_release_key_names_and_metadata(tiny_checkpoint):
    keys = set(load_file(str(tiny_checkpoint / "model.safetensors")))
    assert "encoder.model.0.conv.conv.weight_g" in keys and "encoder.model.0.conv.conv.weight_v" in keys
    assert "quantizer.vq.layers.7._codebook.embed" in keys and "encoder.model.13.lstm.weight_ih_l0" in keys
    meta = json.loads((tiny_checkpoint / "config.json").read_text())["dmcodec"]
    assert meta["sample_rate"] == 16000 and meta["frame_rate"] == 50 and meta["n_q"] == 8
    assert meta["codebook_size"] == 64 and len(meta["sha256"]) == 64 and meta["training"]["trained"] is False


def test_release_format_roundtrip_gives_identical_codes(tiny_checkpoint, tmp_path):
    codec = load_checkpoint(tiny_checkpoint, for_inference=False)
    pt = save_release_checkpoint(codec.model, tmp_path / "release" / "model.pt")
    state = torch.load(pt, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert np.array_equal(codes_of(pt), codes_of(tiny_checkpoint))


def test_folded_model_saves_equivalent_weight_norm(tiny_checkpoint, tmp_path):
    unfolded = load_checkpoint(tiny_checkpoint, for_inference=False).model
    folded = load_checkpoint(tiny_checkpoint).model
    pt = save_release_checkpoint(folded, tmp_path / "model.pt")
    again = load_checkpoint(pt).model
    for (name, a), b in zip(folded.state_dict().items(), again.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), name
    assert len(unfolded.state_dict()) > len(folded.state_dict())  # g and v became one weight


def test_fp16_checkpoint_is_half_the_size_and_close(tiny_checkpoint, tmp_path):
    codec = load_checkpoint(tiny_checkpoint, for_inference=False)
    half = save_checkpoint(codec.model, tmp_path / "half", dtype=torch.float16)
    assert (half / "model.safetensors").stat().st_size < 0.6 * (tiny_checkpoint / "model.safetensors").stat().st_size
    agreement = (codes_of(half) == codes_of(tiny_checkpoint)).mean()
    assert agreement > 0.5  # random weights exaggerate near-ties; trained models agree far more


def test_truncated_file_is_a_clear_error(tiny_checkpoint, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    data = (tiny_checkpoint / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    (broken / "config.json").write_text((tiny_checkpoint / "config.json").read_text())
    with pytest.raises(CheckpointError, match=r"sha256|safetensors"):
        load_checkpoint(broken)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(broken, verify=False)


def test_mismatched_config_names_the_tensors(tiny_checkpoint, tmp_path):
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    config["dimension"] = 48
    del config["dmcodec"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"wrong shape: .*quantizer\.vq\.layers"):
        load_checkpoint(tiny_checkpoint / "model.safetensors", config_path=other)


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "model.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no config"):
        load_checkpoint(tmp_path / "model.pt")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not a readable PyTorch state dict"):
        load_checkpoint(tmp_path / "model.pt")


class _Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickled_code_in_a_foreign_checkpoint_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"x": _Payload()}, f)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_weights_are_as_readable_as_the_config(tiny_checkpoint, tmp_path, umask):
    """A checkpoint written by one user (root in an image build) must be readable by whoever
    the umask lets read its config, e.g. the service user: safetensors alone writes 0o600."""
    previous = os.umask(umask)
    try:
        out = save_checkpoint(load_checkpoint(tiny_checkpoint).model, tmp_path / "ckpt")
    finally:
        os.umask(previous)
    modes = {name: stat.S_IMODE((out / name).stat().st_mode) for name in ("model.safetensors", "config.json")}
    assert modes == {"model.safetensors": 0o666 & ~umask, "config.json": 0o666 & ~umask}
