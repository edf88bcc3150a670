"""The service's model side: one bad request in a batch fails alone; abandoned work stops early."""

import numpy as np

from dmcodec.signals import speech_like
from dmcodec_service.engine import Engine
from dmcodec_service.jobs import DecodeJob, DecodeWindowJob, EncodeJob
from dmcodec_service.settings import ServiceSettings


def wanted() -> bool:
    return False


def test_a_bad_item_fails_alone_and_the_rest_of_its_batch_succeeds(tiny_checkpoint):
    engine = Engine(ServiceSettings(checkpoint=tiny_checkpoint, device="cpu"))
    clips = [speech_like(1.0, seed=i) for i in range(3)]
    codes = engine.process([EncodeJob(clip, 8) for clip in clips], [wanted] * 3)
    assert [c.shape for c in codes] == [(8, 50)] * 3
    items = [DecodeJob(codes[0], 16000), DecodeJob(np.full((8, 50), 999), None), DecodeJob(codes[2], 15999)]
    results = engine.process(items, [wanted] * 3)
    assert isinstance(results[1], ValueError)
    assert results[0].shape == (16000,) and results[2].shape == (15999,)
    assert np.array_equal(results[0], engine.tokenizer.decode(codes[0], 16000))


def test_each_kind_of_job_groups_by_what_a_model_call_shares_and_window_jobs_fail_as_decodes(tiny_checkpoint):
    engine = Engine(ServiceSettings(checkpoint=tiny_checkpoint, device="cpu", window_frames=100, context_frames=10))
    clip = speech_like(3.0, seed=4)
    codes = engine.process([EncodeJob(clip, 8)], [wanted])[0]
    assert EncodeJob(clip, 8).group == EncodeJob(clip[:100], 8).group != EncodeJob(clip, 4).group
    first, last = engine.windows(codes.shape[1])[0], engine.windows(codes.shape[1])[-1]
    assert DecodeWindowJob(codes, first).group != DecodeWindowJob(codes, last).group  # 90 vs 70 frames
    pieces = engine.process([DecodeWindowJob(codes, w) for w in engine.windows(codes.shape[1])], [wanted] * 2)
    assert np.array_equal(np.concatenate(pieces), engine.tokenizer.decode(codes))
    assert DecodeWindowJob.error_code == DecodeJob.error_code == "invalid_tokens" != EncodeJob.error_code


def test_an_abandoned_request_stops_between_windows(tiny_checkpoint):
    engine = Engine(ServiceSettings(checkpoint=tiny_checkpoint, device="cpu", window_frames=100, context_frames=10,
                                    workers=1, backend="torch"))
    engine.tokenizer.dynamic_batches = False  # one window per model call, so that calls count windows
    calls = []
    encode = engine.tokenizer.backend.encode
    engine.tokenizer.backend.encode = lambda wav, n_q, threads=0: (calls.append(wav.shape[-1]),
                                                                   encode(wav, n_q, threads))[1]
    checks = {"left": 0}

    def left_after_two_windows() -> bool:
        checks["left"] += 1
        return checks["left"] > 2

    clips = [speech_like(12.0, seed=1), speech_like(4.0, seed=2)]  # 8 windows of 80 frames, and 3
    codes = engine.process([EncodeJob(clip, 8) for clip in clips], [left_after_two_windows, wanted])
    assert len(calls) == 2 + 3  # two windows of the abandoned clip, all of the other one
    assert np.array_equal(codes[1], engine.tokenizer.encode_arrays([clips[1]])[0])
