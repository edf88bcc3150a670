"""The compact resumable state: what a run needs to go on on another machine, small enough to
commit (fp16 weights, no optimiser moments), read without pickle (safetensors + JSON).

Layout of the folder (`dmcodec-train state export`, default `training/state/`):
    weights.safetensors   `generator.*`: the codec, its distillation heads and its pitch head;
                          `discriminators.*`: the critics, once they have trained. Float tensors
                          in fp16, except the quantizer's codebooks and EMA buffers (fp32: the
                          codes are chosen by distances to them).
    state.json            step, the resolved recipe (TrainConfig), the data position, the torch
                          RNG state (base64), and the latest dev and held-out figures
    README.md             what it is and how to resume from it
Resuming (`dmcodec-train train ... --resume-from DIR`) loads the weights, sets the step (so the
schedule and the data order carry on), and starts Adam's moments from zero under a short
learning-rate re-warm (`rewarm_steps`).
"""

from __future__ import annotations

import base64
import csv
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from safetensors.torch import load_file

from dmcodec.checkpoint import write_safetensors

from .config import TrainConfig
from .schedule import place_scheduler

if TYPE_CHECKING:
    from .trainer import Trainer

WEIGHTS = "weights.safetensors"
STATE_JSON = "state.json"
README = "README.md"
FORMAT = "dmcodec-compact-state"
FORMAT_VERSION = 1


def _compact_dtype(key: str, tensor: torch.Tensor) -> torch.Tensor:
    # The codebooks stay fp32, as in `save_checkpoint`: a code is the nearest codebook row, and
    # rounding the rows would re-draw near-ties.
    if tensor.is_floating_point() and ".quantizer." not in f".{key}":
        return tensor.to(torch.float16)
    return tensor


def _finite(value: Any) -> Any:
    """JSON has no NaN: a figure that was not computed becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def run_figures(run_dir: str | Path, eval_results: list[Path] = ()) -> dict[str, Any]:
    """The latest figures of a run: its last dev mel distance (from metrics.csv) and, per
    `dmcodec-train eval` results.json given, each row's scores (held-out sets).

    Args:
        run_dir: the run folder.
        eval_results: results.json files of `dmcodec-train eval` (keyed by their folder's name).
    """
    figures: dict[str, Any] = {}
    metrics = Path(run_dir) / "metrics.csv"
    if metrics.exists():
        with open(metrics, newline="") as f:
            dev = [row for row in csv.DictReader(f) if row.get("dev_mel") not in (None, "", "nan")]
        if dev:
            figures["dev_mel"] = {"step": int(dev[-1]["step"]), "value": float(dev[-1]["dev_mel"])}
    for path in eval_results:
        rows = json.loads(Path(path).read_text())
        figures.setdefault("held_out", {})[Path(path).parent.name] = {row["name"]: row["scores"] for row in rows}
    return _finite(figures)


def export_compact(state: dict[str, Any], out: str | Path, figures: dict[str, Any] | None = None,
                   critics: bool = True) -> Path:
    """Write the compact state of a training state dict (`Trainer.state_dict()` or a run's
    state.pt) to `out`, replacing what was there.

    Args:
        state: the full training state.
        out: the folder (created; its previous compact state is replaced as a whole).
        figures: the latest dev and held-out figures (`run_figures`).
        critics: keep the discriminators once they have trained (full-width critics are several
            times the codec's size; left out, they start afresh on resume).
    """
    config = TrainConfig.from_dict(json.loads(state["config"]))
    step = int(state["step"])
    tensors = {f"generator.{k}": v for k, v in state["generator"].items()}
    # Critics that never trained are what a new run builds from the seed anyway.
    critics_trained = critics and step > config.adversarial_start
    if critics_trained:
        tensors.update({f"discriminators.{k}": v for k, v in state["discriminators"].items()})
    tensors = {k: _compact_dtype(k, v).detach().cpu().contiguous() for k, v in tensors.items()}
    rng = {"torch_cpu": base64.b64encode(state["rng_cpu"].numpy().tobytes()).decode()}
    if "rng_cuda" in state:
        rng["torch_cuda"] = base64.b64encode(state["rng_cuda"].cpu().numpy().tobytes()).decode()
    data = json.loads(state["data"]) if "data" in state else {"seed": config.seed}
    record = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "step": step, "best_dev_mel": _finite(float(state["best_dev_mel"])),
        "config": config.to_dict(),
        "data": {**data, "step": step, "order": "batch(step, rank) is drawn by seed, step and rank from the "
                                                "train rows in manifest order: the step is the data position"},
        "rng": rng,
        "critics": critics_trained,
        "figures": figures or {},
    }
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_safetensors(tensors, tmp / WEIGHTS, metadata={"format": FORMAT, "step": str(step)})
    (tmp / STATE_JSON).write_text(json.dumps(record, indent=1) + "\n")
    (tmp / README).write_text(_readme(record, out))
    # Replace the old folder only once the new one is whole.
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def read_compact(folder: str | Path) -> dict[str, Any]:
    """The compact state's record (state.json), checked to be one."""
    path = Path(folder) / STATE_JSON
    if not path.exists():
        raise ValueError(f"{folder}: no {STATE_JSON}; not a compact state (`dmcodec-train state export`)")
    record = json.loads(path.read_text())
    if record.get("format") != FORMAT or record.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a compact state of version {FORMAT_VERSION}")
    return record


def resume_from_compact(trainer: Trainer, folder: str | Path) -> list[str]:
    """Continue a new run (a fresh `Trainer` built with the state's recipe) from a compact state.

    Weights, step, RNG and (through the step) schedule and data position carry over; the
    optimisers start fresh under the re-warm; the best dev mel starts over, so that this
    machine's `RUN/best` is written at its first validation. Returns notes for the user: heads
    or critics that start fresh, or a train split that differs from the state's.

    Args:
        trainer: a fresh `Trainer` to load into.
        folder: the compact state's folder.
    """
    record = read_compact(folder)
    tensors = load_file(str(Path(folder) / WEIGHTS))
    part = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing, unexpected = _load_part(trainer.generator, part("generator."), folder, "weights")
    if any(k.startswith("codec.") for k in missing):
        raise ValueError(f"{folder}: its codec lacks {len(missing)} tensors of this run's model (another recipe?)")
    notes = _notes(missing, unexpected, lambda key: key.split(".")[0])
    if record["critics"]:
        # "families.mpd.discriminators.0.convs.1.weight" -> "critic mpd.0": a note per sub-discriminator.
        notes += _notes(*_load_part(trainer.discriminators, part("discriminators."), folder, "critics"),
                        lambda key: "critic " + ".".join(key.split(".")[1:4:2]))
    elif int(record["step"]) > trainer.config.adversarial_start:
        notes.append("the critics start afresh (the state was exported without them)")
    trainer.step = int(record["step"])
    trainer.rewarm_from = trainer.step
    for scheduler in (trainer.g_sched, trainer.d_sched):
        place_scheduler(scheduler, trainer.step)
    torch.set_rng_state(_rng_tensor(record["rng"]["torch_cpu"]))
    if "torch_cuda" in record["rng"] and trainer.device.type == "cuda":
        torch.cuda.set_rng_state(_rng_tensor(record["rng"]["torch_cuda"]), trainer.device)
    expected = record["data"].get("train_ids_sha256")
    if expected and expected != trainer.data_position()["train_ids_sha256"]:
        notes.append("this manifest's train split is not the one the state trained on: the data order differs")
    return notes


def _load_part(module: torch.nn.Module, tensors: dict[str, torch.Tensor], folder: str | Path,
               what: str) -> tuple[list[str], list[str]]:
    """The state's tensors into `module`, leaving out what only one side has: heads or critics a
    recipe adds start fresh (say the periods added to a run that had only the STFT critic), and
    ones it drops are not used. Shapes that do not fit (another architecture or width) are refused.
    Returns the missing and the unexpected keys."""
    try:
        return module.load_state_dict(tensors, strict=False)
    except RuntimeError as err:
        raise ValueError(f"{folder}: its {what} do not fit this run's model ({str(err).splitlines()[0]})") from err


def _notes(missing: list[str], unexpected: list[str], part_of: Callable[[str], str]) -> list[str]:
    """A note per part of the model (`part_of` a tensor key) that starts fresh or is left out."""
    return ([f"{name} starts fresh (not in the state)" for name in sorted({part_of(k) for k in missing})]
            + [f"{name} in the state is not used by this run" for name in sorted({part_of(k) for k in unexpected})])


def _rng_tensor(encoded: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(encoded)), dtype=torch.uint8)


def _readme(record: dict[str, Any], out: Path) -> str:
    figures = json.dumps(record["figures"], indent=1) if record["figures"] else "(none recorded)"
    return f"""# Compact training state: {record["config"]["name"]} at step {record["step"]}

Written by `dmcodec-train state export` on {record["created"]}. It is what a training run needs
to go on on another machine, small enough to commit:

- `weights.safetensors`: the codec, its distillation and pitch heads{" and the critics" if record["critics"] else ""}
  in fp16 (the codebooks in fp32); no optimiser moments.
- `state.json`: the step, the recipe (the resolved training config), the data position (the
  step: batches are drawn by seed, step and rank), the torch RNG state, and the latest figures.

Resume on a new machine (same corpus: `dmcodec-train corpus` with the same seed rebuilds it):

```bash
dmcodec-train train MANIFEST FEATURES RUN --resume-from {out}
```

The recipe comes from `state.json` (`--set` still overrides, e.g. `--set steps=6000`). Adam's
moments start from zero, and the learning rate ramps up again over `rewarm_steps`
({record["config"]["rewarm_steps"]}) steps. Once RUN has its own state.pt, a rerun of the same
command resumes from that instead (optimiser included).

Latest figures:

```json
{figures}
```
"""
