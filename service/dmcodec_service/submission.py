"""Handing a request to the batcher: a queue place before any expensive work, then the job,
its deadline and its client's presence watched until the result comes back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Awaitable, Iterator, TypeVar

from fastapi import Request

from .batcher import DeadlineExceeded, Draining, QueueFull, Ticket
from .errors import APIError
from .jobs import ModelJob

T = TypeVar("T")


def service_state(request: Request):
    return request.app.state.service


async def _wait(request: Request, future: asyncio.Future, deadline: float) -> Any:
    """The job's result; cancels the job if the client leaves or the deadline passes."""

    async def disconnected() -> None:
        while not await request.is_disconnected():
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(disconnected())
    try:
        done, _ = await asyncio.wait({future, watcher}, timeout=max(0.0, deadline - time.monotonic()),
                                     return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this task itself was cancelled (e.g. a stream whose client left)
        future.cancel()
        raise
    finally:
        watcher.cancel()
    if future in done:
        return future.result()
    future.cancel()  # the batcher skips cancelled jobs
    if watcher in done:
        raise APIError(499, "client_closed_request", "the client disconnected")
    raise DeadlineExceeded()


@contextlib.contextmanager
def admitted(request: Request) -> Iterator[Ticket]:
    """A place in the queue before the body is read: overload and shutdown are refused cheaply."""
    service = service_state(request)
    retry = {"Retry-After": str(service.settings.retry_after_s)}
    try:
        ticket = service.batcher.reserve()
    except QueueFull:
        raise APIError(503, "overloaded", "the request queue is full; retry later", retry) from None
    except Draining:
        raise APIError(503, "draining", "the service is shutting down; retry on another replica", retry) from None
    try:
        yield ticket
    finally:
        ticket.release()


def deadline_of(request: Request) -> float:
    return request.state.arrived + service_state(request).settings.request_timeout_s


async def within_deadline(request: Request, work: Awaitable[T]) -> T:
    """`work` (reading a body), given until the request's deadline: a client that trickles its
    body must not hold a queue place for longer than any request may take."""
    try:
        return await asyncio.wait_for(work, timeout=max(0.0, deadline_of(request) - time.monotonic()))
    except asyncio.TimeoutError:
        raise APIError(408, "request_timeout", "the request body did not arrive before the deadline") from None


async def run_job(request: Request, job: ModelJob, audio_seconds: float, ticket: Ticket) -> Any:
    """`job`'s result, computed in a batch on the request's `ticket`; the batcher's refusals and
    the job's own errors as API errors."""
    service = service_state(request)
    deadline = deadline_of(request)
    retry = {"Retry-After": str(service.settings.retry_after_s)}
    try:
        future = service.batcher.submit(job, audio_seconds=audio_seconds, deadline=deadline, ticket=ticket,
                                        request_id=request.state.request_id, stats=request.state.stats)
        return await _wait(request, future, deadline)
    except Draining:
        raise APIError(503, "draining", "the service is shutting down; retry on another replica", retry) from None
    except DeadlineExceeded:
        raise APIError(504, "deadline_exceeded",
                       f"not processed within {service.settings.request_timeout_s:g} s") from None
    except ValueError as err:
        raise APIError(422, job.error_code, str(err)) from None
