"""Where a run lives: a bare name goes to the runs folder outside the work tree, a path is a path.

A lent machine is handed back between stints of work and the work tree may be thrown away with
it; a run kept under `~/.cache/dmcodec/runs` (or `$DMCODEC_RUNS`) survives both a fresh checkout
and a `git clean`, with its optimiser, so `dmcodec-train train ... NAME` resumes it exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

RUNS_ENV = "DMCODEC_RUNS"


def runs_root() -> Path:
    """`$DMCODEC_RUNS`, else `~/.cache/dmcodec/runs`."""
    configured = os.environ.get(RUNS_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "dmcodec" / "runs"


def is_run_name(run: str | Path) -> bool:
    """A name is one path component with no separator: `v2`, `pitch-probe` (not `./v2`, `runs/v2`,
    `~/v2`, nor a `.pt` file such as `state.pt`)."""
    text = str(run)
    return bool(text) and "/" not in text and os.sep not in text and text not in (".", "..") \
        and not text.startswith("~") and not text.endswith(".pt")


def resolve_run(run: str | Path) -> Path:
    """The run folder: `runs_root() / name` for a bare name; anything else as given.

    Args:
        run: a run name (`v2`) or a folder path (`./v2`, `runs/main`, `/data/runs/v2`); a path
            to a `state.pt` also stays as given (`dmcodec-train export` takes one).
    """
    return runs_root() / str(run) if is_run_name(run) else Path(run).expanduser()
