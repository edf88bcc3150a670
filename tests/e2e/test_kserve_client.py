"""The KServe v2 routes through the protocol's own client library (tritonclient), as an ops
team's generic tooling would use them, against a real server."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import running_server

from dmcodec import Tokenizer
from dmcodec.signals import speech_like

httpclient = pytest.importorskip("tritonclient.http")


def test_tritonclient_checks_health_reads_metadata_and_infers(tiny_checkpoint, tmp_path):
    clip = speech_like(2.2, 16000, seed=12)
    with running_server(tiny_checkpoint, tmp_path / "log") as (url, _):
        client = httpclient.InferenceServerClient(url.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("untrained-tiny")
        assert client.get_server_metadata()["name"] == "dmcodec"
        meta = client.get_model_metadata("untrained-tiny")
        audio = httpclient.InferInput("audio", [clip.size], "FP32")
        audio.set_data_from_numpy(clip, binary_data=False)
        result = client.infer("untrained-tiny", [audio], parameters={"n_q": 4},
                              outputs=[httpclient.InferRequestedOutput("codes", binary_data=False)])
        client.close()
    with Tokenizer.from_pretrained(tiny_checkpoint) as tokenizer:
        expected = tokenizer.encode(clip, 16000, n_q=4)
    assert meta["versions"] == [expected.metadata.model_sha256]
    assert np.array_equal(result.as_numpy("codes"), expected.codes)
