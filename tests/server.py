"""Helpers for end-to-end tests: the real service on 127.0.0.1, and its parsed metrics."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dmcodec_service.local import local_server


@contextlib.contextmanager
def running_server(checkpoint: Path, log_path: Path, **settings):
    """Yields (base_url, process); two window workers, like CI's machine."""
    with local_server(checkpoint, log_path, workers=settings.pop("workers", 2), **settings) as server:
        yield server


def scrape(url: str) -> dict[tuple, float]:
    """GET /metrics, parsed by prometheus_client -> {(sample name, sorted label pairs): value}."""
    families = text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}


def value(samples: dict[tuple, float], metric: str, **labels) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)
