"""Load benchmark of the HTTP service: a real server on 127.0.0.1, 5-second clips, rising concurrency.

For each concurrency level it sends encode requests for --seconds and prints throughput
(audio seconds per second), p50/p95/p99 latency and the mean batch size (from /metrics), then
two ratios measured in the same run:
  c16 / in-process  server throughput at concurrency 16 over the model's own throughput on
                    16 clips in this process (the tokenizer, no HTTP) - target >= 0.9
  c16 / c1          batching and concurrency over one request at a time - must be >= 1.0

    python bench/service_load.py [--checkpoint DIR] [--seconds 20] [--levels 1 4 16 64]
    python bench/service_load.py --observability   # JSON logs + tracing vs plain, at c16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from dmcodec import Tokenizer, WindowPolicy
from dmcodec.audio import wav_bytes
from dmcodec.client import AsyncDMCodecClient
from dmcodec.defaults import resolve_checkpoint
from dmcodec.signals import speech_like
from dmcodec_service.local import local_server


def batch_stats(metrics_text: str) -> tuple[float, float]:
    from prometheus_client.parser import text_string_to_metric_families

    total = count = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.labels.get("op") == "encode":
                if sample.name == "dmcodec_batch_size_requests_sum":
                    total = sample.value
                elif sample.name == "dmcodec_batch_size_requests_count":
                    count = sample.value
    return total, count


async def load(url: str, clips: list[bytes], clip_seconds: float, concurrency: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    async with AsyncDMCodecClient(url, max_retries=100, max_connections=concurrency + 4) as client:
        async with httpx.AsyncClient() as http:
            before = batch_stats((await http.get(f"{url}/metrics")).text)
        end = time.monotonic() + seconds
        start = time.monotonic()

        async def worker(index: int) -> None:
            i = index
            while time.monotonic() < end:
                sent = time.monotonic()
                await client.encode(clips[i % len(clips)])
                latencies.append(time.monotonic() - sent)
                i += concurrency

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.monotonic() - start
        async with httpx.AsyncClient() as http:
            after = batch_stats((await http.get(f"{url}/metrics")).text)
    batches = after[1] - before[1]
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {"concurrency": concurrency, "requests": len(latencies),
            "audio_s_per_s": round(len(latencies) * clip_seconds / elapsed, 2),
            "p50_s": round(p50, 3), "p95_s": round(p95, 3), "p99_s": round(p99, 3),
            "mean_batch": round((after[0] - before[0]) / batches, 2) if batches else 0.0}


def in_process(checkpoint: Path, clips: list[np.ndarray], clip_seconds: float, workers: int, threads: int,
               backend: str = "torch") -> float:
    tokenizer = Tokenizer.from_pretrained(checkpoint, backend=backend, min_agreement=0.0,
                                          policy=WindowPolicy(workers=workers, threads_per_window=threads))
    tokenizer.encode_arrays(clips[:2])
    start = time.monotonic()
    tokenizer.encode_arrays(clips)
    return len(clips) * clip_seconds / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="default: the service's default checkpoint")
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per concurrency level")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--clip-seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=0, help="window workers (0: cores / threads per window)")
    parser.add_argument("--threads-per-window", type=int, default=1)
    parser.add_argument("--backends", default="torch", help="comma-separated: torch, onnxruntime (one server each)")
    parser.add_argument("--observability", action="store_true", help="instead: the cost of JSON logs plus tracing "
                        "(OpenTelemetry, console exporter) at concurrency 16, A/B rounds against a plain server")
    args = parser.parse_args()
    if args.observability:
        return observability_overhead(args)
    checkpoint = resolve_checkpoint(args.checkpoint)
    arrays = [speech_like(args.clip_seconds, seed=i) for i in range(16)]
    clips = [wav_bytes(a, 16000) for a in arrays]
    results = {}
    for backend in args.backends.split(","):
        reference = in_process(checkpoint, arrays, args.clip_seconds, args.workers, args.threads_per_window, backend)
        rows = []
        with tempfile.TemporaryDirectory() as tmp, \
                local_server(checkpoint, Path(tmp) / "server.log", workers=args.workers,
                             threads_per_window=args.threads_per_window, backend=backend, min_code_agreement=0.0,
                             max_queue_size=256, max_batch_size=16, max_wait_ms=5) as (url, _):
                for level in args.levels:
                    rows.append(asyncio.run(load(url, clips, args.clip_seconds, level, args.seconds)))
        results[backend] = {"in_process_audio_s_per_s": round(reference, 2), "levels": rows}
        report(backend, checkpoint, args, reference, rows)
    if len(results) > 1:
        first, *others = results
        for other in others:
            ratios = {a["concurrency"]: round(b["audio_s_per_s"] / a["audio_s_per_s"], 3)
                      for a, b in zip(results[first]["levels"], results[other]["levels"])}
            print(f"{other} / {first} audio s/s by concurrency: {ratios}")
    print(json.dumps(results))


def observability_overhead(args, rounds: int = 3) -> None:
    """Alternating rounds on two servers, plain and observed, so that drift of this shared
    machine falls on both alike; prints each round and the ratio of the totals."""
    checkpoint = resolve_checkpoint(args.checkpoint)
    clips = [wav_bytes(speech_like(args.clip_seconds, seed=i), 16000) for i in range(16)]
    common = dict(workers=args.workers, max_queue_size=256, max_batch_size=16, max_wait_ms=5)
    totals = {"plain": 0.0, "observed": 0.0}
    with tempfile.TemporaryDirectory() as tmp, \
            local_server(checkpoint, Path(tmp) / "plain.log", **common) as (plain, _), \
            local_server(checkpoint, Path(tmp) / "observed.log", env={"OTEL_TRACES_EXPORTER": "console"},
                         log_format="json", **common) as (observed, _):
        for index in range(rounds):
            for name, url in (("plain", plain), ("observed", observed))[:: 1 if index % 2 == 0 else -1]:
                row = asyncio.run(load(url, clips, args.clip_seconds, 16, args.seconds))
                totals[name] += row["audio_s_per_s"]
                print(f"round {index} {name:>8}: {row['audio_s_per_s']} audio s/s, p95 {row['p95_s']} s")
        spans = sum(line.count('"trace_id"') for line in (Path(tmp) / "observed.log").open())
    print(f"observed / plain throughput at c16 = {totals['observed'] / totals['plain']:.3f} "
          f"(overhead {100 * (1 - totals['observed'] / totals['plain']):.1f}%; {spans} spans exported)")


def report(backend: str, checkpoint: Path, args, reference: float, rows: list[dict]) -> None:
    by_level = {r["concurrency"]: r["audio_s_per_s"] for r in rows}
    print(f"backend={backend} checkpoint={checkpoint} clip={args.clip_seconds}s workers={args.workers or 'auto'} "
          f"threads/window={args.threads_per_window} in-process throughput={reference:.2f} audio s/s")
    print(f"{'concurrency':>11}{'requests':>10}{'audio s/s':>11}{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}{'batch':>7}")
    for r in rows:
        print(f"{r['concurrency']:>11}{r['requests']:>10}{r['audio_s_per_s']:>11}{r['p50_s']:>8}"
              f"{r['p95_s']:>8}{r['p99_s']:>8}{r['mean_batch']:>7}")
    if 16 in by_level:
        print(f"c16 / in-process = {by_level[16] / reference:.3f}")
        if 1 in by_level:
            print(f"c16 / c1 = {by_level[16] / by_level[1]:.3f}")


if __name__ == "__main__":
    main()
