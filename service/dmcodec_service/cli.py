"""`dmcodec-serve`, `dmcodec serve` and `python -m dmcodec_service`: one command line.

Every setting of `ServiceSettings` is a flag (`--max-batch-size 16`). A flag overrides the
environment (`DMCODEC_MAX_BATCH_SIZE`), which overrides the file named by `DMCODEC_CONFIG_FILE`.
"""

from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence

from pydantic import ValidationError
from pydantic_settings import CliApp, CliSettingsSource

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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Start the service; returns the exit code (2 for a wrong setting)."""
    import uvicorn

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
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                timeout_graceful_shutdown=int(settings.drain_timeout_s) + 5)
    return 0


def run() -> None:
    """The `dmcodec-serve` console script."""
    sys.exit(main())
