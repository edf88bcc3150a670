"""Files whose presence means "done": written whole or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json_atomically(path: Path, data: Any) -> None:
    """Write `data` as JSON through a temporary file and a rename, so that a run killed while
    writing leaves the previous file (or none), never a truncated one. NaN and infinity are
    refused: they are not JSON."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    os.replace(partial, path)
