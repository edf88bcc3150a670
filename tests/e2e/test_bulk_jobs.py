"""Bulk tokenization: local, through the service and on Ray give the same codes; resumable."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import check_bulk_output, expected_bulk_codes, running_server

from dmcodec import Tokenizer
from dmcodec.audio import write_wav
from dmcodec.bulk import ServerEngine, ShardStore, read_codes, read_items, run
from dmcodec.signals import speech_like


def test_server_engine_gives_the_same_codes(tiny_checkpoint, bulk_corpus, tmp_path):
    out = tmp_path / "server"
    with running_server(tiny_checkpoint, tmp_path / "log", max_queue_size=4) as (url, _):
        engine = ServerEngine(url, concurrency=8)  # more than the queue holds: 503s are retried
        try:
            run(read_items(bulk_corpus), ShardStore(out), engine, shard_size=4, engine_name="server", progress=False)
        finally:
            engine.close()
    check_bulk_output(out, expected_bulk_codes(tiny_checkpoint, bulk_corpus))


def test_ray_engine_gives_the_same_codes(tiny_checkpoint, bulk_corpus, tmp_path):
    ray = pytest.importorskip("ray")
    from dmcodec.bulk.ray_job import run_ray

    out = tmp_path / "ray"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_ray(read_items(bulk_corpus), ShardStore(out), tiny_checkpoint, actors=2, batch_size=3,
                          shard_size=4)
    finally:
        ray.shutdown()
    assert summary["engine"] == "ray"
    check_bulk_output(out, expected_bulk_codes(tiny_checkpoint, bulk_corpus))


def test_killed_job_resumes_without_loss_or_duplicates(small_checkpoint, tmp_path):
    bulk_corpus = tmp_path / "bulk_corpus"
    bulk_corpus.mkdir()
    for i in range(24):
        write_wav(bulk_corpus / f"u{i:02d}.wav", speech_like(2.0 + 0.1 * i, seed=300 + i), 16000)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dmcodec.cli", "bulk", str(bulk_corpus), "-o", str(out), "--shard-size", "2",
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
    assert sorted(codes) == sorted(p.name for p in bulk_corpus.glob("*.wav"))
    tokenizer = Tokenizer.from_pretrained(small_checkpoint)
    for name in ("u00.wav", "u23.wav"):
        assert np.array_equal(codes[name], tokenizer.encode(bulk_corpus / name).codes)
