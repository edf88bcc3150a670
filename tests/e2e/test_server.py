"""The service end to end: a real uvicorn server on 127.0.0.1, real WAV files, real scrapes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from helpers import running_server, scrape, value

from dmcodec import Tokenizer
from dmcodec.audio import wav_bytes
from dmcodec.client import AsyncDMCodecClient, DMCodecClient
from dmcodec.layouts import LAYOUTS
from dmcodec.signals import speech_like
from dmcodec.tokens import payload_name

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


def test_the_client_round_trips_over_a_real_socket(server, local, wav_dir):
    path = wav_dir / "clip2.wav"
    with DMCodecClient(server) as client:
        tokens = client.encode(path)
        audio = client.decode(tokens)
    expected = local.encode(path)
    assert np.array_equal(np.array(tokens["codes"]), expected.codes) and audio.size == expected.num_samples


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_clients_send_and_take_back_tokens_in_any_layout(server, local, wav_dir, layout):
    path = wav_dir / "clip3.wav"
    expected = local.encode(path, layout=layout)
    with DMCodecClient(server) as client:
        reference = client.decode({"codes": expected.codes.tolist(), "num_samples": expected.num_samples})
        tokens, stored = client.encode(path, layout=layout), client.encode(path, layout=layout, npy=True)
        name = payload_name(layout)
        assert np.array_equal(np.asarray(tokens[name]), expected.tokens()) and tokens["layout"] == layout
        assert np.array_equal(stored[name], expected.tokens()) and stored["vocab_size"] == local.vocabulary.size
        bare = client.decode(expected.tokens(), num_samples=expected.num_samples, layout=layout)
        for audio in (client.decode(tokens), client.decode(stored), bare, np.concatenate(list(
                client.decode_stream(stored)))):
            assert np.array_equal(audio, reference)

    async def with_the_async_client():
        async with AsyncDMCodecClient(server) as client:
            tokens = await client.encode(path, layout=layout, npy=True)
            return await client.decode(tokens), np.concatenate([c async for c in client.decode_stream(tokens)])

    assert all(np.array_equal(audio, reference) for audio in asyncio.run(with_the_async_client()))


def test_invalid_configuration_fails_at_startup(tiny_checkpoint, tmp_path):
    env = {"DMCODEC_CHECKPOINT": str(tiny_checkpoint), "DMCODEC_MAX_BATCH_SIZE": "0", "PATH": ""}
    result = subprocess.run([sys.executable, "-m", "dmcodec_service"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "max_batch_size" in result.stderr
    env = {"DMCODEC_CHECKPOINT": str(tmp_path / "missing")}
    result = subprocess.run([sys.executable, "-m", "dmcodec_service"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "checkpoint not found" in result.stderr


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
    long_clip = wav_bytes(speech_like(40.0, seed=2), 16000)
    with running_server(tiny_checkpoint, tmp_path / "log", max_batch_size=1, max_wait_ms=0,
                        request_timeout_s=0.3, max_audio_seconds=60) as (url, _):
        statuses = [r.status_code for r in post_concurrently(url, long_clip, 8)]  # one at a time: the last wait
        assert 504 in statuses, statuses
    # Seconds of work for the small model on one thread: the impatient client leaves while it
    # still waits (with onnxruntime's speed, or a lone window on both cores, it might not).
    with running_server(small_checkpoint, tmp_path / "log2", max_batch_size=1, max_wait_ms=0, backend="torch",
                        solo_threads=1, max_concurrent_batches=1, max_audio_seconds=60) as (url, _):
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


def test_a_long_streamed_decode_sends_audio_long_before_it_ends(small_checkpoint, tmp_path):
    rng = np.random.default_rng(3)
    tokens = {"codes": rng.integers(0, 1024, (8, 180 * 50)).tolist()}  # 3 minutes
    with running_server(small_checkpoint, tmp_path / "log", max_audio_seconds=600) as (url, _):
        started = time.monotonic()
        first_audio = None
        received = bytearray()
        with httpx.stream("POST", f"{url}/v1/decode", params={"stream": "true"}, json=tokens, timeout=120) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                received += chunk
                if first_audio is None and len(received) > 44:
                    first_audio = time.monotonic() - started
        total = time.monotonic() - started
    # sample-for-sample equality with the whole WAV: tests/service/test_api.py
    assert len(received) == 44 + 180 * 16000 * 2 and received[:4] == b"RIFF"
    assert first_audio < total / 3, f"first audio after {first_audio:.1f} s of {total:.1f} s"
