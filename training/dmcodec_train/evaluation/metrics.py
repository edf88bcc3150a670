"""Per-utterance quality metrics and the codebook statistics of a token set."""

from __future__ import annotations

import functools
import re

import numpy as np

from ..pitch import frame_pitch, pitch_track


def _same_length(reference: np.ndarray, degraded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(reference), len(degraded))
    return reference[:n].astype(np.float64), degraded[:n].astype(np.float64)


def stoi(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    from pystoi import stoi as _stoi

    return float(_stoi(*_same_length(reference, degraded), rate, extended=False))


def pesq_wideband(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """Wideband PESQ (MOS-LQO, 16 kHz); NaN when PESQ finds no speech to compare."""
    from pesq import pesq
    from pesq.cypesq import PesqError

    try:
        return float(pesq(rate, *_same_length(reference, degraded), "wb"))
    except PesqError:
        return float("nan")


def pitch_errors(reference: np.ndarray, degraded: np.ndarray, rate: int) -> dict[str, float]:
    """How well the pitch survived: F0 RMSE in cents over the frames voiced in both, and the
    share of frames (percent) whose voiced/unvoiced decision changed. A decoder that keeps the
    spectral envelope but loses the harmonics scores well on STOI and badly here (and on PESQ)."""
    # Equal-length signals give equal-length tracks.
    f0_ref, f0_deg = (pitch_track(a, rate)[1] for a in _same_length(reference, degraded))
    voiced_ref, voiced_deg = f0_ref > 0, f0_deg > 0
    both = voiced_ref & voiced_deg
    cents = 1200.0 * np.log2(f0_deg[both] / f0_ref[both])
    return {"f0_rmse_cents": float(np.sqrt(np.mean(cents**2))) if both.any() else float("nan"),
            "vuv_error": 100.0 * float(np.mean(voiced_ref != voiced_deg)) if len(f0_ref) else float("nan")}


# The frames the periodicity is read on: the 16 kHz codecs' 50 Hz frames, as the loss reads it.
PERIODICITY_HOP = 320


def periodicity_frames(reference: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's pitch (log-F0, voiced) on the frames `periodicity_score` reads: one
    Praat track per clip, however many models are scored against it."""
    return frame_pitch(reference, rate, PERIODICITY_HOP, -(-len(reference) // PERIODICITY_HOP))


def periodicity_score(reference: np.ndarray, degraded: np.ndarray, rate: int,
                      reference_frames: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """How periodic the degraded speech stays where the reference is voiced: the mean
    correlation of each voiced frame's window with itself one reference pitch period later
    (`losses/periodicity.py`, the training loss's own measure). Clean voiced speech reads about
    0.9; noise with the right envelope reads 0. NaN without voiced frames. reference_frames:
    `periodicity_frames(reference, rate)`, when the caller keeps it for several models."""
    import torch

    from ..losses.periodicity import WINDOW_S, periodicity, periods

    reference, degraded = _same_length(reference, degraded)
    log_f0, voiced = (torch.from_numpy(t)[None] for t in reference_frames or periodicity_frames(reference, rate))
    r, inside = periodicity(torch.from_numpy(degraded).float()[None], periods(log_f0, voiced, rate),
                            PERIODICITY_HOP, round(WINDOW_S * rate))
    counted = voiced & inside
    return float(r[counted].mean()) if counted.any() else float("nan")


@functools.lru_cache(maxsize=1)
def _visqol():
    from visqol import VisqolApi

    api = VisqolApi()
    # Speech mode at 16 kHz; the polynomial MOS mapping (the lattice model needs a TFLite runtime).
    api.create(mode="speech", use_lattice_model=False)
    return api


def visqol_speech(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    return float(_visqol().measure_from_arrays(*_same_length(reference, degraded), rate).moslqo)


def normalize_text(text: str) -> str:
    """Lower case, no punctuation, single spaces: WER should count words, not commas."""
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " "))
    return " ".join(text.split())


def word_errors(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    """Corpus-level WER and WIL, in percent, after `normalize_text`."""
    import jiwer

    pairs = [(normalize_text(r), normalize_text(h)) for r, h in zip(references, hypotheses)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return {"wer": float("nan"), "wil": float("nan")}
    output = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    return {"wer": 100.0 * output.wer, "wil": 100.0 * output.wil}


def codebook_statistics(codes: list[np.ndarray], codebook_size: int) -> list[dict[str, float]]:
    """Per level, over all clips' codes ([n_q, F] each): share of the codebook used and the
    perplexity of the code distribution (codebook_size means perfectly uniform use)."""
    stacked = np.concatenate(codes, axis=1)  # [n_q, total frames]
    levels = []
    for row in stacked:
        counts = np.bincount(row, minlength=codebook_size).astype(np.float64)
        p = counts / counts.sum()
        entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
        levels.append({"usage": float((counts > 0).mean()), "perplexity": float(np.exp(entropy))})
    return levels
