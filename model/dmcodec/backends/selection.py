"""Choosing a backend: any mode other than fp32 torch is measured against it first.

A speech-LM trained on one replica's tokens must be able to trust another replica's, so a
backend or precision that re-draws too many codes on the calibration set is refused. `auto`
(the default everywhere) takes ONNX Runtime, which is faster on CPU, only where its codes equal
fp32 torch's on every calibration position, and falls back to fp32 torch, with the reason,
where they do not: whichever entry point encodes, the codes are torch's.

Two speed-ups are granted only where measured to leave every bit of the encoder's output
unchanged on the calibration clips: more threads for a window that runs alone (oneDNN's
convolutions split reductions by thread on some models and not on others: measured both ways
here), and windows of one length sharing a model call without padding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .. import defaults
from ..checkpoint import LoadedCodec
from ..executor import WindowExecutor
from . import Backend, create_backend
from .agreement import Agreement, AgreementError, calibration_clips, code_agreement

log = logging.getLogger("dmcodec")


@dataclass(frozen=True)
class Selection:
    """The backend to serve and what was measured to choose it.

    agreement: its codes against fp32 torch on the calibration set (None: it is fp32 torch).
    solo_threads: threads a window running alone may use, verified to give bit-identical
        latents (0: no more than the policy's threads per window).
    fallback: why `auto` did not get ONNX Runtime (None when it did, or when not asked).
    batch_invariant: encoding windows of one length together gives each exactly the latent it
        gets alone, at any batch size (checked bit for bit), so they may share a model call
        without padding to a fixed batch shape.
    """

    backend: Backend
    agreement: Optional[Agreement]
    solo_threads: int = 0
    fallback: Optional[str] = None
    batch_invariant: bool = False


def _encode_clip(backend: Backend, clip: np.ndarray, n_q: int, threads: int) -> np.ndarray:
    # samples [T] -> wav [1, 1, T] -> codes [n_q, 1, F] -> [n_q, F]
    wav = torch.from_numpy(clip)[None, None].to(backend.device)
    return backend.encode(wav, n_q, threads)[:, 0]


def select_backend(codec: LoadedCodec, name: str = defaults.BACKEND, precision: str = defaults.PRECISION, *,
                   threads: int = 1, solo_threads: int = 0, min_agreement: float = defaults.MIN_AGREEMENT,
                   cache_dir: str | Path | None = None) -> Selection:
    """The backend `name` (or `auto`) at `precision`, measured on the calibration clips (each
    encoded whole, with `threads` intra-op threads) against fp32 torch. Raises AgreementError
    when fewer than `min_agreement` of its code positions match (`auto` asks for all of them).

    solo_threads: also try this many threads for a lone window; granted where the latents at
    that count equal those at `threads` bit for bit on the calibration clips."""
    if name == "auto":
        return _auto(codec, precision, threads, solo_threads, cache_dir)
    reference = create_backend(codec, threads=threads)
    candidate = reference
    agreement = None
    clips, n_q = calibration_clips(codec.config.sample_rate), codec.config.n_q
    with WindowExecutor(reference.device.type, threads, workers=1) as executor:
        if (name, precision) != ("torch", "fp32"):
            candidate = create_backend(codec, name, precision, threads, cache_dir)
            expected = executor.map(lambda clip, _: _encode_clip(reference, clip, n_q, threads), clips)
            measured = executor.map(lambda clip, _: _encode_clip(candidate, clip, n_q, threads), clips)
            agreement = code_agreement(expected, measured)
            if agreement.overall < min_agreement:
                raise AgreementError(
                    f"backend {name} at {precision} keeps only {agreement.overall:.4%} of fp32 torch codes on the "
                    f"calibration set (per level: {', '.join(f'{x:.3f}' for x in agreement.per_level)}); at least "
                    f"{min_agreement:.2%} is required - use fp32, or lower the threshold knowingly")
        if reference.device.type != "cpu":
            return Selection(candidate, agreement)
        # The invariance checks only for a backend that passed: one that fails (auto's fallback
        # path) does not pay for them at start-up.
        granted = 0
        if solo_threads > threads:
            if executor.map(lambda _, __: _thread_invariant(candidate, clips, threads, solo_threads), [None])[0]:
                granted = solo_threads
            else:
                log.warning("backend %s computes other latents at %d threads than at %d: lone windows keep %d",
                            name, solo_threads, threads, threads)
        invariant = executor.map(lambda _, __: _batch_invariant(candidate, clips, threads,
                                                                codec.config.sample_rate), [None])[0]
    return Selection(candidate, agreement, granted, batch_invariant=invariant)


def _latent(backend: Backend, clip: np.ndarray, threads: int) -> np.ndarray:
    return backend.latent(torch.from_numpy(clip)[None, None], threads)


def _thread_invariant(backend: Backend, clips: list[np.ndarray], threads: int, solo_threads: int) -> bool:
    """Whether the calibration clips, and all of them joined (a window-sized input), get
    bit-identical latents at `solo_threads` and at `threads`."""
    inputs = [*clips, np.concatenate(clips)]
    return all(np.array_equal(_latent(backend, clip, threads), _latent(backend, clip, solo_threads))
               for clip in inputs)


def _batch_invariant(backend: Backend, clips: list[np.ndarray], threads: int, sample_rate: int,
                     seconds: float = 0.5) -> bool:
    """Whether half-second crops of the calibration clips get the same latents alone as in
    batches of 3 and of 8 (FINDINGS measured torch's kernels changing 0.4% of codes)."""
    size = int(seconds * sample_rate)
    crops = np.stack([clip[i * size : (i + 1) * size] for clip in clips for i in range(2)])[:8]
    wav = torch.from_numpy(crops)[:, None]  # [8, 1, T]
    alone = [backend.latent(wav[i : i + 1], threads)[0] for i in range(len(crops))]
    for batch in (3, 8):
        together = backend.latent(wav[:batch], threads)  # [B, D, F]
        if not all(np.array_equal(together[i], alone[i]) for i in range(batch)):
            log.info("backend %s computes other latents in a batch than alone: windows run one by one",
                     backend.name)
            return False
    return True


def _auto(codec: LoadedCodec, precision: str, threads: int, solo_threads: int,
          cache_dir: str | Path | None) -> Selection:
    device = next(codec.model.parameters()).device
    if device.type != "cpu" or precision != "fp32":
        # On a GPU torch is the fast path; reduced precisions are opt-in per backend.
        return select_backend(codec, "torch", precision, threads=threads)
    try:
        return select_backend(codec, "onnxruntime", "fp32", threads=threads, solo_threads=solo_threads,
                              min_agreement=1.0, cache_dir=cache_dir)
    except AgreementError as err:
        reason = str(err)
    except ImportError as err:
        reason = f"onnxruntime is not installed ({err.name}); pip install 'dmcodec[onnx]'"
    except Exception as err:  # any export or session failure leaves torch, which always works
        reason = f"onnxruntime failed to start: {type(err).__name__}: {err}"
    log.warning("backend auto: serving fp32 torch instead of onnxruntime: %s", reason)
    return replace(select_backend(codec, "torch", "fp32", threads=threads, solo_threads=solo_threads),
                   fallback=reason)
