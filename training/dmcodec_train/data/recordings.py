"""Real human recordings that Debian packages install, gathered as a held-out test manifest.

They are the only real speech on a machine without downloads, so they never go into training:
`dmcodec-train recordings` writes them as a test split for `dmcodec-train eval`.
- `alsa-utils`: eight channel-name clips ("Front Left", ...), one male voice, 48 kHz.
- `pocketsphinx-testdata`: five LibriVox sentences (a female reader of *Sense and Sensibility*)
  and five read card names, each with a Sphinx transcription file.
"""

from __future__ import annotations

import re
from pathlib import Path

from dmcodec.audio import info

from .manifest import Utterance

ALSA_DIR = Path("/usr/share/sounds/alsa")
POCKETSPHINX_DIR = Path("/usr/share/pocketsphinx/test/data")
# folder under POCKETSPHINX_DIR -> its Sphinx transcription file
_SPHINX_SETS = {"librivox": "transcription", "cards": "cards.transcription"}
_SPHINX_LINE = re.compile(r"^<s>\s*(?P<text>.*?)\s*</s>\s*\((?P<id>[^)]+)\)\s*$")


def _utterance(audio: Path, transcript: str, speaker: str) -> Utterance:
    duration, _ = info(audio)
    return Utterance(f"{speaker}/{audio.stem}", str(audio), duration, transcript, speaker, "test")


def alsa(root: Path = ALSA_DIR) -> list[Utterance]:
    """The spoken channel names; `Noise.wav` is not speech and is left out."""
    return [_utterance(wav, wav.stem.replace("_", " ").lower(), "alsa")
            for wav in sorted(root.glob("*.wav")) if wav.stem != "Noise"]


def sphinx_transcription(path: Path) -> dict[str, str]:
    """`<s> words </s> (id)` lines -> {id: words}."""
    entries = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        match = _SPHINX_LINE.match(line.strip())
        if match is None:
            raise ValueError(f"{path}: line {number} is not '<s> words </s> (id)'")
        entries[match["id"]] = " ".join(match["text"].split())
    return entries


def pocketsphinx(root: Path = POCKETSPHINX_DIR) -> list[Utterance]:
    utterances = []
    for folder, transcription in _SPHINX_SETS.items():
        directory = root / folder
        if not (directory / transcription).exists():
            continue
        for utterance_id, text in sphinx_transcription(directory / transcription).items():
            wav = directory / f"{utterance_id}.wav"
            if not wav.exists():
                raise ValueError(f"{directory / transcription}: lists {utterance_id} but {wav} is missing")
            utterances.append(_utterance(wav, text, f"pocketsphinx-{folder}"))
    return utterances


def installed_recordings() -> list[Utterance]:
    """Every set above that is installed; an error names the packages when none is."""
    utterances = alsa() + pocketsphinx()
    if not utterances:
        raise ValueError("no recordings found: install alsa-utils and/or pocketsphinx-testdata")
    return utterances
