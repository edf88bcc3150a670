"""`dmcodec-train paper run`: train and evaluate every variant of a table, resumably.

Layout of a sweep folder OUT:
    sweep.json                 the sweep's settings; a rerun must ask for the same ones
    features/<teachers>/       teacher features per teacher choice (computed here when missing)
    runs/<variant>-seed<k>/    each run (state.pt, metrics.csv, final/ the exported checkpoint)
    results/<variant>-seed<k>.json   its evaluation: means and per-utterance scores (written last)

A job is done when its results file exists. An interrupted sweep resumes at the first job
without one: its run continues from its last saved state (every `checkpoint_every` steps), so at
most those steps are trained twice, and the jobs before it are neither trained nor scored again.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

from .config import TrainConfig
from .experiments import DEFAULT_BASE, TEACHERS_ROOT, Table, Variant, get_table, teacher_options

SETTINGS = "sweep.json"


@dataclass(frozen=True)
class Sweep:
    """What a sweep trains and how it scores.

    Args:
        table: `table1` ... `table6`.
        manifest: corpus manifest (train and dev for training, `eval_split` for scoring).
        base: the preset the variants change.
        steps: training steps per run (the learning-rate schedule's length too).
        seeds: one run per variant and seed.
        init_from: a checkpoint every run starts from (e.g. the shipped default); None: random.
        variants: the variants to run (empty: all of the table's).
        eval_split, eval_limit: the clips every run is scored on (the first `eval_limit`).
        asr, visqol: score WER/WIL with Whisper; ViSQOL (the slowest metric).
        teachers_root: where the teacher folders that variants name live.
        device: cpu, cuda or auto.
    """

    table: str
    manifest: str
    base: str = DEFAULT_BASE
    steps: int = 1000
    seeds: tuple[int, ...] = (0,)
    init_from: str | None = None
    variants: tuple[str, ...] = ()
    eval_split: str = "test"
    eval_limit: int | None = None
    asr: bool = True
    visqol: bool = False
    teachers_root: str = str(TEACHERS_ROOT)
    device: str = "auto"

    def __post_init__(self):
        table = get_table(self.table)
        for name in self.variants:
            table.variant(name)
        if self.steps < 1 or not self.seeds:
            raise ValueError("a sweep needs at least one step and one seed")

    @property
    def selected(self) -> list[Variant]:
        table = get_table(self.table)
        return [table.variant(name) for name in self.variants] if self.variants else list(table.variants)

    def jobs(self) -> list[tuple[Variant, int]]:
        """Every (variant, seed) in order: variant by variant, each over the seeds."""
        return [(variant, seed) for variant in self.selected for seed in self.seeds]

    def config(self, variant: Variant, seed: int) -> TrainConfig:
        return TrainConfig.load(self.base, {**variant.overrides, "name": f"{self.table}-{variant.name}",
                                            "steps": self.steps, "seed": seed})

    @classmethod
    def load(cls, out: str | Path) -> Sweep:
        data = json.loads((Path(out) / SETTINGS).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})

    def claim(self, out: Path) -> None:
        """Write the settings to `out`, or refuse if it holds a sweep of other settings."""
        path = out / SETTINGS
        if path.exists():
            held = Sweep.load(out)
            if held != self:
                changed = [f.name for f in fields(self) if getattr(held, f.name) != getattr(self, f.name)]
                raise ValueError(f"{out} holds a sweep with other settings ({', '.join(changed)}): resume it with "
                                 "the same options, or use another folder")
            return
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")


def job_name(variant: Variant, seed: int) -> str:
    return f"{variant.name}-seed{seed}"


def features_slug(options: dict[str, str]) -> str:
    """A folder name for one teacher choice: `lm-default-average_speech-whisper-average`."""
    def part(teacher: str, layers: str) -> str:
        return re.sub(r"[^A-Za-z0-9.+-]+", "-", f"{Path(teacher).name}-{layers}")

    return (f"lm-{part(options['lm_teacher'], options['lm_layers'])}"
            f"_speech-{part(options['speech_teacher'], options['speech_layers'])}")


def needs_features(config: TrainConfig) -> bool:
    return config.train_parts != "decoder" and (config.loss.distillation > 0 or config.loss.pitch > 0)


def missing_teachers(sweep: Sweep) -> list[str]:
    """The teacher folders the sweep's variants name that do not exist (checked before any work)."""
    missing = []
    for variant, _ in sweep.jobs():
        options = teacher_options(variant, sweep.config(variant, sweep.seeds[0]), Path(sweep.teachers_root))
        for key, shipped in (("lm_teacher", "default"), ("speech_teacher", "whisper")):
            if options[key] != shipped and not Path(options[key]).is_dir() and options[key] not in missing:
                missing.append(options[key])
    return missing


def run_sweep(sweep: Sweep, out: str | Path, threads: int = 0,
              log: Callable[[str], None] = print) -> list[Path]:
    """Train and score every job not yet done; returns the results files, in job order."""
    import torch

    out = Path(out)
    missing = missing_teachers(sweep)
    if missing:
        raise ValueError(f"teacher folders not found: {', '.join(missing)} (put the models there, set "
                         "--teachers-root, or leave those variants out with --variant)")
    sweep.claim(out)
    if threads:
        torch.set_num_threads(threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if sweep.device == "auto" else sweep.device
    scorer = _Scorer(sweep)
    results = []
    for number, (variant, seed) in enumerate(sweep.jobs(), 1):
        name = job_name(variant, seed)
        path = out / "results" / f"{name}.json"
        results.append(path)
        if path.exists():
            log(f"[{number}/{len(sweep.jobs())}] {name}: done")
            continue
        config = sweep.config(variant, seed)
        features = _features(sweep, variant, config, out, device, log) if needs_features(config) else None
        log(f"[{number}/{len(sweep.jobs())}] {name}: training to step {sweep.steps}")
        checkpoint = _train(sweep, config, out / "runs" / name, features, device)
        log(f"[{number}/{len(sweep.jobs())}] {name}: scoring")
        scorer.write(path, checkpoint, {"variant": variant.name, "seed": seed, "steps": sweep.steps})
    return results


def _features(sweep: Sweep, variant: Variant, config: TrainConfig, out: Path, device: str,
              log: Callable[[str], None]) -> Path:
    from .teachers.precompute import build_teachers, precompute

    options = teacher_options(variant, config, Path(sweep.teachers_root))
    folder = out / "features" / features_slug(options)
    if not (folder / "index.json").exists() or not (folder / "pitch.json").exists():
        log(f"teacher features -> {folder}")
        speech, lm, recognizer = build_teachers(
            options["speech_teacher"], None if options["lm_teacher"] == "default" else options["lm_teacher"],
            device=device, speech_layers=options["speech_layers"], lm_layers=options["lm_layers"])
        precompute(sweep.manifest, folder, speech, lm, recognizer, progress=False)
    return folder


def _train(sweep: Sweep, config: TrainConfig, run_dir: Path, features: Path | None, device: str) -> Path:
    from .export import export_run
    from .trainer import Trainer

    trainer = Trainer(config, run_dir, sweep.manifest, features, device, progress=False)
    if not trainer.resume() and sweep.init_from:
        trainer.init_from(sweep.init_from)
    if trainer.step < config.steps:
        trainer.fit()
    return export_run(run_dir, run_dir / "final", name=run_dir.name)


class _Scorer:
    """Scores each job's checkpoint on the sweep's clips; Whisper loads once for the sweep."""

    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self._recognizer = None

    def write(self, path: Path, checkpoint: Path, job: dict[str, Any]) -> None:
        from .evaluation.harness import evaluate
        from .teachers.asr import Recognizer

        if self.sweep.asr and self._recognizer is None:
            self._recognizer = Recognizer()
        original, model = evaluate(self.sweep.manifest, [checkpoint], self.sweep.eval_split, self.sweep.eval_limit,
                                   recognizer=self._recognizer, visqol=self.sweep.visqol, progress=False,
                                   asr=self.sweep.asr)
        record = {**job, "original": {"scores": original.scores, "per_utterance": original.per_utterance},
                  "model": {"name": model.name, "scores": model.scores, "per_utterance": model.per_utterance}}
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(partial, path)  # a results file is whole or absent: it marks the job done


def read_results(out: str | Path) -> tuple[Sweep, Table, dict[str, list[dict]]]:
    """The sweep's settings, its table, and the results per variant (in the table's order; a
    variant without any finished seed is absent)."""
    out = Path(out)
    if not (out / SETTINGS).exists():
        raise ValueError(f"{out}: no {SETTINGS}; is it a sweep folder (`dmcodec-train paper run`)?")
    sweep = Sweep.load(out)
    table = get_table(sweep.table)
    by_variant: dict[str, list[dict]] = {}
    for variant, seed in sweep.jobs():
        path = out / "results" / f"{job_name(variant, seed)}.json"
        if path.exists():
            by_variant.setdefault(variant.name, []).append(json.loads(path.read_text()))
    return sweep, table, by_variant
