"""`dmcodec bulk` on the corpora speech-LM pipelines hold: Lhotse cuts in and out, Hugging Face
datasets in (saved to disk, or Parquet with an Audio column) and Parquet that `datasets` loads."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pyarrow as pa
import pytest
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from typer.testing import CliRunner

from dmcodec import Tokenizer
from dmcodec.audio import load_audio, wav_bytes, write_wav
from dmcodec.cli import app
from dmcodec.layouts import decode_layout
from dmcodec.signals import speech_like


def bulk(*args) -> dict:
    result = CliRunner().invoke(app, ["bulk", *map(str, args)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    with Tokenizer.from_pretrained(tiny_checkpoint) as t:
        yield t


def test_lhotse_cuts_come_back_with_their_codes_attached(tiny_checkpoint, tokenizer, tmp_path):
    cuts = []
    for r in range(2):
        path = tmp_path / f"rec{r}.wav"
        write_wav(path, speech_like(9.0, 16000, seed=50 + r), 16000)
        recording = Recording.from_file(path, recording_id=f"rec{r}")
        for c, (start, duration) in enumerate([(0.5, 2.0), (3.13, 1.7), (6.0, 2.5)]):
            cut_id = f"rec{r}-{c}"
            supervision = SupervisionSegment(cut_id, f"rec{r}", start, duration, text=f"utterance {r} {c}",
                                             speaker=f"spk{r}", language="en")
            cuts.append(MonoCut(cut_id, start, duration, 0, recording=recording, supervisions=[supervision],
                                custom={"split": "train" if c else "dev"}))
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    summary = bulk(tmp_path / "cuts.jsonl.gz", "-o", tmp_path / "out", "-c", tiny_checkpoint, "--shard-size", 4)
    assert summary["written"] == 6 and summary["failed"] == 0
    back = {cut.id: cut for cut in CutSet.from_file(tmp_path / "out" / "cuts.jsonl.gz")}
    assert set(back) == {cut.id for cut in cuts}
    for cut in cuts:
        audio = load_audio(tmp_path / f"{cut.recording.id}.wav", 16000)[0]
        segment = audio[round(cut.start * 16000): round((cut.start + cut.duration) * 16000)]
        expected = tokenizer.encode_arrays([segment])[0]  # [n_q, frames]
        attached = back[cut.id].load_custom("codes")
        assert attached.shape == (expected.shape[1], 8) and np.array_equal(attached.T, expected), cut.id
        assert back[cut.id].supervisions[0].text == cut.supervisions[0].text
        assert back[cut.id].custom["split"] == cut.custom["split"]
    rows = datasets.load_dataset("parquet", data_files=str(tmp_path / "out" / "shard-*.parquet"), split="train")
    first = next(r for r in rows if r["id"] == "rec1-1")
    assert json.loads(first["supervisions"])[0]["text"] == "utterance 1 1"
    assert json.loads(first["custom"]) == {"split": "train"} and first["num_samples"] == round(1.7 * 16000)


def test_hugging_face_datasets_in_and_parquet_out(tiny_checkpoint, tokenizer, tmp_path):
    clips = [speech_like(1.0 + 0.4 * i, 22050, seed=60 + i) for i in range(4)]
    (tmp_path / "c0.wav").write_bytes(wav_bytes(clips[0], 22050))
    audio = [{"path": str(tmp_path / "c0.wav"), "bytes": None}] + \
            [{"path": None, "bytes": wav_bytes(c, 22050)} for c in clips[1:]]
    features = datasets.Features({"id": datasets.Value("string"), "audio": datasets.Audio(decode=False),
                                  "text": datasets.Value("string"), "speaker_id": datasets.Value("int16")})
    # Built at the arrow level: the Audio feature's encoder would want torchcodec, which this
    # CPU-only torch cannot have; the storage (a struct of bytes and path) is the same.
    arrow = pa.Table.from_pydict({"id": [f"u{i}" for i in range(4)], "audio": audio,
                                  "text": [f"text {i}" for i in range(4)], "speaker_id": [7, 7, 8, 8]},
                                 schema=features.arrow_schema)
    table = datasets.Dataset(arrow, info=datasets.DatasetInfo(features=features))
    table.save_to_disk(str(tmp_path / "saved"))
    table.to_parquet(str(tmp_path / "with_audio.parquet"))
    expected = [tokenizer.encode(wav_bytes(c, 22050)).codes for c in clips]
    for source in (tmp_path / "saved", tmp_path / "with_audio.parquet"):
        out = tmp_path / f"out-{source.stem}"
        assert bulk(source, "-o", out, "-c", tiny_checkpoint)["written"] == 4
        rows = datasets.load_dataset("parquet", data_files=str(out / "shard-*.parquet"), split="train")
        assert rows.features["speaker_id"].dtype == "int16" and rows.features["text"].dtype == "string"
        by_id = {r["id"]: r for r in rows}
        for i in range(4):
            assert np.array_equal(np.array(by_id[f"u{i}"]["codes"]), expected[i]), (source, i)
            assert by_id[f"u{i}"]["text"] == f"text {i}"


def test_lhotse_cuts_get_input_ids_and_every_frame_of_a_partial_last_one(tiny_checkpoint, tokenizer, tmp_path):
    write_wav(tmp_path / "rec.wav", speech_like(5.0, 16000, seed=70), 16000)
    recording = Recording.from_file(tmp_path / "rec.wav", recording_id="rec")
    # 1.705 s: 85.25 frames, so 86 codes of which Lhotse's slice (halves up) keeps 85; 1.715 s:
    # 85.75, 86 kept; 1.7 s: exactly 85.
    spans = {"under-half": (0.3, 1.705), "over-half": (2.1, 1.715), "whole": (4.0 - 1.7, 1.7)}
    cuts = [MonoCut(name, start, duration, 0, recording=recording) for name, (start, duration) in spans.items()]
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    bulk(tmp_path / "cuts.jsonl.gz", "-o", tmp_path / "out", "-c", tiny_checkpoint, "--layout", "flat")
    rows = {r["id"]: r for r in datasets.load_dataset("parquet", data_files=str(tmp_path / "out" / "shard-*.parquet"),
                                                      split="train")}
    for cut in CutSet.from_file(tmp_path / "out" / "cuts.jsonl.gz"):
        frames, num_samples = rows[cut.id]["frames"], cut.custom["codes_num_samples"]
        assert num_samples == rows[cut.id]["num_samples"] == round(cut.duration * 16000)
        sliced = cut.load_custom("codes")  # Lhotse's rule: round(duration / 0.02), halves up
        assert sliced.shape[0] == {"under-half": 85, "over-half": 86, "whole": 85}[cut.id]
        assert frames == -(-num_samples // 320) == {"under-half": 86, "over-half": 86, "whole": 85}[cut.id]
        whole = cut.custom["codes"].load()  # every frame: what decodes to the cut's whole length
        assert np.array_equal(whole.T, rows[cut.id]["codes"]) and np.array_equal(sliced, whole[: sliced.shape[0]])
        audio = tokenizer.decode(whole.T.astype(np.int64), num_samples)
        assert audio.size == num_samples
        if sliced.shape[0] < frames:
            with pytest.raises(ValueError, match="does not fit"):
                tokenizer.check_codes(sliced.T, num_samples)
        ids = cut.load_custom("input_ids")
        assert ids.dtype == np.int32 and np.array_equal(ids, rows[cut.id]["input_ids"])
        assert np.array_equal(decode_layout(ids, "flat", tokenizer.vocabulary), whole.T)
