"""The output folder of a bulk job: Parquet shards (optionally WebDataset tars beside them),
failures.jsonl and summary.json.

A shard becomes visible only once complete (written to a temporary name, then renamed), so a
killed job leaves no corrupt or partial shard; restarting reads the ids of the complete shards
and skips them, so no item is written twice.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..tokens import TokenMetadata

_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
# id, path and codes, then the token metadata's flat fields (dmcodec.tokens) under their own names.
SCHEMA = pa.schema([
    ("id", pa.string()),
    ("path", pa.string()),
    ("codes", pa.list_(pa.list_(pa.uint16()))),  # [n_q][frames]
    *((f.name, _ARROW_TYPES[str(f.type)]) for f in fields(TokenMetadata)),
    ("duration_s", pa.float64()),
])


def row(item_id: str, path: str, codes: np.ndarray, metadata: TokenMetadata) -> dict:
    return {"id": item_id, "path": path, "codes": codes.astype(np.uint16).tolist(), **metadata.flat()}


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


@dataclass
class ShardStore:
    """Args: root (the output folder); webdataset (also write a .tar per shard)."""

    root: Path
    webdataset: bool = False
    done: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    _next_index: int = 0

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(".*.tmp"):  # a shard being written when the job died
            leftover.unlink()
        shards = sorted(self.root.glob("shard-*.parquet"))
        for shard in shards:
            self.done.update(pq.read_table(shard, columns=["id"]).column("id").to_pylist())
        self._next_index = 1 + max((int(s.stem.split("-")[1]) for s in shards), default=-1)
        failures = self.root / "failures.jsonl"
        if failures.exists():
            for line in failures.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.failed[record["id"]] = record["reason"]

    def write_shard(self, rows: list[dict]) -> Path:
        name = f"shard-{self._next_index:05d}"
        self._next_index += 1
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), buffer)
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
                key = r["id"].replace("/", "__").replace(".", "_")
                npy = io.BytesIO()
                np.save(npy, np.asarray(r["codes"], dtype=np.uint16))
                meta = {k: v for k, v in r.items() if k != "codes"}
                for suffix, data in (("codes.npy", npy.getvalue()), ("json", json.dumps(meta).encode())):
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


def read_codes(root: str | Path) -> dict[str, np.ndarray]:
    """All codes of a finished job, by id (for checks and small corpora)."""
    out = {}
    for shard in sorted(Path(root).glob("shard-*.parquet")):
        for r in pq.read_table(shard, columns=["id", "codes"]).to_pylist():
            out[r["id"]] = np.asarray(r["codes"], dtype=np.int64)
    return out
