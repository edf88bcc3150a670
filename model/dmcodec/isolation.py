"""Running a batch so that one bad item fails alone."""

from __future__ import annotations

import logging
from typing import Callable, Sequence, TypeVar, Union

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


def run_isolated(run: Callable[[Sequence[T]], Sequence[R]], items: Sequence[T]) -> list[Union[R, Exception]]:
    """`run(items)`; if the batch fails as a whole, `run([item])` for each item, so that the
    result list holds a value or the exception for every item, in order."""
    try:
        return list(run(items))
    except Exception as err:
        if len(items) == 1:
            return [err]
        log.warning("batch of %d failed; retrying one by one", len(items), exc_info=True)
    results: list[Union[R, Exception]] = []
    for item in items:
        try:
            results.extend(run([item]))
        except Exception as err:
            results.append(err)
    return results
