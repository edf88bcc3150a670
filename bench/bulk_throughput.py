"""Bulk tokenization throughput: audio hours per hour for the local, server and Ray engines,
side by side on the same generated corpus and checkpoint, in one run.

    python bench/bulk_throughput.py [--files 40] [--seconds 5] [--checkpoint DIR]
    python bench/bulk_throughput.py --segments   # many segments of long recordings vs whole short files
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from dmcodec import Tokenizer, WindowPolicy
from dmcodec.audio import write_wav
from dmcodec.bulk import LocalEngine, ServerEngine, ShardStore, read_codes, read_items, run
from dmcodec.bulk.ray_job import run_ray
from dmcodec.defaults import resolve_checkpoint
from dmcodec.signals import speech_like
from dmcodec_service.local import local_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--segments", action="store_true", help="instead: the local engine on --files segments of "
                        "--seconds cut from four long recordings, against the same audio as whole short files")
    args = parser.parse_args()
    checkpoint = resolve_checkpoint(args.checkpoint)
    if args.segments:
        return segments_against_files(args, checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus"
        corpus.mkdir()
        for i in range(args.files):
            write_wav(corpus / f"{i:05d}.wav", speech_like(args.seconds * (0.5 + (i % 4) / 3), seed=i), 16000)
        items = read_items(corpus)
        results = {}
        tokenizer = Tokenizer.from_pretrained(checkpoint, policy=WindowPolicy(workers=args.workers))
        results["local"] = run(items, ShardStore(tmp / "local"), LocalEngine(tokenizer), progress=False)
        with local_server(checkpoint, tmp / "server.log", workers=args.workers) as (url, _):
            engine = ServerEngine(url, concurrency=16)
            try:
                results["server"] = run(items, ShardStore(tmp / "server"), engine, engine_name="server",
                                        progress=False)
            finally:
                engine.close()
        results["ray"] = run_ray(items, ShardStore(tmp / "ray"), checkpoint, actors=args.workers, cpus_per_actor=1)
        same = all(read_codes(tmp / name).keys() == read_codes(tmp / "local").keys() for name in ("server", "ray"))
    local = results["local"]["audio_hours_per_hour"]
    print(f"checkpoint={checkpoint} files={args.files} audio={results['local']['audio_hours_this_run'] * 3600:.0f}s "
          f"workers={args.workers}")
    print(f"{'engine':<8}{'audio h/h':>11}{'vs local':>10}{'elapsed s':>11}")
    for name, summary in results.items():
        rate = summary["audio_hours_per_hour"]
        print(f"{name:<8}{rate:>11.2f}{rate / local:>10.3f}{summary['elapsed_s']:>11.1f}")
    print(f"same ids written by every engine: {same}")
    print(json.dumps(results))


def segments_against_files(args, checkpoint: Path) -> None:
    """The same audio tokenized twice with the local engine: as `files` short files, and as `files`
    segments of four long recordings (a manifest with start/end). Codes must be equal."""
    per_recording = args.files // 4
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "short").mkdir()
        rows = []
        for r in range(4):
            long = speech_like(per_recording * args.seconds, seed=100 + r)
            write_wav(tmp / f"long{r}.wav", long, 16000)
            for k in range(per_recording):
                piece = long[int(k * args.seconds * 16000): int((k + 1) * args.seconds * 16000)]
                write_wav(tmp / "short" / f"r{r}-{k:03d}.wav", piece, 16000)
                rows.append({"id": f"r{r}-{k:03d}.wav", "path": f"long{r}.wav", "start": k * args.seconds,
                             "end": (k + 1) * args.seconds})
        (tmp / "segments.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        tokenizer = Tokenizer.from_pretrained(checkpoint, policy=WindowPolicy(workers=args.workers))
        results = {}
        for name, source in (("files", tmp / "short"), ("segments", tmp / "segments.jsonl"),
                             ("files again", tmp / "short")):
            with ShardStore(tmp / name) as store:
                results[name] = run(read_items(source), store, LocalEngine(tokenizer), progress=False)
        whole, cut = read_codes(tmp / "files"), read_codes(tmp / "segments")
        same = whole.keys() == cut.keys() and all((whole[key] == cut[key]).all() for key in whole)
    files = (results["files"]["audio_hours_per_hour"] + results["files again"]["audio_hours_per_hour"]) / 2
    segments = results["segments"]["audio_hours_per_hour"]
    print(f"checkpoint={checkpoint} {len(rows)} x {args.seconds:g} s: whole short files {files:.1f} audio h/h, "
          f"segments of 4 long recordings {segments:.1f} audio h/h; segments / files = {segments / files:.3f}; "
          f"identical codes: {same}")


if __name__ == "__main__":
    main()
