"""Cells of the Markdown tables the evaluation and the paper runner write."""

from __future__ import annotations

import math


def format_cell(value: float | None, spec: str) -> str:
    """`-` where a score is missing (None) or undefined (NaN), else `value` in `spec`."""
    return "-" if value is None or math.isnan(value) else format(value, spec)
