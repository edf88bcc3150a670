"""Speech-like test signals made from numbers alone: a glottal pulse train with a wandering
pitch through wandering vowel formants, with pauses. No speech data is needed to exercise
the codec end to end or to spread a fresh model's codebooks over realistic latents."""

from __future__ import annotations

import numpy as np

# (F1, F2, F3) in Hz of a few vowels; bandwidths grow with frequency.
_VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [530, 1840, 2480], [570, 840, 2410], [300, 870, 2240]])


def _resonator(x: np.ndarray, freq: np.ndarray, bandwidth: float, rate: int) -> np.ndarray:
    """Two-pole resonator with a time-varying centre frequency (one value per sample)."""
    r = np.exp(-np.pi * bandwidth / rate)
    a1 = 2 * r * np.cos(2 * np.pi * freq / rate)
    a2 = -r * r
    y = np.zeros_like(x)
    y1 = y2 = 0.0
    gain = 1 - r
    for i in range(len(x)):  # a few seconds of audio: fast enough, and dependency-free
        y0 = gain * x[i] + a1[i] * y1 + a2 * y2
        y[i] = y0
        y2, y1 = y1, y0
    return y


def speech_like(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Mono float32 [round(seconds * rate)] in about [-0.5, 0.5]."""
    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * rate))
    t = np.arange(n) / rate
    syllable = 0.12 + 0.1 * rng.random()
    pitch = (110 + 80 * rng.random()) * (1 + 0.15 * np.sin(2 * np.pi * t / (4 * syllable) + rng.random() * 6))
    phase = np.cumsum(pitch / rate)
    source = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64) + 0.02 * rng.standard_normal(n)
    steps = np.minimum((t / syllable).astype(int), 10**6)
    choice = rng.integers(0, len(_VOWELS), steps.max() + 2)
    weight = (t / syllable) - steps
    formants = (1 - weight[:, None]) * _VOWELS[choice[steps]] + weight[:, None] * _VOWELS[choice[steps + 1]]
    voiced = sum(_resonator(source, formants[:, k], 80 + 40 * k, rate) for k in range(3))
    envelope = np.clip(np.sin(np.pi * weight) * 1.5, 0, 1) * (rng.random(steps.max() + 1)[steps] > 0.15)
    signal = voiced * envelope + 0.003 * rng.standard_normal(n)
    return (0.5 * signal / (np.abs(signal).max() + 1e-9)).astype(np.float32)
