"""Malformed and hostile requests, in-process: each gets a clear 4xx JSON error with no internals,
overload is refused before the body is read, and a real 500 says nothing but its request id."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf
from helpers import in_process_service

from dmcodec.audio import wav_bytes
from dmcodec.signals import speech_like
from dmcodec_service import routes

INTERNALS = ("Traceback", "object at 0x", "<_io", "Error:", "/work", "site-packages", "int64")


@pytest.fixture(scope="module")
def service(tiny_checkpoint):
    with in_process_service(tiny_checkpoint, max_channels=2, max_sample_rate=48000, api_keys=["sesame"],
                            max_tokens_mb=1) as client:
        client.headers["x-api-key"] = "sesame"
        yield client


def refused(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["request_id"] == response.headers["x-request-id"]
    assert not any(marker in error["message"] for marker in INTERNALS), error["message"]
    return error["message"]


def npy_with_header(header: str) -> bytes:
    text = header.encode("latin-1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def test_tokens_that_would_overflow_or_allocate_terabytes_are_4xx(service):
    refused(service.post("/v1/decode", json={"codes": [[2**70, 1]]}), 422, "invalid_tokens")
    refused(service.post("/v1/decode", content=b'{"codes": [[99999999999999999999999, 1]]}',
                         headers={"content-type": "application/json"}), 422, "invalid_tokens")
    huge = npy_with_header("{'descr': '<i8', 'fortran_order': False, 'shape': (8, 2305843009213693951), }")
    message = refused(service.post("/v1/decode", content=huge + b"\x00" * 64,
                                   headers={"content-type": "application/octet-stream"}), 422, "invalid_tokens")
    assert "promises" in message
    long_ids = npy_with_header("{'descr': '<i4', 'fortran_order': False, 'shape': (2305843009213693951,), }")
    message = refused(service.post("/v1/decode", params={"layout": "flat"}, content=long_ids + b"\x00" * 64,
                                   headers={"content-type": "application/octet-stream"}), 422, "invalid_tokens")
    assert "promises" in message
    wide = npy_with_header("{'descr': '<i8', 'fortran_order': False, 'shape': (4000000, 1), }")
    refused(service.post("/v1/decode", content=wide, headers={"content-type": "application/octet-stream"}),
            422, "invalid_tokens")
    objects = npy_with_header("{'descr': '|O', 'fortran_order': False, 'shape': (1, 2), }")
    refused(service.post("/v1/decode", content=objects + b"\x00" * 16,
                         headers={"content-type": "application/octet-stream"}), 422, "invalid_tokens")
    garbage = npy_with_header("{'descr': __import__('os').getpid(), }")
    refused(service.post("/v1/decode", content=garbage, headers={"content-type": "application/octet-stream"}),
            422, "invalid_tokens")
    buffer = io.BytesIO()
    np.save(buffer, np.asfortranarray(np.arange(16, dtype=np.int32).reshape(2, 8) % 64))
    ok = service.post("/v1/decode", content=buffer.getvalue(), headers={"content-type": "application/octet-stream"})
    assert ok.status_code == 200 and sf.info(io.BytesIO(ok.content)).frames == 8 * 320


def test_decode_bodies_have_their_own_limit(service):
    too_big = b'{"codes": [[' + b"1," * 600_000 + b'1]]}'
    refused(service.post("/v1/decode", content=too_big, headers={"content-type": "application/json"}),
            413, "payload_too_large")


def test_unreadable_audio_is_described_without_object_reprs(service):
    for body in (b"RIFF\x00\x00\x00\x00WAVEfmt nonsense", b"\x00" * 100, b"fLaC" + b"\x00" * 50):
        message = refused(service.post("/v1/encode", files={"file": ("a.wav", body)}), 400, "invalid_audio")
        assert message.startswith("not a readable audio file")


def test_channel_and_rate_caps_are_read_from_the_header(service):
    for channels, rate in ((3, 16000), (1, 96000)):
        buffer = io.BytesIO()
        sf.write(buffer, np.zeros((rate // 10, channels), dtype=np.float32), rate, format="FLAC")
        message = refused(service.post("/v1/encode", files={"file": ("a.flac", buffer.getvalue())}), 422,
                          "unsupported_audio")
        assert str(channels if channels > 2 else rate) in message


def test_api_keys_with_any_bytes_are_refused_cleanly(service):
    for key in (b"\xff\xfe\xfd", "s\u00e9same".encode(), b"sesame\x00"):
        refused(service.get("/v1/info", headers={"x-api-key": key}), 401, "unauthorized")
    assert service.get("/v1/info").status_code == 200


def test_request_ids_are_taken_from_clients_or_made_and_always_echoed(service):
    given = service.get("/v1/info", headers={"x-request-id": "trace-42.a:b"})
    assert given.headers["x-request-id"] == "trace-42.a:b"
    for bad in ("x" * 200, "a b", "\u00e9"):
        made = service.get("/v2/health/live", headers={"x-request-id": bad.encode("utf-8")})
        assert made.headers["x-request-id"] != bad and len(made.headers["x-request-id"]) == 32
    refused(service.post("/v1/encode", content=b"x", headers={"content-type": "text/plain"}),
            415, "unsupported_media_type")


def test_a_real_500_is_generic_and_names_the_request(service, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret detail /work/model at 0xdeadbeef")

    tokenizer = service.app.state.service.engine.tokenizer
    monkeypatch.setattr(tokenizer, "encode_arrays", broken)
    response = service.post("/v1/encode", files={"file": ("a.wav", wav_bytes(speech_like(0.5, 16000), 16000))},
                            headers={"x-request-id": "req-500"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "req-500"
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error; report the request id",
                                         "request_id": "req-500"}}


def test_overload_is_refused_before_the_body_is_read(service, monkeypatch):
    batcher = service.app.state.service.batcher
    reads = []
    monkeypatch.setattr(routes, "read_upload", lambda request: reads.append(request))
    held = [batcher.reserve() for _ in range(batcher.max_queue_size - batcher.depth())]
    try:
        response = service.post("/v1/encode", files={"file": ("a.wav", b"RIFF" + b"\x00" * 4096)})
        refused(response, 503, "overloaded")
        assert response.headers["retry-after"] == "1" and reads == []
        refused(service.post("/v1/decode", json={"codes": [[1]]}), 503, "overloaded")
    finally:
        for ticket in held:
            ticket.release()
