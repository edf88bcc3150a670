"""Soak test of the service: minutes of mixed valid and invalid traffic at concurrency 32, with a
SIGTERM and a restart on the same port in the middle. A real server on 127.0.0.1 only.

Every logical request is retried while the service answers 503 or while nothing listens (the
restart window): both are clean refusals that a client is told to retry. A request is *lost*
when it ends any other way than expected: a reset or dropped connection after it was sent, a
500, a timeout, a valid request answered 4xx or an invalid one answered 2xx. Lost must be 0.

    python bench/soak.py [--minutes 4] [--concurrency 32] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

from dmcodec.audio import wav_bytes
from dmcodec.defaults import resolve_checkpoint
from dmcodec.signals import speech_like
from dmcodec_service.local import free_port, local_server


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def requests(seed: int) -> list[tuple[str, dict, set[int]]]:
    """(kind, httpx arguments, acceptable statuses): a fixed mix, cycled through."""
    rng = np.random.default_rng(seed)
    clips = [wav_bytes(speech_like(float(s), 16000, seed=int(rng.integers(1 << 30))), 16000)
             for s in rng.uniform(1.0, 6.0, 12)]
    codes = {"codes": rng.integers(0, 1024, (8, 150)).tolist()}
    npy = io.BytesIO()
    np.save(npy, rng.integers(0, 1024, (4, 100), dtype=np.uint16))
    valid = [("encode", {"url": "/v1/encode", "files": {"file": ("a.wav", c)}}, {200}) for c in clips]
    valid += [("decode", {"url": "/v1/decode", "json": codes}, {200}),
              ("decode-npy", {"url": "/v1/decode", "content": npy.getvalue(),
                              "headers": {"content-type": "application/octet-stream"}}, {200})]
    invalid = [
        ("corrupt-audio", {"url": "/v1/encode", "files": {"file": ("a.wav", b"RIFF\0\0\0\0WAVEjunk" * 40)}}, {400}),
        ("empty-audio", {"url": "/v1/encode", "files": {"file": ("a.wav", b"")}}, {400}),
        ("wrong-type", {"url": "/v1/encode", "content": b"hello", "headers": {"content-type": "text/plain"}}, {415}),
        ("bad-codes", {"url": "/v1/decode", "json": {"codes": [[1, 2], [3]]}}, {422}),
        ("huge-int", {"url": "/v1/decode", "json": {"codes": [[2**70]]}}, {422}),
        ("bad-npy", {"url": "/v1/decode", "content": b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}   \n",
                     "headers": {"content-type": "application/octet-stream"}}, {422}),
    ]
    return valid * 2 + invalid


async def client_loop(url: str, mix: list, until: float, outcomes: Counter, latencies: list[float],
                      lost: list[str], rng: random.Random) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        while time.monotonic() < until:
            kind, request, expected = rng.choice(mix)
            started = time.monotonic()
            while True:
                try:
                    response = await http.post(**request)
                except httpx.ConnectError:  # nothing listening (restart): nothing was sent
                    outcomes["retried: not listening"] += 1
                    await asyncio.sleep(0.2)
                    continue
                except httpx.HTTPError as err:
                    lost.append(f"{kind}: {type(err).__name__}")
                    break
                if response.status_code == 503:
                    outcomes[f"retried: 503 {response.json()['error']['code']}"] += 1
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                if response.status_code in expected:
                    outcomes[f"{kind} {response.status_code}"] += 1
                    if 200 in expected:
                        latencies.append(time.monotonic() - started)
                else:
                    lost.append(f"{kind}: {response.status_code} {response.text[:120]}")
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--restart-after", type=float, default=0.5, help="SIGTERM at this share of the run.")
    args = parser.parse_args()
    checkpoint = resolve_checkpoint(args.checkpoint)
    port, mix = free_port(), requests(0)
    duration = args.minutes * 60
    outcomes: Counter = Counter()
    latencies: list[float] = []
    lost: list[str] = []
    peaks: list[float] = []
    done = threading.Event()

    def traffic() -> None:
        async def all_clients() -> None:
            until = time.monotonic() + duration
            await asyncio.gather(*(client_loop(f"http://127.0.0.1:{port}", mix, until, outcomes, latencies, lost,
                                               random.Random(i)) for i in range(args.concurrency)))

        asyncio.run(all_clients())
        done.set()

    with tempfile.TemporaryDirectory() as tmp:
        settings = dict(port=port, max_queue_size=64, drain_timeout_s=10)
        with local_server(checkpoint, Path(tmp) / "first.log", **settings) as (_, first):
            started = time.monotonic()
            thread = threading.Thread(target=traffic)
            thread.start()
            done.wait(duration * args.restart_after)
            peaks.append(peak_rss_mib(first.pid))
            sigterm_at = time.monotonic() - started
        # local_server sent SIGTERM and waited for the drain; start again on the same port.
        stopped_at = time.monotonic() - started
        with local_server(checkpoint, Path(tmp) / "second.log", **settings) as (_, second):
            back_at = time.monotonic() - started
            thread.join()
            peaks.append(peak_rss_mib(second.pid))
    ordered = sorted(latencies)
    report = {
        "minutes": args.minutes, "concurrency": args.concurrency,
        "requests_answered": sum(v for k, v in outcomes.items() if not k.startswith("retried")),
        "lost": len(lost), "lost_examples": lost[:10],
        "outcomes": dict(sorted(outcomes.items())),
        "sigterm_at_s": round(sigterm_at, 1), "old_process_exited_at_s": round(stopped_at, 1),
        "new_process_ready_at_s": round(back_at, 1),
        "latency_valid_p50_s": round(ordered[len(ordered) // 2], 3) if ordered else None,
        "latency_valid_p99_s": round(ordered[int(len(ordered) * 0.99)], 3) if ordered else None,
        "peak_rss_mib": [round(p) for p in peaks],
    }
    print(json.dumps(report, indent=2))
    raise SystemExit(1 if lost else 0)


if __name__ == "__main__":
    main()
