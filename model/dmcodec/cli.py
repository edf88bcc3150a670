"""The `dmcodec` command line: encode, decode, info, convert, init, export-onnx, bulk, and the commands
other installed packages add (`serve`, from the service)."""

from __future__ import annotations

import json
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Callable, NoReturn, Optional

import typer
from tqdm import tqdm

from . import defaults

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="DM-Codec speech tokenizer: audio <-> discrete tokens (`dmcodec info` gives a checkpoint's "
                       "levels, codebook size and frame rate).")

CheckpointOption = typer.Option(None, "--checkpoint", "-c", help="Checkpoint directory or weights file "
                                "(default: $DMCODEC_CHECKPOINT, else the bundled default).")


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _tokenizer(checkpoint: Optional[Path], device: str, backend: str = defaults.BACKEND,
               precision: str = defaults.PRECISION, min_agreement: float = defaults.MIN_AGREEMENT):
    from .backends.agreement import AgreementError
    from .checkpoint import CheckpointError
    from .runtime import configure_determinism
    from .tokenizer import Tokenizer

    try:
        configure_determinism(device)
        return Tokenizer.from_pretrained(checkpoint, device=device, backend=backend, precision=precision,
                                         min_agreement=min_agreement)
    except (CheckpointError, AgreementError, FileNotFoundError, ValueError, RuntimeError) as err:
        _fail(str(err))


def _check_levels(config, n_q: Optional[int]) -> None:
    try:
        config.levels(n_q)
    except ValueError as err:
        _fail(f"--n-q: {err}")


def _checkpoint_path(checkpoint: Optional[Path]) -> Path:
    try:
        return defaults.resolve_checkpoint(checkpoint)
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))


BackendOption = typer.Option(defaults.BACKEND, help="auto (onnxruntime where its codes equal fp32 torch's on "
                             "every calibration position, else torch), torch (the reference) or onnxruntime.")
PrecisionOption = typer.Option(defaults.PRECISION, help="fp32; opt-in: tf32/bf16/fp16 (torch, CUDA), int8 "
                               "(onnxruntime).")
LayoutOption = typer.Option("codes", "--layout", help="codes (the [n_q][frames] grid), flat (one frame-major "
                            "sequence of vocabulary ids with bos/eos: a language model's input_ids), delay "
                            "(MusicGen's delay pattern) or first (RVQ-1 alone, with bos/eos); see docs/tokens.md.")


@app.command()
def encode(
    inputs: list[Path] = typer.Argument(..., help="Audio files or directories (searched recursively)."),
    output: Path = typer.Option(..., "--output", "-o", help="Token file (one input) or directory."),
    fmt: str = typer.Option("json", "--format", "-f", help="json (codes + metadata), npz (uint16 codes + "
                            "metadata, num_samples and the model's sha256 among them) or npy (uint16 codes; "
                            "metadata in index.jsonl)."),
    n_q: Optional[int] = typer.Option(None, "--n-q", help="Quantizer levels to keep (default: all)."),
    layout: str = LayoutOption,
    checkpoint: Optional[Path] = CheckpointOption,
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    backend: str = BackendOption,
    precision: str = PrecisionOption,
) -> None:
    """Encode audio to tokens."""
    from .audio import AudioError, find_audio_files
    from .layouts import layout_levels
    from .tokens import save_tokens

    if fmt not in ("json", "npz", "npy"):
        _fail(f"--format must be json, npz or npy, got {fmt!r}")
    try:
        layout_levels(layout, n_q)
    except ValueError as err:
        _fail(str(err))
    jobs: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            jobs += [(f, f.relative_to(item).with_suffix(f".{fmt}")) for f in find_audio_files(item)]
        elif item.exists():
            jobs.append((item, Path(item.name).with_suffix(f".{fmt}")))
        else:
            _fail(f"{item}: no such file or directory")
    if not jobs:
        _fail("no audio files found")
    single = len(jobs) == 1 and not inputs[0].is_dir() and output.suffix in (".json", ".npz", ".npy")
    tokenizer = _tokenizer(checkpoint, device, backend, precision)
    _check_levels(tokenizer.model.config, n_q)
    failures = 0
    index: Optional[list[dict]] = [] if fmt == "npy" and not single else None
    for source, relative in tqdm(jobs, unit="file", disable=len(jobs) == 1, file=sys.stderr):
        target = output if single else output / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            encoded = tokenizer.encode(source, n_q=n_q, layout=layout)
        except AudioError as err:
            failures += 1
            typer.secho(f"skipped {source}: {err}", fg=typer.colors.YELLOW, err=True)
            continue
        save_tokens(target, encoded)
        if index is not None:
            index.append({"audio": str(source), "tokens": str(relative), **encoded.metadata.flat()})
    if index is not None:
        (output / "index.jsonl").write_text("".join(json.dumps(row) + "\n" for row in index))
    if failures:
        if failures == len(jobs):
            _fail("no input could be encoded")
        typer.secho(f"{failures} of {len(jobs)} files failed", fg=typer.colors.YELLOW, err=True)


@app.command()
def decode(
    tokens: Path = typer.Argument(..., help="A .json, .npz or .npy token file, in any layout."),
    output: Path = typer.Option(..., "--output", "-o", help="WAV file to write."),
    num_samples: Optional[int] = typer.Option(None, help="Output length (.json and .npz files record it; a bare "
                                              ".npy does not: see its index.jsonl)."),
    layout: Optional[str] = typer.Option(None, "--layout", help="The tokens' layout (default: the one the file "
                                         "records, else codes; a bare .npy of ids records none)."),
    checkpoint: Optional[Path] = CheckpointOption,
    device: str = typer.Option("cpu"),
    backend: str = BackendOption,
    precision: str = PrecisionOption,
) -> None:
    """Decode tokens to a WAV file at the model's sample rate."""
    from .audio import write_wav
    from .tokens import load_tokens, made_by

    tokenizer = _tokenizer(checkpoint, device, backend, precision)
    maker = made_by(tokens)
    if maker and maker != tokenizer.codec.sha256:
        _fail(f"{tokens}: made by model {maker[:12]}...; this checkpoint is {tokenizer.codec.sha256[:12]}... "
              "(codes of one model mean nothing to another)")
    try:
        codes, recorded = load_tokens(tokens, layout, tokenizer.vocabulary)
    except ValueError as err:
        _fail(str(err))
    try:
        audio = tokenizer.decode(codes, num_samples or recorded)
    except ValueError as err:
        _fail(f"{tokens}: {err}")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_wav(output, audio, tokenizer.sample_rate)


@app.command("export-onnx")
def export_onnx_command(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint (default: the bundled one)."),
    precision: str = typer.Option(defaults.PRECISION, help="fp32 or int8."),
    min_agreement: float = typer.Option(defaults.MIN_AGREEMENT, help="Fail unless this share of fp32 torch codes "
                                        "is kept."),
) -> None:
    """Export (or find cached) ONNX graphs next to a checkpoint and report their code agreement."""
    # Building the backend exports the graphs (or finds them cached) and measures agreement.
    checked = _tokenizer(checkpoint, "cpu", "onnxruntime", precision, min_agreement)
    typer.echo(json.dumps({"graphs": str(checked.backend.directory), "agreement": checked.agreement.to_dict()}))


@app.command()
def info(checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint (default: the bundled one).")) -> None:
    """Print a checkpoint's summary as JSON."""
    from .checkpoint import CheckpointError, load_checkpoint

    try:
        codec = load_checkpoint(_checkpoint_path(checkpoint), for_inference=False)
    except CheckpointError as err:
        _fail(str(err))
    config = codec.config
    typer.echo(json.dumps({
        "name": codec.name, "path": str(codec.path), "sha256": codec.sha256,
        "parameters": codec.model.num_parameters(), "sample_rate": config.sample_rate,
        "frame_rate": config.frame_rate, "hop_length": config.hop_length, "n_q": config.n_q,
        "codebook_size": config.codebook_size, "bitrate_bps": config.bitrate(),
        "codebooks_initialised": codec.model.quantizer.initialized,
        "config": {k: v for k, v in config.to_dict().items() if k in type(config).__dataclass_fields__},
        "metadata": codec.metadata,
    }, indent=2))


@app.command()
def convert(
    source: Path = typer.Argument(..., help="Checkpoint to read (ours or the release's .pt)."),
    output: Path = typer.Argument(..., help="A directory for ours, or a .pt file for the release format."),
    config: Optional[Path] = typer.Option(None, help="Config of the source, if not config.json beside it."),
    fp16: bool = typer.Option(False, help="Store weights as float16 (our format only)."),
    name: Optional[str] = typer.Option(None, help="Name recorded in our format."),
) -> None:
    """Convert between the release's state-dict format and ours (safetensors + JSON)."""
    import torch

    from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint, save_release_checkpoint

    try:
        codec = load_checkpoint(source, config_path=config, for_inference=False)
    except CheckpointError as err:
        _fail(str(err))
    if output.suffix in (".pt", ".pth"):
        save_release_checkpoint(codec.model, output)
    else:
        training = {**codec.metadata.get("training", {}), "converted_from": str(source),
                    "source_sha256": codec.sha256}
        save_checkpoint(codec.model, output, name=name or codec.name, training=training,
                        dtype=torch.float16 if fp16 else torch.float32)
    typer.echo(f"wrote {output}")


@app.command()
def init(
    output: Path = typer.Argument(..., help="Directory to write."),
    preset_name: str = typer.Option("small", "--preset", help="paper, small or tiny."),
    seed: int = typer.Option(0),
) -> None:
    """Write an UNTRAINED, randomly initialised checkpoint (for tests and smoke runs)."""
    from .init import create_untrained

    try:
        create_untrained(output, preset_name, seed)
    except ValueError as err:
        _fail(str(err))
    typer.echo(f"wrote untrained checkpoint {output}")


@app.command()
def bulk(
    source: Path = typer.Argument(..., help="A folder of audio; a .jsonl/.csv/.parquet manifest with a 'path' "
                                  "column, an optional 'id', optional 'start'/'end' (seconds, a segment) and "
                                  "any other columns (copied to the output rows); a Lhotse cuts manifest "
                                  "(.jsonl[.gz]; the cuts come back with codes in OUT/cuts.jsonl.gz); or a Hugging "
                                  "Face dataset (a save_to_disk folder, or Parquet with an Audio column)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder: shard-*.parquet, failures.jsonl, "
                                "summary.json. Re-running resumes."),
    engine: str = typer.Option("local", help="local (model in this process), server (a running service) or ray."),
    server: str = typer.Option("http://127.0.0.1:8000", help="Service URL for --engine server."),
    api_key: Optional[str] = typer.Option(None, envvar="DMCODEC_API_KEY", help="API key for --engine server."),
    concurrency: int = typer.Option(8, help="Requests in flight (server) or model actors (ray)."),
    cpus_per_actor: int = typer.Option(1, help="CPU cores per Ray actor."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS or local)."),
    shard_size: int = typer.Option(1000, help="Rows per Parquet shard."),
    webdataset: bool = typer.Option(False, help="Also write a WebDataset .tar per shard."),
    n_q: Optional[int] = typer.Option(None, "--n-q", help="Quantizer levels to keep (default: all)."),
    layout: str = typer.Option("codes", "--layout", help="Also write the tokens in this layout as input_ids "
                               "(Parquet column, <key>.input_ids.npy in tars, a Lhotse custom array): flat, delay "
                               "or first; codes: the codes column alone. See docs/tokens.md."),
    checkpoint: Optional[Path] = CheckpointOption,
    device: str = typer.Option("cpu", help="Device of the local engine."),
    backend: str = BackendOption,
    precision: str = PrecisionOption,
) -> None:
    """Tokenize a corpus into Parquet shards: resumable, failures recorded per file."""
    try:
        from .bulk import JobLocked, LocalEngine, ServerEngine, ShardStore, read_codes, run
        from .bulk.sources import attach_codes, is_lhotse_cuts, open_source
        from .bulk.store import OUTPUT_COLUMNS
        from .layouts import layout_levels
    except ImportError as err:
        _fail(f"bulk needs the 'bulk' extra ({err}); pip install 'dmcodec[bulk]'")
    if engine not in ("local", "server", "ray"):
        _fail(f"--engine must be local, server or ray, got {engine!r}")
    try:
        items, extra = open_source(source, OUTPUT_COLUMNS)
        if engine == "ray" and any(item.loader for item in items):
            raise ValueError("the Ray engine reads audio by path; for audio held in a dataset use --engine "
                             "local or server")
        layout_levels(layout, n_q)
        store = ShardStore(output, webdataset=webdataset, extra=extra, layout=layout)
    except (ValueError, JobLocked, ImportError) as err:
        _fail(str(err))
    with store:
        if engine == "local":
            tokenizer = _tokenizer(checkpoint, device, backend, precision)
            _check_levels(tokenizer.model.config, n_q)
            summary = run(items, store, LocalEngine(tokenizer, n_q, layout=layout), shard_size=shard_size)
        elif engine == "server":
            client = ServerEngine(server, api_key, n_q, concurrency, layout=layout)
            try:
                summary = run(items, store, client, shard_size=shard_size, engine_name="server")
            finally:
                client.close()
        else:
            from .bulk.ray_job import run_ray

            summary = run_ray(items, store, _checkpoint_path(checkpoint), n_q=n_q, actors=concurrency,
                              cpus_per_actor=cpus_per_actor, shard_size=shard_size, address=ray_address,
                              backend=backend, precision=precision, layout=layout)
        if is_lhotse_cuts(source):
            ids = None if layout == "codes" else read_codes(output, "input_ids")
            cuts = attach_codes(source, output, read_codes(output), read_codes(output, "num_samples"), ids)
            summary["lhotse_cuts"] = str(cuts)
    typer.echo(json.dumps(summary, indent=2))
    if summary["failed"]:
        typer.secho(f"{summary['failed']} files failed; see {output / 'failures.jsonl'}", fg=typer.colors.YELLOW,
                    err=True)
    if summary.get("retry_next_run"):
        typer.secho(f"{summary['retry_next_run']} files could not be reached (overload, connection); run the same "
                    "command again to retry them", fg=typer.colors.YELLOW, err=True)


def _plugin_command(entry: EntryPoint) -> Callable[[typer.Context], None]:
    def command(ctx: typer.Context) -> None:
        raise typer.Exit(entry.load()(list(ctx.args)) or 0)

    return command


def _add_plugin_commands() -> None:
    """Commands that other installed packages add (entry points in the `dmcodec.commands` group,
    e.g. `serve` from the service). Each is a `main(argv) -> exit code` that parses its own
    arguments, so the package is imported only when its command runs."""
    for entry in entry_points(group="dmcodec.commands"):
        package = entry.dist.name if entry.dist else entry.value.split(".")[0]
        app.command(entry.name, help=f"{entry.name} (from {package}); see `dmcodec {entry.name} --help`.",
                    add_help_option=False,
                    context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(_plugin_command(entry))


_add_plugin_commands()


if __name__ == "__main__":
    app()
