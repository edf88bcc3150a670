"""The service's model side: one bad request in a batch fails alone."""

import numpy as np

from dmcodec.signals import speech_like
from dmcodec_service.engine import DecodeItem, Engine
from dmcodec_service.settings import ServiceSettings


def test_a_bad_item_fails_alone_and_the_rest_of_its_batch_succeeds(tiny_checkpoint):
    engine = Engine(ServiceSettings(checkpoint=tiny_checkpoint, device="cpu"))
    clips = [speech_like(1.0, seed=i) for i in range(3)]
    codes = engine.process("encode", 8, clips)
    assert [c.shape for c in codes] == [(8, 50)] * 3
    items = [DecodeItem(codes[0], 16000), DecodeItem(np.full((8, 50), 999), None), DecodeItem(codes[2], 15999)]
    results = engine.process("decode", 8, items)
    assert isinstance(results[1], ValueError)
    assert results[0].shape == (16000,) and results[2].shape == (15999,)
    assert np.array_equal(results[0], engine.tokenizer.decode(codes[0], 16000))
