"""The KServe v2 / Triton inference protocol: health, server and model metadata, and encode as
`infer` with JSON tensors, so generic health checkers and protocol clients work unchanged.

    POST /v2/models/{name}/infer
    {"inputs": [{"name": "audio", "datatype": "FP32", "shape": [T], "data": [...]}],
     "parameters": {"sample_rate": 16000, "n_q": 8}}
    -> {"model_name", "model_version", "outputs": [{"name": "codes", "datatype": "INT64",
        "shape": [n_q, frames], "data": [...]}, {"name": "num_samples", ...}], "parameters": {...}}

With the parameter `"layout": "flat"` (or delay, first) the first output is `input_ids`, the
tokens in that layout (its shape: [length], or [n_q, columns] for delay); the parameters of the
answer are the token metadata, the vocabulary fields among them (docs/tokens.md).

The model's name is the checkpoint's, its version the checkpoint's sha256. Errors on these
routes have the protocol's shape, `{"error": "<message>"}`. Tensors travel as JSON (the binary
tensor extension is refused with a clear message).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from dmcodec import __version__
from dmcodec.audio import MIN_SAMPLE_RATE, AudioError, AudioLimits, prepare
from dmcodec.layouts import LAYOUTS
from dmcodec.tokens import payload_name

from .errors import APIError, describe
from .inputs import requested_layout
from .jobs import EncodeJob
from .schemas import ErrorResponse, Health
from .security import require_api_key
from .submission import admitted, run_job, within_deadline

router = APIRouter()
PROTOCOL_PREFIX = "/v2/models"


class InferTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] = Field(description="Row-major values (flat or nested).")
    parameters: Optional[dict[str, Any]] = None


class InferRequest(BaseModel):
    id: Optional[str] = None
    inputs: list[InferTensor]
    outputs: Optional[list[dict[str, Any]]] = None
    parameters: Optional[dict[str, Any]] = None


@router.get("/v2/health/live", response_model=Health, summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "live"}


@router.get("/v2/health/ready", response_model=Health, responses={503: {"model": ErrorResponse}},
            summary="The model is loaded and the service accepts work")
async def ready(request: Request):
    service = getattr(request.app.state, "service", None)
    if service is None or not service.ready:
        state = "draining" if service is not None and service.draining else "loading"
        return JSONResponse({"error": {"code": state, "message": f"not ready: {state}"}}, status_code=503)
    return {"status": "ready"}


@router.get("/v2", summary="Server metadata (KServe v2)")
async def server_metadata() -> dict[str, Any]:
    return {"name": "dmcodec", "version": __version__, "extensions": []}


def _model(request: Request, name: str):
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise APIError(400, "not_ready", "the model is loading")
    if name != service.engine.codec.name:
        raise APIError(404, "unknown_model", f"no model named {name!r}; this server serves "
                       f"{service.engine.codec.name!r}")
    return service


@router.get(PROTOCOL_PREFIX + "/{name}", dependencies=[Depends(require_api_key)], summary="Model metadata")
async def model_metadata(request: Request, name: str) -> dict[str, Any]:
    service = _model(request, name)
    config, info = service.engine.config, service.engine.model_info()
    return {"name": name, "versions": [info["sha256"]], "platform": f"dmcodec_{info['backend']}",
            "inputs": [{"name": "audio", "datatype": "FP32", "shape": [-1]}],
            "outputs": [{"name": "codes", "datatype": "INT64", "shape": [config.n_q, -1]},
                        {"name": "num_samples", "datatype": "INT64", "shape": [1]}],
            "parameters": {"sample_rate": config.sample_rate, "frame_rate": config.frame_rate,
                           "codebook_size": config.codebook_size, "precision": info["precision"],
                           "layouts": ",".join(LAYOUTS), **service.engine.vocabulary.token_fields()}}


@router.get(PROTOCOL_PREFIX + "/{name}/ready", dependencies=[Depends(require_api_key)], summary="Model ready")
async def model_ready(request: Request, name: str) -> dict[str, Any]:
    service = _model(request, name)
    if not service.ready:
        raise APIError(400, "not_ready", "draining" if service.draining else "loading")
    return {"name": name, "ready": True}


def _audio(body: bytes, model_rate: int, limits: AudioLimits) -> tuple[np.ndarray, Optional[str], dict[str, Any]]:
    """The request's audio as mono float32 at the model's rate, its id and its parameters."""
    try:
        infer = InferRequest.model_validate_json(body)
    except ValidationError as err:
        raise APIError(422, "invalid_request", describe([{"loc": e["loc"], "msg": e["msg"]} for e in err.errors()],
                                                        limit=5)) from None
    tensors = [t for t in infer.inputs if t.name == "audio"]
    if len(tensors) != 1:
        raise APIError(422, "invalid_request", "expected one input tensor named 'audio'")
    tensor = tensors[0]
    if (tensor.parameters or {}).get("binary_data_size") is not None:
        raise APIError(415, "binary_tensors", "send tensors as JSON data (tritonclient: binary_data=False)")
    if tensor.datatype not in ("FP32", "FP64"):
        raise APIError(422, "invalid_request", f"audio must be FP32 (or FP64), got {tensor.datatype}")
    if not (len(tensor.shape) == 1 or (len(tensor.shape) == 2 and tensor.shape[0] == 1)):
        raise APIError(422, "invalid_request", f"audio shape must be [T] or [1, T], got {tensor.shape}")
    parameters = {**(infer.parameters or {}), **(tensor.parameters or {})}
    try:
        samples = np.asarray(tensor.data, dtype=np.float32).reshape(-1)
        rate = int(parameters.get("sample_rate", model_rate))
    except (ValueError, TypeError, OverflowError):
        raise APIError(422, "invalid_request", "audio data must be numbers and sample_rate an integer") from None
    if samples.size != math.prod(tensor.shape):
        raise APIError(422, "invalid_request", f"shape {tensor.shape} promises {math.prod(tensor.shape)} values; "
                       f"data holds {samples.size}")
    highest, longest = limits.max_sample_rate or model_rate, limits.max_seconds or float("inf")
    if not MIN_SAMPLE_RATE <= rate <= highest:  # checked before resampling allocates
        raise APIError(422, "unsupported_audio", f"sample_rate must be in {MIN_SAMPLE_RATE}..{highest}")
    if samples.size / rate > longest:
        raise APIError(413, "audio_too_long", f"audio is {samples.size / rate:.1f} s; the limit is {longest:g} s")
    try:
        return prepare(samples, rate, model_rate), infer.id, parameters
    except AudioError as err:
        raise APIError(400, "invalid_audio", str(err)) from None


@router.post(PROTOCOL_PREFIX + "/{name}/infer", dependencies=[Depends(require_api_key)],
             summary="Encode (KServe v2 inference with JSON tensors)")
async def infer(request: Request, name: str) -> dict[str, Any]:
    service = _model(request, name)
    config = service.engine.config
    with admitted(request) as ticket:
        body = await within_deadline(request, request.body())
        async with service.decode_slots:
            samples, request_id, parameters = await run_in_threadpool(_audio, body, config.sample_rate,
                                                                      service.audio_limits)
        seconds = samples.size / config.sample_rate
        layout, levels = requested_layout(config, parameters.get("layout"), parameters.get("n_q"))
        codes = await run_job(request, EncodeJob(samples, levels), seconds, ticket)
    encoded = service.engine.wrap(codes, samples.size, layout)
    tokens = encoded.tokens()  # codes [n_q, frames], or the ids in `layout`
    answer: dict[str, Any] = {
        "model_name": name, "model_version": encoded.metadata.model_sha256,
        "outputs": [{"name": payload_name(layout), "datatype": "INT64", "shape": list(tokens.shape),
                     "data": tokens.ravel().tolist()},
                    {"name": "num_samples", "datatype": "INT64", "shape": [1], "data": [samples.size]}],
        "parameters": encoded.metadata.flat()}
    if request_id is not None:
        answer["id"] = request_id
    return answer
