"""HTTP clients for the service (httpx), sync and async, that wait out 503 + Retry-After.
They need only httpx beside the library (`pip install 'dmcodec[client]'`).

    with DMCodecClient("http://127.0.0.1:8000") as client:
        tokens = client.encode("speech.flac")          # dict: codes, n_q, num_samples, ...
        audio = client.decode(tokens)                   # float32 numpy array at 16 kHz
        ids = client.encode("speech.flac", layout="flat")  # input_ids and the vocabulary fields
        assert np.array_equal(client.decode(ids), audio)   # any layout decodes to the same audio
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, Optional, Union

import httpx
import numpy as np
import soundfile as sf

from .tokens import TokenMetadata, metadata_headers, payload_name

AudioInput = Union[str, Path, bytes, np.ndarray]


class ServiceError(Exception):
    """The service answered with an error (its JSON `error.code` and `error.message`).
    `retry_after`: seconds the service asked to wait (503), else None."""

    def __init__(self, status: int, code: str, message: str, retry_after: Optional[float] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    @property
    def transient(self) -> bool:
        """Worth trying again later: overload, shutdown, deadline, rate limit."""
        return self.status in (429, 503, 504)


def _audio_bytes(audio: AudioInput, sample_rate: Optional[int]) -> tuple[bytes, str]:
    if isinstance(audio, np.ndarray):
        if sample_rate is None:
            raise ValueError("sample_rate is required for array input")
        buffer = io.BytesIO()
        sf.write(buffer, audio.astype(np.float32), sample_rate, format="WAV", subtype="FLOAT")
        return buffer.getvalue(), "audio.wav"
    if isinstance(audio, (bytes, bytearray)):
        return bytes(audio), "audio"
    path = Path(audio)
    return path.read_bytes(), path.name


def _given(**values: Any) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value}


def _encode_request(audio: AudioInput, sample_rate: Optional[int], n_q: Optional[int], npy: bool,
                    layout: Optional[str]) -> dict[str, Any]:
    data, name = _audio_bytes(audio, sample_rate)
    return {"files": {"file": (name, data, "application/octet-stream")}, "data": _given(n_q=n_q, layout=layout),
            "params": _given(format="npy" if npy else None)}


def _decode_request(tokens: Union[dict, np.ndarray], num_samples: Optional[int], layout: Optional[str],
                    stream: bool = False) -> dict[str, Any]:
    """Tokens as `encode` returned them (JSON, or with npy=True an array beside the flat metadata),
    or an array alone -> the request: JSON, or a .npy body with the metadata as its headers."""
    params = _given(num_samples=num_samples, layout=layout, stream="true" if stream else None)
    array = tokens if isinstance(tokens, np.ndarray) else \
        tokens.get(payload_name(tokens.get("layout") or layout or "codes"))
    if not isinstance(array, np.ndarray):
        return {"json": tokens, "params": params}
    buffer = io.BytesIO()
    np.save(buffer, array)
    headers = {} if isinstance(tokens, np.ndarray) else metadata_headers(tokens)
    return {"content": buffer.getvalue(), "headers": {**headers, "content-type": "application/octet-stream"},
            "params": params}


class _StreamedWav:
    """The bytes of /v1/decode?stream=true as they come -> float32 sample chunks: the 44-byte
    header skipped, 16-bit samples split across chunks joined again."""

    def __init__(self) -> None:
        self._header = 44
        self._pending = b""

    def feed(self, chunk: bytes) -> np.ndarray:
        skipped = min(self._header, len(chunk))
        self._header -= skipped
        data = self._pending + chunk[skipped:]
        whole = len(data) // 2 * 2
        self._pending = data[whole:]
        return np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0


def _retry_after(response: httpx.Response) -> Optional[float]:
    header = response.headers.get("retry-after", "")
    return float(header) if header.replace(".", "", 1).isdigit() else None


def _result(response: httpx.Response, kind: str) -> Any:
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            code, message = error["code"], error["message"]
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", response.text[:200]
        raise ServiceError(response.status_code, code, message, _retry_after(response))
    if kind == "npy":
        metadata = TokenMetadata.from_headers(response.headers)
        tokens = np.load(io.BytesIO(response.content), allow_pickle=False)
        return {payload_name(metadata.layout): tokens, **metadata.flat()}
    if kind == "wav":
        audio, _ = sf.read(io.BytesIO(response.content), dtype="float32")
        return audio
    return response.json()


def _retry_delay(response: httpx.Response, attempt: int, max_retries: int) -> Optional[float]:
    if response.status_code != 503 or attempt >= max_retries:
        return None
    return _retry_after(response) or 1.0


class _Base:
    def __init__(self, base_url: str, api_key: Optional[str], max_retries: int):
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.max_retries = max_retries

    def _with_headers(self, request: dict[str, Any]) -> dict[str, Any]:
        """`request` with the client's headers (the API key) beside its own (a .npy body's)."""
        return {**request, "headers": {**self.headers, **request.get("headers", {})}}


class DMCodecClient(_Base):
    """Blocking client.

    Args:
        base_url: the service.
        api_key: sent as `Authorization: Bearer <key>`.
        timeout: seconds per request.
        max_retries: how often a 503 is retried, after its Retry-After.
        http: an httpx client to send through instead of one of our own (proxies, TLS settings,
            an in-process ASGI transport); its base URL is used, and it is left open on close.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: Optional[str] = None,
                 timeout: float = 120.0, max_retries: int = 5, http: Optional[httpx.Client] = None):
        super().__init__(base_url, api_key, max_retries)
        self._owned = http is None
        self._http = http or httpx.Client(base_url=self.base_url, timeout=timeout)

    def _post(self, path: str, kind: str, **request) -> Any:
        for attempt in range(self.max_retries + 1):
            response = self._http.post(path, **self._with_headers(request))
            delay = _retry_delay(response, attempt, self.max_retries)
            if delay is None:
                return _result(response, kind)
            time.sleep(delay)

    def encode(self, audio: AudioInput, sample_rate: Optional[int] = None, n_q: Optional[int] = None,
               npy: bool = False, layout: Optional[str] = None) -> dict[str, Any]:
        """A file path, bytes, or an array (with its sample_rate) -> the encode response: `codes`,
        or in a `layout` other than codes (dmcodec.layouts) `input_ids`, beside the token metadata
        (with npy=True, the tokens are an array - codes uint16 [n_q, frames], ids int32 - and the
        other keys are the flat token metadata of `dmcodec.tokens`, read from the response headers)."""
        return self._post("/v1/encode", "npy" if npy else "json",
                          **_encode_request(audio, sample_rate, n_q, npy, layout))

    def decode(self, tokens: Union[dict, np.ndarray], num_samples: Optional[int] = None,
               layout: Optional[str] = None) -> np.ndarray:
        """An encode response in any layout, JSON or npy (it records its layout and metadata), or
        an array of tokens in `layout` (default codes [n_q, frames]) -> float32 audio at the
        model's rate."""
        return self._post("/v1/decode", "wav", **_decode_request(tokens, num_samples, layout))

    def decode_stream(self, tokens: Union[dict, np.ndarray], num_samples: Optional[int] = None,
                      layout: Optional[str] = None) -> Iterator[np.ndarray]:
        """Like `decode`, but yields float32 chunks of the audio as the service decodes it, window
        by window (memory bounded by a window on both sides); joined, they equal `decode`."""
        request = _decode_request(tokens, num_samples, layout, stream=True)
        for attempt in range(self.max_retries + 1):
            with self._http.stream("POST", "/v1/decode", **self._with_headers(request)) as response:
                delay = _retry_delay(response, attempt, self.max_retries)
                if delay is None:
                    if response.status_code >= 400:
                        response.read()
                        _result(response, "wav")
                    wav = _StreamedWav()
                    for chunk in response.iter_bytes():
                        samples = wav.feed(chunk)
                        if samples.size:
                            yield samples
                    return
            time.sleep(delay)

    def info(self) -> dict[str, Any]:
        return _result(self._http.get("/v1/info", headers=self.headers), "json")

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> DMCodecClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncDMCodecClient(_Base):
    """The same API for asyncio (`http`: an httpx.AsyncClient, e.g. over httpx.ASGITransport)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: Optional[str] = None,
                 timeout: float = 120.0, max_retries: int = 5, max_connections: int = 100,
                 http: Optional[httpx.AsyncClient] = None):
        super().__init__(base_url, api_key, max_retries)
        self._owned = http is None
        self._http = http or httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                               limits=httpx.Limits(max_connections=max_connections))

    async def _post(self, path: str, kind: str, **request) -> Any:
        for attempt in range(self.max_retries + 1):
            response = await self._http.post(path, **self._with_headers(request))
            delay = _retry_delay(response, attempt, self.max_retries)
            if delay is None:
                return _result(response, kind)
            await asyncio.sleep(delay)

    async def encode(self, audio: AudioInput, sample_rate: Optional[int] = None, n_q: Optional[int] = None,
                     npy: bool = False, layout: Optional[str] = None) -> dict[str, Any]:
        return await self._post("/v1/encode", "npy" if npy else "json",
                                **_encode_request(audio, sample_rate, n_q, npy, layout))

    async def decode(self, tokens: Union[dict, np.ndarray], num_samples: Optional[int] = None,
                     layout: Optional[str] = None) -> np.ndarray:
        return await self._post("/v1/decode", "wav", **_decode_request(tokens, num_samples, layout))

    async def decode_stream(self, tokens: Union[dict, np.ndarray], num_samples: Optional[int] = None,
                            layout: Optional[str] = None) -> AsyncIterator[np.ndarray]:
        request = _decode_request(tokens, num_samples, layout, stream=True)
        for attempt in range(self.max_retries + 1):
            async with self._http.stream("POST", "/v1/decode", **self._with_headers(request)) as response:
                delay = _retry_delay(response, attempt, self.max_retries)
                if delay is None:
                    if response.status_code >= 400:
                        await response.aread()
                        _result(response, "wav")
                    wav = _StreamedWav()
                    async for chunk in response.aiter_bytes():
                        samples = wav.feed(chunk)
                        if samples.size:
                            yield samples
                    return
            await asyncio.sleep(delay)

    async def info(self) -> dict[str, Any]:
        return _result(await self._http.get("/v1/info", headers=self.headers), "json")

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncDMCodecClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
