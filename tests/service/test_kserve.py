"""The KServe v2 protocol routes in-process: metadata, readiness, infer equal to /v1/encode (in
any layout)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import in_process_service

from dmcodec import Tokenizer
from dmcodec.layouts import encode_layout
from dmcodec.signals import speech_like
from dmcodec.vocabulary import Vocabulary


@pytest.fixture(scope="module")
def service(tiny_checkpoint):
    with in_process_service(tiny_checkpoint) as client:
        yield client


def test_server_and_model_metadata_name_the_checkpoint_and_its_hash(service, tiny_codec):
    assert service.get("/v2").json()["name"] == "dmcodec"
    meta = service.get("/v2/models/untrained-tiny").json()
    assert meta["versions"] == [tiny_codec.sha256] and meta["outputs"][0]["shape"] == [8, -1]
    assert service.get("/v2/models/untrained-tiny/ready").json() == {"name": "untrained-tiny", "ready": True}
    missing = service.get("/v2/models/other/ready")
    assert missing.status_code == 404 and "untrained-tiny" in missing.json()["error"]


def test_infer_gives_the_codes_of_the_encode_route(service, tiny_checkpoint):
    clip = speech_like(1.7, 22050, seed=9)
    body = {"id": "r1", "inputs": [{"name": "audio", "datatype": "FP32", "shape": [1, clip.size],
                                    "data": clip.tolist()}], "parameters": {"sample_rate": 22050, "n_q": 3}}
    answer = service.post("/v2/models/untrained-tiny/infer", json=body).json()
    codes = next(o for o in answer["outputs"] if o["name"] == "codes")
    with Tokenizer.from_pretrained(tiny_checkpoint) as tokenizer:
        expected = tokenizer.encode(clip, 22050, n_q=3)
    assert answer["id"] == "r1" and answer["model_version"] == expected.metadata.model_sha256
    assert codes["shape"] == [3, expected.codes.shape[1]]
    assert np.array_equal(np.array(codes["data"]).reshape(codes["shape"]), expected.codes)
    assert answer["parameters"]["num_samples"] == expected.num_samples


def test_infer_with_a_layout_gives_input_ids_and_the_vocabulary(service, tiny_codec):
    clip = speech_like(1.3, 16000, seed=10)
    audio = [{"name": "audio", "datatype": "FP32", "shape": [clip.size], "data": clip.tolist()}]
    plain = service.post("/v2/models/untrained-tiny/infer", json={"inputs": audio}).json()
    codes = np.array(plain["outputs"][0]["data"]).reshape(plain["outputs"][0]["shape"])
    vocabulary = Vocabulary.from_config(tiny_codec.config)
    for layout in ("flat", "delay", "first"):
        answer = service.post("/v2/models/untrained-tiny/infer", json={"inputs": audio,
                                                                       "parameters": {"layout": layout}}).json()
        ids = answer["outputs"][0]
        expected = encode_layout(codes[:1] if layout == "first" else codes, layout, vocabulary)
        assert ids["name"] == "input_ids" and ids["datatype"] == "INT64" and ids["shape"] == list(expected.shape)
        assert np.array_equal(np.array(ids["data"]).reshape(ids["shape"]), expected)
        assert answer["parameters"]["layout"] == layout
        assert {k: answer["parameters"][k] for k in vocabulary.token_fields()} == vocabulary.token_fields()
    assert plain["outputs"][0]["name"] == "codes" and plain["parameters"]["layout"] == "codes"
    meta = service.get("/v2/models/untrained-tiny").json()["parameters"]
    assert meta["layouts"] == "codes,flat,delay,first" and meta["vocab_size"] == vocabulary.size


@pytest.mark.parametrize("body, status, words", [
    ({"inputs": []}, 422, "one input tensor named 'audio'"),
    ({"inputs": [{"name": "audio", "datatype": "FP32", "shape": [2, 3], "data": [0] * 6}]}, 422, "[T] or [1, T]"),
    ({"inputs": [{"name": "audio", "datatype": "FP32", "shape": [5], "data": [0] * 3}]}, 422, "promises 5"),
    ({"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": ["x"]}]}, 422, "FP32"),
    ({"inputs": [{"name": "audio", "datatype": "FP32", "shape": [2], "data": ["a", "b"]}]}, 422, "numbers"),
    ({"inputs": [{"name": "audio", "datatype": "FP32", "shape": [320], "data": [0.0] * 320}],
      "parameters": {"n_q": 99}}, 422, "n_q"),
    ({"inputs": [{"name": "audio", "datatype": "FP32", "shape": [3000], "data": [0.0] * 3000}],
      "parameters": {"sample_rate": 16}}, 422, "sample_rate must be in"),
    ({"inputs": [{"name": "audio", "datatype": "FP32", "shape": [320], "data": [0.0] * 320}],
      "parameters": {"layout": "zigzag"}}, 422, "unknown layout 'zigzag'"),
    ({"inputs": [{"name": "audio", "datatype": "FP32", "shape": [320], "data": [0.0] * 320}],
      "parameters": {"layout": "first", "n_q": 2}}, 422, "n_q must be 1 or unset"),
    (b'{"inputs": [{"name": "audio", "datatype": "FP32", "shape": [2], "data": [0, 0]}], '
     b'"parameters": {"sample_rate": 1e400}}', 422, "sample_rate an integer"),
    ({"inputs": [{"name": "audio", "datatype": "FP32", "shape": [0],
                  "parameters": {"binary_data_size": 64}, "data": []}]}, 415, "binary_data=False"),
])
def test_bad_infer_requests_get_the_protocols_error_shape(service, body, status, words):
    raw = {"content": body, "headers": {"content-type": "application/json"}}
    response = service.post("/v2/models/untrained-tiny/infer", **(raw if isinstance(body, bytes) else {"json": body}))
    assert response.status_code == status and words in response.json()["error"], response.text
