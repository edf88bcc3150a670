"""One token-metadata schema, rendered the same way in JSON, headers, Parquet and Ray columns."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pyarrow as pa
import pytest

from dmcodec import Tokenizer, TokenMetadata
from dmcodec.bulk.manifest import Item
from dmcodec.bulk.ray_job import _COLUMNS as RAY_COLUMNS
from dmcodec.bulk.store import SCHEMA, row
from dmcodec.layouts import LAYOUTS, LayoutError, encode_layout
from dmcodec.signals import speech_like
from dmcodec.tokens import (
    SCHEMA_VERSION,
    codes_from_tokens,
    header_fields,
    header_name,
    load_tokens,
    metadata_headers,
    save_tokens,
)
from dmcodec.vocabulary import Vocabulary


@pytest.fixture(scope="module")
def encoded(tiny_checkpoint):
    with Tokenizer.from_pretrained(tiny_checkpoint) as tokenizer:
        return tokenizer.encode(speech_like(1.3, 16000, seed=5), 16000, n_q=3)


def test_metadata_describes_the_codes_and_the_model(encoded, tiny_checkpoint):
    meta = encoded.metadata
    assert (meta.n_q, meta.frames) == encoded.codes.shape == (3, 65)
    assert meta.num_samples == 20800 and meta.duration_s == pytest.approx(1.3)
    assert meta.model_sha256 == encoded.model["sha256"] and len(meta.model_sha256) == 64
    assert (meta.backend, meta.precision, meta.schema_version) == (encoded.model["backend"], "fp32", SCHEMA_VERSION)
    assert meta.backend in ("torch", "onnxruntime")  # auto's choice, the default


def test_headers_and_flat_form_round_trip_with_their_types(encoded):
    headers = encoded.metadata.headers()
    assert headers["X-DMCodec-Model-Sha256"] == encoded.metadata.model_sha256
    assert headers["X-DMCodec-N-Q"] == "3" and header_name("num_samples") == "X-DMCodec-Num-Samples"
    lowered = {k.lower(): v for k, v in headers.items()}  # as HTTP libraries hand them over
    assert TokenMetadata.from_headers(lowered) == encoded.metadata
    assert TokenMetadata.from_flat(json.loads(json.dumps(encoded.metadata.flat()))) == encoded.metadata
    with pytest.raises(ValueError, match="not token metadata"):
        TokenMetadata.from_flat({**encoded.metadata.flat(), "n_q": "three"})
    # Headers of whichever fields a dict holds (the client's .npy bodies), and nothing else.
    some = {"layout": "flat", "num_samples": 5, "codes": [[1]], "model": {}}
    assert metadata_headers(some) == {"X-DMCodec-Layout": "flat", "X-DMCodec-Num-Samples": "5"}
    assert header_fields(metadata_headers(encoded.metadata.flat())) == header_fields(headers)


def test_json_nests_the_model_fields_and_keeps_the_rest_flat(encoded):
    data = encoded.to_json()
    flat = encoded.metadata.flat()
    assert {k for k in flat if not k.startswith("model_")} <= set(data)
    assert data["model"]["sha256"] == flat["model_sha256"] and data["model"]["name"] == flat["model_name"]
    assert not any(k.startswith("model_") for k in data)
    assert np.array_equal(np.array(data["codes"]), encoded.codes)


def test_parquet_and_ray_columns_are_the_schema_fields(encoded):
    names = {f.name for f in fields(TokenMetadata)} | {"duration_s"}
    assert set(SCHEMA.names) == names | {"id", "path", "codes"}
    assert set(RAY_COLUMNS) == (names - {"duration_s"}) | {"id", "path", "codes", "error"}
    table = pa.Table.from_pylist([row(Item("a", "a.wav", None), encoded.codes, encoded.metadata)], schema=SCHEMA)
    back = table.to_pylist()[0]
    assert TokenMetadata.from_flat(back) == encoded.metadata and back["codes"] == encoded.codes.tolist()


def test_token_files_keep_codes_and_length(encoded, tmp_path):
    save_tokens(tmp_path / "t.json", encoded)
    save_tokens(tmp_path / "t.npy", encoded)
    codes, num_samples = load_tokens(tmp_path / "t.json")
    assert np.array_equal(codes, encoded.codes) and num_samples == encoded.num_samples
    codes, num_samples = load_tokens(tmp_path / "t.npy")
    assert np.array_equal(codes, encoded.codes) and np.load(tmp_path / "t.npy").dtype == np.uint16


def test_metadata_carry_the_layout_and_the_models_vocabulary(encoded):
    meta = encoded.metadata
    assert meta.layout == "codes" and meta.schema_version == SCHEMA_VERSION == 2
    assert meta.vocabulary() == Vocabulary(64, 8)  # the model's 8 levels, though the clip keeps 3
    assert (meta.vocab_size, meta.pad_token_id, meta.bos_token_id, meta.eos_token_id) == (515, 512, 513, 514)
    flat = encoded.with_layout("flat").metadata.flat()
    assert TokenMetadata.from_headers(TokenMetadata.from_flat(flat).headers()).vocabulary() == meta.vocabulary()
    schema_1 = {k: v for k, v in meta.flat().items() if k not in Vocabulary(64, 8).token_fields() and k != "layout"}
    old = TokenMetadata.from_flat({**schema_1, "schema_version": 1})
    assert old.layout == "codes" and old.vocabulary() is None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_token_json_and_files_in_every_layout_read_back_to_the_codes(encoded, layout, tmp_path):
    expected = encoded.codes[:1] if layout == "first" else encoded.codes
    rendered = encoded.with_layout(layout)
    data = rendered.to_json()
    assert data["layout"] == layout and data["n_q"] == expected.shape[0]
    name = "codes" if layout == "codes" else "input_ids"
    assert ({"codes", "input_ids"} & set(data)) == {name}
    assert np.array_equal(np.array(data[name]), encode_layout(expected, layout, Vocabulary(64, 8)))
    assert np.array_equal(codes_from_tokens(data[name], data)[0], expected)
    for suffix in ("json", "npz", "npy"):
        save_tokens(tmp_path / f"t.{suffix}", rendered)
        declared = layout if suffix == "npy" else None  # a bare .npy records nothing
        codes, num_samples = load_tokens(tmp_path / f"t.{suffix}", declared, Vocabulary(64, 8))
        assert np.array_equal(codes, expected), suffix
        assert num_samples == (None if suffix == "npy" else encoded.num_samples)
    stored = np.load(tmp_path / "t.npy")
    assert stored.dtype == (np.uint16 if layout == "codes" else np.int32)
    # A .npy body with its X-DMCodec-* headers (strings, any case), or with the layout alone.
    headers = {k.lower(): v for k, v in rendered.metadata.headers().items()}
    assert np.array_equal(codes_from_tokens(stored, header_fields(headers))[0], expected)
    only_layout = header_fields({"X-DMCodec-Layout": layout})
    assert np.array_equal(codes_from_tokens(stored, only_layout, vocabulary=Vocabulary(64, 8))[0], expected)


def test_reading_tokens_back_refuses_what_does_not_fit(encoded, tmp_path):
    data = encoded.with_layout("flat").to_json()
    with pytest.raises(ValueError, match="say layout 'flat', not 'delay'"):
        codes_from_tokens(data["input_ids"], data, layout="delay")
    with pytest.raises(ValueError, match="vocabulary of 8 x 64 codes; this model's has 8 x 1024"):
        codes_from_tokens(data["input_ids"], data, vocabulary=Vocabulary(1024, 8))
    bare = np.array(data["input_ids"])
    with pytest.raises(ValueError, match="need the vocabulary"):
        codes_from_tokens(bare, {}, layout="flat")
    with pytest.raises(ValueError, match="65 frames; their metadata say 64"):
        codes_from_tokens(data["input_ids"], {**data, "frames": 64})
    for spoiled, message in (({"codebook_size": None}, "no codebook_size"), ({"n_q": [3]}, "n_q must be an integer"),
                             ({"codebook_size": 0}, "codebook_size must be positive"),
                             ({"vocab_size": 516}, "not n_q x 64 codes")):
        with pytest.raises(ValueError, match=message):
            codes_from_tokens(data["input_ids"], {**data, **spoiled})
    bare[10] = 512  # a pad inside frame 3 (levels 1..3 at indexes 1 + 3 * frame)
    np.save(tmp_path / "ids.npy", bare.astype(np.int32))
    with pytest.raises(LayoutError, match=r"ids.npy: index 10 \(frame 3, level 1\): .*got the pad id") as caught:
        load_tokens(tmp_path / "ids.npy", "flat", Vocabulary(64, 8))
    assert (caught.value.index, caught.value.frame, caught.value.level) == (10, 3, 1)
