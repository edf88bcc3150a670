"""Request bodies into model inputs, treating every byte as hostile.

Uploads are decoded block by block under limits read from the header first (dmcodec.audio),
so an upload costs memory by its length at 16 kHz mono, not by its size as stored. Token
bodies (in any layout) are bounded by the body limit, `.npy` headers are checked against the
bytes that follow before anything is allocated, and JSON integers are range-checked while they
are parsed.
"""

from __future__ import annotations

import io
import math
from typing import Any, Mapping, Optional

import numpy as np
from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from dmcodec.audio import AudioError, AudioLimitError, AudioLimits, AudioSource, load_audio
from dmcodec.config import CodecConfig
from dmcodec.layouts import SEQUENCE_LAYOUTS, check_layout, layout_levels
from dmcodec.tokens import codes_from_tokens, header_fields
from dmcodec.vocabulary import Vocabulary

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


def _read_npy(body: bytes, layout: str, max_levels: int) -> np.ndarray:
    """A `.npy` body -> its integers as int64: a sequence for the sequence layouts, else a grid of
    at most `max_levels` rows. The header is checked against the bytes that follow before
    anything is allocated."""
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError):
        raise APIError(422, "invalid_tokens", "not a .npy array (unreadable header)") from None
    if dtype.hasobject or dtype.kind not in "iu":
        raise APIError(422, "invalid_tokens", f"tokens must be integers, got dtype {dtype.str}")
    if layout in SEQUENCE_LAYOUTS:
        expected, fits = "[length]", len(shape) == 1 and shape[0] >= 1
    else:
        expected = f"[n_q <= {max_levels}, {'frames' if layout == 'codes' else 'columns'}]"
        fits = len(shape) == 2 and 1 <= shape[0] <= max_levels and shape[1] >= 1
    if not fits:
        raise APIError(422, "invalid_tokens", f"expected {layout} tokens of shape {expected}, got {shape}")
    count = math.prod(shape)
    data = memoryview(body)[stream.tell():]
    if len(data) != count * dtype.itemsize:
        raise APIError(422, "invalid_tokens", f"the .npy header promises {count} tokens; the body "
                       f"holds {len(data) // dtype.itemsize}")
    tokens = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
    return tokens.astype(np.int64)


def parse_tokens(body: bytes, kind: str, *, layout: Optional[str], headers: Mapping[str, str],
                 num_samples: Optional[int], vocabulary: Vocabulary, served_sha: str) -> DecodeJob:
    """A decode body in any layout (the encode JSON, or a .npy with its X-DMCodec-* headers) -> its
    job: codes [n_q, frames] int64 and the length. Runs off the event loop: parsing ~2 MB of JSON
    takes a while.

    Args:
        layout: declared by the request (checked); default: the one the tokens record, else codes.
        headers: the request's; a .npy body's metadata (a JSON body carries its own).
        num_samples: asked for by the request; default: the one the tokens record.
        vocabulary: the served model's, for ids that record none.
        served_sha: the served model's sha256; tokens that name another are refused (409).
    """
    if kind in NPY_TYPES:
        recorded: dict[str, Any] = header_fields(headers)
        _check_model(recorded.get("model_sha256"), served_sha)
        tokens = _read_npy(body, layout or recorded.get("layout") or "codes", vocabulary.n_q)
    elif kind == "application/json":
        request = _decode_request(body)
        _check_model((request.model or {}).get("sha256"), served_sha)
        recorded = request.recorded()
        tokens = _json_tokens(request)
    else:
        raise APIError(415, "unsupported_media_type", "send application/json (the encode response) or "
                       f"application/octet-stream (.npy); got {kind or 'none'}")
    try:
        codes, recorded_samples = codes_from_tokens(tokens, recorded, layout=layout, vocabulary=vocabulary)
    except ValueError as err:  # a LayoutError names the first wrong position
        raise APIError(422, "invalid_tokens", str(err)) from None
    return DecodeJob(codes, num_samples or recorded_samples)


def _decode_request(body: bytes) -> DecodeRequest:
    try:
        return DecodeRequest.model_validate_json(body)
    except ValidationError as err:
        raise APIError(422, "invalid_tokens", describe(_without_input(err.errors()), limit=5)) from None


def _json_tokens(request: DecodeRequest) -> np.ndarray:
    """The `input_ids` or `codes` of a JSON body as int64 (their values are range-checked already)."""
    tokens = request.codes if request.input_ids is None else request.input_ids
    if tokens is None:
        raise APIError(422, "invalid_tokens", "expected `codes`, or `input_ids` with their `layout`")
    try:
        return np.asarray(tokens, dtype=np.int64)
    except ValueError:  # rows of unequal lengths
        raise APIError(422, "invalid_tokens", "tokens must be a rectangular grid ([n_q][frames] codes)") from None


def _check_model(sha: Any, served_sha: str) -> None:
    if sha and sha != served_sha:
        raise APIError(409, "model_mismatch", f"tokens were made by model {str(sha)[:12]}...; this service "
                       f"serves {served_sha[:12]}...")


def _without_input(errors: list[Any]) -> list[Any]:
    # pydantic's messages name the field and the rule; the offending input stays out of the body.
    return [{"loc": e["loc"], "msg": e["msg"]} for e in errors]


def checked_layout(requested: Any) -> str:
    """A layout named by a request (a query, form or protocol parameter), or 422 invalid_layout."""
    try:
        return check_layout(str(requested))
    except ValueError as err:
        raise APIError(422, "invalid_layout", str(err)) from None


def requested_layout(config: CodecConfig, layout: Any, n_q: Any) -> tuple[str, int]:
    """The layout (None or empty: codes) and levels (as `requested_levels`) of an encode request:
    `first` keeps RVQ-1 alone, so it takes no n_q but 1."""
    chosen = checked_layout(layout or "codes")
    levels = requested_levels(config, n_q)
    try:
        return chosen, layout_levels(chosen, None if n_q in (None, "") else levels) or levels
    except ValueError as err:
        raise APIError(422, "invalid_layout", str(err)) from None


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
