"""Every upload format decodes block by block to 16 kHz mono, under the same limits: WAV and
FLAC through libsndfile, WebM/Opus, Ogg/Opus, M4A/AAC and MP3 as browsers and phones make them."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from helpers import RECORDED_FORMATS, encode_audio

from dmcodec.audio import AudioError, AudioLimitError, AudioLimits, load_audio
from dmcodec.signals import speech_like


def spectrum(samples: np.ndarray) -> np.ndarray:
    # Codecs shift and smear samples; the long-term spectrum survives them.
    return np.abs(np.fft.rfft(samples[:16000] * np.hanning(16000)))[:4000]


@pytest.mark.parametrize("name", [*sorted(RECORDED_FORMATS), "wav", "flac"])
def test_each_format_decodes_to_the_same_speech(name):
    container, codec, rate = RECORDED_FORMATS.get(name, (name, None, 22050))
    original = speech_like(2.5, rate, seed=4)
    if codec is None:
        buffer = io.BytesIO()
        sf.write(buffer, original, rate, format=name.upper())
        data = buffer.getvalue()
    else:
        data = encode_audio(original, rate, container, codec)
    samples, found_rate = load_audio(data, 16000)
    reference = load_audio(io.BytesIO(_wav(original, rate)), 16000)[0]
    assert found_rate == rate and samples.dtype == np.float32
    assert abs(samples.size / 16000 - 2.5) < 0.06, samples.size
    assert np.corrcoef(spectrum(samples), spectrum(reference))[0, 1] > 0.9


def _wav(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def test_limits_hold_for_ffmpeg_formats_too():
    m4a = encode_audio(speech_like(3.0, 44100, seed=1), 44100, "ipod", "aac", channels=3)
    with pytest.raises(AudioLimitError, match="3 channels") as caught:
        load_audio(m4a, 16000, AudioLimits(max_channels=2))
    assert caught.value.limit == "channels"
    with pytest.raises(AudioLimitError, match="limit") as caught:
        load_audio(m4a, 16000, AudioLimits(max_seconds=1.0))
    assert caught.value.limit == "seconds"
    assert load_audio(m4a, 16000, AudioLimits(max_seconds=10, max_channels=8))[0].size > 40000


def test_damaged_ffmpeg_files_are_audio_errors():
    m4a = encode_audio(speech_like(2.0, 44100, seed=2), 44100, "ipod", "aac")
    with pytest.raises(AudioError):
        load_audio(m4a[: len(m4a) // 3], 16000)
    with pytest.raises(AudioError, match="not a readable audio file"):
        load_audio(b"\x1aE\xdf\xa3" + b"\x00" * 200, 16000)  # a WebM signature and nothing else


def test_rates_no_speech_has_are_refused_before_resampling():
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(5000, dtype=np.float32), 500, format="WAV")
    with pytest.raises(AudioError, match="500 Hz"):
        load_audio(buffer.getvalue(), 16000)
