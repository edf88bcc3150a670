"""The classical anchor: Opus (libopus, through PyAV's FFmpeg) at a given bitrate.

The issue's bar is "better than Opus at the same bitrate", so the harness scores Opus on the
very clips it scores the codec on, in the same table.
"""

from __future__ import annotations

import io

import av
import numpy as np


def opus_roundtrip(audio: np.ndarray, rate: int, kbps: float) -> np.ndarray:
    """Encode mono float audio to Ogg/Opus at `kbps` and decode it back at `rate`, same length."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=rate)
        stream.bit_rate = int(kbps * 1000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(audio[None].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    buffer.seek(0)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    blocks = []
    with av.open(buffer) as container:
        for decoded in container.decode(audio=0):
            blocks += [b.to_ndarray()[0] for b in resampler.resample(decoded)]
        blocks += [b.to_ndarray()[0] for b in resampler.resample(None)]
    out = np.concatenate(blocks)[: len(audio)]
    # The Ogg pre-skip removes the encoder's look-ahead, so the output lines up with the input.
    return np.pad(out, (0, len(audio) - len(out)))
