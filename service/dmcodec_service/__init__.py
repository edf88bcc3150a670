"""dmcodec_service: the HTTP tokenization service.

Entry points: `create_app(settings)` (the FastAPI app), `ServiceSettings` (configuration), and
the `dmcodec-serve` command (also `dmcodec serve`). The HTTP clients live in the library:
`dmcodec.client`.
"""

from .app import create_app
from .settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
