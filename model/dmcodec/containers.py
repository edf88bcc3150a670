"""Opening audio containers as streams of blocks: libsndfile (WAV, FLAC, OGG/Vorbis/Opus, MP3,
AIFF, ...) first, FFmpeg through PyAV (WebM/Opus from browsers, MP4/M4A/AAC from phones, and
whatever else FFmpeg reads) when libsndfile does not know the format and PyAV is installed.

Either way the caller sees the same thing: the header (rate, channels, duration when known) and
an iterator of float32 blocks [T, C], so that limits are checked before decoding and nothing is
ever decoded in full.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Optional, Union

import numpy as np
import soundfile as sf

AudioSource = Union[str, Path, bytes, BinaryIO]
UNKNOWN_FRAMES = 2**62  # libsndfile reports SF_COUNT_MAX when a stream's length is unknown


class AudioError(ValueError):
    """The input is not decodable audio, or holds no samples."""


@dataclass
class AudioStream:
    rate: int
    channels: int
    seconds: Optional[float]  # from the header; None when it does not say
    blocks: Iterator[np.ndarray]  # float32 [T, C]


def _rewound(source: Any) -> Any:
    if hasattr(source, "seek"):
        source.seek(0)
    return source


def _soundfile_blocks(f: sf.SoundFile) -> Iterator[np.ndarray]:
    try:
        yield from f.blocks(blocksize=f.samplerate, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        reason = err.error_string if isinstance(err, sf.LibsndfileError) else "corrupt data"
        raise AudioError(f"the audio could not be decoded ({reason})") from None


def _pyav_blocks(container: Any, stream: Any) -> Iterator[np.ndarray]:
    import av

    planar = av.AudioResampler(format="fltp")  # same rate and layout: only the sample format changes
    try:
        for frame in container.decode(stream):
            if frame.sample_rate != stream.rate:
                raise AudioError("the sample rate changes within the stream")
            for converted in planar.resample(frame):
                yield converted.to_ndarray().T  # [C, T] -> [T, C]
    except (av.FFmpegError, ValueError):  # ValueError: the layout or format changed mid-stream
        raise AudioError("the audio could not be decoded (corrupt data)") from None


@contextlib.contextmanager
def _open_pyav(source: Any) -> Iterator[Optional[AudioStream]]:
    try:
        import av
    except ImportError:
        yield None
        return
    try:
        container = av.open(_rewound(source), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError):
        yield None
        return
    with container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None or not stream.rate:
            yield None
            return
        if stream.duration is not None and stream.time_base:
            seconds: Optional[float] = float(stream.duration * stream.time_base)
        else:
            seconds = container.duration / av.time_base if container.duration else None
        yield AudioStream(stream.rate, stream.channels, seconds, _pyav_blocks(container, stream))


@contextlib.contextmanager
def open_audio(source: AudioSource) -> Iterator[AudioStream]:
    """The stream of a path, bytes or binary file object; raises AudioError if nothing reads it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioError("the upload is empty (0 bytes)")
        source = io.BytesIO(bytes(source))
    try:
        f = sf.SoundFile(source)
    except sf.LibsndfileError as err:
        # error_string is libsndfile's reason alone; str(err) would name the Python object read.
        reason = err.error_string
    except (RuntimeError, TypeError, ValueError):
        reason = "unsupported or corrupt"
    else:
        with f:
            frames = f.frames if 0 < f.frames < UNKNOWN_FRAMES else None
            yield AudioStream(f.samplerate, f.channels, frames / f.samplerate if frames and f.samplerate else None,
                              _soundfile_blocks(f))
        return
    with _open_pyav(source) as stream:
        if stream is not None:
            yield stream
            return
    name = f"{source}: " if isinstance(source, (str, Path)) else ""
    raise AudioError(f"{name}not a readable audio file ({reason})")
