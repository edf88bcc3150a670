"""Token stability as a measured number: how often a backend/precision picks the same codes as
the fp32 torch reference, on a fixed calibration set.

A speech-LM trained on one replica's tokens must be able to trust another replica's, so a mode
whose agreement is below the threshold is refused rather than served.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..signals import speech_like

CALIBRATION_SECONDS = (1.3, 2.9, 4.4, 6.1)


def calibration_clips(sample_rate: int) -> list[np.ndarray]:
    """Fixed speech-like clips (seeded), about 15 s in all."""
    return [speech_like(s, sample_rate, seed=9000 + i) for i, s in enumerate(CALIBRATION_SECONDS)]


@dataclass
class Agreement:
    """Share of code positions equal to the reference: overall and per level (1-based order)."""

    overall: float
    per_level: list[float]
    positions: int

    def to_dict(self) -> dict:
        return {"overall": round(self.overall, 6), "per_level": [round(x, 6) for x in self.per_level],
                "positions": self.positions}


def code_agreement(reference: list[np.ndarray], candidate: list[np.ndarray]) -> Agreement:
    """reference, candidate: codes [n_q, F] per clip, same shapes."""
    ref = np.concatenate(reference, axis=1)
    cand = np.concatenate(candidate, axis=1)
    if ref.shape != cand.shape:
        raise ValueError(f"code shapes differ: {ref.shape} vs {cand.shape}")
    equal = ref == cand
    return Agreement(float(equal.mean()), [float(row.mean()) for row in equal], int(equal.size))


class AgreementError(RuntimeError):
    """A backend or precision re-draws too many codes to be served."""
