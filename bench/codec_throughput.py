"""Encode/decode throughput: dmcodec's backends vs the reference `speechtokenizer` package,
same weights.

Prints seconds of audio per second at batch 1 and batch 8 of 10-second clips for each backend
(torch, onnxruntime) and the reference, and backend/reference ratios measured side by side in
one run (runs interleaved, best of --repeats), plus each backend's code agreement with torch.
With --memory, also peak RSS of encoding+decoding 1 and 10 minutes in one piece through the
tokenizer (each in a fresh process).

    python bench/codec_throughput.py [--preset paper] [--backends torch,onnxruntime] [--memory]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from dmcodec import DMCodec, Tokenizer, WindowPolicy, load_checkpoint, preset
from dmcodec.checkpoint import LoadedCodec, save_checkpoint
from dmcodec.signals import speech_like


def build(preset_name: str, fit_codebooks: bool = True) -> DMCodec:
    """Random weights. Codebooks are fitted to encoder frames (so codes are spread as in a
    trained model), or, for memory measurements, drawn at random without running the encoder."""
    torch.manual_seed(0)
    model = DMCodec(preset(preset_name)).eval()
    with torch.no_grad():
        if fit_codebooks:
            speech = torch.from_numpy(np.stack([speech_like(10.0, seed=i) for i in range(3)]))[:, None]
            model.quantizer.init_from_data(model.encoder(speech))
        else:
            for level in model.quantizer.levels:
                level.embed.normal_()
                level.inited.fill_(1)
    return model


def best_times(cases: dict, repeats: int) -> dict:
    """Fastest of `repeats` runs per case, the cases interleaved so that both implementations
    meet the same background load on a shared machine."""
    best = {key: float("inf") for key in cases}
    for _ in range(repeats):
        for key, fn in cases.items():
            start = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - start)
    return best


def throughput(args) -> None:
    from dmcodec.reference import reference_twin

    warnings.filterwarnings("ignore", category=FutureWarning)
    model = build(args.preset)
    twin = reference_twin(model)
    with tempfile.TemporaryDirectory() as tmp:
        # A real checkpoint folder, so that the onnxruntime backend exports and caches its graphs.
        codec = load_checkpoint(save_checkpoint(model, Path(tmp) / args.preset))
        backends = args.backends.split(",")
        policy = WindowPolicy(threads_per_window=args.threads_per_window)
        ours = {name: Tokenizer.from_pretrained(codec, backend=name, policy=policy, min_agreement=0.0)
                for name in backends}
        clips = [speech_like(args.seconds, seed=100 + i) for i in range(8)]
        wav = torch.from_numpy(np.stack(clips))[:, None]
        with torch.inference_mode():
            codes = twin.encode(wav)
        our_codes = {name: tok.encode_arrays(clips) for name, tok in ours.items()}
        rows = []
        for batch in (1, 8):
            audio_s = batch * args.seconds
            cases = {("encode", "speechtokenizer"): lambda batch=batch: twin.encode(wav[:batch]),
                     ("decode", "speechtokenizer"): lambda batch=batch: twin.decode(codes[:, :batch])}
            for name, tok in ours.items():
                cases[("encode", name)] = lambda tok=tok, batch=batch: tok.encode_arrays(clips[:batch])
                cases[("decode", name)] = lambda tok=tok, name=name, batch=batch: tok.decode_many(
                    [(c, None) for c in our_codes[name][:batch]])
            with torch.inference_mode():
                for fn in cases.values():  # warm-up
                    fn()
                results = {key: audio_s / t for key, t in best_times(cases, args.repeats).items()}
            for op in ("encode", "decode"):
                reference = results[(op, "speechtokenizer")]
                row = {"op": op, "batch": batch, "reference_x_realtime": round(reference, 2)}
                for name in backends:
                    row[f"{name}_x_realtime"] = round(results[(op, name)], 2)
                    row[f"{name}_ratio"] = round(results[(op, name)] / reference, 3)
                rows.append(row)
    print(f"preset={args.preset} params={model.num_parameters() / 1e6:.2f}M clip={args.seconds}s "
          f"reference threads={torch.get_num_threads()} ours: {args.threads_per_window} thread(s) per window")
    for name, tok in ours.items():
        print(f"  {name}: code agreement with torch on the calibration set: "
              f"{tok.agreement.to_dict() if tok.agreement else 'reference'}")
    header = f"{'op':<8}{'batch':>6}{'ref xRT':>10}" + "".join(f"{name + ' xRT':>18}{'ratio':>8}" for name in backends)
    print(header)
    for r in rows:
        print(f"{r['op']:<8}{r['batch']:>6}{r['reference_x_realtime']:>10}"
              + "".join(f"{r[name + '_x_realtime']:>18}{r[name + '_ratio']:>8}" for name in backends))
    print(json.dumps(rows))


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    fork and exec, so a child started by a large parent would report the parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def long_audio(args) -> None:
    """Child process: encode and decode `--minutes` of audio in one call, print peak RSS."""
    model = build(args.preset, fit_codebooks=False)
    codec = LoadedCodec(model.for_inference(), sha256="bench", name=args.preset, path=None)
    tokenizer = Tokenizer.from_pretrained(codec, backend="torch")  # held in memory: no ONNX export
    base = speech_like(20.0, seed=1)
    audio = np.tile(base, int(np.ceil(args.minutes * 3)))[: int(args.minutes * 60 * 16000)]
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    codes = tokenizer.encode_arrays([audio])[0]
    decoded = tokenizer.decode(codes, audio.size)
    elapsed = time.perf_counter() - start
    assert decoded.shape == audio.shape
    peak = peak_rss_mb()
    print(json.dumps({"minutes": args.minutes, "peak_rss_mb": round(peak), "rss_before_mb": round(rss_before),
                      "encode_decode_x_realtime": round(args.minutes * 60 / elapsed, 2)}))


def memory(args) -> None:
    for minutes in (1, 10):
        out = subprocess.run([sys.executable, __file__, "--preset", args.preset, "--child-minutes", str(minutes)],
                             capture_output=True, text=True, check=True).stdout
        print(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads-per-window", type=int, default=1)
    parser.add_argument("--backends", default="torch,onnxruntime", help="comma-separated: torch, onnxruntime")
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS for 1 and 10 minutes")
    parser.add_argument("--child-minutes", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_minutes:
        args.minutes = args.child_minutes
        long_audio(args)
        return
    throughput(args)
    if args.memory:
        memory(args)


if __name__ == "__main__":
    main()
