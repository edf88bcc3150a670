"""The GPU benchmark, ready before a GPU is: one command on a CUDA machine with torch installed
and no network (the other wheels it needs travel in `wheelhouse/`, see `bench/gpu_wheels.sh`).

On the paper-size config (random weights, codebooks fitted to their own encoder's frames):
1. encode and decode, times real time, at batch 1, 8 and 64 of 5-second clips (torch fp32,
   TF32 off, `dmcodec.runtime.configure_determinism`);
2. the code agreement of TF32 and of bf16 on the GPU, and of GPU fp32, with CPU fp32;
3. batch invariance in GPU mode: clips of mixed lengths encoded together equal each alone;
4. the service on the GPU at concurrency 1, 16 and 64 (audio seconds per second, p50, p95).
Prints one line per measurement and writes everything as JSON to $OUT/gpu.json (or ./gpu.json).

    python bench/gpu.py               # on the CUDA machine, ~5 minutes
    python bench/gpu.py --dry-run     # the same code on CPU, tiny config, seconds (CI runs this)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).parent
sys.path.insert(0, str(BENCH))

from codec_throughput import build  # noqa: E402
from peer import drive  # noqa: E402

from dmcodec import Tokenizer, WindowPolicy  # noqa: E402
from dmcodec.audio import wav_bytes  # noqa: E402
from dmcodec.backends.agreement import code_agreement  # noqa: E402
from dmcodec.checkpoint import save_checkpoint  # noqa: E402
from dmcodec.runtime import configure_determinism  # noqa: E402
from dmcodec.signals import speech_like  # noqa: E402


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_speed(model, device: str, batches: list[int], clip_seconds: float, repeats: int) -> list[dict]:
    """Times real time of the bare model (one batch of equal clips per call), best of `repeats`."""
    rows = []
    model = model.to(device)
    for batch in batches:
        wav = torch.from_numpy(np.stack([speech_like(clip_seconds, seed=i) for i in range(batch)]))[:, None].to(device)
        codes = model.encode(wav)
        timings = {}
        calls = {"encode": lambda wav=wav: model.encode(wav), "decode": lambda codes=codes: model.decode(codes)}
        for op, call in calls.items():
            call()
            synchronize(device)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                call()
                synchronize(device)
                best = min(best, time.perf_counter() - start)
            timings[op] = round(batch * clip_seconds / best, 1)
        rows.append({"batch": batch, "encode_x_realtime": timings["encode"], "decode_x_realtime": timings["decode"]})
        print(f"batch {batch:>3}: encode {timings['encode']}x, decode {timings['decode']}x real time", flush=True)
    return rows


def agreement(checkpoint: Path, device: str, clips: list[np.ndarray], precisions: list[str]) -> dict:
    """Each GPU precision's codes against CPU fp32 on the same clips."""
    with Tokenizer.from_pretrained(checkpoint, device="cpu", backend="torch") as cpu:
        reference = cpu.encode_arrays(clips)
    out = {}
    for precision in precisions:
        with Tokenizer.from_pretrained(checkpoint, device=device, backend="torch", precision=precision,
                                       min_agreement=0.0) as tokenizer:
            result = code_agreement(reference, tokenizer.encode_arrays(clips))
        out[precision] = result.to_dict()
        print(f"{device} {precision} vs cpu fp32: {result.overall:.4%} of codes equal "
              f"(level 1: {result.per_level[0]:.4%})", flush=True)
    return out


def batch_invariance(checkpoint: Path, device: str, clips: list[np.ndarray]) -> bool:
    policy = WindowPolicy(window_frames=250, context_frames=25)  # long clips cross windows too
    with Tokenizer.from_pretrained(checkpoint, device=device, policy=policy) as tokenizer:
        together = tokenizer.encode_arrays(clips)
        alone = [tokenizer.encode_arrays([clip])[0] for clip in clips]
    equal = all(np.array_equal(a, b) for a, b in zip(together, alone))
    print(f"batch invariance on {device}: {'equal' if equal else 'DIFFERENT'} codes for {len(clips)} clips "
          f"together and alone", flush=True)
    return equal


def service(checkpoint: Path, device: str, levels: list[int], seconds: float, clip_seconds: float) -> list[dict]:
    from dmcodec_service.local import local_server

    clip = wav_bytes(speech_like(clip_seconds, seed=1), 16000)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, local_server(checkpoint, Path(tmp) / "server.log", device=device,
                                                            max_queue_size=max(levels) * 2) as (url, _):
        asyncio.run(drive(url + "/v1/encode", clip, clip_seconds, 4, min(seconds, 3.0)))  # warm-up
        for level in levels:
            row = asyncio.run(drive(url + "/v1/encode", clip, clip_seconds, level, seconds))
            rows.append(row)
            print(f"service c{level}: {row['audio_s_per_s']} audio s/s, p50 {row['p50_s']} s, p95 {row['p95_s']} s, "
                  f"{row['errors']} errors", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny config, short runs: checks the script")
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per service level")
    args = parser.parse_args()
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run to check the script on CPU")
    device = "cpu" if dry else "cuda"
    preset, batches, clip_seconds = ("tiny", [1, 2], 1.0) if dry else ("paper", [1, 8, 64], 5.0)
    configure_determinism(device)
    started = time.perf_counter()
    report: dict = {"device": torch.cuda.get_device_name() if not dry else "cpu (dry run)",
                    "torch": torch.__version__, "preset": preset}
    model = build(preset)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = save_checkpoint(model, Path(tmp) / preset, name=f"{preset}-random")
        report["model"] = model_speed(model.for_inference(), device, batches, clip_seconds, 1 if dry else 3)
        clips = [speech_like(s, seed=50 + i) for i, s in enumerate([1.3, 2.9, 4.4, 6.1, 12.0])]
        precisions = ["fp32"] if dry else ["fp32", "tf32", "bf16"]
        report["agreement_with_cpu_fp32"] = agreement(checkpoint, device, clips[:4], precisions)
        report["batch_invariant"] = batch_invariance(checkpoint, device, clips)
        levels = [1, 4] if dry else [1, 16, 64]
        report["service"] = service(checkpoint, device, levels, 2.0 if dry else args.seconds, clip_seconds)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    out = Path(os.environ.get("OUT", ".")) / "gpu.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"done in {report['wall_s']} s -> {out}")
    if not report["batch_invariant"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
