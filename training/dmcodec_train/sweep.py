"""`dmcodec-train paper run`: train and evaluate every variant of a table, resumably.

Layout of a sweep folder OUT:
    sweep.json                 the sweep's settings and each job's resolved recipe; a rerun must
                               ask for the same ones
    features/<teachers>/       teacher features per teacher choice (computed here when missing)
    runs/<variant>-seed<k>/    each run (state.pt, metrics.csv, final/ the exported checkpoint)
    results/<variant>-seed<k>.json   its evaluation: means and per-utterance scores (written last)

A job is done when its results file exists. An interrupted sweep resumes at the first job
without one: its run continues from its last saved state (at most a tenth of the steps apart),
and the jobs before it are neither trained nor scored again. Everything that can be checked
before training (the clips to score, the start checkpoint, the teachers) is checked before the
folder is claimed, so a mistyped option costs nothing and can be corrected on the same folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

from .config import TrainConfig
from .experiments import DEFAULT_BASE, TEACHERS_ROOT, Table, Variant, get_table, teacher_options
from .files import write_json_atomically

SETTINGS = "sweep.json"
NEVER = 10**8  # an `adversarial_start` at or beyond this is a preset's way of saying "no critics"


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
        variants: the variants to run, kept in the table's order (empty: all of the table's).
        eval_split, eval_limit: the clips every run is scored on (the first `eval_limit`).
        asr, visqol: score WER/WIL with Whisper; ViSQOL (the slowest metric).
        rvq1: also WER/WIL of RVQ-1 alone (with asr): the phonetic content the distillation puts
            into the first level, the tables' question beside reconstruction.
        teachers_root: where the teacher folders that variants name live.
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
    rvq1: bool = True
    teachers_root: str = str(TEACHERS_ROOT)

    def __post_init__(self):
        table = get_table(self.table)
        for name in self.variants:
            table.variant(name)
        if self.steps < 1 or not self.seeds:
            raise ValueError("a sweep needs at least one step and one seed")
        for what, values in (("seed", self.seeds), ("variant", self.variants)):
            repeated = sorted({str(v) for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"{what} {', '.join(repeated)} given more than once")
        object.__setattr__(self, "seeds", tuple(sorted(self.seeds)))
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ValueError(f"--eval-limit must be at least 1, got {self.eval_limit}")
        object.__setattr__(self, "rvq1", self.rvq1 and self.asr)  # RVQ-1 alone is scored by its WER
        # One sweep, one identity: the variants in the table's order, however they were typed.
        order = [v.name for v in table.variants]
        object.__setattr__(self, "variants", tuple(sorted(self.variants, key=order.index)))

    @property
    def selected(self) -> list[Variant]:
        table = get_table(self.table)
        return [table.variant(name) for name in self.variants] if self.variants else list(table.variants)

    def jobs(self) -> list[tuple[Variant, int]]:
        """Every (variant, seed) in order: variant by variant, each over the seeds."""
        return [(variant, seed) for variant in self.selected for seed in self.seeds]

    def config(self, variant: Variant, seed: int) -> TrainConfig:
        """The variant's recipe at this sweep's length. Checkpoints every tenth of the run at
        least, so that an interrupted job loses at most that much."""
        config = TrainConfig.load(self.base, {**variant.overrides, "name": f"{self.table}-{variant.name}",
                                              "steps": self.steps, "seed": seed})
        return dataclasses.replace(config, checkpoint_every=min(config.checkpoint_every, max(1, self.steps // 10)))

    def recipes(self) -> dict[str, Any]:
        """Each job's resolved training config and teachers, as JSON: what a rerun must match,
        so that an edited preset or table never mixes old and new results in one report."""
        recipes = {}
        for variant, seed in self.jobs():
            config = self.config(variant, seed)
            recipes[job_name(variant, seed)] = {
                "config": config.to_dict(), "teachers": teacher_options(variant, config, Path(self.teachers_root))}
        return json.loads(json.dumps(recipes))

    @classmethod
    def load(cls, out: str | Path) -> Sweep:
        data = json.loads((Path(out) / SETTINGS).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})

    def claim(self, out: Path) -> None:
        """Write the settings to `out`, or refuse if it holds a sweep of other settings that has
        started (trained or scored anything). One that has not is replaced, and so are its
        teacher features where the corpus, the preset or the teachers changed.

        `teachers_root` is compared through the recipes (which hold the teacher folders a job
        uses), so that a table without such teachers resumes wherever the root points."""
        path, recipes = out / SETTINGS, self.recipes()
        if path.exists():
            held = Sweep.load(out)
            changed = [f.name for f in fields(self)
                       if f.name != "teachers_root" and getattr(held, f.name) != getattr(self, f.name)]
            if not changed and json.loads(path.read_text()).get("recipes") != recipes:
                changed = ["the recipes its preset and table resolve to"]
            if changed and _started(out):
                raise ValueError(f"{out} holds a sweep with other settings ({', '.join(changed)}): resume it with "
                                 "the same options, or use another folder")
            if not changed:
                return
            if {"manifest", "base", "the recipes its preset and table resolve to"} & set(changed):
                shutil.rmtree(out / "features", ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomically(path, {**asdict(self), "recipes": recipes})


def _started(out: Path) -> bool:
    return any((out / sub).is_dir() and any((out / sub).iterdir()) for sub in ("runs", "results"))


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


def schedule_notes(config: TrainConfig, from_checkpoint: bool) -> list[str]:
    """What the preset's schedule will not reach in a run of `config.steps` (a short sweep on a
    long preset), or does that a run from a checkpoint does not need: worth saying before the
    hours are spent, not an error."""
    notes = []
    if from_checkpoint and config.quantizer_warmup:
        notes.append(f"the first {config.quantizer_warmup} steps bypass the quantizer (a warm-up for random "
                     "weights) although the run starts from a checkpoint")
    if config.warmup_steps >= config.steps:
        notes.append(f"the learning rate warms up over {config.warmup_steps} steps, so it never reaches its peak")
    if config.quantizer_warmup >= config.steps:
        notes.append(f"the quantizer joins at step {config.quantizer_warmup}, so it never trains")
    if config.steps <= config.adversarial_start < NEVER:
        notes.append(f"the critics join at step {config.adversarial_start}, so they never train")
    return notes


def check(sweep: Sweep) -> None:
    """Everything a sweep needs that can be checked before any work: the teacher folders its
    variants name, the clips it scores and trains on, and that the start checkpoint has the
    architecture of every job."""
    from dmcodec import load_checkpoint

    from .data.manifest import read_manifest

    configs = [(variant, sweep.config(variant, seed)) for variant, seed in sweep.jobs()]
    missing = []
    for variant, config in configs:
        options = teacher_options(variant, config, Path(sweep.teachers_root))
        for key, shipped in (("lm_teacher", "default"), ("speech_teacher", "whisper")):
            if options[key] != shipped and not Path(options[key]).is_dir() and options[key] not in missing:
                missing.append(options[key])
    if missing:
        raise ValueError(f"teacher folders not found: {', '.join(missing)} (put the models there, set "
                         "--teachers-root, or leave those variants out with --variant)")
    for variant, config in configs:
        if config.loss.distillation == 0 and "loss.distillation" not in variant.overrides:
            raise ValueError(f"variant {variant.name} distils, but preset {sweep.base!r} sets loss.distillation=0, "
                             "so nothing would be distilled: choose a base that distils (e.g. small-cpu-distill)")
    splits = {utterance.split for utterance in read_manifest(sweep.manifest)}  # refuses a missing manifest
    for split, purpose in (("train", "to train on"), ("dev", "to validate on"), (sweep.eval_split, "to score")):
        if split not in splits:
            raise ValueError(f"{sweep.manifest} has no {split!r} utterances {purpose}")
    if sweep.init_from:
        start = load_checkpoint(sweep.init_from, for_inference=False).config.to_dict()
        for variant, config in configs:
            if config.codec_config().to_dict() != start:
                raise ValueError(f"{sweep.init_from} has another architecture than preset {sweep.base!r} "
                                 f"(variant {variant.name}): choose the preset the checkpoint was trained with")


def run_sweep(sweep: Sweep, out: str | Path, threads: int = 0, device: str = "auto",
              log: Callable[[str], None] = print) -> list[Path]:
    """Train and score every job not yet done; returns the results files, in job order.

    device: cpu, cuda or auto. Not part of the sweep's identity: a sweep may start on one
    machine and finish on another; each results file records where it was trained."""
    import torch

    out = Path(out)
    check(sweep)
    sweep.claim(out)
    if threads:
        torch.set_num_threads(threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    jobs = sweep.jobs()
    results = []
    for number, (variant, seed) in enumerate(jobs, 1):
        name = job_name(variant, seed)
        step = f"[{number}/{len(jobs)}] {name}"
        path = out / "results" / f"{name}.json"
        results.append(path)
        if path.exists():
            log(f"{step}: done")
            continue
        config = sweep.config(variant, seed)
        for note in schedule_notes(config, bool(sweep.init_from)):
            log(f"{step}: note: {note}")
        features = _features(sweep, variant, config, out, device, log) if needs_features(config) else None
        checkpoint = _train(sweep, config, out / "runs" / name, features, device, log, step)
        log(f"{step}: scoring")
        _score(sweep, path, checkpoint, {"variant": variant.name, "seed": seed, "steps": sweep.steps,
                                         "device": device, "torch": torch.__version__})
    return results


def _features(sweep: Sweep, variant: Variant, config: TrainConfig, out: Path, device: str,
              log: Callable[[str], None]) -> Path:
    from .teachers.precompute import build_teachers, precompute
    from .teachers.store import INDEX, PITCH_INDEX

    options = teacher_options(variant, config, Path(sweep.teachers_root))
    folder = out / "features" / features_slug(options)
    if not (folder / INDEX).exists() or not (folder / PITCH_INDEX).exists():
        log(f"teacher features -> {folder}")
        speech, lm, recognizer = build_teachers(
            options["speech_teacher"], None if options["lm_teacher"] == "default" else options["lm_teacher"],
            device=device, speech_layers=options["speech_layers"], lm_layers=options["lm_layers"])
        precompute(sweep.manifest, folder, speech, lm, recognizer, hop_length=config.codec_config().hop_length,
                   progress=False)
    return folder


def _train(sweep: Sweep, config: TrainConfig, run_dir: Path, features: Path | None, device: str,
           log: Callable[[str], None], job: str) -> Path:
    from .export import export_run
    from .trainer import Trainer

    trainer = Trainer(config, run_dir, sweep.manifest, features, device, progress=False)
    if trainer.resume():
        log(f"{job}: resuming at step {trainer.step} of {config.steps}")
    else:
        if sweep.init_from:
            trainer.init_from(sweep.init_from)
        start = "the start checkpoint" if sweep.init_from else "random weights"
        log(f"{job}: training {config.steps} steps from {start}")
    if trainer.step < config.steps:
        trainer.fit()
    if trainer.terminated:
        # Saved where it stopped; scoring it now would mark a half-trained arm done.
        log(f"{job}: stopped by SIGTERM at step {trainer.step}; the same command resumes it")
        raise SystemExit(143)
    return export_run(run_dir, run_dir / "final", name=run_dir.name)


def _score(sweep: Sweep, path: Path, checkpoint: Path, job: dict[str, Any]) -> None:
    """Score a job's checkpoint on the sweep's clips and write its results file, whole or not at
    all (its presence marks the job done). Whisper is loaded afresh for each job: its sampler is
    seeded once per thread, so transcripts would otherwise depend on which jobs this process
    scored before, and a resumed sweep would score differently from an uninterrupted one."""
    from .evaluation.harness import evaluate
    from .teachers.asr import Recognizer

    recognizer = Recognizer() if sweep.asr else None
    original, model = evaluate(sweep.manifest, [checkpoint], sweep.eval_split, sweep.eval_limit,
                               recognizer=recognizer, visqol=sweep.visqol, progress=False, asr=sweep.asr,
                               rvq1=sweep.rvq1)
    record = {**job, "checkpoint": "final",
              "original": {"scores": original.scores, "per_utterance": original.per_utterance},
              "model": {"name": model.name, "scores": model.scores, "per_utterance": model.per_utterance}}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(path, _finite_or_null(record))


def _finite_or_null(value: Any) -> Any:
    """NaN (a metric undefined on a clip: no speech for PESQ, no voiced frames for F0), or an
    infinite value, as JSON null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value


def read_results(out: str | Path) -> tuple[Sweep, Table, dict[str, list[dict]]]:
    """The sweep's settings, its table, and the results per variant (in the table's order; a
    variant without any finished seed is absent). Every results file must have scored the same
    clips in the same order, since the paired tests pair them by position."""
    out = Path(out)
    if not (out / SETTINGS).exists():
        raise ValueError(f"{out}: no {SETTINGS}; is it a sweep folder (`dmcodec-train paper run`)?")
    sweep = Sweep.load(out)
    table = get_table(sweep.table)
    by_variant: dict[str, list[dict]] = {}
    clips = None
    for variant, seed in sweep.jobs():
        path = out / "results" / f"{job_name(variant, seed)}.json"
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        ids = record["original"]["per_utterance"].get("id")
        if clips is None:
            clips = (path.name, ids)
        elif ids != clips[1]:
            raise ValueError(f"{path} scored other clips than {clips[0]} (the manifest changed under the sweep?): "
                             "its pairs would not hold; score it again or use another folder")
        by_variant.setdefault(variant.name, []).append(record)
    return sweep, table, by_variant
