"""The output folder of a bulk job: Parquet shards (optionally WebDataset tars beside them),
failures.jsonl and summary.json.

Rows hold the codes grid and, for a job run with a layout other than `codes`, the same tokens
as `input_ids` in that layout (dmcodec.layouts), ready for a language model's data loader.

A shard becomes visible only once complete (written to a temporary name, then renamed), so a
killed job leaves no corrupt or partial shard; restarting reads the ids of the complete shards
and skips them, so no item is written twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import tarfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..layouts import check_layout
from ..tokens import TokenMetadata, tokens_in_layout
from .manifest import Item

_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
# id, path and codes, then the token metadata's flat fields (dmcodec.tokens) under their own names.
SCHEMA = pa.schema([
    ("id", pa.string()),
    ("path", pa.string()),
    ("codes", pa.list_(pa.list_(pa.uint16()))),  # [n_q][frames]
    *((f.name, _ARROW_TYPES[str(f.type)]) for f in fields(TokenMetadata)),
    ("duration_s", pa.float64()),
])
# The ids of the sequence layouts are one list per row; the delay pattern's, a grid [n_q][columns].
INPUT_IDS_TYPES = {"flat": pa.list_(pa.int32()), "first": pa.list_(pa.int32()),
                   "delay": pa.list_(pa.list_(pa.int32()))}
OUTPUT_COLUMNS = {*SCHEMA.names, "input_ids"}


def output_schema(layout: str) -> pa.Schema:
    """The token columns of a job in `layout`: SCHEMA, and `input_ids` unless the layout is codes."""
    if check_layout(layout) == "codes":
        return SCHEMA
    return SCHEMA.insert(SCHEMA.get_field_index("codes") + 1, pa.field("input_ids", INPUT_IDS_TYPES[layout]))


def row(item: Item, codes: np.ndarray, metadata: TokenMetadata) -> dict:
    """One output row: the item's id and path, its codes, the ids in the metadata's layout (unless
    that is codes) and the metadata, and the manifest's other columns as they were."""
    ids = {} if metadata.layout == "codes" else {"input_ids": tokens_in_layout(codes, metadata).tolist()}
    return {**item.extra, "id": item.id, "path": item.path, "codes": codes.astype(np.uint16).tolist(), **ids,
            **metadata.flat()}


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


class JobLocked(RuntimeError):
    """Another job holds the output folder."""


def webdataset_key(item_id: str) -> str:
    """A tar member base name for an id: readable, free of the dots and slashes WebDataset splits
    on, and unique (a hash of the id itself, since `a/b` and `a__b` read alike once sanitised)."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", item_id)[-80:]
    return f"{readable}-{hashlib.sha1(item_id.encode()).hexdigest()[:12]}"


@dataclass
class ShardStore:
    """Args: root (the output folder); webdataset (also write a .tar per shard).

    Holds an exclusive lock on `root/.lock` until closed (or the process ends), so a second job
    on the same folder refuses to start instead of writing beside this one. `extra`: the types of
    the manifest columns that rows carry beside the token columns (see manifest.extra_schema)."""

    root: Path
    webdataset: bool = False
    extra: pa.Schema = field(default_factory=lambda: pa.schema([]))
    layout: str = "codes"  # of the input_ids column; a folder holds one layout
    done: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    _next_index: int = 0
    _lock: Optional[IO[str]] = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.root / ".lock", "a+")  # noqa: SIM115 (held until close())
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "another process"
            self._lock.close()
            raise JobLocked(f"{self.root}: another bulk job ({holder}) is writing here; wait for it to end") from None
        self._lock.truncate(0)
        self._lock.write(f"pid {os.getpid()}")
        self._lock.flush()
        for leftover in self.root.glob(".*.tmp"):  # a shard being written when the job died
            leftover.unlink()
        shards = sorted(self.root.glob("shard-*.parquet"))
        if shards:
            self._check_layout(shards[0])
        for shard in shards:
            self.done.update(pq.read_table(shard, columns=["id"]).column("id").to_pylist())
        self._next_index = 1 + max((int(s.stem.split("-")[1]) for s in shards), default=-1)
        self._read_failures(self.root / "failures.jsonl")

    def _check_layout(self, shard: Path) -> None:
        """A resumed job must write the layout the folder's shards already hold."""
        names = pq.read_schema(shard).names
        held = pq.read_table(shard, columns=["layout"]).column("layout")[0].as_py() if "layout" in names else "codes"
        if held != self.layout:
            self.close()
            raise ValueError(f"{self.root} holds tokens in the {held} layout; resume it with --layout {held}, or "
                             "write this layout to another folder")

    def _read_failures(self, path: Path) -> None:
        """A job killed mid-write leaves a last line without its newline: it is dropped (that
        item is tried again), and the file is cut back to its last complete line."""
        if not path.exists():
            return
        text = path.read_text()
        complete, _, partial = text.rpartition("\n")
        if partial:
            with open(path, "r+") as f:
                f.truncate(len(complete) + 1 if complete else 0)
        for line in complete.splitlines():
            try:
                record = json.loads(line)
                self.failed[record["id"]] = record["reason"]
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line: that item is simply tried again

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    def __enter__(self) -> ShardStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_shard(self, rows: list[dict]) -> Path:
        name = f"shard-{self._next_index:05d}"
        self._next_index += 1
        buffer = io.BytesIO()
        schema = pa.schema([*output_schema(self.layout), *self.extra])
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer)
        if self.webdataset:
            _atomic_write(self.root / f"{name}.tar", self._tar(rows))
        path = self.root / f"{name}.parquet"
        _atomic_write(path, buffer.getvalue())  # last: its presence marks the shard complete
        self.done.update(r["id"] for r in rows)
        return path

    @staticmethod
    def _tar(rows: list[dict]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for r in rows:
                key = webdataset_key(r["id"])
                members = {f"{name}.npy": _npy(r[name], dtype) for name, dtype in _TAR_ARRAYS.items() if name in r}
                meta = {k: v for k, v in r.items() if k not in _TAR_ARRAYS}
                for suffix, data in (*members.items(), ("json", json.dumps(meta, default=str).encode())):
                    info = tarfile.TarInfo(f"{key}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def record_failure(self, item_id: str, path: str, reason: str) -> None:
        if item_id in self.failed:
            return
        self.failed[item_id] = reason
        with open(self.root / "failures.jsonl", "a") as f:
            f.write(json.dumps({"id": item_id, "path": path, "reason": reason}) + "\n")
            f.flush()

    def write_summary(self, summary: dict[str, Any]) -> None:
        _atomic_write(self.root / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())


_TAR_ARRAYS = {"codes": np.uint16, "input_ids": np.int32}  # the .npy members of a WebDataset sample


def _npy(values: list, dtype: type) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(values, dtype=dtype))
    return buffer.getvalue()


def read_codes(root: str | Path, column: str = "codes") -> dict[str, np.ndarray]:
    """All codes (or another column: `input_ids`, `num_samples`) of a finished job, by id, as
    int64 arrays (for checks and small corpora)."""
    out = {}
    for shard in sorted(Path(root).glob("shard-*.parquet")):
        for r in pq.read_table(shard, columns=["id", column]).to_pylist():
            out[r["id"]] = np.asarray(r[column], dtype=np.int64)
    return out
