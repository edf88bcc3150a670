"""The `dmcodec` command line, through Click's runner in this process (the console scripts
themselves are run in tests/e2e)."""

import json
import re

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from dmcodec.cli import app


def dmcodec(*args, check=True):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if check and result.exit_code != 0:
        raise AssertionError(f"dmcodec {args} failed:\n{result.output}")
    return result


def test_encode_decode_file_roundtrip(tiny_checkpoint, wav_dir, tmp_path):
    tokens = tmp_path / "clip.json"
    dmcodec("encode", wav_dir / "clip1.wav", "-o", tokens, "-c", tiny_checkpoint)
    data = json.loads(tokens.read_text())
    assert data["n_q"] == 8 and data["num_samples"] == sf.info(wav_dir / "clip1.wav").frames
    out = tmp_path / "clip.wav"
    dmcodec("decode", tokens, "-o", out, "-c", tiny_checkpoint)
    audio, rate = sf.read(out)
    assert rate == 16000 and audio.shape == (data["num_samples"],)


def test_encode_directory_to_npy_with_index(tiny_checkpoint, wav_dir, tmp_path):
    (wav_dir / "notes.txt").write_text("not audio")
    out = tmp_path / "tokens"
    dmcodec("encode", wav_dir, "-o", out, "-f", "npy", "--n-q", 4, "-c", tiny_checkpoint)
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert len(index) == 4
    for row in index:
        codes = np.load(out / row["tokens"])
        assert codes.dtype == np.uint16 and codes.shape == (4, row["frames"])
        decoded = tmp_path / "d.wav"
        dmcodec("decode", out / row["tokens"], "-o", decoded, "--num-samples", row["num_samples"],
                "-c", tiny_checkpoint)
        assert sf.info(decoded).frames == row["num_samples"]


def test_info_and_convert_both_ways(tiny_checkpoint, tmp_path):
    info = json.loads(dmcodec("info", tiny_checkpoint).stdout)
    assert info["n_q"] == 8 and info["codebook_size"] == 64 and info["codebooks_initialised"]
    dmcodec("convert", tiny_checkpoint, tmp_path / "release" / "model.pt")
    dmcodec("convert", tmp_path / "release" / "model.pt", tmp_path / "ours")
    back = json.loads(dmcodec("info", tmp_path / "ours").stdout)
    assert back["metadata"]["training"]["source_sha256"] != info["sha256"]  # from the .pt file
    assert back["config"] == info["config"]


@pytest.mark.parametrize("content, message", [
    ({"codes": [[1, 2], [3]]}, "not a readable token file|shape"),
    ({"codes": [[70, 1]]}, "0..63"),
    ({"codes": [[1.5, 1]]}, "integers"),
    ({"nothing": 1}, "codes"),
])
def test_decode_errors_are_clear(tiny_checkpoint, tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(content))
    result = dmcodec("decode", bad, "-o", tmp_path / "x.wav", "-c", tiny_checkpoint, check=False)
    assert result.exit_code == 2
    assert "error:" in result.stderr and re.search(message, result.stderr)


def test_encode_errors_are_clear(tiny_checkpoint, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF0000WAVEfmt garbage")
    for name in ("empty.wav", "corrupt.wav"):
        result = dmcodec("encode", tmp_path / name, "-o", tmp_path / "t.json", "-c", tiny_checkpoint, check=False)
        assert result.exit_code == 2 and "not a readable audio file" in result.stderr
    missing = dmcodec("encode", tmp_path / "nope.wav", "-o", tmp_path / "t.json", check=False)
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_npz_token_files_keep_length_and_model_and_decode_exactly(tiny_checkpoint, small_checkpoint, wav_dir, tmp_path):
    tokens = tmp_path / "clip.npz"
    dmcodec("encode", wav_dir / "clip3.wav", "-o", tokens, "-c", tiny_checkpoint)
    with np.load(tokens, allow_pickle=False) as archive:
        assert archive["codes"].dtype == np.uint16 and archive["codes"].shape[0] == 8
        num_samples = int(archive["num_samples"])
        assert num_samples == sf.info(wav_dir / "clip3.wav").frames and len(str(archive["model_sha256"])) == 64
    out = tmp_path / "clip.wav"
    dmcodec("decode", tokens, "-o", out, "-c", tiny_checkpoint)
    assert sf.info(out).frames == num_samples  # the exact length, without --num-samples
    other = dmcodec("decode", tokens, "-o", out, "-c", small_checkpoint, check=False)
    assert other.exit_code == 2 and "made by model" in other.stderr


@pytest.mark.parametrize("layout", ["flat", "delay", "first"])
def test_tokens_in_any_layout_decode_to_the_same_audio_as_the_codes(tiny_checkpoint, wav_dir, tmp_path, layout):
    reference = tmp_path / "codes.wav"
    levels = ["--n-q", 1] if layout == "first" else []  # the codes that `first` keeps
    dmcodec("encode", wav_dir / "clip0.wav", "-o", tmp_path / "codes.json", *levels, "-c", tiny_checkpoint)
    dmcodec("decode", tmp_path / "codes.json", "-o", reference, "-c", tiny_checkpoint)
    for suffix in ("json", "npz", "npy"):
        tokens = tmp_path / f"ids.{suffix}"
        dmcodec("encode", wav_dir / "clip0.wav", "-o", tokens, "--layout", layout, "-c", tiny_checkpoint)
        out = tmp_path / f"{suffix}.wav"
        declared = ["--layout", layout, "--num-samples", sf.info(reference).frames] if suffix == "npy" else []
        dmcodec("decode", tokens, "-o", out, *declared, "-c", tiny_checkpoint)
        assert out.read_bytes() == reference.read_bytes(), suffix
    data = json.loads((tmp_path / "ids.json").read_text())
    assert data["layout"] == layout and "codes" not in data and data["vocab_size"] == 8 * 64 + 3


def test_malformed_ids_name_their_position(tiny_checkpoint, tmp_path):
    (tmp_path / "ids.json").write_text(json.dumps({"layout": "flat", "n_q": 2, "input_ids": [513, 0, 64, 1, 512, 514]}))
    result = dmcodec("decode", tmp_path / "ids.json", "-o", tmp_path / "x.wav", "-c", tiny_checkpoint, check=False)
    assert result.exit_code == 2 and "index 4 (frame 1, level 2): expected a level-2 id (64..127), got the pad id" \
        in result.stderr
    both = dmcodec("encode", tmp_path / "x.wav", "-o", tmp_path / "t.json", "--layout", "first", "--n-q", 2,
                   check=False)
    assert both.exit_code == 2 and "RVQ-1 alone" in both.stderr
