"""Ten minutes in one call: windowed encode and decode keep memory flat (a fresh process each)."""

import json
import subprocess
import sys

import pytest
from helpers import REPO

BENCH = REPO / "bench" / "codec_throughput.py"


def peak(minutes: float, preset: str) -> dict:
    out = subprocess.run([sys.executable, str(BENCH), "--preset", preset, "--child-minutes", str(minutes)],
                         capture_output=True, text=True, check=True, timeout=1200).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("preset", ["tiny", pytest.param("small", marks=pytest.mark.slow)])
def test_memory_does_not_grow_with_duration(preset):
    one, ten = peak(1, preset), peak(10, preset)
    growth_one = one["peak_rss_mb"] - one["rss_before_mb"]
    growth_ten = ten["peak_rss_mb"] - ten["rss_before_mb"]
    # Ten times the audio adds its copies, not ten times the activations: 10 minutes at 16 kHz is
    # 38 MB per copy, and the input, the decoded output and its assembly buffer are three or four
    # (measured: 353-373 MB of growth against 209-264 MB for one minute). Activations growing
    # with the duration would add gigabytes.
    assert growth_ten < growth_one + 250, (one, ten)
