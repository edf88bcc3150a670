"""The service's model side: one bad request in a batch fails alone; abandoned work stops early."""

import numpy as np

from dmcodec.signals import speech_like
from dmcodec_service.engine import DecodeItem, Engine
from dmcodec_service.settings import ServiceSettings


def wanted() -> bool:
    return False


def test_a_bad_item_fails_alone_and_the_rest_of_its_batch_succeeds(tiny_checkpoint):
    engine = Engine(ServiceSettings(checkpoint=tiny_checkpoint, device="cpu"))
    clips = [speech_like(1.0, seed=i) for i in range(3)]
    codes = engine.process("encode", 8, clips, [wanted] * 3)
    assert [c.shape for c in codes] == [(8, 50)] * 3
    items = [DecodeItem(codes[0], 16000), DecodeItem(np.full((8, 50), 999), None), DecodeItem(codes[2], 15999)]
    results = engine.process("decode", 8, items, [wanted] * 3)
    assert isinstance(results[1], ValueError)
    assert results[0].shape == (16000,) and results[2].shape == (15999,)
    assert np.array_equal(results[0], engine.tokenizer.decode(codes[0], 16000))


def test_an_abandoned_request_stops_between_windows(tiny_checkpoint):
    # torch: windows one by one (onnxruntime would batch the equal-length windows together).
    engine = Engine(ServiceSettings(checkpoint=tiny_checkpoint, device="cpu", window_frames=100, context_frames=10,
                                    workers=1, backend="torch"))
    calls = []
    encode = engine.tokenizer.backend.encode
    engine.tokenizer.backend.encode = lambda wav, n_q, threads=0: (calls.append(wav.shape[-1]),
                                                                   encode(wav, n_q, threads))[1]
    checks = {"left": 0}

    def left_after_two_windows() -> bool:
        checks["left"] += 1
        return checks["left"] > 2

    clips = [speech_like(12.0, seed=1), speech_like(4.0, seed=2)]  # 8 windows of 80 frames, and 3
    codes = engine.process("encode", 8, clips, [left_after_two_windows, wanted])
    assert len(calls) == 2 + 3  # two windows of the abandoned clip, all of the other one
    assert np.array_equal(codes[1], engine.tokenizer.encode_arrays([clips[1]])[0])
