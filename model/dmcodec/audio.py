"""Reading any audio soundfile understands into mono float32 at the model's rate, and writing WAV."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import soundfile as sf
import soxr

AudioSource = Union[str, Path, bytes, BinaryIO]


AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au"})


def find_audio_files(root: str | Path) -> list[Path]:
    """Audio files below `root` (by suffix), recursively, sorted."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


class AudioError(ValueError):
    """The input is not decodable audio, or holds no samples."""


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


def read_audio(source: AudioSource) -> tuple[np.ndarray, int]:
    """Decode a file path, bytes or binary file object -> (samples [T, C] float32, rate)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioError("the upload is empty (0 bytes)")
        source = io.BytesIO(bytes(source))
    try:
        samples, rate = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        name = f"{source}: " if isinstance(source, (str, Path)) else ""
        raise AudioError(f"{name}not a readable audio file ({err})") from err
    return samples, rate


def info(source: AudioSource) -> tuple[float, int]:
    """(duration in seconds, rate) from the header alone, without decoding the samples."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        meta = sf.info(source)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"not a readable audio file ({err})") from err
    return meta.frames / meta.samplerate if meta.samplerate else 0.0, meta.samplerate


def load_audio(source: AudioSource, target_rate: int) -> tuple[np.ndarray, int]:
    """Decode and convert to mono float32 at `target_rate`. Returns (samples [T], original rate)."""
    samples, rate = read_audio(source)
    return prepare(samples, rate, target_rate), rate


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """Mono float samples -> 16-bit PCM WAV bytes (clipped to [-1, 1])."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    Path(path).write_bytes(wav_bytes(samples, rate))
