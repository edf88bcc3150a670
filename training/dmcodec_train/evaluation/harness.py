"""`dmcodec-train eval`: resynthesise a manifest's split with each checkpoint and score it.

For every checkpoint: ASR WER/WIL on the resynthesised speech against the reference transcript
and against ASR on the original audio, STOI, wideband PESQ, ViSQOL (speech mode), log-mel
distance, per-level codebook usage and perplexity, and the bitrate. The originals' own ASR
scores form the first row, as the paper's Table 1 does ("Ground truth"). Opus rows, when asked
for, score the classical codec on the same clips. With the latent pitch probe, each model's row
says how much pitch its tokens carry (`pitch_probe.py`), and the originals' row what the probe
reads from their log-mel.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dmcodec.audio import load_audio
from dmcodec.tokenizer import Tokenizer

from ..data.manifest import read_manifest
from ..mel import mel_distance
from ..tables import format_cell
from ..teachers.asr import Recognizer
from .metrics import (
    codebook_statistics,
    periodicity_frames,
    periodicity_score,
    pesq_wideband,
    pitch_errors,
    stoi,
    visqol_speech,
    word_errors,
)
from .opus import opus_roundtrip
from .pitch_probe import PitchProbe, ProbeClips, latent_featurizer, log_mel_features

SAMPLE_RATE = 16000  # the metrics' rate (PESQ wideband, Whisper)
PROBE_HOP = 320  # the log-mel reference of the pitch probe on the codecs' 50 Hz frames
# The probe trains on the first seconds of each train clip: many voices matter more than long
# clips (300 clips of 2 s read v1's latent as well as whole clips did, in half the time).
PROBE_TRAIN_SECONDS = 2.0


@dataclass
class Result:
    """One row of the table."""

    name: str
    scores: dict[str, float]
    levels: list[dict[str, float]] = field(default_factory=list)
    # Each metric per clip, in the manifest's order (what paired tests between models compare).
    per_utterance: dict[str, list[float]] = field(default_factory=dict)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


@dataclass
class _Scorer:
    """Scores resynthesised versions of one set of clips against the originals and what the
    ASR heard in them (computed once, shared by every row). Without a recognizer only the
    signal measures are computed (a quick probe)."""

    originals: list[np.ndarray]
    references: list[str]
    original_asr: list[str]
    recognizer: Recognizer | None
    visqol: bool
    progress: bool
    # Each original's pitch on the periodicity frames (one Praat track per clip for every row).
    pitch_frames: list[tuple[np.ndarray, np.ndarray]] = field(init=False)

    def __post_init__(self) -> None:
        self.pitch_frames = [periodicity_frames(a, SAMPLE_RATE) for a in self.originals]

    def __call__(self, name: str, decoded: list[np.ndarray],
                 bitrate_kbps: float) -> tuple[dict[str, float], dict[str, list[float]]]:
        """The means over the clips, and each metric per clip."""
        rate = SAMPLE_RATE
        per_clip: dict[str, list[float]] = {"stoi": [], "pesq": [], "visqol": [], "mel_distance": [],
                                            "f0_rmse_cents": [], "vuv_error": [], "periodicity": []}
        clips = list(zip(self.originals, decoded, self.pitch_frames))
        for original, audio, pitch in tqdm(clips, desc=f"scoring {name}", disable=not self.progress):
            per_clip["stoi"].append(stoi(original, audio, rate))
            per_clip["pesq"].append(pesq_wideband(original, audio, rate))
            for key, value in pitch_errors(original, audio, rate).items():
                per_clip[key].append(value)
            per_clip["periodicity"].append(periodicity_score(original, audio, rate, pitch))
            if self.visqol:
                per_clip["visqol"].append(visqol_speech(original, audio, rate))
            per_clip["mel_distance"].append(mel_distance(torch.from_numpy(audio)[None],
                                                         torch.from_numpy(original)[None], rate))
        scores = {**{k: _mean(v) for k, v in per_clip.items()}, "bitrate_kbps": bitrate_kbps}
        per_clip = {k: v for k, v in per_clip.items() if v}
        if self.recognizer is not None:
            words, words_per_clip = self.words(name, decoded)
            scores.update(words)
            per_clip.update(words_per_clip)
        return scores, per_clip

    def words(self, name: str, decoded: list[np.ndarray]) -> tuple[dict[str, float], dict[str, list[float]]]:
        """WER/WIL against the transcripts and against what the ASR heard in the originals."""
        hypotheses = [self.recognizer.transcribe(audio)[0]
                      for audio in tqdm(decoded, desc=f"ASR {name}", disable=not self.progress)]
        versus_original = word_errors(self.original_asr, hypotheses)
        scores = {**word_errors(self.references, hypotheses), "wer_vs_original_asr": versus_original["wer"],
                  "wil_vs_original_asr": versus_original["wil"]}
        # The means above weight clips by their words (corpus WER); per clip, each its own.
        clip_errors = [word_errors([r], [h]) for r, h in zip(self.references, hypotheses)]
        clip_versus_original = [word_errors([o], [h])["wer"] for o, h in zip(self.original_asr, hypotheses)]
        return scores, {"wer": [e["wer"] for e in clip_errors], "wil": [e["wil"] for e in clip_errors],
                        "wer_vs_original_asr": clip_versus_original}


def evaluate(manifest: str | Path, checkpoints: list[str | Path], split: str = "test", limit: int | None = None,
             n_q: int | None = None, recognizer: Recognizer | None = None, visqol: bool = True,
             progress: bool = True, opus_kbps: tuple[float, ...] = (), asr: bool = True,
             probe_clips: int = 0, probe_manifest: str | Path | None = None,
             probe: PitchProbe | None = None, rvq1: bool = False) -> list[Result]:
    """Rows: the originals first, then one per checkpoint (in the order given), then Opus at
    each of `opus_kbps`. asr=False leaves the word error rates out (no Whisper runs).
    probe_clips: train the latent pitch probe on this many clips of the train split of
    `probe_manifest` (default `manifest`), spread evenly over it (their first
    `PROBE_TRAIN_SECONDS`); 0 leaves the probe out. probe: its settings (default `PitchProbe()`).
    rvq1 (with ASR): each model's row also gets the word error rates of RVQ-1 alone (`rvq1_wer`,
    ...), the phonetic content the distillation puts into the first level, from the same codes."""
    utterances = read_manifest(manifest, split)[:limit]
    if not utterances:
        raise ValueError(f"{manifest}: no utterances in split {split!r}")
    recognizer = (recognizer or Recognizer()) if asr else None
    originals = [load_audio(u.path, SAMPLE_RATE)[0] for u in utterances]
    references = [u.transcript for u in utterances]
    original_asr = [] if recognizer is None else [
        recognizer.transcribe(a)[0] for a in tqdm(originals, desc="ASR originals", disable=not progress)]
    score = _Scorer(originals, references, original_asr, recognizer, visqol, progress)
    # The originals' own periodicity is the ceiling the codecs' column reads against.
    own_periodicity = [periodicity_score(a, a, SAMPLE_RATE, p) for a, p in zip(originals, score.pitch_frames)]
    rows = [Result("original", {**(word_errors(references, original_asr) if asr else {}), "bitrate_kbps": 256.0,
                                "periodicity": _mean(own_periodicity)},
                   per_utterance={"id": [u.id for u in utterances], "periodicity": own_periodicity})]

    probe, clips = probe or PitchProbe(), _probe_clips(probe_manifest or manifest, probe_clips, originals)
    if clips is not None:
        # What a representation of the audio itself gives: the reference for the models' rows.
        rows[0].scores["pitch_probe_cents"] = clips.score(
            probe, PROBE_HOP, lambda audios: [log_mel_features(a, SAMPLE_RATE, PROBE_HOP) for a in audios])

    for checkpoint in checkpoints:
        with Tokenizer.from_pretrained(checkpoint) as tokenizer:
            loaded = tokenizer.codec
            if loaded.config.sample_rate != SAMPLE_RATE:
                raise ValueError(f"{checkpoint}: evaluation runs at 16 kHz, the model at {loaded.config.sample_rate}")
            codes = tokenizer.encode_arrays(originals, n_q)
            decoded = tokenizer.decode_many([(c, len(a)) for c, a in zip(codes, originals)])
            scores, per_clip = score(loaded.name, decoded, loaded.config.bitrate(n_q) / 1000)
            if rvq1 and recognizer is not None and len(codes[0]) > 1:
                # RVQ-1's codes do not depend on how many levels follow it: slice, not re-encode.
                first = tokenizer.decode_many([(c[:1], len(a)) for c, a in zip(codes, originals)])
                words, words_per_clip = score.words(f"{loaded.name} RVQ-1", first)
                scores.update({f"rvq1_{k}": v for k, v in words.items()})
                per_clip.update({f"rvq1_{k}": v for k, v in words_per_clip.items()})
            if clips is not None:
                scores["pitch_probe_cents"] = clips.score(probe, loaded.config.hop_length,
                                                          latent_featurizer(tokenizer, n_q))
        rows.append(Result(loaded.name, scores, codebook_statistics(codes, loaded.config.codebook_size), per_clip))
    for kbps in opus_kbps:
        name = f"opus-{kbps:g}kbps"
        scores, per_clip = score(name, [opus_roundtrip(a, SAMPLE_RATE, kbps) for a in originals], kbps)
        rows.append(Result(name, scores, per_utterance=per_clip))
    return rows


def _probe_clips(manifest: str | Path, count: int, originals: list[np.ndarray]) -> ProbeClips | None:
    if not count:
        return None
    train = read_manifest(manifest, "train")
    if not train:
        raise ValueError(f"{manifest}: the pitch probe trains on a train split, and this manifest has none "
                         "(--probe-manifest: the corpus manifest)")
    chosen = train[:: max(1, len(train) // count)][:count]
    crop = int(PROBE_TRAIN_SECONDS * SAMPLE_RATE)
    return ProbeClips([load_audio(u.path, SAMPLE_RATE)[0][:crop] for u in chosen], originals, SAMPLE_RATE)


# (header, score key, format): word error rates are percentages, shown like the paper's tables.
_COLUMNS = [("WER", "wer", ".1f"), ("WIL", "wil", ".1f"), ("WER vs orig. ASR", "wer_vs_original_asr", ".1f"),
            ("RVQ-1 WER vs orig. ASR", "rvq1_wer_vs_original_asr", ".1f"),
            ("ViSQOL", "visqol", ".2f"), ("STOI", "stoi", ".3f"), ("PESQ-wb", "pesq", ".2f"),
            ("Mel dist.", "mel_distance", ".3f"), ("F0 RMSE (cents)", "f0_rmse_cents", ".0f"),
            ("V/UV err. %", "vuv_error", ".1f"), ("Periodicity", "periodicity", ".2f"),
            ("Pitch probe (cents)", "pitch_probe_cents", ".0f"),
            ("kbps", "bitrate_kbps", ".1f")]


def to_markdown(rows: list[Result], title: str = "") -> str:
    """The paper's Table 1 layout (WER, WIL, ViSQOL, STOI) with our extra columns, then the
    per-level codebook usage of each model."""
    lines = [f"### {title}", ""] if title else []
    lines += ["| Model | " + " | ".join(h for h, _, _ in _COLUMNS) + " |",
              "|---|" + "---|" * len(_COLUMNS)]
    for row in rows:
        cells = (format_cell(row.scores.get(k), spec) for _, k, spec in _COLUMNS)
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    coded = [r for r in rows if r.levels]
    if coded:
        n = len(coded[0].levels)
        lines += ["", "Codebook usage (share of codes used) / perplexity per RVQ level:", "",
                  "| Model | " + " | ".join(f"L{i + 1}" for i in range(n)) + " |", "|---|" + "---|" * n]
        for row in coded:
            lines.append(f"| {row.name} | " + " | ".join(f"{lv['usage']:.2f} / {lv['perplexity']:.0f}"
                                                         for lv in row.levels) + " |")
    return "\n".join(lines) + "\n"


def write_report(rows: list[Result], out: str | Path, title: str = "") -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = [{"name": r.name, "scores": r.scores, "levels": r.levels, "per_utterance": r.per_utterance} for r in rows]
    (out / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / "results.md").write_text(to_markdown(rows, title))
    return out / "results.json", out / "results.md"
