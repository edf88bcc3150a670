"""The window plan: how a clip of any length is cut into pieces whose codes depend on it alone.

A clip of up to `window_frames` frames is encoded in one piece. A longer one is cut into cores
of `window_frames - 2 * context_frames` frames, each computed with up to `context_frames` of
real neighbouring audio on both sides, whose codes are then dropped. Memory is bounded by the
window, whatever the clip's length, and the geometry is a function of the clip alone: no
padding ever enters a window. Decoding uses the same windows over frames.

Everything here is pure: no model, no threads, no devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import defaults


@dataclass(frozen=True)
class WindowPolicy:
    """How audio is cut and batched; every default comes from `dmcodec.defaults`.

    Args:
        window_frames: the longest piece encoded at once (50 frames = 1 s at 16 kHz).
        context_frames: frames of real audio on each side of a core, encoded and dropped.
        batch_mode: `single`, `fixed` or `auto` (single on CPU, fixed on GPU). In `single` mode
            every window runs alone (on CPU as fast per second of audio as batching); in `fixed`
            mode windows of exactly equal length run together in batches padded with silent
            windows to one fixed size per length, so the batch shape never depends on traffic.
        threads_per_window: intra-op threads of each CPU window - part of what defines the codes
            on a backend whose kernels split reductions by thread (torch's oneDNN convolutions).
        workers: CPU windows computed in parallel (0: available cores / threads_per_window).
        solo_threads: threads a window may use when it is the only one running or waiting (0:
            available cores), on a backend verified at start-up to compute bit-identical
            latents at that count; a lone request then uses the whole machine. 1 turns this off.
        max_batch_items: windows per model call.
        max_batch_frames: frames per model call, which bound its memory (None: the device's
            default, `dmcodec.defaults.MAX_BATCH_FRAMES`).
    """

    window_frames: int = defaults.WINDOW_FRAMES
    context_frames: int = defaults.CONTEXT_FRAMES
    batch_mode: str = defaults.BATCH_MODE
    threads_per_window: int = defaults.THREADS_PER_WINDOW
    workers: int = defaults.WORKERS
    solo_threads: int = defaults.SOLO_THREADS
    max_batch_items: int = defaults.MAX_BATCH_ITEMS
    max_batch_frames: Optional[int] = None

    def __post_init__(self) -> None:
        if self.context_frames < 0 or self.window_frames <= 2 * self.context_frames:
            raise ValueError(f"window_frames ({self.window_frames}) must exceed 2 * context_frames "
                             f"({self.context_frames}), and context_frames must be >= 0")
        if self.max_batch_items < 1 or (self.max_batch_frames is not None and self.max_batch_frames < 1):
            raise ValueError("max_batch_items and max_batch_frames must be >= 1")
        if self.workers < 0 or self.threads_per_window < 1 or self.solo_threads < 0:
            raise ValueError("workers and solo_threads must be >= 0 and threads_per_window >= 1")
        if self.batch_mode not in ("auto", "single", "fixed"):
            raise ValueError(f"batch_mode must be auto, single or fixed, got {self.batch_mode!r}")

    def frames_per_call(self, device_type: str) -> int:
        """The most frames one model call holds on this device (at least one window's)."""
        limit = self.max_batch_frames or defaults.MAX_BATCH_FRAMES.get(device_type, defaults.MAX_BATCH_FRAMES["cuda"])
        return max(limit, self.window_frames)

    def batch_size(self, window_frames: int, device_type: str) -> int:
        """Windows per model call for windows of this length (padded up to it in fixed mode)."""
        mode = self.batch_mode
        if mode == "auto":
            mode = "single" if device_type == "cpu" else "fixed"
        if mode == "single":
            return 1
        return self.items_per_call(window_frames, device_type)

    def items_per_call(self, window_frames: int, device_type: str) -> int:
        """Windows of this length that fit one model call's limits."""
        return max(1, min(self.max_batch_items, self.frames_per_call(device_type) // window_frames))


@dataclass(frozen=True)
class Window:
    """Frames [start, stop) of one clip, computed from frames [outer_start, outer_stop)."""

    start: int
    stop: int
    outer_start: int
    outer_stop: int

    @property
    def outer_frames(self) -> int:
        return self.outer_stop - self.outer_start

    @property
    def core(self) -> slice:
        """The kept frames, as a slice of the window's own output."""
        return slice(self.start - self.outer_start, self.stop - self.outer_start)


def plan_windows(num_frames: int, policy: WindowPolicy) -> list[Window]:
    """The windows that cover frames [0, num_frames) of one clip."""
    if num_frames <= policy.window_frames:
        return [Window(0, num_frames, 0, num_frames)]
    core = policy.window_frames - 2 * policy.context_frames
    windows = []
    for start in range(0, num_frames, core):
        stop = min(start + core, num_frames)
        windows.append(Window(start, stop, max(0, start - policy.context_frames),
                              min(num_frames, stop + policy.context_frames)))
    return windows
