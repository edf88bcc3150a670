"""Train on a lent GPU for a few minutes and bring the checkpoint back: three steps.

A lent CUDA machine has torch but no network, no speech synthesis and no teacher models, takes
at most 64 MiB of working tree (the 35 MB default checkpoint included) and returns at most
eight files of 16 MiB. So:

1. `pack` (here): a sample of a corpus's training audio as Ogg/Opus at ~30 kbps (near-transparent
   for speech; about 1.7 h in 23 MB), its dev clips, a manifest, and the wheels the trainer needs
   beyond what that machine has (soundfile, soxr) into `gpupack/` (git-ignored).
2. `run` (there): continues the bundled default checkpoint with a preset (default `h200-gan`: the
   whole codec with the adversarial losses and a mel loss fine enough to resolve harmonics; the
   encoder has to learn pitch, which the default's tokens lack, so the tokens change) for a time budget.
   The learning-rate schedule is fitted to the budget from the measured step time, so the run
   ends its cosine decay when time is up. The fp16 checkpoint comes back cut into parts under 16 MiB,
   with its metrics and a summary.
3. `join` (here): puts the parts together and checks the weights' sha256.

    python scripts/gpu_train.py pack runs/corpus-v2/manifest.jsonl
    # on the device, carry gpupack:
    pip install -q --no-index --target /tmp/site gpupack/wheels/*.whl; export PYTHONPATH=/tmp/site
    PYTHONPATH=$PYTHONPATH:model:training python scripts/gpu_train.py run --budget 420
    python scripts/gpu_train.py join <files_at> runs/h200-gan      # back here
    python scripts/gpu_train.py run --dry-run                       # the same code on CPU (CI)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parent.parent
for package in ("model", "training"):
    sys.path.insert(0, str(REPO / package))

from dmcodec.audio import load_audio  # noqa: E402
from dmcodec.checkpoint import WEIGHTS_NAME, load_checkpoint, save_checkpoint  # noqa: E402
from dmcodec.init import init_weights  # noqa: E402
from dmcodec.model import DMCodec  # noqa: E402
from dmcodec_train.config import TrainConfig  # noqa: E402
from dmcodec_train.data.manifest import Utterance, read_manifest, write_manifest  # noqa: E402
from dmcodec_train.trainer import Trainer  # noqa: E402

PART_MB = 15.0  # under the 16 MiB a returned file may have
# What the trainer needs that the device's image lacks (it has torch, numpy, safetensors, tqdm).
DEVICE_WHEELS = ["soundfile", "soxr", "cffi", "pycparser"]
OPUS_LEVEL = 0.9  # libsndfile's compression level: ~30 kbps for 16 kHz speech


def pack(manifest: Path, out: Path, train_minutes: float, dev_utterances: int, wheels: bool,
         python_version: str, budget_mb: float) -> dict:
    rng = np.random.default_rng(0)
    train = read_manifest(manifest, "train")
    chosen, seconds = [], 0.0
    for index in rng.permutation(len(train)):
        if seconds >= train_minutes * 60:
            break
        chosen.append(train[index])
        seconds += train[index].duration
    rows = []
    for utterance in chosen + read_manifest(manifest, "dev")[:dev_utterances]:
        audio, rate = load_audio(utterance.path, 16000)
        relative = Path("audio") / utterance.split / f"{utterance.id}.ogg"
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / relative, audio, rate, format="OGG", subtype="OPUS", compression_level=OPUS_LEVEL)
        rows.append(Utterance(utterance.id, str(relative), utterance.duration, utterance.transcript,
                              utterance.speaker, utterance.split))
    write_manifest(rows, out / "manifest.jsonl")
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--python-version", python_version, "--implementation", "cp",
                        "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                        "--platform", "manylinux2014_x86_64", "-d", str(out / "wheels"), *DEVICE_WHEELS],
                       check=True)
    size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    summary = {"train_hours": round(seconds / 3600, 3), "utterances": len(rows), "size_mb": round(size_mb, 1)}
    if size_mb > budget_mb:
        raise SystemExit(f"error: {out} holds {size_mb:.1f} MB, over the {budget_mb} MB budget; "
                         "pack fewer --train-minutes")
    return summary


def _dry_run_checkpoint(directory: Path) -> Path:
    """A tiny codec with data-fitted codebooks: what the decoder-only stage starts from on CPU."""
    codec = init_weights(DMCodec(TrainConfig.load("tiny").codec_config())).eval()
    with torch.no_grad():
        codec.quantizer.init_from_data(codec.encoder(torch.randn(4, 1, 16000) * 0.1))
    return save_checkpoint(codec, directory, name="dry-run")


def run(pack_dir: Path, out: Path, preset: str, init_from: Path, budget_s: float, dry_run: bool,
        overrides: dict, part_mb: float = PART_MB) -> dict:
    started = time.perf_counter()
    device = "cpu" if dry_run else "cuda"
    if dry_run:
        preset, overrides = "tiny", {"train_parts": "codec", "loss.distillation": 0, "adversarial_start": 0,
                                     "batch_size": 2, "validate_every": 10**9, "checkpoint_every": 10**9,
                                     **overrides}
    config = TrainConfig.load(preset, overrides)
    work = Path(tempfile.mkdtemp(prefix="gpu-train-"))
    if dry_run:
        init_from = _dry_run_checkpoint(work / "init")
    trainer = Trainer(config, work / "run", pack_dir / "manifest.jsonl", None, device, progress=False)
    trainer.init_from(init_from)
    dev_mel_before = trainer.validate()
    # Calibrate: time a few steps (the first ones pay for kernel selection), then fit the cosine
    # schedule's end to the budget that is left, so the run ends with its learning rate decayed.
    calibration = 3 if dry_run else 20
    trainer.fit(steps=calibration, save_at_end=False)
    timed_from, timed_at = trainer.step, time.perf_counter()
    trainer.fit(steps=2 * calibration, save_at_end=False)
    per_step = (time.perf_counter() - timed_at) / (trainer.step - timed_from)
    left = budget_s - (time.perf_counter() - started) - 30  # export and the last validation
    config.steps = max(trainer.step + 1, trainer.step + int(left / per_step))
    logs = trainer.fit(time_limit_s=max(1.0, left))
    dev_mel_after = trainer.validate()

    out.mkdir(parents=True, exist_ok=True)
    exported = trainer.export(work / "export", torch.float16)
    weights = exported / WEIGHTS_NAME
    data = weights.read_bytes()
    part_bytes = int(part_mb * 2**20)
    parts = [f"{WEIGHTS_NAME}.part{i}" for i in range((len(data) + part_bytes - 1) // part_bytes)]
    for i, name in enumerate(parts):
        (out / name).write_bytes(data[i * part_bytes:(i + 1) * part_bytes])
    shutil.copy(exported / "config.json", out / "config.json")
    shutil.copy(work / "run" / "metrics.csv", out / "metrics.csv")
    summary = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (dry run)",
        "preset": config.name, "steps": trainer.step, "seconds_per_step": round(per_step, 4),
        "batch": [config.batch_size, config.segment_seconds], "dev_mel_before": dev_mel_before,
        "dev_mel_after": dev_mel_after, "last_logs": logs, "parts": parts,
        "sha256": hashlib.sha256(data).hexdigest(), "wall_s": round(time.perf_counter() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def join(files_at: Path, dest: Path) -> Path:
    summary = json.loads((files_at / "summary.json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    data = b"".join((files_at / name).read_bytes() for name in summary["parts"])
    if hashlib.sha256(data).hexdigest() != summary["sha256"]:
        raise SystemExit("error: the parts do not add up to the exported weights (sha256 differs)")
    (dest / WEIGHTS_NAME).write_bytes(data)
    shutil.copy(files_at / "config.json", dest / "config.json")
    load_checkpoint(dest)  # checks the config's own sha256 of the weights as well
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack", help="here: audio, manifest and wheels for the device")
    p.add_argument("manifest", type=Path)
    p.add_argument("--out", type=Path, default=REPO / "gpupack")
    p.add_argument("--train-minutes", type=float, default=100)
    p.add_argument("--dev-utterances", type=int, default=24)
    p.add_argument("--no-wheels", dest="wheels", action="store_false")
    p.add_argument("--python-version", default="3.12", help="the device's Python")
    p.add_argument("--budget-mb", type=float, default=26, help="what the 64 MiB leave beside the tracked files")
    r = commands.add_parser("run", help="there: train for --budget seconds and write the parts to $OUT")
    r.add_argument("--pack", type=Path, default=REPO / "gpupack")
    r.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-out")))
    r.add_argument("--preset", default="h200-gan")
    r.add_argument("--init-from", type=Path, default=REPO / "model" / "dmcodec" / "checkpoints" / "default")
    r.add_argument("--budget", type=float, default=420, help="seconds for the whole run")
    r.add_argument("--set", dest="overrides", action="append", default=[], help="key=value preset override")
    r.add_argument("--part-mb", type=float, default=PART_MB, help="size of the returned weight parts")
    r.add_argument("--dry-run", action="store_true", help="CPU, tiny model, a few steps")
    j = commands.add_parser("join", help="here: rebuild the checkpoint from the returned parts")
    j.add_argument("files_at", type=Path)
    j.add_argument("dest", type=Path)
    args = parser.parse_args()
    if args.command == "pack":
        result = pack(args.manifest, args.out, args.train_minutes, args.dev_utterances, args.wheels,
                      args.python_version, args.budget_mb)
    elif args.command == "run":
        from dmcodec_train.config import parse_overrides

        result = run(args.pack, args.out, args.preset, args.init_from, args.budget, args.dry_run,
                     parse_overrides(args.overrides), args.part_mb)
    else:
        result = {"checkpoint": str(join(args.files_at, args.dest))}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
