"""What to tokenize: a folder of audio, or a manifest (JSONL, CSV or Parquet) of audio paths.

Every manifest column other than `id` and `path` (or `audio`) travels to the output rows under
its own name (transcripts, speakers, languages, ...). Optional `start` and `end` columns
(seconds) select a segment of the file: its codes are those of the segment cut out at the
model's rate and encoded as a clip of its own, so the encoder sees no audio beyond the cut, and
frame i covers the segment's samples [i * hop, (i + 1) * hop), i.e. from start + i / frame_rate
seconds into the recording.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from ..audio import AudioError, find_audio_files, info
from ..manifest import read_rows

SOURCE_COLUMNS = ("id", "path", "audio")


@dataclass(frozen=True)
class Item:
    id: str
    path: str
    duration_s: Optional[float]  # of what is tokenized; None when the header is unreadable (it fails later)
    start: Optional[float] = None  # a segment of the file, in seconds
    end: Optional[float] = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # the manifest's other columns, passed through
    loader: Optional[Callable[[], Any]] = field(default=None, compare=False)  # audio held elsewhere (bytes)


def _duration(path: Path) -> Optional[float]:
    try:
        return info(path)[0]
    except (AudioError, OSError):
        return None


def _seconds(row: dict, name: str, where: str) -> Optional[float]:
    value = row.get(name)
    if value in (None, ""):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} must be a number of seconds, got {value!r}") from None
    if seconds < 0:
        raise ValueError(f"{where}: {name} must not be negative")
    return seconds


def read_items(source: str | Path) -> list[Item]:
    """A directory (searched recursively; ids are paths relative to it) or a manifest with a
    `path` (or `audio`) column and an optional `id` (default: the path; with segments, each
    needs its own id). Relative paths in a manifest are relative to the manifest's folder."""
    source = Path(source)
    if source.is_dir():
        return [Item(str(p.relative_to(source)), str(p), _duration(p)) for p in find_audio_files(source)]
    if not source.exists():
        raise ValueError(f"{source}: no such file or directory")
    items, seen, durations = [], set(), {}
    for number, row in enumerate(read_rows(source), 1):
        where = f"{source}: row {number}"
        raw = row.get("path") or row.get("audio")
        if not raw:
            raise ValueError(f"{where} has no 'path' column")
        path = Path(raw) if Path(raw).is_absolute() else source.parent / raw
        item_id = str(row.get("id") or raw)
        if item_id in seen:
            raise ValueError(f"{source}: duplicate id {item_id!r} (row {number})")
        seen.add(item_id)
        start, end = _seconds(row, "start", where), _seconds(row, "end", where)
        if start is not None and end is not None and end <= start:
            raise ValueError(f"{where}: end ({end}) must come after start ({start})")
        if path not in durations:
            durations[path] = _duration(path)
        whole = durations[path]
        duration = (end if end is not None else whole) if whole is not None or end is not None else None
        if duration is not None and start is not None:
            duration -= start
        extra = {k: v for k, v in row.items() if k not in SOURCE_COLUMNS}
        items.append(Item(item_id, str(path), duration, start, end, extra))
    return items


def extra_schema(source: str | Path, items: list[Item], reserved: set[str]) -> pa.Schema:
    """The arrow types of the passed-through columns: a Parquet manifest's own, else inferred from
    the values. Raises ValueError when a column would overwrite one the output writes."""
    names = list(dict.fromkeys(name for item in items for name in item.extra))
    clash = sorted(set(names) & reserved)
    if clash:
        raise ValueError(f"{source}: manifest columns {clash} clash with output columns; rename them")
    if not names:
        return pa.schema([])
    if Path(source).suffix.lower() == ".parquet":
        own = pq.read_schema(source)
        return pa.schema([own.field(name) for name in names])
    return pa.Table.from_pylist([dict(item.extra) for item in items]).select(names).schema
