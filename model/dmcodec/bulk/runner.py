"""The bulk loop and its two in-process engines: the local model, or a running service."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any, Callable, Optional, Protocol, Sequence, Union

import httpx
import numpy as np
from tqdm import tqdm

from ..audio import load_audio
from ..client import AsyncDMCodecClient, ServiceError
from ..isolation import run_isolated
from ..layouts import layout_levels
from ..tokens import TokenMetadata
from .manifest import Item
from .store import ShardStore, row

Result = Union[dict, Exception]


class Engine(Protocol):
    batch_size: int

    def encode(self, items: Sequence[Item]) -> list[Result]:
        """One row (see store.row) or the exception, per item."""


class Recordings:
    """Audio of items at the model's rate: a segment is cut from its recording, and the last
    recording read is kept, so that many segments of one long recording (which `pending`
    brings together) read it once."""

    def __init__(self, load: Callable[[Any], np.ndarray], rate: int):
        self.load, self.rate = load, rate
        self._last: tuple[str, np.ndarray] | None = None

    def audio(self, item: Item) -> np.ndarray:
        if self._last is None or self._last[0] != item.path:
            self._last = (item.path, self.load(item.loader() if item.loader else item.path))
        samples = self._last[1]
        if item.start is None and item.end is None:
            return samples
        first = round((item.start or 0.0) * self.rate)
        last = samples.size if item.end is None else round(item.end * self.rate)
        if last > samples.size or first >= last:
            raise ValueError(f"segment {item.start or 0.0:g}-{item.end if item.end is not None else 'end'} s lies "
                             f"beyond the {samples.size / self.rate:.2f} s recording")
        return samples[first:last]


class LocalEngine:
    """The model in this process, through the batch-invariant tokenizer; rows carry `input_ids`
    in `layout` unless it is codes."""

    def __init__(self, tokenizer, n_q: Optional[int] = None, batch_size: int = 16, layout: str = "codes"):
        self.tokenizer, self.n_q, self.batch_size = tokenizer, layout_levels(layout, n_q), batch_size
        self.layout = layout
        self.recordings = Recordings(tokenizer.load, tokenizer.sample_rate)

    def encode(self, items: Sequence[Item]) -> list[Result]:
        results: dict[int, Result] = {}
        loaded: dict[int, np.ndarray] = {}
        for index, item in enumerate(items):
            try:
                loaded[index] = self.recordings.audio(item)
            except (ValueError, OSError) as err:
                results[index] = err
        encoded = run_isolated(lambda clips: self.tokenizer.encode_arrays(clips, self.n_q), list(loaded.values()))
        for (index, clip), codes in zip(loaded.items(), encoded):
            results[index] = codes if isinstance(codes, Exception) else \
                row(items[index], codes, self.tokenizer.metadata(codes, clip.size, self.layout))
        return [results[index] for index in range(len(items))]


class Transient(Exception):
    """This item failed for now (overload, shutdown, a lost connection): not recorded as a failure,
    so the next run tries it again."""


class ServerEngine:
    """A running service, `concurrency` requests at a time. The one retry policy: 503 (after
    its Retry-After), 504, 429 and connection failures are retried `retries` times with
    exponential back-off; what still fails that way is Transient. The client itself does not
    retry (max_retries=0), so retries never nest. The service sends codes; rows carry them in
    `layout` too, in the vocabulary its metadata record."""

    def __init__(self, url: str, api_key: Optional[str] = None, n_q: Optional[int] = None,
                 concurrency: int = 8, retries: int = 5, backoff_s: float = 0.5, layout: str = "codes"):
        self.n_q, self.retries, self.backoff_s = layout_levels(layout, n_q), retries, backoff_s
        self.layout = layout
        self.batch_size = concurrency * 4
        self._loop = asyncio.new_event_loop()
        self._limit = asyncio.Semaphore(concurrency)
        self._client = AsyncDMCodecClient(url, api_key=api_key, max_connections=concurrency, max_retries=0)
        self.recordings: Optional[Recordings] = None  # made at the first segment, at the service's rate

    async def _one(self, item: Item) -> Result:
        async with self._limit:
            for attempt in range(self.retries + 1):
                wait = min(30.0, self.backoff_s * 2**attempt)
                try:
                    answer = await self._client.encode(*await self._audio(item), n_q=self.n_q, npy=True)
                    metadata = replace(TokenMetadata.from_flat(answer), layout=self.layout)
                    return row(item, np.asarray(answer["codes"]), metadata)
                except ServiceError as err:
                    if not err.transient:
                        return err
                    failure: Exception = err
                    wait = max(wait, min(30.0, err.retry_after or 0.0))
                except (httpx.TransportError, ConnectionError) as err:
                    failure = err
                except (ValueError, OSError) as err:  # this item's own file: unreadable, or a segment past its end
                    return err
                if attempt < self.retries:
                    await asyncio.sleep(wait)
            return Transient(f"{type(failure).__name__}: {failure}")

    async def _audio(self, item: Item) -> tuple[Any, Optional[int]]:
        """What to upload: the file itself, or a segment cut here at the service's rate (sent as a
        float WAV, which the service does not resample), so segments match the local engine's."""
        if item.start is None and item.end is None:
            if item.loader is None:
                return item.path, None
            held = item.loader()
            return (held.read() if hasattr(held, "read") else held), None
        if self.recordings is None:
            rate = int((await self._client.info())["sample_rate"])
            self.recordings = Recordings(lambda path: load_audio(path, rate)[0], rate)
        return self.recordings.audio(item), self.recordings.rate

    def encode(self, items: Sequence[Item]) -> list[Result]:
        async def all_items():
            return await asyncio.gather(*(self._one(item) for item in items))

        return self._loop.run_until_complete(all_items())

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


def summarize(store: ShardStore, engine: str, items: int, skipped: int, audio_s: float, elapsed: float,
              **extra) -> dict:
    """Write and return summary.json's content."""
    summary = {"engine": engine, "items": items, "written": len(store.done), "failed": len(store.failed),
               "skipped_already_done": skipped, "audio_hours_this_run": audio_s / 3600, "elapsed_s": elapsed,
               "audio_hours_per_hour": audio_s / elapsed if elapsed > 0 else 0.0, **extra}
    store.write_summary(summary)
    return summary


def pending(items: Sequence[Item], store: ShardStore) -> list[Item]:
    """Items not yet written nor failed, by recording and then by start, so that the segments of
    one recording come together (and it is read once)."""
    todo = [i for i in items if i.id not in store.done and i.id not in store.failed]
    return sorted(todo, key=lambda i: (i.path, i.start or 0.0, i.id))


def run(items: Sequence[Item], store: ShardStore, engine: Engine, *, shard_size: int = 1000,
        engine_name: str = "local", progress: bool = True) -> dict:
    """Tokenize what `store` does not hold yet; write shards of `shard_size` rows; return the summary."""
    todo = pending(items, store)
    skipped = len(items) - len(todo)
    rows: list[dict] = []
    audio_s = 0.0
    retry_later = 0
    start = time.monotonic()
    with tqdm(total=len(todo), unit="file", disable=not progress, dynamic_ncols=True) as bar:
        for first in range(0, len(todo), engine.batch_size):
            chunk = todo[first : first + engine.batch_size]
            for item, result in zip(chunk, engine.encode(chunk)):
                if isinstance(result, Transient):
                    retry_later += 1
                elif isinstance(result, Exception):
                    store.record_failure(item.id, item.path, f"{type(result).__name__}: {result}")
                else:
                    rows.append(result)
                    audio_s += result["duration_s"]
            while len(rows) >= shard_size:
                store.write_shard(rows[:shard_size])
                rows = rows[shard_size:]
            bar.update(len(chunk))
            bar.set_postfix(audio_h=f"{audio_s / 3600:.3f}", failed=len(store.failed))
        if rows:
            store.write_shard(rows)
    return summarize(store, engine_name, len(items), skipped, audio_s, time.monotonic() - start,
                     retry_next_run=retry_later)
