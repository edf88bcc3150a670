"""What bounding a model call costs and saves: the tokenizer's defaults on CPU (at most 1000
frames per encoder call, onnxruntime's arena given back after every run) against the previous
ones (4000 frames per call, an arena that keeps its peak), same checkpoint, same audio.

Speed: both configurations in one process, runs interleaved, best of --repeats, on one long
clip (cut into 20 s windows) and on many short clips (which share calls). Memory: each
configuration in a fresh process encoding the long clip: peak RSS above idle, and RSS above
idle after the call and a heap trim (what the service does when idle).

    python bench/call_limits.py [--checkpoint DIR] [--long-seconds 590] [--short 32x5]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from dmcodec import Tokenizer, WindowPolicy
from dmcodec.signals import speech_like

PREVIOUS_FRAMES = 4000


def tokenizer(checkpoint: Optional[Path], previous: bool) -> Tokenizer:
    """The defaults, or the previous limits: 4000 frames per call and an arena that keeps its peak."""
    policy = WindowPolicy(max_batch_frames=PREVIOUS_FRAMES) if previous else WindowPolicy()
    built = Tokenizer.from_pretrained(checkpoint, backend="onnxruntime", policy=policy)
    if previous:
        import onnxruntime as ort

        built.backend._run_options = ort.RunOptions()  # type: ignore[attr-defined]
    return built


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def long_clip(seconds: float) -> np.ndarray:
    return np.tile(speech_like(20.0, seed=1), int(np.ceil(seconds / 20)))[: int(seconds * 16000)]


def speed(args) -> dict:
    short = [speech_like(args.short_seconds, seed=i) for i in range(args.short_count)]
    long = long_clip(args.long_seconds)
    configs = {"defaults": tokenizer(args.checkpoint, False), "previous": tokenizer(args.checkpoint, True)}
    times: dict[str, dict[str, float]] = {name: {"long": np.inf, "short": np.inf} for name in configs}
    for _ in range(args.repeats):
        for name, tok in configs.items():
            for load, clips in (("long", [long]), ("short", short)):
                start = time.perf_counter()
                tok.encode_arrays(clips)
                times[name][load] = min(times[name][load], time.perf_counter() - start)
    return {load: {"defaults_s": round(times["defaults"][load], 2), "previous_s": round(times["previous"][load], 2),
                   "speed_ratio": round(times["previous"][load] / times["defaults"][load], 3)}
            for load in ("long", "short")}


def child(args) -> None:
    """In a fresh process: encode the long clip once with one configuration, print RSS figures."""
    tok = tokenizer(args.checkpoint, args.child == "previous")
    tok.encode_arrays([speech_like(1.0, seed=0)])
    clip = long_clip(args.long_seconds)
    idle = rss_mb()
    tok.encode_arrays([clip])
    peak = rss_mb("VmHWM")
    ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    print(json.dumps({"idle_mb": round(idle), "peak_above_idle_mb": round(peak - idle),
                      "after_above_idle_mb": round(rss_mb() - idle)}))


def memory(args) -> dict:
    out = {}
    for name in ("defaults", "previous"):
        command = [sys.executable, __file__, "--child", name, "--long-seconds", str(args.long_seconds)]
        if args.checkpoint:
            command += ["--checkpoint", str(args.checkpoint)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        out[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="default: the bundled checkpoint")
    parser.add_argument("--long-seconds", type=float, default=590.0)
    parser.add_argument("--short", default="32x5", help="COUNTxSECONDS of short clips encoded together")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["defaults", "previous"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    count, seconds = args.short.split("x")
    args.short_count, args.short_seconds = int(count), float(seconds)
    report = {"memory": memory(args), "speed": speed(args)}
    for name, figures in report["memory"].items():
        print(f"{name:9s} {args.long_seconds:g} s clip: peak idle + {figures['peak_above_idle_mb']} MB, "
              f"after idle + {figures['after_above_idle_mb']} MB")
    for load, figures in report["speed"].items():
        print(f"{load:5s}: defaults {figures['defaults_s']} s, previous {figures['previous_s']} s, "
              f"defaults are {figures['speed_ratio']:.2f}x the previous speed")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
