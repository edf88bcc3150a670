"""Praat's pitch track, once for everything that reads pitch: the evaluation's F0 and voicing
errors, the stored pitch targets of training and the latent pitch probe.

One tracker with one set of settings, so that a target the codec learns and the error the
evaluation reports measure the same thing.
"""

from __future__ import annotations

import numpy as np

# Praat's defaults widened for children's and high synthetic voices.
F0_RANGE_HZ = (60.0, 500.0)
TIME_STEP_S = 0.01


def pitch_track(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Praat's autocorrelation tracker every 10 ms.

    Args:
        audio: mono samples [T].
        rate: their sample rate.

    Returns:
        (times [N] in seconds, each analysis frame's centre; F0 [N] in Hz, 0 where unvoiced).
        A clip too short for one analysis window gives empty arrays.
    """
    import parselmouth

    try:
        pitch = parselmouth.Sound(np.asarray(audio, np.float64), sampling_frequency=rate).to_pitch_ac(
            time_step=TIME_STEP_S, pitch_floor=F0_RANGE_HZ[0], pitch_ceiling=F0_RANGE_HZ[1])
    except parselmouth.PraatError:
        return np.zeros(0), np.zeros(0)
    return np.asarray(pitch.xs(), np.float64), np.asarray(pitch.selected_array["frequency"], np.float64)


def frame_pitch(audio: np.ndarray, rate: int, hop_length: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Pitch on the codec's frames: frame f covers samples [f * hop, (f + 1) * hop).

    Each codec frame pools the 10 ms track frames centred inside it (two at 50 Hz): it is voiced
    when at least half of them are, and its log-F0 is the mean over its voiced ones. A frame
    with no track frame inside (the clip's edges, where Praat's window does not fit) takes the
    nearest one's.

    Args:
        audio: mono samples [T] at `rate`.
        rate, hop_length: the codec's sample rate and hop (16000 / 320 = 50 Hz).
        frames: how many frames to return (the codec's ceil(T / hop)).

    Returns:
        (log_f0 [frames] float32, natural log of Hz, 0 where unvoiced; voiced [frames] bool).
    """
    times, f0 = pitch_track(audio, rate)
    log_f0, voiced = np.zeros(frames, np.float32), np.zeros(frames, bool)
    if not len(times) or not frames:
        return log_f0, voiced
    frame_s = hop_length / rate
    owner = np.floor(times / frame_s).astype(np.int64)  # [N]: the codec frame each track frame falls in
    inside = (owner >= 0) & (owner < frames)
    count = np.bincount(owner[inside], minlength=frames)
    is_voiced = f0 > 0
    voiced_count = np.bincount(owner[inside], weights=is_voiced[inside], minlength=frames)
    log_sum = np.bincount(owner[inside], weights=np.log(np.where(is_voiced, f0, 1.0))[inside], minlength=frames)
    # Frames no track frame falls in take the nearest track frame.
    empty = np.flatnonzero(count == 0)
    nearest = np.abs(times[None, :] - ((empty + 0.5) * frame_s)[:, None]).argmin(1)
    count[empty], voiced_count[empty] = 1, is_voiced[nearest]
    log_sum[empty] = np.log(np.where(is_voiced[nearest], f0[nearest], 1.0))
    voiced[:] = voiced_count >= 0.5 * count
    log_f0[voiced] = (log_sum[voiced] / voiced_count[voiced]).astype(np.float32)
    return log_f0, voiced
