"""Bulk tokenization: local, through the service and on Ray give the same codes; resumable."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
from helpers import check_bulk_output, expected_bulk_codes

from dmcodec import Tokenizer
from dmcodec.bulk import LocalEngine, ShardStore, read_items, run


def test_local_engine_writes_shards_and_records_failures(tiny_checkpoint, bulk_corpus, tmp_path):
    out = tmp_path / "local"
    store = ShardStore(out, webdataset=True)
    summary = run(read_items(bulk_corpus), store, LocalEngine(Tokenizer.from_pretrained(tiny_checkpoint)),
                  shard_size=4, progress=False)
    check_bulk_output(out, expected_bulk_codes(tiny_checkpoint, bulk_corpus))
    assert len(list(out.glob("shard-*.parquet"))) == 3 and len(list(out.glob("shard-*.tar"))) == 3
    table = pq.read_table(sorted(out.glob("shard-*.parquet"))[0])
    assert set(table.column_names) >= {"id", "path", "codes", "n_q", "frames", "duration_s", "model_sha256"}
    assert summary["audio_hours_this_run"] > 0
    # Running again finds everything done and recomputes nothing.
    again = run(read_items(bulk_corpus), ShardStore(out), LocalEngine(Tokenizer.from_pretrained(tiny_checkpoint)),
                shard_size=4, progress=False)
    assert again["skipped_already_done"] == 11 and again["audio_hours_this_run"] == 0


def test_manifests_in_jsonl_csv_and_parquet(bulk_corpus, tmp_path):
    files = sorted(bulk_corpus.rglob("*.wav"))
    rows = [{"id": f"x{i}", "path": str(p)} for i, p in enumerate(files)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with open(tmp_path / "m.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["id", "path"])
        writer.writeheader()
        writer.writerows(rows)
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    for name in ("m.jsonl", "m.csv", "m.parquet"):
        items = read_items(tmp_path / name)
        assert [i.id for i in items] == [r["id"] for r in rows]
        assert sum(i.duration_s is None for i in items) == 1  # the broken file
    (tmp_path / "dup.jsonl").write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[0]) + "\n")
    with pytest.raises(ValueError, match="duplicate id"):
        read_items(tmp_path / "dup.jsonl")
