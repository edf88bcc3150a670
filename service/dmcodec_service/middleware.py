"""ASGI middleware: request ids, request metrics and the body size limits."""

from __future__ import annotations

import contextvars
import json
import re
import time
import uuid

from .errors import error_body
from .metrics import Metrics

ROUTES = {"/v1/encode", "/v1/decode", "/encode", "/decode", "/v1/info", "/v2/health/live",
          "/v2/health/ready", "/metrics", "/"}


# The id of the request being handled, for log lines (see logs.py).
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(scope) -> str:
    """The client's X-Request-ID when it is a sane token, else a new one."""
    given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
    return given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex


class ObserveRequests:
    """Gives each request an id (echoed as X-Request-ID on every response, errors included),
    counts requests by route and status, times them, tracks in-flight requests, and stamps
    `request.state.arrived` (deadlines count from arrival)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.monotonic()
        rid = request_id(scope)
        scope.setdefault("state", {}).update(arrived=start, request_id=rid)
        request_id_var.set(rid)
        route = scope["path"] if scope["path"] in ROUTES else "other"
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        self.metrics.inflight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.inflight.dec()
            self.metrics.requests.labels(route=route, status=str(status["code"])).inc()
            self.metrics.request_duration.labels(route=route).observe(time.monotonic() - start)


class BodyTooLarge(Exception):
    pass


class LimitBody:
    """Refuses bodies over the limit with 413: at once from Content-Length, or as soon as a
    streamed (chunked) body passes the limit, without reading the rest. The limit is
    `per_path[path]`, else `default_bytes`."""

    def __init__(self, app, default_bytes: int, per_path: dict[str, int] | None = None):
        self.app = app
        self.default_bytes = default_bytes
        self.per_path = per_path or {}

    async def _refuse(self, scope, send, limit: int) -> None:
        body = json.dumps(error_body("payload_too_large", f"request body over {limit} bytes",
                                     scope.get("state", {}).get("request_id"))).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.per_path.get(scope["path"], self.default_bytes)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await self._refuse(scope, send, limit)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, send, limit)
