"""Our service against its peer, side by side in one run: the reference `speechtokenizer` model
behind LitServe with dynamic batching (`bench/peer_litserve.py`: max batch 8, 10 ms batch
timeout, zero-padding collate) and `dmcodec serve` with its default settings, on the same
weights, the same 5-second speech clip and the same HTTP client on this machine.

Both servers run at once; each concurrency level drives one, then the other (the order
alternates by level, so slow drift of a shared machine falls on both), and the server not
being measured is paused (SIGSTOP to its process group: LitServe's idle loops poll). Prints
audio seconds per second and latency percentiles per level, our/peer ratios, and a JSON line.

    python bench/peer.py                                    # paper-size config, random weights
    python bench/peer.py --checkpoint model/dmcodec/checkpoints/default --seconds 30
    pip install -c constraints.txt 'litserve==0.2.19'; pip install --no-deps speechtokenizer==1.0.1 einops

Random weights get codebooks fitted to their own encoder's frames (as in a trained model), but
they have far more near-ties than trained weights, so the start-up gate may refuse
onnxruntime for them; the run says which backend our server chose, and why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np

from dmcodec.audio import load_audio, wav_bytes
from dmcodec.checkpoint import load_checkpoint, save_checkpoint, save_release_checkpoint
from dmcodec.signals import speech_like
from dmcodec_service.local import free_port, local_server, wait_ready

BENCH = Path(__file__).parent
TEXT = ("The codec turns five seconds of speech into tokens, and the tokens back into speech, "
        "fast enough for a data pipeline.")


def speech_clip(seconds: float) -> np.ndarray:
    """espeak-ng's voice cut or padded to `seconds` (a speech-like signal where it is missing)."""
    if shutil.which("espeak-ng") is None:
        return speech_like(seconds, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", f"{tmp}/clip.wav", TEXT], check=True, capture_output=True)
        audio = load_audio(f"{tmp}/clip.wav", 16000)[0]
    out = np.zeros(int(seconds * 16000), np.float32)
    out[: min(out.size, audio.size)] = audio[: out.size]
    return out


def weights(args, directory: Path) -> tuple[Path, Path]:
    """(our checkpoint folder, the release-format .pt) holding the same weights."""
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint, for_inference=False).model
    else:
        sys.path.insert(0, str(BENCH))
        from codec_throughput import build

        model = build(args.preset)
    ours = save_checkpoint(model, directory / "ours", name=f"{args.preset if not args.checkpoint else 'checkpoint'}")
    release = save_release_checkpoint(model, directory / "release" / "model.pt")
    return ours, release


@contextmanager
def paused(group: int) -> Iterator[None]:
    """The process group stopped for the duration (its sockets stay open)."""
    os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(group, signal.SIGCONT)


@contextmanager
def peer_server(release: Path, log: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    with open(log, "ab") as out:
        # Its own process group: LitServe runs its API server and model worker as child processes.
        process = subprocess.Popen([sys.executable, str(BENCH / "peer_litserve.py"), str(release),
                                    str(release.parent / "config.json"), "--port", str(port)], stdout=out, stderr=out,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, f"{url}/health", log, 180)
        yield url, process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


async def drive(url: str, clip: bytes, clip_seconds: float, concurrency: int, seconds: float) -> dict:
    """`concurrency` clients posting the clip back to back for `seconds`."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        end = time.monotonic() + seconds
        start = time.monotonic()

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < end:
                sent = time.monotonic()
                response = await client.post(url, files={"file": ("clip.wav", clip, "audio/wav")})
                if response.status_code == 200:
                    latencies.append(time.monotonic() - sent)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - start
    p50, p95 = np.percentile(latencies, [50, 95]) if latencies else (float("nan"),) * 2
    return {"concurrency": concurrency, "requests": len(latencies), "errors": errors,
            "audio_s_per_s": round(len(latencies) * clip_seconds / elapsed, 3),
            "p50_s": round(float(p50), 3), "p95_s": round(float(p95), 3)}


def codes_from(url: str, clip: bytes) -> np.ndarray:
    response = httpx.post(url, files={"file": ("clip.wav", clip, "audio/wav")}, timeout=300)
    response.raise_for_status()
    return np.asarray(response.json()["codes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", help="model config of the random weights (default: paper)")
    parser.add_argument("--checkpoint", type=Path, help="instead: these weights (e.g. the bundled default)")
    parser.add_argument("--seconds", type=float, default=30.0, help="load time per level and server")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--clip-seconds", type=float, default=5.0)
    args = parser.parse_args()

    audio = speech_clip(args.clip_seconds)
    clip = wav_bytes(audio, 16000)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        ours_checkpoint, release = weights(args, Path(tmp))
        peer_base, peer_group = stack.enter_context(peer_server(release, Path(tmp) / "peer.log"))
        ours_base, ours_process = stack.enter_context(
            local_server(ours_checkpoint, Path(tmp) / "ours.log", popen={"start_new_session": True}))
        peer, ours = peer_base + "/encode", ours_base + "/v1/encode"
        other = {peer: ours_process.pid, ours: peer_group}
        info = httpx.get(f"{ours_base}/v1/info", timeout=10).json()
        peer_codes, our_codes = codes_from(peer, clip), codes_from(ours, clip)
        agreement = float((peer_codes == our_codes).mean()) if peer_codes.shape == our_codes.shape else 0.0
        for url in (peer, ours):  # warm-up, also of the batching paths
            with paused(other[url]):
                asyncio.run(drive(url, clip, args.clip_seconds, 4, 3.0))
        for index, level in enumerate(args.levels):
            order = [("peer", peer), ("ours", ours)][:: 1 if index % 2 == 0 else -1]
            result = {}
            for name, url in order:
                with paused(other[url]):
                    result[name] = asyncio.run(drive(url, clip, args.clip_seconds, level, args.seconds))
            rows.append({"concurrency": level, **result})
    model = info.get("model", {})
    print(f"weights: {args.checkpoint or args.preset + ' (random, codebooks fitted)'}; clip {args.clip_seconds} s; "
          f"{args.seconds:.0f} s per level and server; codes of a lone clip, ours vs peer: {agreement:.4f} equal")
    print(f"ours: backend {model.get('backend')} ({model.get('precision')})"
          + (f", fallback: {model['backend_fallback']}" if model.get("backend_fallback") else "")
          + f"; windowing {json.dumps(info.get('windowing', {}))}")
    print(f"{'concurrency':>11} | {'peer audio s/s (lat)':>22} | {'ours audio s/s (lat)':>22} | "
          f"{'throughput':>10} {'latency':>8}")
    for row in rows:
        peer_row, our_row = row["peer"], row["ours"]
        key = "p50_s" if row["concurrency"] == 1 else "p95_s"
        print(f"{row['concurrency']:>11} | {peer_row['audio_s_per_s']:>8} ({key[:3]} {peer_row[key]:>6} s) | "
              f"{our_row['audio_s_per_s']:>8} ({key[:3]} {our_row[key]:>6} s) | "
              f"{our_row['audio_s_per_s'] / peer_row['audio_s_per_s']:>9.2f}x {our_row[key] / peer_row[key]:>7.2f}x")
        for name, r in (("peer", peer_row), ("ours", our_row)):
            if r["errors"]:
                print(f"  {name}: {r['errors']} failed requests at concurrency {row['concurrency']}")
    print(json.dumps({"agreement": agreement, "ours": model, "levels": rows}))


if __name__ == "__main__":
    main()
