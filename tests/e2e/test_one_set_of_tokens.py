"""One set of tokens: with default settings and the bundled checkpoint, every entry point gives
the codes the library gives, bit for bit - `Tokenizer.from_pretrained()`, `dmcodec encode`,
`dmcodec bulk` with the local, server and Ray engines, `/v1/encode` and the KServe infer route -
on real recordings of human speech, one of them long enough to be cut into windows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from helpers import running_server

from dmcodec import Tokenizer, defaults
from dmcodec.bulk import read_codes, read_items

BIN = Path(sys.executable).parent
RECORDINGS = [*sorted(Path("/usr/share/sounds/alsa").glob("Front_*.wav")),  # alsa-utils: a man, 48 kHz
              *sorted(Path("/usr/share/pocketsphinx/test/data/librivox").glob("*.wav"))]  # LibriVox readings


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """A folder of real recordings as they come, and one of ~45 s made of them (more than one
    window of `defaults.WINDOW_FRAMES` frames)."""
    if len(RECORDINGS) < 3:
        pytest.skip("needs the recordings of alsa-utils and pocketsphinx-testdata (scripts/test.sh installs them)")
    root = tmp_path_factory.mktemp("speech")
    pieces = []
    for path in RECORDINGS[:6]:
        (root / path.name).write_bytes(path.read_bytes())
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        if rate == 16000:
            pieces.append(audio[:, 0])
    long = np.concatenate(pieces * (1 + int(45 * 16000 // sum(p.size for p in pieces))))[: 45 * 16000]
    sf.write(root / "long.wav", long, 16000, subtype="PCM_16")
    assert long.size / 320 > defaults.WINDOW_FRAMES
    return root


def run_cli(*args: str) -> None:
    done = subprocess.run([str(BIN / "dmcodec"), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_entry_point_gives_the_library_codes_bit_for_bit(speech, tmp_path):
    files = sorted(speech.glob("*.wav"))
    with Tokenizer.from_pretrained() as tokenizer:
        expected = {f.name: tokenizer.encode(f).codes for f in files}
        at_model_rate = {f.name: tokenizer.load(f) for f in files}
        backend = tokenizer.backend.name
    ids = {item.path: item.id for item in read_items(speech)}
    by_name = {Path(path).name: item_id for path, item_id in ids.items()}
    got: dict[str, dict[str, np.ndarray]] = {}

    run_cli("encode", str(speech), "-o", str(tmp_path / "cli"))
    got["dmcodec encode"] = {f.name: np.asarray(json.loads((tmp_path / "cli" / f.with_suffix(".json").name)
                                                           .read_text())["codes"]) for f in files}
    run_cli("bulk", str(speech), "-o", str(tmp_path / "bulk-local"))
    local = read_codes(tmp_path / "bulk-local")
    got["dmcodec bulk (local)"] = {name: local[item] for name, item in by_name.items()}
    run_cli("bulk", str(speech), "-o", str(tmp_path / "bulk-ray"), "--engine", "ray", "--concurrency", "1")
    on_ray = read_codes(tmp_path / "bulk-ray")
    got["dmcodec bulk (ray)"] = {name: on_ray[item] for name, item in by_name.items()}

    with running_server(None, tmp_path / "server.log") as (url, _):
        info = httpx.get(f"{url}/v1/info").json()
        assert info["model"]["backend"] == backend and info["model"]["sha256"] == tokenizer.codec.sha256
        run_cli("bulk", str(speech), "-o", str(tmp_path / "bulk-server"), "--engine", "server", "--server", url)
        served = read_codes(tmp_path / "bulk-server")
        got["dmcodec bulk (server)"] = {name: served[item] for name, item in by_name.items()}
        with httpx.Client(base_url=url, timeout=120) as http:
            got["/v1/encode"] = {f.name: np.asarray(http.post("/v1/encode", files={"file": (f.name, f.read_bytes())})
                                                    .json()["codes"]) for f in files}
            name = info["model"]["name"]
            infer = {}
            for file, samples in at_model_rate.items():
                body = {"inputs": [{"name": "audio", "datatype": "FP32", "shape": [samples.size],
                                    "data": samples.tolist()}], "parameters": {"sample_rate": info["sample_rate"]}}
                output = http.post(f"/v2/models/{name}/infer", json=body).json()["outputs"][0]
                infer[file] = np.asarray(output["data"]).reshape(output["shape"])
            got["KServe infer"] = infer

    print(f"backend {backend}; {len(files)} files, {sum(c.shape[1] for c in expected.values())} frames")
    for entry_point, codes in got.items():
        differing = [f for f in expected if not np.array_equal(codes[f], expected[f])]
        assert not differing, f"{entry_point} gives other codes than the library for {differing}"
