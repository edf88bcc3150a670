"""Bulk tokenization of corpora: folder or manifest in, Parquet (and WebDataset) shards out.

Engines: `LocalEngine` (the model in this process), `ServerEngine` (a running service),
`run_ray` (Ray Data actors, for clusters). All resumable through `ShardStore`.
"""

from .manifest import Item, read_items
from .runner import LocalEngine, ServerEngine, Transient, run
from .store import JobLocked, ShardStore, read_codes

__all__ = ["Item", "JobLocked", "LocalEngine", "ServerEngine", "ShardStore", "Transient", "read_codes", "read_items",
           "run"]
