"""Compatibility with the reference implementation (PyPI `speechtokenizer`, as DM-Codec's release).

The same randomly initialised state dict goes into both; codebooks are first fitted by k-means
to encoder frames, so every level uses hundreds of codes and equality is not vacuous.
"""

import warnings

import numpy as np
import pytest
import torch

from dmcodec import CodecConfig, DMCodec, load_checkpoint, save_release_checkpoint
from dmcodec.signals import speech_like

pytestmark = pytest.mark.reference
reference = pytest.importorskip("dmcodec.reference")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    warnings.filterwarnings("ignore", category=FutureWarning)  # the reference uses legacy weight_norm
    torch.manual_seed(0)
    model = DMCodec(CodecConfig()).eval()
    speech = torch.from_numpy(np.stack([speech_like(10.0, seed=i) for i in range(6)]))[:, None]
    for level in model.quantizer.codebooks():
        level.kmeans_iters = 10  # spread codes are all this needs, not converged ones (50 cost 45 s)
    with torch.no_grad():
        model.quantizer.init_from_data(model.encoder(speech))  # 3000 frames for 1024 codes
    # Through the release file format, as a user with the official checkpoint would.
    pt = save_release_checkpoint(model, tmp_path_factory.mktemp("release") / "dmcodec.pt")
    ours = load_checkpoint(pt).model
    twin = reference.reference_twin(load_checkpoint(pt, for_inference=False).model)
    return ours, twin


@pytest.mark.parametrize("seconds, batch", [(3.0, 1), (1.234, 1), (2.0, 2)])
def test_identical_codes_on_every_level_and_decoded_audio(pair, seconds, batch):
    ours, twin = pair
    wav = torch.from_numpy(np.stack([speech_like(seconds, seed=40 + i) for i in range(batch)]))[:, None]
    with torch.inference_mode():
        theirs = twin.encode(wav)
        mine = ours.encode(wav)
        assert mine.shape == theirs.shape == (8, batch, -(-wav.shape[-1] // 320))
        for level in range(8):
            assert torch.equal(mine[level], theirs[level]), f"level {level}"
            # Equal codes prove something only if they are not all alike. The deep levels of a
            # random-weight model crowd together: 50 distinct codes in 200 frames at level 8 on one
            # CPU, more on another; a collapsed quantizer would give a handful.
            assert mine[level].unique().numel() > mine.shape[-1] * batch // 8, f"level {level} codes are not spread"
        audio_ref = twin.decode(theirs)
        audio = ours.decode(mine)
    assert audio.shape == audio_ref.shape
    assert (audio - audio_ref).abs().max().item() < 1e-4
