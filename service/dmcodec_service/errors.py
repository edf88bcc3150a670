"""Every failure the API reports, as JSON: {"error": {"code": ..., "message": ...}}."""

from __future__ import annotations

import logging
from typing import Any, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("dmcodec_service")


class APIError(Exception):
    """An error with its HTTP status, a stable machine-readable code and a message for people."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def describe(errors: Sequence[Any], limit: int | None = None) -> str:
    """Pydantic validation errors as one line: 'field.path: message; ...'."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:limit])


def error_body(code: str, message: str, request_id: str | None = None) -> dict:
    error = {"code": code, "message": message}
    if request_id:
        error["request_id"] = request_id
    return {"error": error}


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, err: APIError) -> JSONResponse:
        if request.url.path.startswith("/v2/models/"):  # the KServe v2 protocol's error shape
            return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)
        return JSONResponse(error_body(err.code, err.message, _request_id(request)), status_code=err.status,
                            headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("invalid_request", describe(err.errors()), _request_id(request)),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body("http_error", str(err.detail), _request_id(request)),
                            status_code=err.status_code, headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        # The detail goes to the log, under the request id the client was given; never to the client.
        log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=err)
        rid = _request_id(request)
        return JSONResponse(error_body("internal_error", "internal error; report the request id", rid),
                            status_code=500, headers={"X-Request-ID": rid} if rid else None)
