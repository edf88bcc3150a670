"""The same job on Ray Data, for corpora that need more than one machine.

The manifest becomes a Ray dataset; `map_batches` sends batches to a pool of model actors
(each loads the checkpoint once and runs the same batch-invariant tokenizer as the local
engine, so codes are identical); successful rows go to Parquet, failures to failures.jsonl.
On a cluster, `ray.init(address="auto")` (or RAY_ADDRESS) connects to it; the checkpoint and
the audio must be readable from every node (shared or object storage).
"""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .. import defaults
from ..tokens import TokenMetadata
from .manifest import Item
from .runner import pending, summarize
from .store import ShardStore, row


class _EncoderActor:
    """Holds one tokenizer; called with batches of manifest rows (a dict of columns)."""

    def __init__(self, checkpoint: str, n_q: Optional[int], threads: int, backend: str, precision: str,
                 layout: str = "codes"):
        from ..runtime import configure_determinism
        from ..tokenizer import Tokenizer
        from ..windows import WindowPolicy
        from .runner import LocalEngine

        configure_determinism("cpu")  # the actors run on CPU; a GPU actor would need its device here
        tokenizer = Tokenizer.from_pretrained(checkpoint, backend=backend, precision=precision,
                                              policy=WindowPolicy(workers=threads))
        self.engine = LocalEngine(tokenizer, n_q, layout=layout)

    def __call__(self, batch: dict) -> dict:
        columns = zip(batch["id"], batch["path"], batch["duration_s"], batch["start"], batch["end"])
        items = [Item(str(i), str(p), float(d), _seconds(s), _seconds(e)) for i, p, d, s, e in columns]
        # Flat columns (codes as uint16 bytes) travel through Arrow blocks unchanged.
        out: dict[str, list] = {name: [] for name in _COLUMNS}
        for item, result in zip(items, self.engine.encode(items)):
            record: dict[str, Any] = {"id": item.id, "path": item.path, "error": ""}
            if isinstance(result, Exception):
                record["error"] = f"{type(result).__name__}: {result}"
            else:
                codes = np.asarray(result["codes"], dtype=np.uint16)
                record.update({k: result[k] for k in _METADATA}, codes=codes.tobytes())
            for name in _COLUMNS:
                out[name].append(record[name] if name in record else _EMPTY[name])
        return out


_METADATA = tuple(f.name for f in fields(TokenMetadata))
_COLUMNS = ("id", "path", "error", "codes", *_METADATA)
_EMPTY = {"codes": b"", **{f.name: {"int": 0, "float": 0.0, "str": ""}[str(f.type)] for f in fields(TokenMetadata)}}


def _seconds(value: float) -> Optional[float]:
    return None if value < 0 else float(value)  # -1: no segment bound (Arrow columns hold no None here)


def _row(record: dict, item: Item) -> dict:
    metadata = TokenMetadata.from_flat(record)
    codes = np.frombuffer(record["codes"], dtype=np.uint16).reshape(metadata.n_q, metadata.frames)
    return row(item, codes, metadata)


def run_ray(items: Sequence[Item], store: ShardStore, checkpoint: str | Path, *, n_q: Optional[int] = None,
            actors: int = 1, cpus_per_actor: int = 1, batch_size: int = 16, shard_size: int = 1000,
            address: Optional[str] = None, backend: str = defaults.BACKEND,
            precision: str = defaults.PRECISION, layout: str = "codes") -> dict:
    """Encode `items` on `actors` Ray actors of `cpus_per_actor` cores each, with the same
    tokenizer settings as the local engine (`backend`, `precision`, default windows); `layout` as for `LocalEngine`."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    todo = pending(items, store)
    start = time.monotonic()
    audio_s = 0.0
    if todo:
        by_id = {item.id: item for item in todo}  # manifest columns join the rows here, not in the actors
        dataset = ray.data.from_items([{"id": i.id, "path": i.path, "duration_s": i.duration_s or 0.0,
                                        "start": -1.0 if i.start is None else i.start,
                                        "end": -1.0 if i.end is None else i.end} for i in todo])
        actor_args = (str(checkpoint), n_q, cpus_per_actor, backend, precision, layout)
        results = dataset.map_batches(_EncoderActor, fn_constructor_args=actor_args, batch_size=batch_size,
                                      concurrency=actors, num_cpus=cpus_per_actor)
        # Results stream back in blocks; shards are written here so that a killed job leaves
        # only complete shards, exactly as the local engine does.
        rows: list[dict] = []
        for record in results.iter_rows():
            if record["error"]:
                store.record_failure(str(record["id"]), str(record["path"]), str(record["error"]))
                continue
            rows.append(_row(record, by_id[str(record["id"])]))
            audio_s += rows[-1]["duration_s"]
            if len(rows) >= shard_size:
                store.write_shard(rows)
                rows = []
        if rows:
            store.write_shard(rows)
    return summarize(store, "ray", len(items), len(items) - len(todo), audio_s, time.monotonic() - start,
                     actors=actors)
