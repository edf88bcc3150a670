"""ASGI middleware: request ids, traces, access log lines, request metrics, body size limits."""

from __future__ import annotations

import json
import re
import time
import uuid

from .errors import error_body
from .logs import log_request, request_id_var
from .metrics import Metrics
from .tracing import Tracing

ROUTES = {"/v1/encode", "/v1/decode", "/encode", "/decode", "/v1/info", "/v2/health/live",
          "/v2/health/ready", "/metrics", "/", "/v2"}


def route_of(path: str) -> str:
    """The metric label of a path: itself for the fixed routes, the template for v2 model routes."""
    if path in ROUTES:
        return path
    if path.startswith("/v2/models/"):
        action = path.rstrip("/").rsplit("/", 1)[-1]
        return f"/v2/models/{{name}}/{action}" if action in ("infer", "ready") else "/v2/models/{name}"
    return "other"

_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(scope) -> str:
    """The client's X-Request-ID when it is a sane token, else a new one."""
    given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
    return given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex


class ObserveRequests:
    """Gives each request an id (echoed as X-Request-ID on every response, errors included) and
    a server span (tracing.py), counts requests by route and status, times them, tracks
    in-flight requests, writes one access log line per request (with the queue and compute
    times and batch size the batcher notes in `request.state.stats`), and stamps
    `request.state.arrived` (deadlines count from arrival)."""

    def __init__(self, app, metrics: Metrics, tracing: Tracing):
        self.app = app
        self.metrics = metrics
        self.tracing = tracing

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.monotonic()
        rid = request_id(scope)
        stats: dict = {}
        scope.setdefault("state", {}).update(arrived=start, request_id=rid, stats=stats)
        request_id_var.set(rid)
        route = route_of(scope["path"])
        status, sizes = {"code": 500}, {"in": 0, "out": 0}

        async def counting_receive():
            message = await receive()
            sizes["in"] += len(message.get("body", b""))
            return message

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            elif message["type"] == "http.response.body":
                sizes["out"] += len(message.get("body", b""))
            await send(message)

        self.metrics.inflight.inc()
        with self.tracing.request(scope, route, rid) as span:
            try:
                await self.app(scope, counting_receive, send_wrapper)
            finally:
                elapsed = time.monotonic() - start
                self.metrics.inflight.dec()
                self.metrics.requests.labels(route=route, status=str(status["code"])).inc()
                self.metrics.request_duration.labels(route=route).observe(elapsed)
                if span is not None:
                    span.set_attribute("http.response.status_code", status["code"])
                if route not in ("/metrics", "/v2/health/live", "/v2/health/ready"):  # probes stay quiet
                    # the route's label, not the raw path: a path could smuggle line breaks into text logs
                    log_request({"request_id": rid, "method": scope["method"], "route": route,
                                 "status": status["code"], "duration_ms": round(elapsed * 1000, 1),
                                 "bytes_in": sizes["in"], "bytes_out": sizes["out"], **stats})


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
