"""Bulk tokenization: local, through the service and on Ray give the same codes; resumable."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tarfile

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from helpers import check_bulk_output, expected_bulk_codes

from dmcodec import Tokenizer
from dmcodec.audio import load_audio, write_wav
from dmcodec.bulk import Item, JobLocked, LocalEngine, ServerEngine, ShardStore, read_items, run
from dmcodec.bulk.manifest import extra_schema
from dmcodec.bulk.store import OUTPUT_COLUMNS, webdataset_key
from dmcodec.client import AsyncDMCodecClient
from dmcodec.layouts import decode_layout
from dmcodec.signals import speech_like
from dmcodec.tokens import TokenMetadata
from dmcodec.vocabulary import Vocabulary


def test_local_engine_writes_shards_and_records_failures(tiny_checkpoint, bulk_corpus, tmp_path):
    out = tmp_path / "local"
    with ShardStore(out, webdataset=True) as store:
        summary = run(read_items(bulk_corpus), store, LocalEngine(Tokenizer.from_pretrained(tiny_checkpoint)),
                      shard_size=4, progress=False)
    check_bulk_output(out, expected_bulk_codes(tiny_checkpoint, bulk_corpus))
    assert len(list(out.glob("shard-*.parquet"))) == 3 and len(list(out.glob("shard-*.tar"))) == 3
    table = pq.read_table(sorted(out.glob("shard-*.parquet"))[0])
    assert set(table.column_names) >= {"id", "path", "codes", "n_q", "frames", "duration_s", "model_sha256"}
    assert summary["audio_hours_this_run"] > 0
    # Running again finds everything done and recomputes nothing.
    with ShardStore(out) as store:
        again = run(read_items(bulk_corpus), store, LocalEngine(Tokenizer.from_pretrained(tiny_checkpoint)),
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


def test_a_second_job_on_the_same_folder_refuses_to_start(tmp_path):
    first = ShardStore(tmp_path / "out")
    with pytest.raises(JobLocked, match=f"pid {os.getpid()}"):
        ShardStore(tmp_path / "out")
    first.close()
    with ShardStore(tmp_path / "out"):
        pass


def test_a_truncated_last_failure_line_is_dropped_and_the_job_resumes(tmp_path):
    out = tmp_path / "out"
    with ShardStore(out) as store:
        store.record_failure("a", "a.wav", "not audio")
        store.record_failure("b", "b.wav", "not audio")
    failures = out / "failures.jsonl"
    failures.write_bytes(failures.read_bytes()[:-7])  # killed in the middle of writing b's line
    with ShardStore(out) as store:
        assert set(store.failed) == {"a"}
        store.record_failure("c", "c.wav", "not audio")
    assert [json.loads(line)["id"] for line in failures.read_text().splitlines()] == ["a", "c"]


def test_webdataset_keys_are_unique_even_when_ids_sanitise_alike():
    ids = ["a/b.wav", "a__b.wav", "a/b_wav", "a.b/wav", "x" * 300, "x" * 301]
    keys = [webdataset_key(i) for i in ids]
    assert len(set(keys)) == len(ids) and not any("." in k or "/" in k for k in keys)


def test_server_engine_retries_once_per_policy_and_leaves_transient_failures_for_the_next_run(tmp_path):
    calls: dict[str, int] = {}
    metadata = TokenMetadata(n_q=1, frames=2, codebook_size=1024, frame_rate=50.0, sample_rate=16000,
                             num_samples=640, model_name="m", model_sha256="0" * 64, backend="torch", precision="fp32")

    def answer(request: httpx.Request) -> httpx.Response:
        name = re.search(rb'filename="([^"]+)"', request.content).group(1).decode()
        calls[name] = calls.get(name, 0) + 1
        if name == "busy.wav" or (name == "flaky.wav" and calls[name] < 3):
            return httpx.Response(503, headers={"retry-after": "0"}, json={"error": {"code": "overloaded",
                                                                                      "message": "full"}})
        if name == "bad.wav":
            return httpx.Response(400, json={"error": {"code": "invalid_audio", "message": "not audio"}})
        buffer = io.BytesIO()
        np.save(buffer, np.array([[1, 2]], dtype=np.uint16))
        return httpx.Response(200, content=buffer.getvalue(), headers=metadata.headers())

    items = []
    for name in ("ok.wav", "flaky.wav", "busy.wav", "bad.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
        items.append(Item(name, str(tmp_path / name), 0.1))
    items.append(Item("gone.wav", str(tmp_path / "gone.wav"), None))  # deleted since the manifest was written
    engine = ServerEngine("http://test", retries=3, backoff_s=0.0)
    engine._client = AsyncDMCodecClient(max_retries=0, http=httpx.AsyncClient(
        base_url="http://test", transport=httpx.MockTransport(answer)))
    with ShardStore(tmp_path / "out") as store:
        summary = run(items, store, engine, progress=False)
    engine.close()
    assert calls == {"ok.wav": 1, "flaky.wav": 3, "busy.wav": 4, "bad.wav": 1}  # no nested retries
    assert summary["written"] == 2 and summary["failed"] == 2 and summary["retry_next_run"] == 1
    assert set(store.failed) == {"bad.wav", "gone.wav"}  # busy.wav is not recorded: the next run tries it again


def test_manifest_columns_pass_through_with_their_types_and_segments_are_cut(tiny_checkpoint, tmp_path):
    long = tmp_path / "long.wav"
    write_wav(long, speech_like(12.0, 16000, seed=40), 16000)
    short = tmp_path / "short.flac"
    sf.write(short, speech_like(2.0, 22050, seed=41), 22050)
    rows = [{"id": f"seg{i}", "path": "long.wav", "start": 2.0 * i, "end": 2.0 * i + 1.5, "text": f"words {i}",
             "speaker": "s1", "score": np.int32(i), "tags": ["a", "b"][: i % 3]} for i in range(5)]
    rows.append({"id": "whole", "path": "short.flac", "start": None, "end": None, "text": "all of it",
                 "speaker": "s2", "score": np.int32(9), "tags": []})
    rows.append({"id": "past", "path": "long.wav", "start": 11.0, "end": 13.0, "text": "", "speaker": "s1",
                 "score": np.int32(0), "tags": []})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    items = read_items(tmp_path / "m.parquet")
    assert items[1].start == 2.0 and items[1].duration_s == 1.5 and items[5].duration_s == pytest.approx(2.0)
    tokenizer = Tokenizer.from_pretrained(tiny_checkpoint)
    engine = LocalEngine(tokenizer, batch_size=3)
    reads = []
    load = engine.recordings.load
    engine.recordings.load = lambda path: reads.append(path) or load(path)
    with ShardStore(tmp_path / "out", extra=extra_schema(tmp_path / "m.parquet", items, OUTPUT_COLUMNS)) as store:
        summary = run(items, store, engine, shard_size=4, progress=False)
    assert summary["written"] == 6 and set(store.failed) == {"past"} and "beyond" in store.failed["past"]
    assert sorted(reads) == sorted({str(tmp_path / "long.wav"), str(tmp_path / "short.flac")})  # each read once
    table = pa.concat_tables(pq.read_table(p) for p in sorted((tmp_path / "out").glob("shard-*.parquet")))
    assert table.schema.field("score").type == pa.int32() and table.schema.field("tags").type == pa.list_(pa.string())
    out = {r["id"]: r for r in table.to_pylist()}
    whole = load_audio(long, 16000)[0]
    for i in range(5):
        expected = tokenizer.encode_arrays([whole[32000 * i : 32000 * i + 24000]])[0]
        assert np.array_equal(np.array(out[f"seg{i}"]["codes"]), expected)
        assert out[f"seg{i}"]["text"] == f"words {i}" and out[f"seg{i}"]["start"] == 2.0 * i
        assert out[f"seg{i}"]["num_samples"] == 24000
    assert out["whole"]["speaker"] == "s2" and out["whole"]["start"] is None
    with pytest.raises(ValueError, match="clash"):
        extra_schema("m.jsonl", [Item("a", "a.wav", 1.0, extra={"n_q": 3})], OUTPUT_COLUMNS)


@pytest.mark.parametrize("layout, ids_type", [("flat", pa.list_(pa.int32())),
                                               ("delay", pa.list_(pa.list_(pa.int32())))])
def test_a_layout_adds_input_ids_to_parquet_and_webdataset_rows(tiny_checkpoint, bulk_corpus, tmp_path, layout,
                                                                 ids_type):
    out = tmp_path / layout
    with Tokenizer.from_pretrained(tiny_checkpoint) as tokenizer, \
            ShardStore(out, webdataset=True, layout=layout) as store:
        run(read_items(bulk_corpus / "a"), store, LocalEngine(tokenizer, layout=layout), progress=False)
        vocabulary = tokenizer.vocabulary
    table = pq.read_table(out / "shard-00000.parquet")
    assert table.schema.field("input_ids").type == ids_type and table.num_rows == 5
    for r in table.to_pylist():
        codes = np.array(r["codes"])
        assert np.array_equal(decode_layout(np.array(r["input_ids"]), layout, vocabulary), codes)
        assert r["layout"] == layout and r["vocab_size"] == vocabulary.size == 515
    with tarfile.open(out / "shard-00000.tar") as tar:
        members = {m.name.split(".", 1)[1] for m in tar.getmembers()}
        first = tar.getmembers()[0].name.split(".")[0]
        ids = np.load(io.BytesIO(tar.extractfile(f"{first}.input_ids.npy").read()))
        meta = json.loads(tar.extractfile(f"{first}.json").read())
    assert members == {"codes.npy", "input_ids.npy", "json"} and "input_ids" not in meta
    assert ids.dtype == np.int32 and np.array_equal(ids, next(r["input_ids"] for r in table.to_pylist()
                                                              if r["id"] == meta["id"]))
    with pytest.raises(ValueError, match=f"holds tokens in the {layout} layout"):
        ShardStore(out, layout="first")
    ShardStore(out, layout=layout).close()  # resuming in the same layout is fine


def test_the_server_engine_writes_the_layout_in_the_vocabulary_the_service_reports(tmp_path):
    metadata = TokenMetadata(n_q=2, frames=2, codebook_size=1024, frame_rate=50.0, sample_rate=16000,
                             num_samples=640, model_name="m", model_sha256="0" * 64, backend="torch", precision="fp32",
                             **Vocabulary(1024, 8).token_fields())

    def answer(request: httpx.Request) -> httpx.Response:
        buffer = io.BytesIO()
        np.save(buffer, np.array([[1, 2], [3, 4]], dtype=np.uint16))
        return httpx.Response(200, content=buffer.getvalue(), headers=metadata.headers())

    (tmp_path / "a.wav").write_bytes(b"RIFF")
    engine = ServerEngine("http://test", layout="flat")
    engine._client = AsyncDMCodecClient(max_retries=0, http=httpx.AsyncClient(
        base_url="http://test", transport=httpx.MockTransport(answer)))
    (result,) = engine.encode([Item("a", str(tmp_path / "a.wav"), 0.04)])
    engine.close()
    assert result["layout"] == "flat" and result["input_ids"] == [8193, 1, 1027, 2, 1028, 8194]
