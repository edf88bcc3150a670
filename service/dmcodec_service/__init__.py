"""dmcodec_service: the HTTP tokenization service.

Entry points: `create_app(settings)` (FastAPI app), `ServiceSettings` (configuration),
`DMCodecClient` / `AsyncDMCodecClient` (HTTP clients; need only httpx), `dmcodec-serve`.
Imports are lazy so that the clients work without the server's dependencies.
"""

from importlib import import_module

_EXPORTS = {"create_app": "app", "ServiceSettings": "settings", "DMCodecClient": "client",
            "AsyncDMCodecClient": "client", "ServiceError": "client"}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dmcodec_service' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
