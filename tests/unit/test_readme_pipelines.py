"""The README's "For data pipelines" examples, run as written (bundled checkpoint) on a Lhotse
cut set and a Hugging Face dataset made here."""

from __future__ import annotations

import shlex

import datasets
import numpy as np
import pyarrow as pa
from helpers import readme_blocks
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from typer.testing import CliRunner

from dmcodec.audio import wav_bytes, write_wav
from dmcodec.cli import app
from dmcodec.signals import speech_like


def test_the_data_pipeline_examples_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_wav(tmp_path / "talk.wav", speech_like(6.0, 16000, seed=90), 16000)
    recording = Recording.from_file(tmp_path / "talk.wav", recording_id="talk")
    cuts = [MonoCut(f"talk-{i}", 1.5 * i, 1.2, 0, recording=recording,
                    supervisions=[SupervisionSegment(f"talk-{i}", "talk", 1.5 * i, 1.2, text=f"part {i}")])
            for i in range(3)]
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    features = datasets.Features({"audio": datasets.Audio(decode=False), "text": datasets.Value("string")})
    audio = [{"bytes": wav_bytes(speech_like(1.1, 16000, seed=91 + i), 16000), "path": None} for i in range(2)]
    table = pa.Table.from_pydict({"audio": audio, "text": ["a", "b"]}, schema=features.arrow_schema)
    datasets.Dataset(table, info=datasets.DatasetInfo(features=features)).save_to_disk(str(tmp_path / "hf_dataset"))

    blocks = readme_blocks("## For data pipelines")
    assert [kind for kind, _ in blocks] == ["bash", "python", "python"]
    for line in blocks[0][1].splitlines():
        command = shlex.split(line.split("#")[0])
        assert command[:2] == ["dmcodec", "bulk"]
        result = CliRunner().invoke(app, command[1:])
        assert result.exit_code == 0, result.output
    scope: dict = {}
    exec(blocks[1][1], scope)  # the Lhotse example: its loop ends on the last cut
    assert scope["codes"].shape == (60, 8) and scope["cut"].supervisions[0].text == "part 2"
    exec(blocks[2][1], scope)  # the Hugging Face example
    assert np.array(scope["codes"]).shape == (8, 55) and set(scope["rows"].column_names) >= {"text", "num_samples"}
