"""Corpora as the speech-LM pipelines hold them: Lhotse cut manifests and Hugging Face datasets.

- A Lhotse cuts manifest (`.jsonl` or `.jsonl.gz`, as `CutSet.to_file` writes it): each cut is a
  segment (its recording's file, offset and duration) and keeps its supervisions and custom
  fields as output columns. `attach_codes` then writes the cuts back with the codes attached
  through Lhotse's temporal arrays, so that `cut.load_custom("codes")` returns [frames, n_q].
  Lhotse slices a temporal array by the cut's duration, to round(duration / frame shift)
  frames (halves up): a last frame that covers under half a frame shift of the cut is left out
  (a 1.705 s cut: 85 of its 86 frames). `cut.custom["codes"].load()` returns every frame, and
  they decode to the cut's whole length, `codes_num_samples` (a custom field). The `input_ids`
  of a layout are attached whole, as a plain array.
- A Hugging Face dataset saved with `save_to_disk`, or a Parquet file with an `Audio` column
  (bytes or path): each row is an item; the other columns pass through.

Both need their libraries (the `pipelines` extra); nothing here is imported otherwise.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .manifest import Item, extra_schema, read_items

FRAME_SHIFT_S = 0.02  # the codes' frame shift at 50 frames/s


def is_lhotse_cuts(source: Path) -> bool:
    """A JSONL(.gz) whose first record is a cut (it has a recording and a duration)."""
    name = source.name.lower()
    if not (name.endswith(".jsonl") or name.endswith(".jsonl.gz")) or not source.is_file():
        return False
    opener: Callable[..., Any] = gzip.open if name.endswith(".gz") else open
    with opener(source, "rt") as f:
        first = f.readline()
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(record, dict) and "recording" in record and "duration" in record


def read_lhotse_cuts(source: Path) -> list[Item]:
    from lhotse import CutSet

    items = []
    for cut in CutSet.from_file(source):
        files = [s.source for s in cut.recording.sources if s.type == "file"]
        if len(files) != 1:
            raise ValueError(f"{source}: cut {cut.id}: only recordings from one audio file are supported")
        path = Path(files[0]) if Path(files[0]).is_absolute() else source.parent / files[0]
        extra = {"supervisions": json.dumps([s.to_dict() for s in cut.supervisions]),
                 "custom": json.dumps(cut.custom or {}, default=str)}
        items.append(Item(cut.id, str(path), cut.duration, cut.start, cut.start + cut.duration, extra))
    return items


def attach_codes(source: Path, out: Path, codes: dict[str, np.ndarray], num_samples: dict[str, np.ndarray],
                 input_ids: Optional[dict[str, np.ndarray]] = None) -> Path:
    """`out/cuts.jsonl.gz`: the cuts of `source` that have codes, each with a `codes` temporal
    array ([frames, n_q] uint16 in `out/lhotse_codes/`, frame shift 0.02 s), the length its codes
    decode to (`codes_num_samples`) and, given, its `input_ids` (an int32 array) attached.

    Args:
        codes, num_samples, input_ids: by cut id, as `store.read_codes` reads those columns.
    """
    from lhotse import CutSet
    from lhotse.features.io import NumpyFilesWriter

    attached = []
    with NumpyFilesWriter(out / "lhotse_codes") as writer:
        for cut in CutSet.from_file(source):
            if cut.id in codes:
                array = writer.store_array(cut.id, codes[cut.id].T.astype(np.uint16), frame_shift=FRAME_SHIFT_S,
                                           temporal_dim=0, start=cut.start)
                cut = cut.with_custom("codes", array).with_custom("codes_num_samples", int(num_samples[cut.id]))
                if input_ids is not None:
                    cut = cut.with_custom("input_ids", writer.store_array(f"{cut.id}.input_ids",
                                                                          input_ids[cut.id].astype(np.int32)))
                attached.append(cut)
    target = out / "cuts.jsonl.gz"
    CutSet.from_cuts(attached).to_file(target)
    return target


def is_hf_dataset(source: Path) -> bool:
    """A folder written by `Dataset.save_to_disk`."""
    return source.is_dir() and (source / "dataset_info.json").exists() and (source / "state.json").exists()


def _audio_column(schema: pa.Schema) -> Optional[str]:
    for field in schema:
        if pa.types.is_struct(field.type) and {"bytes", "path"} <= {f.name for f in field.type}:
            return field.name
    return None


def _audio_item(source: Path, index: int, audio: dict, item_id: str, extra: dict) -> Item:
    data, path = audio.get("bytes"), audio.get("path")
    if data:
        blob = bytes(data)
        return Item(item_id, f"{source}#{index}", None, extra=extra, loader=lambda: io.BytesIO(blob))
    if not path:
        raise ValueError(f"{source}: row {index} has neither audio bytes nor a path")
    resolved = Path(path) if Path(path).is_absolute() else source.parent / path
    return Item(item_id, str(resolved), None, extra=extra)


def read_hf_audio(source: Path) -> tuple[list[Item], pa.Schema]:
    """Items of a saved dataset or of a Parquet file with an Audio column, and the arrow types
    of the columns that pass through."""
    if source.is_dir():
        import datasets

        table = datasets.load_from_disk(str(source)).data.table
    else:
        table = pq.read_table(source)
    audio = _audio_column(table.schema)
    if audio is None:
        raise ValueError(f"{source}: no Audio column (a struct of bytes and path)")
    others = [name for name in table.schema.names if name not in (audio, "id")]
    ids = table.column("id").to_pylist() if "id" in table.schema.names else None
    items = []
    for index, record in enumerate(table.select([audio, *others]).to_pylist()):
        item_id = str(ids[index]) if ids else str(index)
        items.append(_audio_item(source, index, record[audio] or {}, item_id, {k: record[k] for k in others}))
    return items, pa.schema([table.schema.field(name) for name in others])


def open_source(source: Path, reserved: set[str]) -> tuple[list[Item], pa.Schema]:
    """Any SOURCE of `dmcodec bulk`: a folder of audio, a manifest, a Lhotse cuts manifest, a
    saved Hugging Face dataset or a Parquet file with an Audio column -> (items, the arrow types
    of the columns they carry to the output)."""
    if is_hf_dataset(source) or (source.suffix.lower() == ".parquet" and _audio_column(pq.read_schema(source))):
        items, schema = read_hf_audio(source)
        clash = sorted(set(schema.names) & reserved)
        if clash:
            raise ValueError(f"{source}: columns {clash} clash with output columns; rename them")
        return items, schema
    items = read_lhotse_cuts(source) if is_lhotse_cuts(source) else read_items(source)
    return items, extra_schema(source, items, reserved)
