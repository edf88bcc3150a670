"""Request bodies into model inputs, treating every byte as hostile.

Uploads are decoded block by block under limits read from the header first (dmcodec.audio),
so an upload costs memory by its length at 16 kHz mono, not by its size as stored. Token
bodies are bounded by the body limit, `.npy` headers are checked against the bytes that follow
before anything is allocated, and JSON integers are range-checked while they are parsed.
"""

from __future__ import annotations

import io
from typing import Any, Optional

import numpy as np
from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from dmcodec.audio import AudioError, AudioLimitError, AudioLimits, AudioSource, load_audio
from dmcodec.config import CodecConfig

from .errors import APIError, describe
from .jobs import DecodeJob
from .schemas import DecodeRequest

NPY_TYPES = ("application/octet-stream", "application/x-npy")


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_upload(request: Request) -> tuple[AudioSource, dict[str, str]]:
    """The audio (bytes, or the spooled file of a multipart upload) and the form fields."""
    kind = content_type(request)
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=16)
        upload = form.get("file") or form.get("audio")
        if not isinstance(upload, UploadFile):
            raise APIError(400, "missing_file", "multipart upload needs a file field named 'file'")
        return upload.file, {k: v for k, v in form.items() if isinstance(v, str)}
    if kind.startswith("audio/"):
        return await request.body(), {}
    raise APIError(415, "unsupported_media_type",
                   f"send multipart/form-data with a 'file' field, or a raw audio/* body (got {kind or 'none'})")


def decode_upload(source: AudioSource, sample_rate: int, limits: AudioLimits) -> np.ndarray:
    """Mono float32 at `sample_rate`; raises APIError 400 (unreadable), 413 (too long) or 422."""
    try:
        return load_audio(source, sample_rate, limits)[0]
    except AudioLimitError as err:
        if err.limit == "seconds":
            raise APIError(413, "audio_too_long", str(err)) from None
        raise APIError(422, "unsupported_audio", str(err)) from None
    except AudioError as err:
        raise APIError(400, "invalid_audio", str(err)) from None


def _read_npy(body: bytes, max_levels: int) -> np.ndarray:
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError):
        raise APIError(422, "invalid_tokens", "not a .npy array (unreadable header)") from None
    if dtype.hasobject or dtype.kind not in "iu":
        raise APIError(422, "invalid_tokens", f"codes must be integers, got dtype {dtype.str}")
    if len(shape) != 2 or not 1 <= shape[0] <= max_levels or shape[1] < 1:
        raise APIError(422, "invalid_tokens", f"expected codes of shape [n_q <= {max_levels}, frames], got {shape}")
    data = memoryview(body)[stream.tell():]
    if len(data) != shape[0] * shape[1] * dtype.itemsize:
        raise APIError(422, "invalid_tokens", f"the .npy header promises {shape[0] * shape[1]} codes; the body "
                       f"holds {len(data) // dtype.itemsize}")
    codes = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
    return codes.astype(np.int64)


def parse_tokens(body: bytes, kind: str, num_samples: Optional[int], served_sha: str, max_levels: int) -> DecodeJob:
    """A decode body (the encode JSON, or a .npy) -> its job: codes [n_q, frames] int64 and the length.
    Runs off the event loop: parsing ~2 MB of JSON takes a while."""
    if kind in NPY_TYPES:
        return DecodeJob(_read_npy(body, max_levels), num_samples)
    if kind != "application/json":
        raise APIError(415, "unsupported_media_type", "send application/json (the encode response) or "
                       f"application/octet-stream (.npy); got {kind or 'none'}")
    try:
        request = DecodeRequest.model_validate_json(body)
    except ValidationError as err:
        raise APIError(422, "invalid_tokens", describe(_without_input(err.errors()), limit=5)) from None
    sha = (request.model or {}).get("sha256")
    if sha and sha != served_sha:
        raise APIError(409, "model_mismatch", f"tokens were made by model {str(sha)[:12]}...; this service "
                       f"serves {served_sha[:12]}...")
    if len({len(level) for level in request.codes}) > 1:
        raise APIError(422, "invalid_tokens", "codes must be a rectangular [n_q][frames] array")
    return DecodeJob(np.asarray(request.codes, dtype=np.int64), num_samples or request.num_samples)


def _without_input(errors: list[Any]) -> list[Any]:
    # pydantic's messages name the field and the rule; the offending input stays out of the body.
    return [{"loc": e["loc"], "msg": e["msg"]} for e in errors]


def requested_levels(config: CodecConfig, requested: Any) -> int:
    """The `n_q` of a request (a query, form or protocol parameter; None or empty: all levels),
    checked against the model."""
    try:
        if requested in (None, ""):
            return config.levels(None)
        # int("2.5") fails where int(2.5) would truncate: a fractional n_q is an error.
        return config.levels(requested if isinstance(requested, int) else int(str(requested)))
    except (TypeError, ValueError, OverflowError):
        raise APIError(422, "invalid_n_q", f"n_q must be an integer in 1..{config.n_q}") from None
