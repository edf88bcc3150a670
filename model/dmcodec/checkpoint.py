"""Checkpoint files: ours (safetensors + JSON) and the release's (`.pt` state dict + config.json).

Both store tensors under the release's key names (`weight_g`/`weight_v` for weight norm,
`quantizer.vq.layers.N._codebook.*`), so converting is a change of container, not of content.
Foreign files are read with `torch.load(weights_only=True)`: no pickle code ever runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.nn.utils import parametrize

from .config import CodecConfig
from .model import DMCodec

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
METADATA_KEY = "dmcodec"

# (pattern, replacement) pairs: release key names <-> this package's module names.
_TO_MODULE = [
    (re.compile(r"\.weight_g$"), ".parametrizations.weight.original0"),
    (re.compile(r"\.weight_v$"), ".parametrizations.weight.original1"),
    (re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\."), r"quantizer.levels.\1."),
]
_TO_RELEASE = [
    (re.compile(r"\.parametrizations\.weight\.original0$"), ".weight_g"),
    (re.compile(r"\.parametrizations\.weight\.original1$"), ".weight_v"),
    (re.compile(r"^quantizer\.levels\.(\d+)\."), r"quantizer.vq.layers.\1._codebook."),
]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, corrupt or does not fit the config."""


@dataclass
class LoadedCodec:
    """A model ready for inference and what identifies it."""

    model: DMCodec
    sha256: str
    name: str
    path: Path | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> CodecConfig:
        return self.model.config


def _rename(key: str, rules: list[tuple[re.Pattern, str]]) -> str:
    for pattern, replacement in rules:
        key = pattern.sub(replacement, key)
    return key


def release_state_dict(model: DMCodec) -> dict[str, torch.Tensor]:
    """The model's tensors under the release's key names.

    A folded model (plain `weight`) is written back as weight norm with g = ||w|| per output
    channel and v = w, which reproduces w.
    """
    state: dict[str, torch.Tensor] = {}
    weight_normed = _weight_norm_layers(model)
    for key, tensor in model.state_dict().items():
        prefix = key[: -len(".weight")] if key.endswith(".weight") else None
        if prefix in weight_normed:
            state[prefix + ".weight_g"] = torch.linalg.vector_norm(
                tensor, dim=tuple(range(1, tensor.dim())), keepdim=True)
            state[prefix + ".weight_v"] = tensor
        else:
            state[_rename(key, _TO_RELEASE)] = tensor
    return {k: v.detach().contiguous() for k, v in state.items()}


def _weight_norm_layers(model: DMCodec) -> set[str]:
    """Names of folded convolutions: every codec convolution is weight-normed in the release,
    so a convolution without the parametrisation is one that `fold_weight_norm` folded."""
    return {name for name, module in model.named_modules()
            if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))
            and not parametrize.is_parametrized(module, "weight")}


def load_release_state_dict(model: DMCodec, state: dict[str, torch.Tensor], source: str) -> None:
    """Load tensors named as in the release into `model` (not folded), with a clear error
    that lists missing, unexpected and mis-shaped tensors."""
    renamed = {_rename(k, _TO_MODULE): v for k, v in state.items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(renamed))
    unexpected = sorted(set(renamed) - set(expected))
    mis_shaped = [f"{_rename(k, _TO_RELEASE)}: file {tuple(renamed[k].shape)} vs config {tuple(v.shape)}"
                  for k, v in expected.items() if k in renamed and renamed[k].shape != v.shape]
    if missing or unexpected or mis_shaped:
        lines = [f"{source} does not match the model config:"]
        for title, items in (("missing", [_rename(k, _TO_RELEASE) for k in missing]),
                             ("unexpected", [_rename(k, _TO_RELEASE) for k in unexpected]),
                             ("wrong shape", mis_shaped)):
            if items:
                shown = ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
                lines.append(f"  {len(items)} {title}: {shown}")
        raise CheckpointError("\n".join(lines))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in renamed.items()})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_safetensors(tensors: dict[str, torch.Tensor], path: str | Path,
                      metadata: dict[str, str] | None = None) -> Path:
    """`safetensors.torch.save_file`, but the file gets the mode any other new file would get
    (0o666 less the umask). safetensors >= 0.8 writes through a temporary file that is always
    0o600 (safetensors#782), so a checkpoint converted or exported by one user - root in an
    image build - would be unreadable to the service user that loads it."""
    path = Path(path)
    save_file(tensors, str(path), metadata=metadata)
    umask = os.umask(0o022)
    os.umask(umask)
    path.chmod(0o666 & ~umask)
    return path


def save_checkpoint(model: DMCodec, directory: str | Path, *, name: str | None = None,
                    training: dict[str, Any] | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """Write `directory/model.safetensors` and `directory/config.json`.

    The config file holds the release's config keys plus a `dmcodec` block: format version,
    name, sample and frame rate, levels, codebook size, the weights' sha256, and `training`
    (free-form: data, steps, hardware, ...). `dtype=torch.float16` halves the file; codebook
    buffers stay float32 so that stored codes decode to the same vectors they were chosen from.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = release_state_dict(model)
    state = {k: (v.to(dtype) if v.is_floating_point() and "._codebook." not in k else v).cpu()
             for k, v in state.items()}
    weights = directory / WEIGHTS_NAME
    write_safetensors(state, weights, metadata={"format": "dmcodec", "format_version": str(FORMAT_VERSION)})
    config = model.config
    meta = {
        "format_version": FORMAT_VERSION,
        "name": name or directory.name,
        "sample_rate": config.sample_rate,
        "frame_rate": config.frame_rate,
        "hop_length": config.hop_length,
        "n_q": config.n_q,
        "codebook_size": config.codebook_size,
        "parameters": model.num_parameters(),
        "weights_dtype": str(dtype).removeprefix("torch."),
        "sha256": file_sha256(weights),
        "training": training or {},
    }
    data = {**config.to_dict(), METADATA_KEY: meta}
    (directory / CONFIG_NAME).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return directory


def save_release_checkpoint(model: DMCodec, weights_path: str | Path) -> Path:
    """Write the release format: a plain state dict `.pt` and `config.json` beside it."""
    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in release_state_dict(model).items()}, weights_path)
    model.config.to_json(weights_path.parent / CONFIG_NAME)
    return weights_path


def _resolve(path: Path, config_path: Path | None) -> tuple[Path, Path]:
    """(weights file, config file) for a checkpoint directory or weights file."""
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    weights = path / WEIGHTS_NAME if path.is_dir() else path
    if path.is_dir() and not weights.exists():
        pts = sorted(path.glob("*.pt")) + sorted(path.glob("*.pth"))
        if len(pts) != 1:
            raise CheckpointError(f"{path}: expected {WEIGHTS_NAME} or exactly one .pt file")
        weights = pts[0]
    config = config_path or weights.parent / CONFIG_NAME
    if not config.exists():
        raise CheckpointError(f"no config for {weights}: expected {config}")
    return weights, config


def _read_tensors(weights: Path) -> dict[str, torch.Tensor]:
    if weights.suffix == ".safetensors":
        try:
            return load_file(str(weights))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{weights}: not a readable safetensors file ({err})") from err
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or hostile files
        raise CheckpointError(f"{weights}: not a readable PyTorch state dict ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{weights}: expected a flat state dict of tensors")
    return state


def load_checkpoint(path: str | Path, *, config_path: str | Path | None = None,
                    device: str | torch.device = "cpu", verify: bool = True,
                    for_inference: bool = True) -> LoadedCodec:
    """Load our format (directory or `.safetensors`) or the release's (`.pt` + config.json).

    Args:
        path: checkpoint directory or weights file.
        config_path: config file, when it is not `config.json` beside the weights.
        device: where the model runs.
        verify: check the weights' sha256 against our config's record.
        for_inference: fold weight norm and switch to eval mode.
    """
    weights, config_file = _resolve(Path(path), Path(config_path) if config_path else None)
    try:
        config = CodecConfig.from_json(config_file)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{config_file}: {err}") from err
    meta = config.extra.pop(METADATA_KEY, {}) or {}
    sha = file_sha256(weights)
    if verify and meta.get("sha256") and meta["sha256"] != sha:
        raise CheckpointError(f"{weights}: sha256 {sha[:12]}... does not match {meta['sha256'][:12]}... "
                              f"recorded in {config_file} (file corrupt or replaced)")
    model = DMCodec(config)
    load_release_state_dict(model, _read_tensors(weights), str(weights))
    model.to(device)
    if for_inference:
        model.for_inference()
    name = meta.get("name") or (weights.parent.name if weights.name == WEIGHTS_NAME else weights.stem)
    return LoadedCodec(model=model, sha256=sha, name=name, path=weights, metadata=meta)
