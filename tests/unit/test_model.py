import math

import numpy as np
import pytest
import torch

from dmcodec import CodecConfig, DMCodec, preset
from dmcodec.init import init_weights
from dmcodec.modules import fold_weight_norm
from dmcodec.signals import speech_like


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = DMCodec(preset("tiny")).eval()
    with torch.no_grad():
        speech = torch.from_numpy(np.stack([speech_like(4.0, seed=i) for i in range(3)]))[:, None]
        model.quantizer.init_from_data(model.encoder(speech))
    return model


def test_paper_config_is_the_published_size():
    model = DMCodec(CodecConfig())
    # 103.68 M parameters, as the DM-Codec / SpeechTokenizer release.
    assert model.num_parameters() == 103_675_586
    assert CodecConfig().frame_rate == 50 and CodecConfig().bitrate() == 4000


@pytest.mark.parametrize("samples", [1, 319, 320, 321, 16000, 16001])
def test_frame_count_is_ceil_of_hop(tiny_model, samples):
    codes = tiny_model.encode(torch.randn(1, 1, samples) * 0.1)
    assert codes.shape == (8, 1, math.ceil(samples / 320))
    assert codes.dtype == torch.int64
    audio = tiny_model.decode(codes)
    assert audio.shape == (1, 1, codes.shape[-1] * 320)


def test_codes_use_many_entries_once_codebooks_are_fitted(tiny_model):
    codes = tiny_model.encode(torch.from_numpy(speech_like(3.0, seed=7))[None, None])
    for level in codes[:, 0]:
        assert level.unique().numel() > 10


def test_fewer_levels_are_a_prefix(tiny_model):
    wav = torch.randn(1, 1, 8000) * 0.1
    assert torch.equal(tiny_model.encode(wav, n_q=3), tiny_model.encode(wav)[:3])
    assert tiny_model.decode(tiny_model.encode(wav, n_q=2)).shape == (1, 1, 8000)


def test_folding_weight_norm_keeps_outputs_identical(tiny_model):
    # A fresh model, not a deepcopy: copies of a parametrised module share its generated class.
    folded = DMCodec(tiny_model.config).eval()
    folded.load_state_dict(tiny_model.state_dict())
    assert fold_weight_norm(folded) > 10
    wav = torch.randn(1, 1, 5000) * 0.1
    assert torch.equal(folded.encode(wav), tiny_model.encode(wav))
    codes = tiny_model.encode(wav)
    assert torch.equal(folded.decode(codes), tiny_model.decode(codes))


@pytest.mark.parametrize("codes, message", [
    (torch.zeros(8, 3, dtype=torch.long), "shape"),
    (torch.zeros(9, 1, 3, dtype=torch.long), "levels"),
    (torch.full((8, 1, 3), 64), "0..63"),
    (torch.full((8, 1, 3), -1), "0..63"),
    (torch.zeros(8, 1, 3), "integers"),
    (torch.zeros(8, 1, 0, dtype=torch.long), "no frames"),
])
def test_decode_rejects_bad_codes(tiny_model, codes, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.decode(codes)


def test_encode_rejects_bad_audio(tiny_model):
    with pytest.raises(ValueError, match="shape"):
        tiny_model.encode(torch.zeros(1, 100))
    with pytest.raises(ValueError, match="empty"):
        tiny_model.encode(torch.zeros(1, 1, 0))


def test_training_pass_gives_gradients_and_losses():
    torch.manual_seed(0)
    model = DMCodec(preset("tiny")).train()
    out = model(torch.randn(2, 1, 3200) * 0.1)
    assert out.audio.shape == (2, 1, 3200) and out.codes.shape == (8, 2, 10)
    assert len(out.levels) == 8 and model.quantizer.initialized
    (out.audio.abs().mean() + out.commit_loss).backward()
    assert model.encoder.model[0].conv.conv.parametrizations.weight.original1.grad is not None


def test_config_roundtrip_keeps_unknown_keys(tmp_path):
    config = CodecConfig.from_dict({"n_filters": 32, "lambda_distill": 0.15, "sampling_rate": 16000})
    path = tmp_path / "config.json"
    config.to_json(path)
    again = CodecConfig.from_json(path)
    assert again == config and again.extra["lambda_distill"] == 0.15
    with pytest.raises(ValueError, match="n_filters"):
        CodecConfig(n_filters=0)


def test_he_init_keeps_the_signal_through_the_encoder_and_the_output_quiet():
    speech = torch.from_numpy(np.stack([speech_like(1.0, 16000, seed=s) for s in range(4)]))[:, None]
    torch.manual_seed(0)
    default, he_init = DMCodec(preset("small")), init_weights(DMCodec(preset("small")))
    with torch.no_grad():
        for codec, expect_signal in ((default, False), (he_init, True)):
            latent = codec.encoder(speech)
            variation, offset = float(latent.std(-1).mean()), float(latent.mean(-1).abs().mean())
            assert (variation > offset) == expect_signal, (variation, offset)
        ratio = float(he_init.decoder(he_init.encoder(speech)).std() / speech.std())
    assert 0.1 < ratio < 10
