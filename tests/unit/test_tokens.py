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
from dmcodec.signals import speech_like
from dmcodec.tokens import SCHEMA_VERSION, header_name, load_tokens, save_tokens


@pytest.fixture(scope="module")
def encoded(tiny_checkpoint):
    with Tokenizer.from_pretrained(tiny_checkpoint) as tokenizer:
        return tokenizer.encode(speech_like(1.3, 16000, seed=5), 16000, n_q=3)


def test_metadata_describes_the_codes_and_the_model(encoded, tiny_checkpoint):
    meta = encoded.metadata
    assert (meta.n_q, meta.frames) == encoded.codes.shape == (3, 65)
    assert meta.num_samples == 20800 and meta.duration_s == pytest.approx(1.3)
    assert meta.model_sha256 == encoded.model["sha256"] and len(meta.model_sha256) == 64
    assert (meta.backend, meta.precision, meta.schema_version) == ("torch", "fp32", SCHEMA_VERSION)


def test_headers_and_flat_form_round_trip_with_their_types(encoded):
    headers = encoded.metadata.headers()
    assert headers["X-DMCodec-Model-Sha256"] == encoded.metadata.model_sha256
    assert headers["X-DMCodec-N-Q"] == "3" and header_name("num_samples") == "X-DMCodec-Num-Samples"
    lowered = {k.lower(): v for k, v in headers.items()}  # as HTTP libraries hand them over
    assert TokenMetadata.from_headers(lowered) == encoded.metadata
    assert TokenMetadata.from_flat(json.loads(json.dumps(encoded.metadata.flat()))) == encoded.metadata
    with pytest.raises(ValueError, match="not token metadata"):
        TokenMetadata.from_flat({**encoded.metadata.flat(), "n_q": "three"})


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
