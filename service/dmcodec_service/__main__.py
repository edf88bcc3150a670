"""`python -m dmcodec_service`: the `dmcodec-serve` command."""

from .cli import run

run()
