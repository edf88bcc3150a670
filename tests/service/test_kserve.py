"""The KServe v2 protocol routes in-process: metadata, readiness, infer equal to /v1/encode."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import in_process_service

from dmcodec import Tokenizer
from dmcodec.signals import speech_like


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
    (b'{"inputs": [{"name": "audio", "datatype": "FP32", "shape": [2], "data": [0, 0]}], '
     b'"parameters": {"sample_rate": 1e400}}', 422, "sample_rate an integer"),
    ({"inputs": [{"name": "audio", "datatype": "FP32", "shape": [0],
                  "parameters": {"binary_data_size": 64}, "data": []}]}, 415, "binary_data=False"),
])
def test_bad_infer_requests_get_the_protocols_error_shape(service, body, status, words):
    raw = {"content": body, "headers": {"content-type": "application/json"}}
    response = service.post("/v2/models/untrained-tiny/infer", **(raw if isinstance(body, bytes) else {"json": body}))
    assert response.status_code == status and words in response.json()["error"], response.text
