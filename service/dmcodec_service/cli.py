"""`dmcodec-serve`, `dmcodec serve` and `python -m dmcodec_service`: one command line.

Every setting of `ServiceSettings` is a flag (`--max-batch-size 16`). A flag overrides the
environment (`DMCODEC_MAX_BATCH_SIZE`), which overrides the file named by `DMCODEC_CONFIG_FILE`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from types import FrameType
from typing import Optional, Sequence

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from pydantic_settings import CliApp, CliSettingsSource

from .logs import configure_logging
from .settings import ServiceSettings

PROG = "dmcodec-serve"


def _one_line(err: ValidationError) -> str:
    """`max_batch_size (--max-batch-size, DMCODEC_MAX_BATCH_SIZE): Input should be ...; ...`."""
    parts = []
    for error in err.errors():
        name = "_".join(str(part) for part in error["loc"])
        where = f"{name} (--{name.replace('_', '-')}, DMCODEC_{name.upper()}): " if name else ""
        parts.append(where + error["msg"])
    return "; ".join(parts)


def parse_settings(argv: Sequence[str]) -> ServiceSettings:
    """Flags over environment over config file; argparse exits with 2 on unknown flags and prints
    --help itself."""
    source: CliSettingsSource = CliSettingsSource(ServiceSettings, cli_prog_name=PROG, cli_kebab_case=True)
    return CliApp.run(ServiceSettings, cli_args=list(argv), cli_settings_source=source)


class DrainingServer(uvicorn.Server):
    """uvicorn, except that the first SIGTERM (or Ctrl-C) drains before anything else: readiness
    turns 503 and new requests get 503 + Retry-After at once, while the queue finishes within
    drain_timeout_s; only then does uvicorn close connections and exit. (uvicorn alone would
    first wait for open requests, cancel them after its own timeout, and only then run the
    app's shutdown: clients would get resets or 500s, and exits would take both timeouts.)
    Signals after the first are uvicorn's own: it stops waiting for connections (the drain still
    runs to its timeout), and Ctrl-C twice forces the exit."""

    def __init__(self, config: uvicorn.Config, app: FastAPI):
        super().__init__(config)
        self.app = app
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._draining = False

    async def serve(self, sockets: Optional[list[socket.socket]] = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: Optional[FrameType]) -> None:
        service = getattr(self.app.state, "service", None)
        if self._draining or service is None or self._loop is None:
            return super().handle_exit(sig, frame)
        self._draining = True
        self._captured_signals.append(sig)  # uvicorn re-raises it once stopped, as it would
        self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._drain_then_exit(service)))

    async def _drain_then_exit(self, service) -> None:
        try:
            await service.drain()
        finally:
            self.should_exit = True


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Start the service; returns the exit code (2 for a wrong setting)."""
    from .app import create_app

    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv)
        settings.resolved_device()
    except ValidationError as err:
        print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    if settings.exposed_without_keys() and not settings.allow_unauthenticated:
        print(f"{PROG}: error: refusing to serve on {settings.host} without API keys: set --api-keys "
              "(DMCODEC_API_KEYS), bind to 127.0.0.1, or set --allow-unauthenticated true knowingly",
              file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if settings.exposed_without_keys():
        logging.getLogger("dmcodec_service").warning(
            "AUTHENTICATION IS OFF: serving on %s without API keys (allow_unauthenticated=true); anyone who "
            "reaches this port can use the service", settings.host)
    app = create_app(settings)
    # uvicorn's own graceful wait comes after the drain, when every queued request has its answer.
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            timeout_graceful_shutdown=5, access_log=False, log_config=None)  # our access lines
    DrainingServer(config, app).run()
    return 0


def run() -> None:
    """The `dmcodec-serve` console script."""
    sys.exit(main())
