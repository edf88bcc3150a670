"""Rows of a manifest file: JSONL, CSV or Parquet, as a list of dicts."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def read_rows(manifest: Path) -> list[dict]:
    suffix = manifest.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    if suffix == ".csv":
        with open(manifest, newline="") as f:
            return list(csv.DictReader(f))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(manifest).to_pylist()
    raise ValueError(f"{manifest}: manifests are .jsonl, .csv or .parquet")
