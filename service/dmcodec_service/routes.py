"""HTTP routes: /v1/encode, /v1/decode, /v1/info and /metrics; aliases /encode and /decode."""

from __future__ import annotations

import io
import logging
import time
from typing import Any, AsyncIterator, Optional

import anyio
import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from dmcodec.audio import pcm16, wav_bytes, wav_header
from dmcodec.layouts import LAYOUTS
from dmcodec.tokens import stored_tokens

from .batcher import Ticket
from .errors import APIError
from .inputs import NPY_TYPES, checked_layout, content_type, decode_upload, parse_tokens, read_upload, requested_layout
from .jobs import DecodeWindowJob, EncodeJob
from .schemas import LAYOUT_TEXT, DecodeRequest, EncodeResponse, ErrorResponse, InfoResponse
from .security import require_api_key
from .submission import admitted, deadline_of, run_job, service_state, within_deadline

ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse, "description": text} for status, text in {
    400: "Corrupt or empty audio.", 401: "Missing or wrong API key.", 409: "Tokens from another model.",
    413: "Upload or audio duration over the limits.", 415: "Unsupported media type.",
    422: "Invalid parameters or tokens, or audio beyond the channel or sample-rate limits.",
    503: "Queue full or shutting down (see Retry-After).",
    504: "The request waited past its deadline."}.items()}

router = APIRouter()
log = logging.getLogger(__name__)


def _want_npy(request: Request, fmt: Optional[str]) -> bool:
    if fmt:
        return fmt == "npy"
    accept = request.headers.get("accept", "")
    return any(t in accept for t in NPY_TYPES) and "application/json" not in accept


LAYOUT_CHOICES: dict[str, Any] = {"enum": list(LAYOUTS)}
ENCODE_LAYOUT = f"The tokens' layout: {LAYOUT_TEXT}. Other layouts than codes return input_ids."


@router.post("/v1/encode", response_model=EncodeResponse, responses={
    **ERRORS, 200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                    "description": "JSON tokens, or with format=npy a .npy (codes: uint16 [n_q, frames]; "
                                   "input_ids: int32) with the metadata in X-DMCodec-* headers."}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary", "description": "WAV, FLAC, OGG/Opus or MP3; "
                     "any rate; channels are averaged."},
            "n_q": {"type": "integer", "minimum": 1, "description": "Levels to return (1..n_q of the "
                    "model; default all)."},
            "layout": {"type": "string", **LAYOUT_CHOICES, "description": ENCODE_LAYOUT}}}},
        "audio/*": {"schema": {"type": "string", "format": "binary"}}}}},
    dependencies=[Depends(require_api_key)], summary="Audio -> tokens")
async def encode(request: Request,
                 n_q: Optional[int] = Query(None, description="Levels to return (1..n_q of the model; default "
                                           "all; layout first: 1)."),
                 layout: Optional[str] = Query(None, description=ENCODE_LAYOUT, json_schema_extra=LAYOUT_CHOICES),
                 format: Optional[str] = Query(None, pattern="^(json|npy)$", description="json or npy.")):
    service = service_state(request)
    engine = service.engine
    with admitted(request) as ticket:
        source, fields = await within_deadline(request, read_upload(request))
        chosen, levels = requested_layout(engine.config, layout if layout is not None else fields.get("layout"),
                                          n_q if n_q is not None else fields.get("n_q"))
        rate = engine.config.sample_rate
        async with service.decode_slots:
            samples = await run_in_threadpool(decode_upload, source, rate, service.audio_limits)
        codes = await run_job(request, EncodeJob(samples, levels), samples.size / rate, ticket)
    encoded = engine.wrap(codes, samples.size, chosen)
    if _want_npy(request, format):
        buffer = io.BytesIO()
        np.save(buffer, stored_tokens(encoded))
        return Response(buffer.getvalue(), media_type="application/octet-stream",
                        headers=encoded.metadata.headers())
    return JSONResponse(encoded.to_json())


@router.post("/v1/decode", response_class=Response, responses={
    **ERRORS, 200: {"content": {"audio/wav": {}}, "description": "16-bit PCM WAV, mono, at the model's rate, "
                                                                 "exactly num_samples long."}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": DecodeRequest.model_json_schema()},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary", "description": ".npy of "
                                                "codes [n_q, frames], or of ids in a layout; the metadata of "
                                                "the encode response may come as its X-DMCodec-* headers"}}}}},
    dependencies=[Depends(require_api_key)], summary="Tokens -> audio")
async def decode(request: Request,
                 num_samples: Optional[int] = Query(None, ge=1, description="Output length (for .npy bodies)."),
                 layout: Optional[str] = Query(None, description=f"The tokens' layout, if they do not record it: "
                                               f"{LAYOUT_TEXT}.", json_schema_extra=LAYOUT_CHOICES),
                 stream: bool = Query(False, description="Send the WAV header at once, then each window's audio "
                                      "as soon as it is decoded.")):
    service = service_state(request)
    header = request.headers.get("x-dmcodec-num-samples")
    if num_samples is None and header:
        if not (header.isascii() and header.isdigit()) or int(header) < 1:
            raise APIError(422, "invalid_num_samples", "X-DMCodec-Num-Samples must be a positive integer")
        num_samples = int(header)
    engine = service.engine
    config = engine.config
    with admitted(request) as ticket:
        body = await within_deadline(request, request.body())
        item = await run_in_threadpool(lambda: parse_tokens(
            body, content_type(request), layout=checked_layout(layout) if layout else None, headers=request.headers,
            num_samples=num_samples, vocabulary=engine.vocabulary, served_sha=engine.codec.sha256))
        try:
            engine.check_codes(item.codes, item.num_samples)
        except ValueError as err:
            raise APIError(422, "invalid_tokens", str(err)) from None
        frames = item.codes.shape[1]
        seconds = frames / config.frame_rate
        if seconds > service.settings.max_audio_seconds:
            raise APIError(413, "audio_too_long", f"{frames} frames is {seconds:.1f} s; "
                           f"the limit is {service.settings.max_audio_seconds:g} s")
        if stream:
            total = item.num_samples or frames * config.hop_length
            kept = ticket.keep()  # the place outlives this handler: the stream gives it back
            return TicketedStream(_stream_windows(request, item.codes, total, kept), kept, deadline_of(request),
                                  media_type="audio/wav", headers={"X-DMCodec-Num-Samples": str(total)})
        audio = await run_job(request, item, seconds, ticket)
    body = await run_in_threadpool(wav_bytes, audio, config.sample_rate)
    return Response(body, media_type="audio/wav", headers={"X-DMCodec-Num-Samples": str(audio.size)})


class TicketedStream(StreamingResponse):
    """A streamed response that holds its request's queue place while it streams and gives it
    back however it ends (also when the client left before the first byte, when the body is
    never started), and that ends at the request's deadline (a client that stops reading
    must not hold the place for ever)."""

    def __init__(self, content: AsyncIterator[bytes], ticket: Ticket, deadline: float, **kwargs: Any):
        super().__init__(content, **kwargs)
        self.ticket, self.deadline, self.windows = ticket, deadline, content

    async def __call__(self, scope, receive, send) -> None:
        try:
            with anyio.fail_after(max(0.0, self.deadline - time.monotonic())):
                await super().__call__(scope, receive, send)
        except TimeoutError:
            log.warning("streamed decode cut at its deadline")
        finally:
            self.ticket.release()
            await self.windows.aclose()  # type: ignore[attr-defined]


async def _stream_windows(request: Request, codes: np.ndarray, total: int, ticket: Ticket) -> AsyncIterator[bytes]:
    """The WAV header, then the audio of each window of the plan, in order; memory is one
    window's audio at a time. Each window is a job of its own on the request's `ticket`."""
    engine = service_state(request).engine
    config = engine.config
    yield wav_header(total, config.sample_rate)
    remaining = total
    for window in engine.windows(codes.shape[1]):
        audio = await run_job(request, DecodeWindowJob(codes, window), (window.stop - window.start) / config.frame_rate,
                              ticket.borrow())
        piece, remaining = audio[:remaining], remaining - min(remaining, audio.size)
        yield pcm16(piece)


# The documented short names.
router.add_api_route("/encode", encode, methods=["POST"], include_in_schema=False,
                     dependencies=[Depends(require_api_key)])
router.add_api_route("/decode", decode, methods=["POST"], include_in_schema=False,
                     dependencies=[Depends(require_api_key)])


@router.get("/v1/info", response_model=InfoResponse, dependencies=[Depends(require_api_key)],
            responses={401: ERRORS[401]}, summary="Model, limits and batching")
async def info(request: Request) -> dict[str, Any]:
    service = service_state(request)
    engine, s = service.engine, service.settings
    config = engine.config
    return {
        "model": engine.model_info(),
        "config": {k: v for k, v in config.to_dict().items() if k in type(config).__dataclass_fields__},
        "metadata": engine.codec.metadata, "sample_rate": config.sample_rate, "frame_rate": config.frame_rate,
        "hop_length": config.hop_length, "n_q": config.n_q, "codebook_size": config.codebook_size,
        "bitrate_bps": config.bitrate(),
        "limits": {"max_upload_mb": s.max_upload_mb, "max_tokens_mb": s.max_tokens_mb,
                   "max_audio_seconds": s.max_audio_seconds, "max_channels": s.max_channels,
                   "max_sample_rate": s.max_sample_rate, "max_queue_size": s.max_queue_size,
                   "request_timeout_s": s.request_timeout_s},
        "batching": {"max_batch_size": s.max_batch_size, "max_batch_audio_seconds": s.max_batch_audio_seconds,
                     "max_wait_ms": s.max_wait_ms},
        "windowing": engine.windowing_info(), "vocabulary": engine.vocabulary.to_dict(),
    }


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.exposition()
    return Response(body, media_type=content_type)
