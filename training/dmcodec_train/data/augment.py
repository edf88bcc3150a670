"""Corpus augmentation: gain, additive noise and room reverberation, all from a seeded generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Augmentation:
    """Probabilities and ranges of each effect.

    gain_db: peak level range (dBFS) each clip is scaled to.
    noise_probability / snr_db: additive white or brown noise at a random SNR.
    reverb_probability / rt60_s: a synthetic room impulse (decaying noise) with that RT60.
    """

    gain_db: tuple[float, float] = (-12.0, -1.0)
    noise_probability: float = 0.3
    snr_db: tuple[float, float] = (15.0, 40.0)
    reverb_probability: float = 0.25
    rt60_s: tuple[float, float] = (0.1, 0.5)

    def apply(self, audio: np.ndarray, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Returns the augmented copy and a record of what was done."""
        record: dict = {}
        audio = audio.astype(np.float32)
        if rng.random() < self.reverb_probability:
            rt60 = float(rng.uniform(*self.rt60_s))
            audio = np.convolve(audio, room_impulse(rt60, rate, rng))[: len(audio)].astype(np.float32)
            record["rt60_s"] = round(rt60, 3)
        if rng.random() < self.noise_probability:
            snr = float(rng.uniform(*self.snr_db))
            colour = "brown" if rng.random() < 0.5 else "white"
            audio = add_noise(audio, snr, colour, rng)
            record["noise"] = {"snr_db": round(snr, 1), "colour": colour}
        peak_db = float(rng.uniform(*self.gain_db))
        peak = float(np.max(np.abs(audio))) or 1.0
        audio = audio * (10 ** (peak_db / 20) / peak)
        record["peak_dbfs"] = round(peak_db, 2)
        return audio.astype(np.float32), record


def room_impulse(rt60_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Exponentially decaying noise (60 dB down at rt60_s) after a unit direct path."""
    length = int(rt60_s * rate)
    t = np.arange(length) / rate
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60_s) * 0.3
    tail[0] = 1.0
    return (tail / np.sqrt(np.sum(tail**2))).astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float, colour: str, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(len(audio))
    if colour == "brown":
        noise = np.cumsum(noise)
        noise -= np.convolve(noise, np.ones(401) / 401, mode="same")  # remove the drift
    signal_power = float(np.mean(audio**2)) or 1e-12
    noise *= np.sqrt(signal_power / (10 ** (snr_db / 10)) / (np.mean(noise**2) + 1e-12))
    return (audio + noise).astype(np.float32)
