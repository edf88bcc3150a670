"""The HTTP API in-process: `create_app` with the real model, through an ASGI transport."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import soundfile as sf
from helpers import RECORDED_FORMATS, encode_audio, in_process_service, scrape, value

from dmcodec import Tokenizer
from dmcodec.audio import wav_bytes
from dmcodec.client import DMCodecClient
from dmcodec.signals import speech_like

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def service(tiny_checkpoint):
    with in_process_service(tiny_checkpoint, max_wait_ms=100, max_batch_size=8, max_audio_seconds=20,
                            max_upload_mb=2) as client:
        yield client


@pytest.fixture(scope="module")
def local(tiny_checkpoint):
    # The library with the service's default backend (auto: onnxruntime where it passes the gate).
    with Tokenizer.from_pretrained(tiny_checkpoint, backend="auto") as tokenizer:
        yield tokenizer


def float_wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def test_encode_decode_roundtrip_matches_the_library(service, local, wav_dir):
    path = wav_dir / "clip2.wav"
    with DMCodecClient(http=service) as client:
        tokens = client.encode(path)
        audio = client.decode(tokens)
        info = client.info()
        npy = client.encode(path, npy=True)
    expected = local.encode(path)
    assert tokens["n_q"] == 8 and tokens["num_samples"] == sf.info(path).frames == audio.size
    assert np.array_equal(np.array(tokens["codes"]), expected.codes) and np.array_equal(npy["codes"], expected.codes)
    assert tokens["model"]["sha256"] == info["model"]["sha256"] == npy["model_sha256"] == local.codec.sha256
    assert np.abs(audio - np.clip(local.decode(expected.codes, expected.num_samples), -1, 1)).max() < 1e-4
    assert {k: v for k, v in npy.items() if k != "codes"} == expected.metadata.flat()


def test_npy_format_raw_body_and_aliases(service, local, wav_dir):
    data = (wav_dir / "clip1.wav").read_bytes()
    raw = service.post("/encode", content=data, headers={"content-type": "audio/wav",
                                                          "accept": "application/octet-stream"})
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/octet-stream"
    codes = np.load(io.BytesIO(raw.content))
    assert codes.dtype == np.uint16 and np.array_equal(codes, local.encode(data).codes)
    num_samples = int(raw.headers["x-dmcodec-num-samples"])
    wav = service.post("/decode", content=raw.content,
                       headers={"content-type": "application/octet-stream", "x-dmcodec-num-samples": str(num_samples)})
    assert wav.status_code == 200 and sf.info(io.BytesIO(wav.content)).frames == num_samples
    fewer = service.post("/v1/encode", params={"n_q": 3}, files={"file": ("a.wav", data)}).json()
    assert fewer["n_q"] == 3 and len(fewer["codes"]) == 3
    assert service.post("/v1/decode", json=fewer).status_code == 200


def test_stereo_44k_flac_is_mixed_and_resampled(service):
    buffer = io.BytesIO()
    stereo = np.stack([speech_like(1.0, 44100, seed=3)] * 2, axis=1)
    sf.write(buffer, stereo, 44100, format="FLAC")
    tokens = service.post("/v1/encode", files={"file": ("a.flac", buffer.getvalue())}).json()
    assert tokens["sample_rate"] == 16000 and tokens["num_samples"] == 16000 and tokens["frames"] == 50


def test_concurrent_requests_are_batched_with_unchanged_codes(service, local):
    clips = [speech_like(5.0 if i % 2 else 3.3, seed=60 + i) for i in range(12)]
    before = scrape(service)
    with ThreadPoolExecutor(len(clips)) as pool:
        results = list(pool.map(lambda c: service.post("/v1/encode", files={"file": ("a.wav", float_wav(c))}).json(),
                                clips))
    after = scrape(service)
    for tokens, clip in zip(results, clips):
        assert np.array_equal(np.array(tokens["codes"]), local.encode_arrays([clip])[0])
    batches = value(after, "dmcodec_batch_size_requests_count", op="encode") - \
        value(before, "dmcodec_batch_size_requests_count", op="encode")
    requests = value(after, "dmcodec_batch_size_requests_sum", op="encode") - \
        value(before, "dmcodec_batch_size_requests_sum", op="encode")
    assert requests == 12 and batches < 12  # several requests shared a batch
    audio = value(after, "dmcodec_audio_seconds_total", op="encode") - \
        value(before, "dmcodec_audio_seconds_total", op="encode")
    assert audio == pytest.approx(sum(c.size for c in clips) / 16000)
    ok = value(after, "dmcodec_requests_total", route="/v1/encode", status="200") - \
        value(before, "dmcodec_requests_total", route="/v1/encode", status="200")
    assert ok == 12
    assert value(after, "dmcodec_request_duration_seconds_count", route="/v1/encode") >= 12
    assert value(after, "dmcodec_queue_duration_seconds_count", op="encode") >= 12
    assert value(after, "dmcodec_model_info", name="untrained-tiny", sha256=local.codec.sha256, device="cpu",
                 backend=local.backend.name, precision="fp32") == 1


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]


def test_every_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(service, wav_dir):
    good = (wav_dir / "clip0.wav").read_bytes()
    post = service.post
    _error(post("/v1/encode", files={"other": ("a.wav", good)}), 400, "missing_file")
    _error(post("/v1/encode", files={"file": ("a.wav", b"")}), 400, "invalid_audio")
    _error(post("/v1/encode", files={"file": ("a.wav", b"RIFF\x00\x00\x00\x00WAVEfmt nonsense")}), 400, "invalid_audio")
    _error(post("/v1/encode", content=b"\x00" * 100, headers={"content-type": "audio/mpeg"}), 400, "invalid_audio")
    _error(post("/v1/encode", content=b"hello", headers={"content-type": "text/plain"}), 415, "unsupported_media_type")
    _error(post("/v1/encode", json={"audio": "x"}), 415, "unsupported_media_type")
    _error(post("/v1/encode", files={"file": ("big.wav", b"\x00" * (3 * 1024 * 1024))}), 413, "payload_too_large")
    long_wav = wav_bytes(np.zeros(16000 * 25, dtype=np.float32), 16000)
    _error(post("/v1/encode", files={"file": ("long.wav", long_wav)}), 413, "audio_too_long")
    _error(post("/v1/encode", params={"n_q": 9}, files={"file": ("a.wav", good)}), 422, "invalid_n_q")
    _error(post("/v1/encode", data={"n_q": "zero"}, files={"file": ("a.wav", good)}), 422, "invalid_n_q")
    _error(post("/v1/decode", json={"codes": [[1, 2], [3]]}), 422, "invalid_tokens")
    _error(post("/v1/decode", json={"codes": [[64, 1]]}), 422, "invalid_tokens")
    _error(post("/v1/decode", json={"codes": [[-1, 1]]}), 422, "invalid_tokens")
    _error(post("/v1/decode", json={"codes": [[1]] * 9}), 422, "invalid_tokens")
    _error(post("/v1/decode", json={"codes": []}), 422, "invalid_tokens")
    _error(post("/v1/decode", json={"codes": [[1, 2]], "num_samples": 5000}), 422, "invalid_tokens")
    _error(post("/v1/decode", json={"codes": "abc"}), 422, "invalid_tokens")
    _error(post("/v1/decode", content=b"{not json", headers={"content-type": "application/json"}),
           422, "invalid_tokens")
    _error(post("/v1/decode", content=b"\x93NUMPY garbage", headers={"content-type": "application/octet-stream"}),
           422, "invalid_tokens")
    _error(post("/v1/decode", content=b"codes", headers={"content-type": "text/csv"}), 415, "unsupported_media_type")
    _error(post("/v1/decode", json={"codes": [[1] * 1100]}), 413, "audio_too_long")
    _error(post("/v1/decode", json={"codes": [[1, 2]], "model": {"sha256": "0" * 64}}), 409, "model_mismatch")
    assert post("/v1/encode", files={"file": ("a.wav", good)}).status_code == 200
    samples = scrape(service)
    assert value(samples, "dmcodec_requests_total", route="/v1/decode", status="422") >= 9


def test_api_keys_guard_the_api_but_not_health_or_metrics(tiny_checkpoint, wav_dir):
    with in_process_service(tiny_checkpoint, api_keys=["k1", "k2"]) as service:
        files = {"file": ("a.wav", (wav_dir / "clip0.wav").read_bytes())}
        _error(service.post("/v1/encode", files=files), 401, "unauthorized")
        _error(service.post("/v1/encode", files=files, headers={"x-api-key": "nope"}), 401, "unauthorized")
        _error(service.get("/v1/info"), 401, "unauthorized")
        assert service.post("/v1/encode", files=files, headers={"x-api-key": "k2"}).status_code == 200
        with DMCodecClient(api_key="k1", http=service) as client:
            assert client.info()["n_q"] == 8
        assert service.get("/v2/health/ready").status_code == 200
        assert service.get("/metrics").status_code == 200


def test_openapi_documents_routes_and_errors(service):
    spec = service.get("/openapi.json").json()
    encode = spec["paths"]["/v1/encode"]["post"]
    assert {"400", "413", "415", "422", "503", "504"} <= set(encode["responses"])
    assert "multipart/form-data" in encode["requestBody"]["content"]
    assert "application/octet-stream" in spec["paths"]["/v1/decode"]["post"]["requestBody"]["content"]
    props = spec["components"]["schemas"]["EncodeResponse"]["properties"]
    assert all(props[name].get("description") or "$ref" in props[name] for name in props)
    assert {"/v1/info", "/v2/health/live", "/v2/health/ready"} <= set(spec["paths"])
    assert json.dumps(spec)  # serialisable


@pytest.mark.parametrize("name", sorted(RECORDED_FORMATS))
def test_browser_and_phone_recordings_are_accepted(service, name):
    container, codec, rate = RECORDED_FORMATS[name]
    data = encode_audio(speech_like(1.6, rate, seed=8), rate, container, codec)
    tokens = service.post("/v1/encode", files={"file": (f"rec.{container}", data)}).json()
    assert abs(tokens["num_samples"] - 1.6 * 16000) < 0.06 * 16000 and tokens["n_q"] == 8
    raw = service.post("/v1/encode", content=data, headers={"content-type": f"audio/{container}"})
    assert raw.json()["codes"] == tokens["codes"]


def test_streamed_decode_sends_the_same_wav_window_by_window(tiny_checkpoint):
    with in_process_service(tiny_checkpoint, window_frames=60, context_frames=10) as service:
        tokens = service.post("/v1/encode", files={"file": ("a.wav", float_wav(speech_like(4.1, seed=6)))}).json()
        whole = service.post("/v1/decode", json=tokens)
        streamed = service.post("/v1/decode", params={"stream": "true"}, json=tokens)
        with DMCodecClient(http=service) as client:
            chunks = list(client.decode_stream(tokens))
            audio = client.decode(tokens)
    assert streamed.status_code == 200 and streamed.content == whole.content
    assert streamed.headers["x-dmcodec-num-samples"] == str(tokens["num_samples"])
    assert len(chunks) == 6 and np.array_equal(np.concatenate(chunks), audio)  # 205 frames in windows of 40


def test_a_stream_whose_client_left_before_it_began_gives_its_place_back(service):

    from dmcodec_service.routes import TicketedStream

    batcher = service.app.state.service.batcher
    before = batcher.depth()

    async def never_read():
        yield b"never"

    async def scenario():
        stream = TicketedStream(never_read(), batcher.reserve(), deadline=10**9, media_type="audio/wav")
        sent = []

        async def receive():
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await stream({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, send)
        return sent

    service.portal.call(scenario)  # on the app's own event loop, where the batcher lives
    assert batcher.depth() == before
