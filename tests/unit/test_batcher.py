"""The micro-batcher on its own (no HTTP, no model): grouping, limits, deadlines, isolation, drain."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import pytest

from dmcodec_service.batcher import Batcher, DeadlineExceeded, Draining, QueueFull
from dmcodec_service.metrics import Metrics


@dataclass(eq=False)
class FakeJob:
    """A job of any kind, grouped by (kind, key) as the service's typed jobs are."""

    kind: str
    payload: object
    key: object = None
    error_code = "invalid_audio"

    @property
    def group(self):
        return (self.kind, self.key)


def submit(batcher: Batcher, kind: str, payload: object, key: object = None, **options):
    return batcher.submit(FakeJob(kind, payload, key), **options)


class Recorder:
    """A fake model: records each call's payloads, can block, fails on payloads named 'bad'."""

    def __init__(self, delay: float = 0.0):
        self.calls: list[tuple[str, object, list]] = []
        self.delay = delay
        self.release = threading.Event()
        self.release.set()

    def __call__(self, jobs, abandoned):
        op, key, payloads = jobs[0].kind, jobs[0].key, [job.payload for job in jobs]
        assert all(job.group == jobs[0].group for job in jobs)
        self.release.wait(10)
        time.sleep(self.delay)
        self.calls.append((op, key, list(payloads)))
        return [ValueError("bad item") if p == "bad" else f"{op}:{p}" for p in payloads]


def make(process, **limits) -> Batcher:
    settings = dict(max_batch_size=4, max_batch_audio_seconds=100.0, max_wait_s=0.05, max_queue_size=16)
    settings.update(limits)
    return Batcher(process, metrics=Metrics(), **settings)


def far() -> float:
    return time.monotonic() + 30


def run(coro):
    return asyncio.run(coro)


def test_groups_by_kind_and_key_within_the_size_limit():
    async def scenario():
        model = Recorder()
        batcher = make(model)
        await batcher.start()
        futures = [submit(batcher, "encode", i, audio_seconds=1, deadline=far(), key=8) for i in range(6)]
        futures.append(submit(batcher, "decode", "x", audio_seconds=1, deadline=far(), key=8))
        futures.append(submit(batcher, "encode", "y", audio_seconds=1, deadline=far(), key=2))
        results = await asyncio.gather(*futures)
        await batcher.drain(1)
        return model, results

    model, results = run(scenario())
    assert results[:6] == [f"encode:{i}" for i in range(6)] and results[6:] == ["decode:x", "encode:y"]
    assert all(len(payloads) <= 4 for _, _, payloads in model.calls)
    assert {(op, key) for op, key, _ in model.calls} == {("encode", 8), ("decode", 8), ("encode", 2)}
    assert max(len(p) for _, _, p in model.calls) > 1  # requests really shared calls


def test_audio_budget_carries_the_overflowing_request_to_the_next_batch():
    async def scenario():
        model = Recorder()
        batcher = make(model, max_batch_audio_seconds=10)
        await batcher.start()
        futures = [submit(batcher, "encode", i, audio_seconds=6, deadline=far()) for i in range(3)]
        await asyncio.gather(*futures)
        await batcher.drain(1)
        return model

    model = run(scenario())
    assert [p for _, _, p in model.calls] == [[0], [1], [2]]


def test_full_queue_refuses_and_one_bad_item_fails_alone():
    async def scenario():
        model = Recorder()
        model.release.clear()  # the model is busy: requests pile up
        batcher = make(model, max_queue_size=2, max_batch_size=8, max_wait_s=0)
        await batcher.start()
        first = submit(batcher, "encode", "a", audio_seconds=1, deadline=far())
        await asyncio.sleep(0.05)  # the batcher has taken "a" and waits on the model
        queued = [submit(batcher, "encode", p, audio_seconds=1, deadline=far()) for p in ("bad", "c")]
        with pytest.raises(QueueFull):
            submit(batcher, "encode", "d", audio_seconds=1, deadline=far())
        model.release.set()
        outcome = await asyncio.gather(first, *queued, return_exceptions=True)
        await batcher.drain(1)
        return outcome

    a, bad, c = run(scenario())
    assert a == "encode:a" and c == "encode:c" and isinstance(bad, ValueError)


def test_expired_and_cancelled_requests_never_reach_the_model():
    async def scenario():
        model = Recorder()
        model.release.clear()
        batcher = make(model, max_wait_s=0)
        await batcher.start()
        blocker = submit(batcher, "encode", "blocker", audio_seconds=1, deadline=far())
        await asyncio.sleep(0.05)
        expired = submit(batcher, "encode", "late", audio_seconds=1, deadline=time.monotonic() + 0.01)
        cancelled = submit(batcher, "encode", "gone", audio_seconds=1, deadline=far())
        cancelled.cancel()  # what the route does when the client disconnects
        await asyncio.sleep(0.1)
        model.release.set()
        await blocker
        with pytest.raises(DeadlineExceeded):
            await expired
        await batcher.drain(1)
        return model, batcher

    model, batcher = run(scenario())
    computed = [p for _, _, payloads in model.calls for p in payloads]
    assert computed == ["blocker"]
    rejected = {s.labels["reason"]: s.value for s in batcher.metrics.rejected.collect()[0].samples
                if s.name.endswith("_total")}
    assert rejected == {"deadline": 1.0, "cancelled": 1.0}


def test_drain_finishes_queued_work_then_refuses_new_work():
    async def scenario():
        model = Recorder(delay=0.05)
        batcher = make(model, max_batch_size=1, max_wait_s=0)
        await batcher.start()
        futures = [submit(batcher, "encode", i, audio_seconds=1, deadline=far()) for i in range(5)]
        await batcher.drain(10)
        with pytest.raises(Draining):
            submit(batcher, "encode", "late", audio_seconds=1, deadline=far())
        return await asyncio.gather(*futures)

    assert run(scenario()) == [f"encode:{i}" for i in range(5)]


def test_drain_timeout_fails_leftovers_instead_of_hanging():
    async def scenario():
        model = Recorder()
        model.release.clear()  # never finishes in time
        batcher = make(model, max_batch_size=1, max_wait_s=0)
        await batcher.start()
        futures = [submit(batcher, "encode", i, audio_seconds=1, deadline=far()) for i in range(3)]
        await asyncio.sleep(0.05)
        await batcher.drain(0.2)
        model.release.set()
        return await asyncio.gather(*futures, return_exceptions=True)

    assert all(isinstance(r, Draining) for r in run(scenario()))


def test_concurrent_batches_overlap_and_all_finish():
    class Overlap(Recorder):
        def __init__(self):
            super().__init__(delay=0.1)
            self.active = self.peak = 0
            self.lock = threading.Lock()

        def __call__(self, jobs, abandoned):
            with self.lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            try:
                return super().__call__(jobs, abandoned)
            finally:
                with self.lock:
                    self.active -= 1

    async def scenario():
        model = Overlap()
        batcher = make(model, max_batch_size=2, max_wait_s=0, max_concurrent_batches=2)
        await batcher.start()
        futures = [submit(batcher, "encode", i, audio_seconds=1, deadline=far()) for i in range(8)]
        await batcher.drain(10)
        return model, await asyncio.gather(*futures)

    model, results = run(scenario())
    assert results == [f"encode:{i}" for i in range(8)] and model.peak == 2


def test_admission_reserves_places_before_any_work_and_frees_them_when_the_model_starts():
    async def scenario():
        model = Recorder()
        model.release.clear()  # the model blocks until released
        batcher = make(model, max_queue_size=2, max_batch_size=1, max_wait_s=0)
        await batcher.start()
        first, second = batcher.reserve(), batcher.reserve()
        with pytest.raises(QueueFull):
            batcher.reserve()  # refused while the two admitted requests are still being read
        second.release()
        second.release()  # releasing twice gives back one place only
        assert batcher.depth() == 1
        running = submit(batcher, "encode", "a", audio_seconds=1, deadline=far(), ticket=first)
        await asyncio.sleep(0.1)  # the batch has started: its place is free again
        assert batcher.depth() == 0
        third, fourth = batcher.reserve(), batcher.reserve()
        model.release.set()
        result = await running
        batcher.accepting = False  # draining: no new places, but admitted work is still taken
        with pytest.raises(Draining):
            batcher.reserve()
        late = await submit(batcher, "encode", "b", audio_seconds=1, deadline=far(), ticket=third)
        await batcher.drain(1)
        with pytest.raises(Draining):  # the drain has ended: nothing is taken any more
            submit(batcher, "encode", "c", audio_seconds=1, deadline=far(), ticket=fourth)
        assert batcher.depth() == 0  # a refused submission gives its place back
        return result, late

    assert run(scenario()) == ("encode:a", "encode:b")


def test_a_request_of_several_jobs_holds_one_place_until_it_ends():
    async def scenario():
        batcher = make(Recorder(), max_queue_size=1, max_batch_size=1, max_wait_s=0)
        await batcher.start()
        stream = batcher.reserve()
        results = [await submit(batcher, "decode_window", i, audio_seconds=1, deadline=far(), ticket=stream.borrow())
                   for i in range(3)]
        with pytest.raises(QueueFull):  # its place stays taken between its jobs
            batcher.reserve()
        stream.release()
        batcher.reserve().release()
        await batcher.drain(1)
        return results

    assert run(scenario()) == ["decode_window:0", "decode_window:1", "decode_window:2"]


def test_a_request_whose_deadline_passes_while_it_computes_gets_no_result():
    async def scenario():
        batcher = make(Recorder(delay=0.3), max_batch_size=1, max_wait_s=0)
        await batcher.start()
        late = submit(batcher, "encode", "a", audio_seconds=1, deadline=time.monotonic() + 0.1)
        with pytest.raises(DeadlineExceeded):
            await late
        await batcher.drain(1)

    run(scenario())
