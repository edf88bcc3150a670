"""Where window computations run: a pool of CPU workers with pinned intra-op threads.

CPU kernels split their work by the intra-op thread count, and a different split can reorder
float reductions (torch's oneDNN convolutions at 1 vs 2 threads changed 0.15-0.7% of codes of
random weights). So every torch CPU window is computed with exactly `threads_per_window`
torch threads, and `workers` windows run side by side: codes do not depend on the machine's
core count, and throughput scales with cores. On a GPU the calls run in the calling thread.

A backend whose results do not depend on its own thread count (ONNX Runtime's CPU kernels
partition outputs, not reductions; `select_backend` checks it bit for bit) can be given
`solo_threads`: a window that has the machine to itself (nothing else running or waiting)
then runs with that many threads, so a lone request uses every core, and under load each
window runs with `threads_per_window` beside the others.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Optional, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count for the calling thread's work inside (each window worker
    keeps its own OpenMP team size), restored after; count <= 0 leaves it as it is."""
    if count <= 0:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class WindowExecutor:
    """Args:
        device_type: `cpu` runs calls on the worker pool; anything else in the caller's thread.
        threads_per_window: torch intra-op threads of each CPU call.
        workers: CPU calls at once (0: available cores / threads_per_window).

    Close it (or use it as a context manager) to stop its threads.
    """

    def __init__(self, device_type: str, threads_per_window: int = 1, workers: int = 0, solo_threads: int = 0):
        self.threads_per_window = threads_per_window
        self.solo_threads = max(solo_threads, threads_per_window)
        self.workers = workers or max(1, available_cores() // threads_per_window)
        self._pool: Optional[ThreadPoolExecutor] = None
        if device_type == "cpu":
            # A worker started while another computes with more threads would take that count
            # as its own (torch's default for new threads): each starts at threads_per_window.
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="dmcodec-window",
                                            initializer=torch.set_num_threads, initargs=(threads_per_window,))
        self._lock = threading.Lock()
        self._active = 0
        self._saved_threads = 0
        self._pending = 0  # calls submitted to the pool and not finished, across map() calls

    @property
    def pins_threads(self) -> bool:
        return self._pool is not None

    def map(self, compute: Callable[[T, int], R], items: Iterable[T]) -> list[R]:
        """[compute(item, threads) for item in items], in order; on CPU on the pool with pinned
        torch threads. `threads` is what the call may use: `solo_threads` when it is the only
        call pending, else `threads_per_window` (always the latter off the CPU pool)."""
        if self._pool is None:
            return [compute(item, self.threads_per_window) for item in items]
        items = list(items)
        with self._lock:
            self._pending += len(items)
        self._pin()
        try:
            return list(self._pool.map(lambda item: self._run(compute, item), items))
        finally:
            self._unpin()

    def _run(self, compute: Callable[[T, int], R], item: T) -> R:
        try:
            with self._lock:
                alone = self._pending == 1
            return compute(item, self.solo_threads if alone else self.threads_per_window)
        finally:
            with self._lock:
                self._pending -= 1

    # torch's thread count is process-wide: it is set to `threads_per_window` while any call of
    # this executor runs (calls may overlap, e.g. in the service) and restored after the last.
    # Other torch work in this process meanwhile runs with that count too.
    def _pin(self) -> None:
        with self._lock:
            if self._active == 0:
                self._saved_threads = torch.get_num_threads()
                torch.set_num_threads(self.threads_per_window)
            self._active += 1

    def _unpin(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                torch.set_num_threads(self._saved_threads)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WindowExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
