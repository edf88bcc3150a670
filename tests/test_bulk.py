"""Bulk tokenization: local, through the service and on Ray give the same codes; resumable."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from server import running_server

from dmcodec import Tokenizer
from dmcodec.audio import write_wav
from dmcodec.bulk import LocalEngine, ServerEngine, ShardStore, read_codes, read_items, run
from dmcodec.signals import speech_like


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for i in range(10):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        write_wav(sub / f"utt{i}.wav", speech_like(0.5 + 0.37 * i, seed=200 + i), 16000)
    (root / "b" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt not really")
    return root


def expected_codes(checkpoint, corpus) -> dict[str, np.ndarray]:
    tokenizer = Tokenizer.from_pretrained(checkpoint)
    return {str(p.relative_to(corpus)): tokenizer.encode(p).codes for p in corpus.rglob("utt*.wav")}


def check_output(out: Path, expected: dict[str, np.ndarray]) -> None:
    codes = read_codes(out)
    assert set(codes) == set(expected)
    for key, value in expected.items():
        assert np.array_equal(codes[key], value), key
    ids = [i for s in sorted(out.glob("shard-*.parquet")) for i in pq.read_table(s).column("id").to_pylist()]
    assert len(ids) == len(set(ids))  # no duplicates
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["id"] for f in failures] == ["b/broken.wav"] and "not a readable audio file" in failures[0]["reason"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == 10 and summary["failed"] == 1


def test_local_engine_writes_shards_and_records_failures(tiny_checkpoint, corpus, tmp_path):
    out = tmp_path / "local"
    store = ShardStore(out, webdataset=True)
    summary = run(read_items(corpus), store, LocalEngine(Tokenizer.from_pretrained(tiny_checkpoint)),
                  shard_size=4, progress=False)
    check_output(out, expected_codes(tiny_checkpoint, corpus))
    assert len(list(out.glob("shard-*.parquet"))) == 3 and len(list(out.glob("shard-*.tar"))) == 3
    table = pq.read_table(sorted(out.glob("shard-*.parquet"))[0])
    assert set(table.column_names) >= {"id", "path", "codes", "n_q", "frames", "duration_s", "model_sha256"}
    assert summary["audio_hours_this_run"] > 0
    # Running again finds everything done and recomputes nothing.
    again = run(read_items(corpus), ShardStore(out), LocalEngine(Tokenizer.from_pretrained(tiny_checkpoint)),
                shard_size=4, progress=False)
    assert again["skipped_already_done"] == 11 and again["audio_hours_this_run"] == 0


def test_manifests_in_jsonl_csv_and_parquet(corpus, tmp_path):
    files = sorted(corpus.rglob("*.wav"))
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


def test_server_engine_gives_the_same_codes(tiny_checkpoint, corpus, tmp_path):
    out = tmp_path / "server"
    with running_server(tiny_checkpoint, tmp_path / "log", max_queue_size=4) as (url, _):
        engine = ServerEngine(url, concurrency=8)  # more than the queue holds: 503s are retried
        try:
            run(read_items(corpus), ShardStore(out), engine, shard_size=4, engine_name="server", progress=False)
        finally:
            engine.close()
    check_output(out, expected_codes(tiny_checkpoint, corpus))


def test_ray_engine_gives_the_same_codes(tiny_checkpoint, corpus, tmp_path):
    ray = pytest.importorskip("ray")
    from dmcodec.bulk.ray_job import run_ray

    out = tmp_path / "ray"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_ray(read_items(corpus), ShardStore(out), tiny_checkpoint, actors=2, batch_size=3, shard_size=4)
    finally:
        ray.shutdown()
    assert summary["engine"] == "ray"
    check_output(out, expected_codes(tiny_checkpoint, corpus))


def test_killed_job_resumes_without_loss_or_duplicates(small_checkpoint, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(24):
        write_wav(corpus / f"u{i:02d}.wav", speech_like(2.0 + 0.1 * i, seed=300 + i), 16000)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dmcodec.cli", "bulk", str(corpus), "-o", str(out), "--shard-size", "2",
               "-c", str(small_checkpoint)]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(list(out.glob("shard-*.parquet"))) < 2 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    written = len(list(out.glob("shard-*.parquet")))
    assert 2 <= written < 12, "the job should have been killed midway"
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout[finished.stdout.index("{"):])
    assert summary["skipped_already_done"] >= 4 and summary["written"] == 24
    assert not list(out.glob(".*.tmp"))
    codes = read_codes(out)
    assert sorted(codes) == sorted(p.name for p in corpus.glob("*.wav"))
    tokenizer = Tokenizer.from_pretrained(small_checkpoint)
    for name in ("u00.wav", "u23.wav"):
        assert np.array_equal(codes[name], tokenizer.encode(corpus / name).codes)
