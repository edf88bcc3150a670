"""Token layouts through the HTTP API in-process: /v1/encode writes any layout, /v1/decode (whole
or streamed, JSON or .npy) takes any layout back to the audio of the codes grid, bit for bit, and
malformed ids get a 422 that names the wrong position."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from helpers import in_process_service

from dmcodec.audio import wav_bytes
from dmcodec.layouts import LAYOUTS, encode_layout
from dmcodec.signals import speech_like
from dmcodec.tokens import payload_name
from dmcodec.vocabulary import Vocabulary

pytestmark = pytest.mark.timeout(300)
NPY = {"content-type": "application/octet-stream"}


@pytest.fixture(scope="module")
def service(tiny_checkpoint):
    # Windows of 40 frames: the streamed decode of a 4.1 s clip (205 frames) comes in six pieces.
    with in_process_service(tiny_checkpoint, window_frames=60, context_frames=10) as client:
        yield client


@pytest.fixture(scope="module")
def vocabulary(service) -> Vocabulary:
    return Vocabulary.from_dict(service.get("/v1/info").json()["vocabulary"])


@pytest.fixture(scope="module")
def clip() -> bytes:
    return wav_bytes(speech_like(4.1, 16000, seed=6), 16000)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def expect_error(response, code: str, words: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"], error


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_goes_out_and_decodes_to_the_audio_of_its_codes_bit_for_bit(service, vocabulary, clip, layout):
    grid = service.post("/v1/encode", files={"file": ("a.wav", clip)}).json()
    codes = np.array(grid["codes"])[:1] if layout == "first" else np.array(grid["codes"])  # [n_q, frames]
    tokens = service.post("/v1/encode", params={"layout": layout}, files={"file": ("a.wav", clip)}).json()
    expected_ids = encode_layout(codes, layout, vocabulary)
    assert tokens["layout"] == layout and payload_name(layout) in tokens and tokens["n_q"] == codes.shape[0]
    assert np.array_equal(np.array(tokens[payload_name(layout)]), expected_ids)
    assert {k: tokens[k] for k in vocabulary.token_fields()} == vocabulary.token_fields()
    stored = service.post("/v1/encode", data={"layout": layout}, params={"format": "npy"},
                          files={"file": ("a.wav", clip)})
    array = np.load(io.BytesIO(stored.content))
    assert array.dtype == (np.uint16 if layout == "codes" else np.int32) and np.array_equal(array, expected_ids)
    assert stored.headers["x-dmcodec-layout"] == layout and stored.headers["x-dmcodec-vocab-size"] == "515"

    num_samples = tokens["num_samples"]
    reference = service.post("/v1/decode", json={"codes": codes.tolist(), "num_samples": num_samples})
    assert reference.status_code == 200 and len(reference.content) == 44 + 2 * num_samples
    headers = {k: v for k, v in stored.headers.items() if k.lower().startswith("x-dmcodec-")}
    bodies = {  # the layout recorded by the tokens' metadata, or declared by ?layout= alone
        "JSON as encoded": ({"json": tokens}, {}),
        "bare JSON": ({"json": {payload_name(layout): expected_ids.tolist()}},
                      {"layout": layout, "num_samples": num_samples}),
        ".npy with its headers": ({"content": stored.content, "headers": {**headers, **NPY}}, {}),
        "bare .npy": ({"content": npy(expected_ids), "headers": NPY}, {"layout": layout, "num_samples": num_samples}),
    }
    for name, (body, params) in bodies.items():
        for stream in (False, True):
            decoded = service.post("/v1/decode", params={**params, **({"stream": "true"} if stream else {})}, **body)
            assert decoded.status_code == 200, (name, stream, decoded.text)
            assert decoded.content == reference.content, (name, stream)


def test_malformed_ids_get_a_422_that_names_the_wrong_position(service, vocabulary):
    codes = np.array([[5, 7, 9], [1, 2, 3]])  # n_q=2, 3 frames (docs/tokens.md's example)
    flat, delay = encode_layout(codes, "flat", vocabulary), encode_layout(codes, "delay", vocabulary)
    assert flat.tolist() == [513, 5, 65, 7, 66, 9, 67, 514]  # the tiny model's vocabulary: 8 x 64 codes

    def decode(ids, layout, **request):
        return service.post("/v1/decode", json={"input_ids": np.asarray(ids).tolist(), "layout": layout}, **request)

    pad_inside = np.concatenate([flat[:4], [vocabulary.pad_token_id], flat[5:]])
    expect_error(decode(pad_inside, "flat"), "invalid_tokens",
                 "index 4 (frame 1, level 2): expected a level-2 id (64..127), got the pad id (512)")
    wrong_level = np.concatenate([flat[:4], [9], flat[5:]])
    expect_error(decode(wrong_level, "flat", params={"stream": "true"}), "invalid_tokens",
                 "index 4 (frame 1, level 2): expected a level-2 id (64..127), got a level-1 id (9)")
    odd = np.concatenate([flat[:-1], [9], flat[-1:]])
    expect_error(decode(odd, "flat"), "invalid_tokens", "the frame from index 7 ends after 1 of its 2 levels")
    corner = delay.copy()
    corner[0, -1] = 3
    expect_error(decode(corner, "delay"), "invalid_tokens",
                 "row 0, column 3 (a corner of the delay pattern): expected the pad id (512), got a level-1 id (3)")
    expect_error(service.post("/v1/decode", params={"layout": "flat"}, content=npy(pad_inside.astype(np.int32)),
                              headers=NPY), "invalid_tokens", "index 4 (frame 1, level 2)")
    expect_error(decode([513, 5, 9000], "flat"), "invalid_tokens", "id 9000 (outside the vocabulary 0..514)")
    expect_error(decode(flat, "flat", params={"layout": "delay"}), "invalid_tokens",
                 "the tokens say layout 'flat', not 'delay'")
    expect_error(decode(flat, "flat", params={"layout": "zigzag"}), "invalid_layout", "unknown layout 'zigzag'")
    expect_error(service.post("/v1/decode", json={"input_ids": flat.tolist(), "layout": "flat", "codebook_size": 1024,
                                                  **Vocabulary(1024, 8).token_fields()}),
                 "invalid_tokens", "vocabulary of 8 x 1024 codes; this model's has 8 x 64")
    expect_error(service.post("/v1/decode", params={"layout": "codes"}, content=npy(flat), headers=NPY),
                 "invalid_tokens", "expected codes tokens of shape [n_q <= 8, frames], got (8,)")
    expect_error(service.post("/v1/decode", json={"input_ids": [[512, 1], [2]], "layout": "delay"}),
                 "invalid_tokens", "rectangular")
    other_model = {**NPY, "X-DMCodec-Layout": "flat", "X-DMCodec-Model-Sha256": "0" * 64}
    mismatch = service.post("/v1/decode", content=npy(flat), headers=other_model)
    assert mismatch.status_code == 409 and mismatch.json()["error"]["code"] == "model_mismatch"
    assert service.post("/v1/decode", json={"input_ids": flat.tolist(), "layout": "flat"}).status_code == 200


def test_encode_refuses_unknown_layouts_and_first_with_more_than_one_level(service, clip):
    upload = {"files": {"file": ("a.wav", clip)}}
    expect_error(service.post("/v1/encode", params={"layout": "zigzag"}, **upload), "invalid_layout", "zigzag")
    expect_error(service.post("/v1/encode", data={"layout": "first", "n_q": "3"}, **upload), "invalid_layout",
                 "n_q must be 1 or unset, got 3")
    first = service.post("/v1/encode", params={"layout": "first", "n_q": 1}, **upload).json()
    assert first["n_q"] == 1 and first["input_ids"][0] == first["bos_token_id"]


def test_openapi_documents_the_layouts_without_the_numbers_of_one_model(service):
    spec = service.get("/openapi.json").json()
    for path in ("/v1/encode", "/v1/decode"):
        parameter = next(p for p in spec["paths"][path]["post"]["parameters"] if p["name"] == "layout")
        assert parameter["schema"]["enum"] == list(LAYOUTS) and "delay" in parameter["description"]
    form = spec["paths"]["/v1/encode"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["layout"]["enum"] == list(LAYOUTS)
    encoded = spec["components"]["schemas"]["EncodeResponse"]["properties"]
    decode = spec["paths"]["/v1/decode"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    names = {"input_ids", "layout", "vocab_size", "pad_token_id", "bos_token_id", "eos_token_id"}
    assert names <= set(encoded) and names <= set(decode)
    for fields in (encoded, decode):
        for name, field in fields.items():
            assert re.search(r"\b(8|64|512|513|514|515|1024|819[2-5])\b", field.get("description", "")) is None, name
