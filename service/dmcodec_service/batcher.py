"""The micro-batcher: one bounded async queue in front of the model.

Requests wait at most `max_wait_s` for company, up to `max_batch_size` requests and
`max_batch_audio_seconds` of audio. The model runs in a pool of `max_concurrent_batches`
threads, so the event loop keeps accepting (and refusing, when the queue is full) while it
computes, and the next batch fills the model's idle workers while the last windows of the
current one finish. Within a batch, jobs are grouped by their `group` (their kind and what
must be equal to share a model call, e.g. the number of levels: see `jobs.py`), and each group
is one call of `process`, which returns one result or exception per job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

from .jobs import Abandoned, ModelJob
from .metrics import Metrics
from .tracing import Tracing

log = logging.getLogger(__name__)

# process(jobs, abandoned) -> one result or exception per job, for jobs of one group;
# abandoned[i]() turns true once job i's result is no longer wanted (client gone, deadline
# passed), so the model can stop its work between windows.
Process = Callable[[Sequence[ModelJob], Abandoned], Sequence[Any]]


class QueueFull(Exception):
    """The queue holds `max_queue_size` requests already."""


class Draining(Exception):
    """The service is shutting down and takes no new work."""


class DeadlineExceeded(Exception):
    """The request's deadline passed before the model got to it."""


class Ticket:
    """A place in the queue, reserved before a request's expensive work (reading and decoding
    its body) and given back once the model starts on it, or when the request fails first.
    A request that submits several jobs (a streamed decode, one job per window) keeps its own
    ticket until it ends and gives each job a borrowed one, which holds no place."""

    def __init__(self, batcher: Batcher | None, counted: bool = True):
        self._batcher = batcher
        self._counted = counted

    def release(self) -> None:
        if self._batcher is not None:
            if self._counted:
                self._batcher._pending -= 1
            self._batcher = None

    def keep(self) -> Ticket:
        """This place, moved to a new ticket that outlives the request handler (a streamed
        response releases it when the stream ends); this one is then empty."""
        kept = Ticket(self._batcher, self._counted) if self._batcher is not None else Ticket(None, False)
        self._batcher = None
        return kept

    def borrow(self) -> Ticket:
        if self._batcher is None:
            raise Draining()  # the request's place is gone
        return Ticket(self._batcher, counted=False)


@dataclass(eq=False)  # hashed by identity: jobs are tracked in sets
class QueuedJob:
    job: ModelJob
    audio_seconds: float
    deadline: float  # time.monotonic()
    future: asyncio.Future = field(repr=False)
    ticket: Ticket = field(repr=False)
    request_id: str = "-"
    stats: dict[str, Any] = field(default_factory=dict, repr=False)  # queue_ms, compute_ms, batch_size
    trace: Any = field(default=None, repr=False)  # the request's span context, to link its batch to
    enqueued: float = field(default_factory=time.monotonic)
    enqueued_ns: int = field(default_factory=time.time_ns)

    def abandoned(self) -> bool:
        """Nobody waits for the result any more. Read from the model's threads: a done() check
        is a plain attribute read, and a stale answer only costs one more window."""
        return self.future.done() or time.monotonic() > self.deadline


class Batcher:
    """Args:
        process: `process(jobs, abandoned) -> results` for jobs of one group, run in a worker
            thread; an exception instance in the results fails that request alone.
        max_batch_size, max_batch_audio_seconds, max_wait_s, max_queue_size: the limits.
        max_concurrent_batches: batches computing at once (process must be thread-safe if > 1).
        metrics: where queue and batch statistics go.
        tracing: where queue and batch spans go (off by default).
    """

    def __init__(self, process: Process, *, max_batch_size: int, max_batch_audio_seconds: float,
                 max_wait_s: float, max_queue_size: int, metrics: Metrics, max_concurrent_batches: int = 1,
                 tracing: Tracing | None = None):
        self.process = process
        self.tracing = tracing or Tracing()
        self.max_batch_size = max_batch_size
        self.max_batch_audio_seconds = max_batch_audio_seconds
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self.max_queue_size = max_queue_size
        self.queue: asyncio.Queue = asyncio.Queue()  # bounded by admission (tickets), not here
        self._pending = 0  # tickets out: requests admitted that the model has not started on
        self.completed_batches = 0
        self.accepting = False
        self._stopped = False  # the drain has ended: nothing more is taken
        self._carry: QueuedJob | None = None  # taken from the queue but over the last batch's budget
        self._collecting: list[QueuedJob] = []  # the batch being gathered (taken from the queue already)
        self._running: set[QueuedJob] = set()
        self._batches: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(max_concurrent_batches)
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_concurrent_batches, thread_name_prefix="dmcodec-model")
        metrics.queue_depth.set_function(self.depth)
        metrics.queue_capacity.set(max_queue_size)

    def depth(self) -> int:
        """Requests admitted and waiting: being read or decoded, queued, or waiting for a batch."""
        return self._pending

    def idle(self) -> bool:
        """Nothing admitted, queued or computing."""
        return self._pending == 0 and not self._running and self.queue.empty()

    def reserve(self) -> Ticket:
        """A place in the queue, before any expensive work. Raises QueueFull or Draining."""
        if not self.accepting:
            self.metrics.rejected.labels(reason="draining").inc()
            raise Draining()
        if self._pending >= self.max_queue_size:
            self.metrics.rejected.labels(reason="queue_full").inc()
            raise QueueFull()
        self._pending += 1
        return Ticket(self)

    async def start(self) -> None:
        self.accepting = True
        self._task = asyncio.create_task(self._loop(), name="dmcodec-batcher")

    def submit(self, job: ModelJob, *, audio_seconds: float, deadline: float, ticket: Ticket | None = None,
               request_id: str = "-", stats: dict[str, Any] | None = None) -> asyncio.Future:
        """Queue one job (on its request's reserved `ticket`, or on a new one); its future resolves to
        the result. `stats` receives the request's queue_ms, compute_ms and batch_size. Raises
        QueueFull or Draining. While draining, work admitted before (it holds a ticket) is still
        taken, until the drain ends."""
        if self._stopped or (ticket is None and not self.accepting):
            if ticket:
                ticket.release()
            self.metrics.rejected.labels(reason="draining").inc()
            raise Draining()
        # The job owns its place from here (the caller's ticket is emptied): it is given back when
        # the model starts on the job or drops it, not when the caller stops waiting.
        ticket = ticket.keep() if ticket else self.reserve()
        queued = QueuedJob(job, audio_seconds, deadline, asyncio.get_running_loop().create_future(), ticket,
                           request_id, stats if stats is not None else {}, self.tracing.current())
        self.queue.put_nowait(queued)
        return queued.future

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let queued work finish (up to `timeout` s), then stop the loop.
        Whatever is still unfinished then fails with Draining (503), so no client hangs."""
        self.accepting = False
        end = time.monotonic() + timeout
        while (self.depth() or self._running) and time.monotonic() < end:
            await asyncio.sleep(0.02)
        self._stopped = True
        leftovers = list(self._running) + self._collecting  # read first: the batches clear them on exit
        tasks = [task for task in [self._task, *self._batches] if task]
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a cancel that lands as a queue get completes must not hang shutdown
            await asyncio.wait(tasks, timeout=1.0)
        leftovers += [self._carry] if self._carry else []
        self._carry = None
        while not self.queue.empty():
            leftovers.append(self.queue.get_nowait())
        for job in leftovers:
            job.ticket.release()
            if not job.future.done():
                job.future.set_exception(Draining())
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _next(self, timeout: float | None) -> QueuedJob:
        if self._carry is not None:
            job, self._carry = self._carry, None
            return job
        if timeout is None:
            return await self.queue.get()
        if timeout <= 0:
            return self.queue.get_nowait()
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def _collect(self) -> list[QueuedJob]:
        first = await self._next(None)
        batch, audio = self._collecting, first.audio_seconds
        batch.append(first)
        end = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            try:
                job = await self._next(end - time.monotonic())
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if audio + job.audio_seconds > self.max_batch_audio_seconds:
                self._carry = job
                break
            batch.append(job)
            audio += job.audio_seconds
        self._collecting = []
        return batch

    def _live(self, batch: list[QueuedJob]) -> list[QueuedJob]:
        """Drop requests whose client left or whose deadline passed."""
        now, live = time.monotonic(), []
        for job in batch:
            if job.future.done() or now > job.deadline:
                job.ticket.release()
            if job.future.done():  # cancelled by a disconnect or a timed-out handler
                self.metrics.rejected.labels(reason="cancelled").inc()
            elif now > job.deadline:
                self.metrics.rejected.labels(reason="deadline").inc()
                job.future.set_exception(DeadlineExceeded())
            else:
                live.append(job)
        return live

    async def _loop(self) -> None:
        while not self._stopped:
            batch = await self._collect()
            self._running.update(batch)  # counted as running while it waits for a slot
            await self._slots.acquire()
            task = asyncio.create_task(self._process(batch))
            self._batches.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task) -> None:
        self._batches.discard(task)
        self._slots.release()
        self.completed_batches += 1

    async def _process(self, batch: list[QueuedJob]) -> None:
        loop = asyncio.get_running_loop()
        try:
            groups: dict[Hashable, list[QueuedJob]] = {}
            for queued in self._live(batch):
                groups.setdefault(queued.job.group, []).append(queued)
            for jobs in groups.values():
                await self._run(loop, self._live(jobs))
        finally:
            self._running.difference_update(batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, jobs: list[QueuedJob]) -> None:
        if not jobs:
            return
        op = jobs[0].job.kind
        start, start_ns = time.monotonic(), time.time_ns()
        for job in jobs:
            job.ticket.release()
            self.metrics.queue_duration.labels(op=op).observe(start - job.enqueued)
            job.stats.update(queue_ms=round((start - job.enqueued) * 1000, 1), batch_size=len(jobs),
                             audio_s=round(job.audio_seconds, 3))
            self.tracing.queue_wait(job.trace, job.enqueued_ns, start_ns, job.request_id)
        audio = sum(job.audio_seconds for job in jobs)
        self.metrics.batch_requests.labels(op=op).observe(len(jobs))
        self.metrics.batch_audio.labels(op=op).observe(audio)
        try:
            results = await loop.run_in_executor(self._executor, self.process, [j.job for j in jobs],
                                                 [j.abandoned for j in jobs])
        except Exception as err:  # process() isolates items itself; this is a last resort
            log.exception("batch of %d %s requests failed", len(jobs), op)
            results = [err] * len(jobs)
        computed = time.monotonic() - start
        self.metrics.compute_duration.labels(op=op).observe(computed)
        self.tracing.batch(op, [job.trace for job in jobs], start_ns, time.time_ns(),
                           {"dmcodec.batch_size": len(jobs), "dmcodec.audio_seconds": audio})
        for job in jobs:
            job.stats["compute_ms"] = round(computed * 1000, 1)
        for job, result in zip(jobs, results):
            if job.future.done():
                continue
            if job.abandoned():  # its deadline passed while it computed: windows may be missing
                self.metrics.rejected.labels(reason="deadline").inc()
                job.future.set_exception(DeadlineExceeded())
            elif isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                self.metrics.audio_seconds.labels(op=op).inc(job.audio_seconds)
                job.future.set_result(result)
