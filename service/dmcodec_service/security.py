"""API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>`, when any are configured."""

from __future__ import annotations

import hmac

from fastapi import Request

from .errors import APIError


async def require_api_key(request: Request) -> None:
    keys = request.app.state.settings.api_keys
    if not keys:
        return
    given = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    # Bytes, not str: compare_digest refuses non-ASCII strings, and a header may hold any byte
    # (Starlette decodes headers as latin-1, so this gives back the bytes that were sent).
    offered = (given or "").encode("latin-1")
    if not given or not any(hmac.compare_digest(offered, key.encode("utf-8")) for key in keys):
        raise APIError(401, "unauthorized", "missing or wrong API key (Authorization: Bearer <key> or X-API-Key)",
                       {"WWW-Authenticate": "Bearer"})
