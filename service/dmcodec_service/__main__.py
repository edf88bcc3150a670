"""`dmcodec-serve` / `python -m dmcodec_service`: start uvicorn with the settings."""

from __future__ import annotations

import logging
import sys
from typing import Optional

from pydantic import ValidationError


def main(host: Optional[str] = None, port: Optional[int] = None) -> None:
    import uvicorn

    from .app import create_app
    from .settings import ServiceSettings

    try:
        settings = ServiceSettings()
        settings.resolved_device()
    except (ValidationError, ValueError) as err:
        print(f"dmcodec-serve: invalid configuration:\n{err}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_level=settings.log_level, timeout_graceful_shutdown=int(settings.drain_timeout_s) + 5)


if __name__ == "__main__":
    main()
