"""The training manifest: one row per utterance (JSONL or Parquet), and readers that build one
from a plain folder of audio or from the LibriSpeech layout."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Optional

from dmcodec.audio import find_audio_files, info
from dmcodec.manifest import read_rows

SPLITS = ("train", "dev", "test")


@dataclass
class Utterance:
    """One recording.

    id: unique name. path: audio file (absolute, or relative to the manifest's folder).
    duration: seconds. transcript: what is said ("" when unknown: the teachers then use ASR).
    speaker: speaker or voice name. split: train, dev or test.
    """

    id: str
    path: str
    duration: float
    transcript: str = ""
    speaker: str = ""
    split: str = "train"

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"utterance {self.id!r}: split must be one of {SPLITS}, got {self.split!r}")


def write_manifest(utterances: Iterable[Utterance], path: str | Path) -> Path:
    """JSONL when the name ends in .jsonl, Parquet when it ends in .parquet."""
    path = Path(path)
    rows = [asdict(u) for u in utterances]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    else:
        raise ValueError(f"{path}: manifests are .jsonl or .parquet")
    return path


def read_manifest(path: str | Path, split: Optional[str] = None) -> list[Utterance]:
    """Rows of a manifest, paths made absolute; only those of `split` when given."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such manifest")
    names = {f.name for f in fields(Utterance)}
    utterances, seen = [], set()
    for number, row in enumerate(read_rows(path), 1):
        missing = {"id", "path", "duration"} - set(row)
        if missing:
            raise ValueError(f"{path}: row {number} lacks {sorted(missing)}")
        row = {k: v for k, v in row.items() if k in names}
        audio = Path(row["path"])
        row["path"] = str(audio if audio.is_absolute() else (path.parent / audio).resolve())
        row["duration"] = float(row["duration"])
        if row["id"] in seen:
            raise ValueError(f"{path}: duplicate id {row['id']!r} (row {number})")
        seen.add(row["id"])
        utterance = Utterance(**row)
        if split is None or utterance.split == split:
            utterances.append(utterance)
    return utterances


def from_folder(root: str | Path, split: str = "train") -> list[Utterance]:
    """Every audio file under `root` (any format soundfile reads). A transcript is read from a
    `.txt` file of the same name when there is one; the speaker is the parent folder's name."""
    root = Path(root)
    utterances = []
    for audio in find_audio_files(root):
        text_file = audio.with_suffix(".txt")
        transcript = text_file.read_text().strip() if text_file.exists() else ""
        duration, _ = info(audio)
        utterances.append(Utterance(str(audio.relative_to(root).with_suffix("")), str(audio.resolve()),
                                    duration, transcript, audio.parent.name, split))
    return utterances


def from_librispeech(root: str | Path, split: str = "train") -> list[Utterance]:
    """The LibriSpeech layout: root/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac, with the
    transcripts in root/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt."""
    root = Path(root)
    utterances = []
    for transcript_file in sorted(root.glob("*/*/*.trans.txt")):
        for line in transcript_file.read_text().splitlines():
            if not line.strip():
                continue
            utterance_id, _, text = line.partition(" ")
            audio = transcript_file.parent / f"{utterance_id}.flac"
            if not audio.exists():
                raise ValueError(f"{transcript_file}: lists {utterance_id} but {audio} is missing")
            duration, _ = info(audio)
            utterances.append(Utterance(utterance_id, str(audio.resolve()), duration, text.strip(),
                                        utterance_id.split("-")[0], split))
    if not utterances:
        raise ValueError(f"{root}: no LibriSpeech *.trans.txt files found two levels down")
    return utterances
