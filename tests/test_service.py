"""The service end to end: a real uvicorn server on 127.0.0.1, real WAV files, real scrapes."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import soundfile as sf
from server import running_server, scrape, value

from dmcodec import Tokenizer
from dmcodec.audio import wav_bytes
from dmcodec.client import AsyncDMCodecClient, DMCodecClient
from dmcodec.signals import speech_like

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory):
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with running_server(tiny_checkpoint, log, max_wait_ms=100, max_batch_size=8, max_audio_seconds=20,
                        max_upload_mb=2) as (url, _):
        yield url


@pytest.fixture(scope="module")
def local(tiny_checkpoint):
    return Tokenizer.from_pretrained(tiny_checkpoint)


def test_encode_decode_roundtrip_matches_the_library(server, local, wav_dir):
    path = wav_dir / "clip2.wav"
    with DMCodecClient(server) as client:
        tokens = client.encode(path)
        audio = client.decode(tokens)
        info = client.info()
    expected = local.encode(path)
    assert tokens["n_q"] == 8 and tokens["num_samples"] == sf.info(path).frames == audio.size
    assert np.array_equal(np.array(tokens["codes"]), expected.codes)
    assert tokens["model"]["sha256"] == info["model"]["sha256"] == local.codec.sha256
    # Same content as decoding locally, up to the 16-bit WAV quantisation.
    assert np.abs(audio - np.clip(local.decode(expected.codes, expected.num_samples), -1, 1)).max() < 1e-4
    assert set(tokens) >= {"codes", "n_q", "codebook_size", "frame_rate", "sample_rate", "num_samples",
                           "duration_s", "model"}


def test_npy_format_raw_body_and_aliases(server, local, wav_dir):
    data = (wav_dir / "clip1.wav").read_bytes()
    raw = httpx.post(f"{server}/encode", content=data, headers={"content-type": "audio/wav",
                                                                 "accept": "application/octet-stream"})
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/octet-stream"
    codes = np.load(io.BytesIO(raw.content))
    assert codes.dtype == np.uint16 and np.array_equal(codes, local.encode(data).codes)
    num_samples = int(raw.headers["x-dmcodec-num-samples"])
    wav = httpx.post(f"{server}/decode", content=raw.content,
                     headers={"content-type": "application/octet-stream", "x-dmcodec-num-samples": str(num_samples)})
    assert wav.status_code == 200 and sf.info(io.BytesIO(wav.content)).frames == num_samples
    fewer = httpx.post(f"{server}/v1/encode", params={"n_q": 3}, files={"file": ("a.wav", data)}).json()
    assert fewer["n_q"] == 3 and len(fewer["codes"]) == 3
    assert httpx.post(f"{server}/v1/decode", json=fewer).status_code == 200


def test_stereo_44k_flac_is_mixed_and_resampled(server):
    buffer = io.BytesIO()
    stereo = np.stack([speech_like(1.0, 44100, seed=3)] * 2, axis=1)
    sf.write(buffer, stereo, 44100, format="FLAC")
    tokens = httpx.post(f"{server}/v1/encode", files={"file": ("a.flac", buffer.getvalue())}).json()
    assert tokens["sample_rate"] == 16000 and tokens["num_samples"] == 16000 and tokens["frames"] == 50


def test_concurrent_requests_are_batched_with_unchanged_codes(server, local):
    clips = [speech_like(5.0 if i % 2 else 3.3, seed=60 + i) for i in range(12)]
    before = scrape(server)

    async def send_all():
        async with AsyncDMCodecClient(server) as client:
            return await asyncio.gather(*(client.encode(c, sample_rate=16000) for c in clips))

    results = asyncio.run(send_all())
    after = scrape(server)
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
                 backend="torch", precision="fp32") == 1


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]


def test_every_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(server, wav_dir):
    good = (wav_dir / "clip0.wav").read_bytes()
    post = lambda path, **kw: httpx.post(f"{server}{path}", timeout=30, **kw)
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
    samples = scrape(server)
    assert value(samples, "dmcodec_requests_total", route="/v1/decode", status="422") >= 9


def test_invalid_configuration_fails_at_startup(tiny_checkpoint, tmp_path):
    env = {"DMCODEC_CHECKPOINT": str(tiny_checkpoint), "DMCODEC_MAX_BATCH_SIZE": "0", "PATH": ""}
    result = subprocess.run([sys.executable, "-m", "dmcodec_service"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "max_batch_size" in result.stderr
    env = {"DMCODEC_CHECKPOINT": str(tmp_path / "missing")}
    result = subprocess.run([sys.executable, "-m", "dmcodec_service"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "checkpoint not found" in result.stderr


def test_api_keys_guard_the_api_but_not_health_or_metrics(tiny_checkpoint, tmp_path, wav_dir):
    with running_server(tiny_checkpoint, tmp_path / "log", api_keys="k1,k2") as (url, _):
        files = {"file": ("a.wav", (wav_dir / "clip0.wav").read_bytes())}
        _error(httpx.post(f"{url}/v1/encode", files=files), 401, "unauthorized")
        _error(httpx.post(f"{url}/v1/encode", files=files, headers={"x-api-key": "nope"}), 401, "unauthorized")
        _error(httpx.get(f"{url}/v1/info"), 401, "unauthorized")
        assert httpx.post(f"{url}/v1/encode", files=files, headers={"x-api-key": "k2"}).status_code == 200
        with DMCodecClient(url, api_key="k1") as client:
            assert client.info()["n_q"] == 8
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 200


def post_concurrently(url: str, wav: bytes, count: int) -> list[httpx.Response]:
    """`count` simultaneous encode requests of the same WAV."""
    async def send():
        async with httpx.AsyncClient(timeout=120) as http:
            return await asyncio.gather(*(http.post(f"{url}/v1/encode", files={"file": ("a.wav", wav)})
                                          for _ in range(count)))

    return asyncio.run(send())


def test_overload_gets_503_with_retry_after_and_the_client_retries(tiny_checkpoint, tmp_path):
    clip = wav_bytes(speech_like(15.0, seed=1), 16000)
    with running_server(tiny_checkpoint, tmp_path / "log", max_queue_size=1, max_batch_size=1,
                        max_wait_ms=0, retry_after_s=1) as (url, _):
        responses = post_concurrently(url, clip, 12)
        statuses = sorted(r.status_code for r in responses)
        assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503}
        refused = next(r for r in responses if r.status_code == 503)
        assert refused.headers["retry-after"] == "1" and refused.json()["error"]["code"] == "overloaded"
        assert value(scrape(url), "dmcodec_rejected_requests_total", reason="queue_full") >= 1

        async def with_client():
            async with AsyncDMCodecClient(url, max_retries=30) as client:
                return await asyncio.gather(*(client.encode(clip) for _ in range(6)))

        assert all(r["frames"] == 750 for r in asyncio.run(with_client()))  # every one retried to success


def test_deadline_gives_504_and_disconnected_clients_are_not_computed(tiny_checkpoint, small_checkpoint, tmp_path):
    long_clip = wav_bytes(speech_like(20.0, seed=2), 16000)
    with running_server(tiny_checkpoint, tmp_path / "log", max_batch_size=1, max_wait_ms=0,
                        request_timeout_s=0.3, max_audio_seconds=60) as (url, _):
        statuses = [r.status_code for r in post_concurrently(url, long_clip, 4)]
        assert 504 in statuses, statuses
    long_clip = wav_bytes(speech_like(40.0, seed=2), 16000)  # seconds of work for the small model
    with running_server(small_checkpoint, tmp_path / "log2", max_batch_size=1, max_wait_ms=0,
                        max_concurrent_batches=1, max_audio_seconds=60) as (url, _):
        before = scrape(url)

        async def leave_early():
            async with httpx.AsyncClient(timeout=60) as http:
                busy = asyncio.create_task(http.post(f"{url}/v1/encode", files={"file": ("a.wav", long_clip)}))
                await asyncio.sleep(0.3)
                async with httpx.AsyncClient(timeout=0.5) as impatient:
                    with pytest.raises(httpx.ReadTimeout):
                        await impatient.post(f"{url}/v1/encode", files={"file": ("b.wav", long_clip)})
                return await busy

        assert asyncio.run(leave_early()).status_code == 200
        time.sleep(1.0)
        after = scrape(url)
        assert value(after, "dmcodec_rejected_requests_total", reason="cancelled") >= 1
        computed = value(after, "dmcodec_audio_seconds_total", op="encode") - \
            value(before, "dmcodec_audio_seconds_total", op="encode")
        assert computed == pytest.approx(40.0)  # the abandoned request never reached the model


def test_sigterm_finishes_queued_work_then_exits(tiny_checkpoint, tmp_path):
    clip = wav_bytes(speech_like(6.0, seed=4), 16000)
    with running_server(tiny_checkpoint, tmp_path / "log", max_batch_size=1, max_wait_ms=0) as (url, process):
        async def requests_then_sigterm():
            async with httpx.AsyncClient(timeout=60) as http:
                tasks = [asyncio.create_task(http.post(f"{url}/v1/encode", files={"file": ("a.wav", clip)}))
                         for _ in range(4)]
                await asyncio.sleep(0.5)
                process.send_signal(signal.SIGTERM)
                return await asyncio.gather(*tasks)

        responses = asyncio.run(requests_then_sigterm())
        assert [r.status_code for r in responses] == [200] * 4
        assert all(len(r.json()["codes"][0]) == 300 for r in responses)
        assert process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained
    log = (tmp_path / "log").read_text()
    assert "draining" in log and "stopped" in log


def test_openapi_documents_routes_and_errors(server):
    spec = httpx.get(f"{server}/openapi.json").json()
    encode = spec["paths"]["/v1/encode"]["post"]
    assert {"400", "413", "415", "422", "503", "504"} <= set(encode["responses"])
    assert "multipart/form-data" in encode["requestBody"]["content"]
    assert "application/octet-stream" in spec["paths"]["/v1/decode"]["post"]["requestBody"]["content"]
    props = spec["components"]["schemas"]["EncodeResponse"]["properties"]
    assert all(props[name].get("description") or "$ref" in props[name] for name in props)
    assert {"/v1/info", "/v2/health/live", "/v2/health/ready"} <= set(spec["paths"])
    assert json.dumps(spec)  # serialisable
