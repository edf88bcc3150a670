"""What several test modules share: audio, the service in-process or on 127.0.0.1, metric scrapes.

Only the library is imported at the top: the service, bulk and HTTP extras are imported by the
helpers that need them, so the library's unit tests run with the library alone installed.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Union

import numpy as np

from dmcodec import Tokenizer
from dmcodec.signals import speech_like

if TYPE_CHECKING:
    import httpx
    from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parent.parent


# (container, codec, rate) of the formats browsers and phones record, as FFmpeg names them.
RECORDED_FORMATS = {"webm-opus": ("webm", "libopus", 48000), "ogg-opus": ("ogg", "libopus", 48000),
                    "m4a-aac": ("ipod", "aac", 44100), "mp3": ("mp3", "libmp3lame", 16000)}


def encode_audio(samples: np.ndarray, rate: int, container: str, codec: str, channels: int = 1) -> bytes:
    """Mono samples -> a file in `container` with `codec` (PyAV's FFmpeg), `channels` copies."""
    import av

    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.repeat(samples[None].astype(np.float32), channels, axis=0),
                                           format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()


def harmonic_tone(f0_hz: float | np.ndarray, seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    """A voiced-like tone: 19 harmonics with a speech-like falling spectrum. f0_hz: one pitch, or
    one per sample (a contour: the phase follows it)."""
    n = int(seconds * rate)
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(np.asarray(f0_hz, np.float64), (n,))) / rate
    return (sum(np.sin(k * phase) / k for k in range(1, 20)) * 0.1).astype(np.float32)


def clips(lengths_s: list[float], rate: int = 16000, seed: int = 0) -> list[np.ndarray]:
    return [speech_like(s, rate, seed=seed + i) for i, s in enumerate(lengths_s)]


# Voices the training tests use: one held-out (test) voice and two training voices, all fast.
TRAIN_TEST_VOICES = ("espeak:en+f3", "espeak:en-us+m1", "flite:slt")


@contextlib.contextmanager
def in_process_service(checkpoint: Path, **settings) -> Iterator[TestClient]:
    """The app from `create_app`, started (model loaded, batcher running) and stopped in this
    process; requests go through an ASGI transport, no socket. Two window workers, like CI's machine."""
    from fastapi.testclient import TestClient

    from dmcodec_service import ServiceSettings, create_app

    config = ServiceSettings(checkpoint=checkpoint, workers=settings.pop("workers", 2), **settings)
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        yield client


@contextlib.contextmanager
def running_server(checkpoint: Path, log_path: Path, **settings):
    """The real service in a subprocess on 127.0.0.1: yields (base_url, process)."""
    from dmcodec_service.local import local_server

    with local_server(checkpoint, log_path, workers=settings.pop("workers", 2), **settings) as server:
        yield server


def readme_blocks(heading: str) -> list[tuple[str, str]]:
    """The fenced code blocks of the README's section `heading` ("## For data pipelines"), up to
    the next heading of any level, as (language, text) pairs."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index(f"\n{heading}\n") + len(heading) + 2:]
    section = section[: min((section.index(mark) for mark in ("\n## ", "\n### ") if mark in section),
                            default=len(section))]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def scrape(service: Union[str, httpx.Client]) -> dict[tuple, float]:
    """GET /metrics (from a base URL or a client), parsed by prometheus_client ->
    {(sample name, sorted label pairs): value}."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{service}/metrics").text if isinstance(service, str) else service.get("/metrics").text
    families = text_string_to_metric_families(text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}


def value(samples: dict[tuple, float], metric: str, **labels) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def expected_bulk_codes(checkpoint: Path, corpus: Path) -> dict[str, np.ndarray]:
    """What a bulk job over `bulk_corpus` must write: the codes of each file encoded alone."""
    with Tokenizer.from_pretrained(checkpoint) as tokenizer:
        return {str(p.relative_to(corpus)): tokenizer.encode(p).codes for p in corpus.rglob("utt*.wav")}


def check_bulk_output(out: Path, expected: dict[str, np.ndarray]) -> None:
    import pyarrow.parquet as pq

    from dmcodec.bulk import read_codes

    codes = read_codes(out)
    assert set(codes) == set(expected)
    for key, value in expected.items():
        assert np.array_equal(codes[key], value), key
    ids = [i for s in sorted(out.glob("shard-*.parquet")) for i in pq.read_table(s).column("id").to_pylist()]
    assert len(ids) == len(set(ids))  # no duplicates
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["id"] for f in failures] == ["b/broken.wav"] and "not a readable audio file" in failures[0]["reason"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == 10 and summary["failed"] == 1


@contextlib.contextmanager
def fake_hub(root: Path, repo_id: str, commit: str = "0123456789abcdef0123456789abcdef01234567"):
    """A stand-in for the Hugging Face Hub's HTTP API on 127.0.0.1 serving one repository (the
    files below `root`): yields (endpoint URL, the requests it saw). Point HF_ENDPOINT at it."""
    import hashlib
    import re
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    files = {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}
    seen: list[tuple[str, str]] = []

    class Hub(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _answer(self, body: bytes, headers: dict[str, str], head: bool) -> None:
            self.send_response(200)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _route(self, head: bool) -> None:
            seen.append((self.command, self.path))
            path = self.path.split("?")[0]
            if re.fullmatch(f"/api/models/{repo_id}/revision/[^/]+", path):
                info = {"id": repo_id, "sha": commit, "siblings": [{"rfilename": f} for f in files]}
                return self._answer(json.dumps(info).encode(), {"Content-Type": "application/json"}, head)
            if re.fullmatch(f"/api/models/{repo_id}/tree/[^/]+(/.*)?", path):
                tree = [{"type": "file", "path": f, "size": p.stat().st_size, "oid": "0"} for f, p in files.items()]
                return self._answer(json.dumps(tree).encode(), {"Content-Type": "application/json"}, head)
            match = re.fullmatch(f"/{repo_id}/resolve/[^/]+/(.+)", path)
            if match and match[1] in files:
                data = files[match[1]].read_bytes()
                return self._answer(data, {"ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                                           "X-Repo-Commit": commit}, head)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self._route(head=False)

        def do_HEAD(self) -> None:
            self._route(head=True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()

