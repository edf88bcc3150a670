"""ASGI middleware: request metrics and the upload size limit."""

from __future__ import annotations

import json
import time

from .errors import error_body
from .metrics import Metrics

ROUTES = {"/v1/encode", "/v1/decode", "/encode", "/decode", "/v1/info", "/v2/health/live",
          "/v2/health/ready", "/metrics", "/"}


class ObserveRequests:
    """Counts requests by route and status, times them, tracks in-flight requests, and stamps
    `request.state.arrived` (deadlines count from arrival)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.monotonic()
        scope.setdefault("state", {})["arrived"] = start
        route = scope["path"] if scope["path"] in ROUTES else "other"
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
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
    """Refuses bodies over `max_bytes` with 413: at once from Content-Length, or as soon as a
    streamed (chunked) body passes the limit, without reading the rest."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send) -> None:
        body = json.dumps(error_body("payload_too_large", f"request body over {self.max_bytes} bytes")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(send)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
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
                await self._refuse(send)
