"""dmcodec_service: the HTTP tokenization service.

Entry points: `create_app(settings)` (FastAPI app), `ServiceSettings` (configuration),
`DMCodecClient` / `AsyncDMCodecClient` (HTTP clients), `dmcodec-serve` (the server).
"""

from .client import AsyncDMCodecClient, DMCodecClient, ServiceError
from .settings import ServiceSettings


def create_app(*args, **kwargs):
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app", "ServiceSettings", "DMCodecClient", "AsyncDMCodecClient", "ServiceError"]
