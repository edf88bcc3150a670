"""What to tokenize: a folder of audio, or a manifest (JSONL, CSV or Parquet) of audio paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..audio import AudioError, find_audio_files, info
from ..manifest import read_rows


@dataclass(frozen=True)
class Item:
    id: str
    path: str
    duration_s: Optional[float]  # from the header; None when unreadable (it then fails with a reason)


def _duration(path: Path) -> Optional[float]:
    try:
        return info(path)[0]
    except (AudioError, OSError):
        return None


def read_items(source: str | Path) -> list[Item]:
    """A directory (searched recursively; ids are paths relative to it) or a manifest with a
    `path` (or `audio`) column and an optional `id` (default: the path). Relative paths in a
    manifest are relative to the manifest's folder."""
    source = Path(source)
    if source.is_dir():
        return [Item(str(p.relative_to(source)), str(p), _duration(p)) for p in find_audio_files(source)]
    if not source.exists():
        raise ValueError(f"{source}: no such file or directory")
    items, seen = [], set()
    for number, row in enumerate(read_rows(source), 1):
        raw = row.get("path") or row.get("audio")
        if not raw:
            raise ValueError(f"{source}: row {number} has no 'path' column")
        path = Path(raw) if Path(raw).is_absolute() else source.parent / raw
        item_id = str(row.get("id") or raw)
        if item_id in seen:
            raise ValueError(f"{source}: duplicate id {item_id!r} (row {number})")
        seen.add(item_id)
        items.append(Item(item_id, str(path), _duration(path)))
    return items
