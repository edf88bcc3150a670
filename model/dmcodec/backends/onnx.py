"""ONNX Runtime backend: the encoder and decoder as ONNX graphs, exported once per checkpoint.

Graphs are cached in `<checkpoint>/onnx/<key>/` (or under $DMCODEC_CACHE when the checkpoint's
folder is read-only), where the key hashes the weights' sha256 with the export settings, so a
changed checkpoint or setting never reuses a stale graph. Weight norm is folded before export.
Windows shorter than `MIN_FRAMES` frames run in torch: reflect padding at the frame-rate layers
needs that many frames, and the torch code handles shorter input with its own rule.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import LoadedCodec
from ..executor import torch_threads
from .torch_backend import TorchBackend

OPSET = 17
MIN_FRAMES = 4
EXPORT_VERSION = 1  # bump when the export code changes what it writes


def _key(codec: LoadedCodec, precision: str) -> str:
    settings = {"sha256": codec.sha256, "precision": precision, "opset": OPSET, "version": EXPORT_VERSION,
                "torch": torch.__version__.split("+")[0]}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def _complete(directory: Path) -> bool:
    """A finished export: both graphs and the meta file written last (a package or an
    interrupted copy may carry the meta file alone)."""
    return all((directory / name).is_file() for name in ("encoder.onnx", "decoder.onnx", "meta.json"))


def graph_dir(codec: LoadedCodec, precision: str = "fp32", cache_dir: str | Path | None = None) -> Path:
    """Where the graphs for this checkpoint and precision live (created if needed)."""
    key = _key(codec, precision)
    if cache_dir is None and codec.path is not None:
        beside = codec.path.parent / "onnx" / key
        # Graphs exported beside a checkpoint at install time serve from a read-only folder.
        if _complete(beside) or _writable(beside.parent):
            return beside
    root = Path(cache_dir or os.environ.get("DMCODEC_CACHE") or Path.home() / ".cache" / "dmcodec") / "onnx"
    return root / f"{codec.sha256[:16]}-{key}"


def export_onnx(codec: LoadedCodec, precision: str = "fp32", cache_dir: str | Path | None = None) -> Path:
    """Export (or find) encoder.onnx and decoder.onnx for the checkpoint; returns their folder."""
    directory = graph_dir(codec, precision, cache_dir)
    if _complete(directory):
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    model = codec.model
    if any(p.requires_grad for p in model.parameters()):
        raise ValueError("export needs a model prepared with for_inference() (weight norm folded)")
    hop, frames = model.hop_length, 150
    with tempfile.TemporaryDirectory(dir=directory) as tmp, warnings.catch_warnings():
        # The tracer warns about Python-side shape checks; the graphs are checked below.
        warnings.simplefilter("ignore")
        tmp_path = Path(tmp)
        cpu_model = model if next(model.parameters()).device.type == "cpu" else _cpu_copy(codec)
        torch.onnx.export(cpu_model.encoder, (torch.randn(1, 1, frames * hop),), tmp_path / "encoder.onnx",
                          dynamo=False, opset_version=OPSET, input_names=["audio"], output_names=["latent"],
                          dynamic_axes={"audio": {0: "batch", 2: "samples"}, "latent": {0: "batch", 2: "frames"}})
        torch.onnx.export(cpu_model.decoder, (torch.randn(1, model.config.dimension, frames),),
                          tmp_path / "decoder.onnx", dynamo=False, opset_version=OPSET,
                          input_names=["latent"], output_names=["audio"],
                          dynamic_axes={"latent": {0: "batch", 2: "frames"}, "audio": {0: "batch", 2: "samples"}})
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            for name in ("encoder", "decoder"):
                quantize_dynamic(tmp_path / f"{name}.onnx", tmp_path / f"{name}.int8.onnx",
                                 weight_type=QuantType.QInt8)
                os.replace(tmp_path / f"{name}.int8.onnx", tmp_path / f"{name}.onnx")
        for name in ("encoder", "decoder"):
            os.replace(tmp_path / f"{name}.onnx", directory / f"{name}.onnx")
    meta = {"checkpoint_sha256": codec.sha256, "precision": precision, "opset": OPSET,
            "export_version": EXPORT_VERSION, "torch": torch.__version__, "min_frames": MIN_FRAMES}
    (directory / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return directory


def _cpu_copy(codec: LoadedCodec):
    from ..checkpoint import load_checkpoint

    if codec.path is None:
        raise ValueError("a checkpoint held only in memory cannot be exported to ONNX; save it first")
    return load_checkpoint(codec.path, verify=False).model


class OnnxBackend:
    """Args:
        codec: the loaded checkpoint (its quantizer searches codes; short windows use its torch model).
        precision: fp32, or int8 (dynamically quantised weights; check the agreement before use).
        threads: intra-op threads of a session call that does not ask for its own count.
        cache_dir: where graphs go when the checkpoint's folder is read-only.

    ONNX Runtime's CPU encoder kernels split a call's work by outputs, not along reductions,
    so its latents do not depend on the thread count (`select_backend` verifies this bit for
    bit before a tokenizer lets a lone window use more threads). One pair of sessions is kept
    per thread count asked for. Each run gives its arena's memory back when it ends: the arena
    would otherwise keep the peak of the longest window batch for the life of the process, and
    measured side by side, shrinking costs no speed (1.01-1.06x of a keeping arena).
    """

    name = "onnxruntime"

    def __init__(self, codec: LoadedCodec, precision: str = "fp32", threads: int = 1,
                 cache_dir: str | Path | None = None):
        import onnxruntime as ort

        self.codec = codec
        self.model = codec.model
        self.precision = precision
        self.device = next(self.model.parameters()).device
        self.directory = export_onnx(codec, precision, cache_dir)
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.providers = providers
        self.threads = threads
        self._run_options = ort.RunOptions()
        self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self._sessions: dict[int, tuple[ort.InferenceSession, ort.InferenceSession]] = {}
        self._lock = threading.Lock()
        self.sessions(threads)
        self._short = TorchBackend(self.model, threads=threads)

    def sessions(self, threads: int = 0) -> tuple[Any, Any]:
        """(encoder, decoder) sessions running with `threads` intra-op threads (0: the default)."""
        import onnxruntime as ort

        threads = threads or self.threads
        with self._lock:
            if threads not in self._sessions:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                self._sessions[threads] = tuple(
                    ort.InferenceSession(str(self.directory / f"{part}.onnx"), options, providers=self.providers)
                    for part in ("encoder", "decoder"))
            return self._sessions[threads]

    def latent(self, wav: torch.Tensor, threads: int = 0) -> np.ndarray:
        # wav [B, 1, T] -> latent [B, D, F]
        if self.model.num_frames(wav.shape[-1]) < MIN_FRAMES:
            return self._short.latent(wav, threads)
        encoder, _ = self.sessions(threads)
        return encoder.run(None, {"audio": wav.detach().float().cpu().numpy()}, self._run_options)[0]

    def encode(self, wav: torch.Tensor, n_q: int, threads: int = 0) -> np.ndarray:
        # wav [B, 1, T] -> latent [B, D, F] (ONNX) -> codes [n_q, B, F] (fp32 quantizer)
        latent = torch.from_numpy(self.latent(wav, threads)).to(self.device)
        with torch.inference_mode(), torch_threads(self.threads if self.device.type == "cpu" else 0):
            return self.model.quantizer.encode(latent, n_q).cpu().numpy()

    def decode(self, codes: torch.Tensor, threads: int = 0) -> np.ndarray:
        # codes [n_q, B, F] -> latent [B, D, F] (fp32) -> audio [B, F * hop] (ONNX)
        if codes.shape[-1] < MIN_FRAMES:
            return self._short.decode(codes)
        with torch.inference_mode():
            latent = self.model.quantizer.decode(codes.to(self.device)).float().cpu().numpy()
        _, decoder = self.sessions(threads)
        return decoder.run(None, {"latent": latent}, self._run_options)[0][:, 0]
