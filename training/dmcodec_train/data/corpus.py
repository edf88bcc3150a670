"""The offline corpus builder: generated texts spoken by every installed synthetic voice at
varied rates and pitches, augmented, written as 16 kHz WAV files with a manifest.

Splits are disjoint by text, and the test split also by voice: `test` holds texts no other
split has, spoken only by the held-out voices (`voices.TEST_VOICES`); `dev` has unseen texts
in training voices. Everything follows from the seed, whatever the number of workers.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dmcodec.audio import write_wav

from .augment import Augmentation
from .manifest import Utterance, write_manifest
from .texts import generate_sentences
from .voices import TEST_VOICES, Voice, available_voices

SAMPLE_RATE = 16000


@dataclass
class CorpusSpec:
    """What to build.

    utterances: total count over the three splits.
    dev_fraction, test_fraction: shares of the texts held out for dev and test.
    rate, pitch: ranges of the speaking-rate and pitch factors drawn per utterance.
    augment_splits: splits that get `augmentation` (evaluation splits stay clean by default).
    """

    utterances: int = 2000
    seed: int = 0
    dev_fraction: float = 0.04
    test_fraction: float = 0.04
    rate: tuple[float, float] = (0.85, 1.2)
    pitch: tuple[float, float] = (0.8, 1.25)
    augmentation: Augmentation = field(default_factory=Augmentation)
    augment_splits: tuple[str, ...] = ("train",)


@dataclass(frozen=True)
class _Job:
    index: int
    text: str
    split: str
    voice: Voice
    # Voices of the same split to try, in order, when `voice` cannot say the text (some
    # festival voices of other languages write an empty file for some words).
    fallbacks: tuple[Voice, ...] = ()


def _plan(spec: CorpusSpec, voices: list[Voice]) -> list[_Job]:
    test_voices = [v for v in voices if v.id in TEST_VOICES]
    train_voices = [v for v in voices if v.id not in TEST_VOICES]
    if not test_voices or not train_voices:
        raise RuntimeError(f"need at least one held-out voice ({', '.join(TEST_VOICES)}) and one other; "
                           f"installed: {', '.join(v.id for v in voices) or 'none'}")
    texts = generate_sentences(spec.utterances, spec.seed)
    n_test = max(1, round(spec.utterances * spec.test_fraction))
    n_dev = max(1, round(spec.utterances * spec.dev_fraction))
    rng = np.random.default_rng(spec.seed)
    jobs = []
    for index, text in enumerate(texts):
        split = "test" if index < n_test else "dev" if index < n_test + n_dev else "train"
        pool = test_voices if split == "test" else train_voices
        first = int(rng.integers(len(pool)))
        order = pool[first:] + pool[:first]
        jobs.append(_Job(index, text, split, order[0], tuple(order[1:3])))
    return jobs


def _render(job: _Job, spec: CorpusSpec, out: Path) -> tuple[Utterance, dict]:
    rng = np.random.default_rng([spec.seed, job.index])
    rate, pitch = float(rng.uniform(*spec.rate)), float(rng.uniform(*spec.pitch))
    failed = []
    for voice in (job.voice, *job.fallbacks):
        try:
            audio = voice.synthesize(job.text, rate, pitch, SAMPLE_RATE)
            break
        except (RuntimeError, ValueError, OSError, subprocess.SubprocessError):
            failed.append(voice.id)
    else:
        raise RuntimeError(f"no voice could say utterance {job.index} ({', '.join(failed)}): {job.text!r}")
    record = {"voice": voice.id, "rate": round(rate, 3), "pitch": round(pitch, 3),
              **({"failed_voices": failed} if failed else {})}
    if job.split in spec.augment_splits:
        audio, effects = spec.augmentation.apply(audio, SAMPLE_RATE, rng)
        record.update(effects)
    else:
        audio = audio * (0.5 / max(float(np.max(np.abs(audio))), 1e-6))
    utterance_id = f"{job.split}-{job.index:06d}"
    path = out / "audio" / job.split / f"{utterance_id}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, audio, SAMPLE_RATE)
    utterance = Utterance(utterance_id, str(path.relative_to(out)), round(len(audio) / SAMPLE_RATE, 4),
                          job.text, voice.id, job.split)
    return utterance, {"id": utterance_id, **record}


def build_corpus(out: str | Path, spec: CorpusSpec | None = None, workers: int = 2,
                 voices: list[Voice] | None = None, progress: bool = True) -> Path:
    """Render the corpus into `out` (audio/<split>/*.wav, manifest.jsonl, corpus.json with the
    spec and each utterance's voice, rate, pitch and effects). Returns the manifest path."""
    spec = spec or CorpusSpec()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    voices = voices if voices is not None else available_voices()
    jobs = _plan(spec, voices)
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(_render, job, spec, out) for job in jobs]
        results = [f.result() for f in tqdm(futures, desc="synthesising", unit="utt", disable=not progress)]
    manifest = write_manifest([u for u, _ in results], out / "manifest.jsonl")
    summary = {
        "spec": asdict(spec),
        "voices": [v.id for v in voices],
        "test_voices": [v.id for v in voices if v.id in TEST_VOICES],
        "hours": round(sum(u.duration for u, _ in results) / 3600, 4),
        "utterances": [record for _, record in results],
    }
    (out / "corpus.json").write_text(json.dumps(summary, indent=1) + "\n")
    return manifest
