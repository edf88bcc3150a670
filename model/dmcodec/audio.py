"""Reading audio (see `dmcodec.containers` for the formats) into mono float32 at the model's rate,
with bounded memory and limits; and writing WAV."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import soxr

from .containers import AudioError, AudioSource, AudioStream, open_audio

__all__ = ["MIN_SAMPLE_RATE", "AudioError", "AudioLimitError", "AudioLimits", "AudioSource", "find_audio_files", "info",
           "load_audio", "pcm16", "prepare", "resample", "to_mono", "wav_bytes", "wav_header", "write_wav"]

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".webm", ".m4a",
                            ".mp4", ".aac"})


def find_audio_files(root: str | Path) -> list[Path]:
    """Audio files below `root` (by suffix), recursively, sorted."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """[T] or [T, C] -> [T] float32, channels averaged."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.ndim != 1:
        raise AudioError(f"expected audio of shape [T] or [T, channels], got {samples.shape}")
    return samples


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    if rate == target_rate:
        return samples
    return soxr.resample(samples, rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def prepare(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Any array at any rate -> mono float32 at `target_rate`; rejects empty or non-finite audio."""
    mono = to_mono(samples)
    if mono.size == 0:
        raise AudioError("the audio holds no samples")
    if not np.isfinite(mono).all():
        raise AudioError("the audio holds NaN or infinite samples")
    if rate <= 0:
        raise AudioError(f"invalid sample rate {rate}")
    out = resample(mono, rate, target_rate)
    if out.size == 0:
        raise AudioError(f"the audio is shorter than one sample at {target_rate} Hz")
    return out


@dataclass(frozen=True)
class AudioLimits:
    """What an input may hold; None: no limit. Checked from the header before decoding, and
    again while decoding (a header may lie or leave the length unknown)."""

    max_seconds: Optional[float] = None
    max_channels: Optional[int] = None
    max_sample_rate: Optional[int] = None


NO_LIMITS = AudioLimits()
MIN_SAMPLE_RATE = 1000  # below this nothing is speech, and resampling up would multiply the size


class AudioLimitError(AudioError):
    """The input is readable audio beyond a limit. `limit`: seconds, channels or sample_rate."""

    def __init__(self, limit: str, message: str):
        super().__init__(message)
        self.limit = limit


def _check_header(stream: AudioStream, limits: AudioLimits) -> None:
    if stream.rate < MIN_SAMPLE_RATE:
        raise AudioError(f"a sample rate of {stream.rate} Hz is not audio dmcodec reads (at least "
                         f"{MIN_SAMPLE_RATE} Hz)")
    if stream.channels < 1:
        raise AudioError("the audio has no channels")
    if limits.max_channels is not None and stream.channels > limits.max_channels:
        raise AudioLimitError("channels", f"the audio has {stream.channels} channels; at most "
                              f"{limits.max_channels} are accepted")
    if limits.max_sample_rate is not None and stream.rate > limits.max_sample_rate:
        raise AudioLimitError("sample_rate", f"the audio is sampled at {stream.rate} Hz; at most "
                              f"{limits.max_sample_rate} Hz is accepted")
    if limits.max_seconds is not None and stream.seconds is not None and stream.seconds > limits.max_seconds:
        raise AudioLimitError("seconds", f"audio is {stream.seconds:.1f} s; the limit is {limits.max_seconds:g} s")


def load_audio(source: AudioSource, target_rate: int, limits: AudioLimits = NO_LIMITS) -> tuple[np.ndarray, int]:
    """Decode a file path, bytes or binary file object to mono float32 at `target_rate`.
    Returns (samples [T], original rate).

    Decoding, mixing to mono and resampling run block by block (about one second of input
    each), so the memory an input costs follows its length at `target_rate` in mono, not its
    size as stored: a many-channel, high-rate file never exists decoded in full. Limits are
    checked from the header first, then against what is decoded (a header may lie, or not know
    the length). Raises AudioError (AudioLimitError beyond a limit)."""
    with open_audio(source) as stream:
        _check_header(stream, limits)
        rate = stream.rate
        resampler = None if rate == target_rate else \
            soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ")
        most = None if limits.max_seconds is None else int(limits.max_seconds * target_rate) + 1
        pieces, consumed = [], 0
        for block in stream.blocks:
            if limits.max_channels is not None and block.shape[1] > limits.max_channels:
                raise AudioLimitError("channels", f"the audio has {block.shape[1]} channels; at most "
                                      f"{limits.max_channels} are accepted")
            consumed += block.shape[0]
            if most is not None and consumed * target_rate / rate > most:  # before resampling allocates
                raise AudioLimitError("seconds", f"audio is longer than the limit of {limits.max_seconds:g} s")
            for first in range(0, block.shape[0], rate):  # a container's huge frame is resampled in pieces
                mono = block[first : first + rate].mean(axis=1)
                if not np.isfinite(mono).all():
                    raise AudioError("the audio holds NaN or infinite samples")
                pieces.append(resampler.resample_chunk(mono) if resampler else mono)
        if resampler:
            pieces.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    if samples.size == 0:
        raise AudioError("the audio holds no samples" if rate == target_rate or not pieces
                         else f"the audio is shorter than one sample at {target_rate} Hz")
    return samples, rate


def info(source: AudioSource) -> tuple[float, int]:
    """(duration in seconds, 0.0 when the header does not say; rate), without decoding."""
    with open_audio(source) as stream:
        return stream.seconds or 0.0, stream.rate


def wav_header(num_samples: int, rate: int) -> bytes:
    """The 44-byte header of a mono 16-bit PCM WAV holding `num_samples` samples."""
    data = num_samples * 2
    return b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + \
        struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data)


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples -> little-endian 16-bit PCM, clipped to [-1, 1], scaled as libsndfile does
    (floor of x * 32768), so a WAV sent in pieces equals the one written whole."""
    scaled = np.floor(np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype("<i2").tobytes()


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """Mono float samples -> 16-bit PCM WAV bytes (clipped to [-1, 1])."""
    return wav_header(len(samples), rate) + pcm16(samples)


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    Path(path).write_bytes(wav_bytes(samples, rate))
