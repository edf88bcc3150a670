"""The latent pitch probe: how much pitch a representation carries, in cents.

A small MLP (two hidden layers of 256, five 50 Hz frames of context) learns to read log-F0
from a representation on training clips and is scored on the evaluation clips: the median
absolute error, in cents, over the frames Praat finds voiced in the originals. Read from a
codec's quantized latent, it says whether the tokens keep the pitch, whatever the decoder makes
of them (v1: 196 cents); read from the original's 80-band log-mel at the same frame rate, it
gives the reference a representation of the audio can reach (59 cents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dmcodec.model import DMCodec
from dmcodec.tokenizer import Tokenizer

from ..mel import MelSpectrogram
from ..pitch import frame_pitch


@dataclass
class PitchProbe:
    """The probe's settings. Args:
        context: frames read around each frame (odd; 5 = two on each side).
        hidden: width of the two hidden layers.
        steps, batch_size, lr: the MLP's training (Adam on the L1 of standardised log-F0).
        seed: makes the whole probe deterministic (initialisation and batches).
    """

    context: int = 5
    hidden: int = 256
    steps: int = 1500
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0

    def cents(self, train: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
              test: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float:
        """Train on `train`, return the median absolute error on `test` in cents.

        Args:
            train, test: per clip (features [F, D], log_f0 [F], voiced [F]); only voiced frames
                are read (features and targets on the same frames).
        """
        x_train, y_train = self._frames(train)
        x_test, y_test = self._frames(test)
        if not len(y_train) or not len(y_test):
            return float("nan")
        mean, std = x_train.mean(0), x_train.std(0) + 1e-5
        y_mean, y_std = float(y_train.mean()), float(y_train.std()) + 1e-5
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
        targets = (y_train - y_mean) / y_std
        with torch.random.fork_rng():  # the caller's random stream stays as it was
            torch.manual_seed(self.seed)
            net = nn.Sequential(nn.Linear(x_train.shape[1], self.hidden), nn.ReLU(),
                                nn.Linear(self.hidden, self.hidden), nn.ReLU(), nn.Linear(self.hidden, 1))
            optimiser = torch.optim.Adam(net.parameters(), self.lr)
            batches = torch.Generator().manual_seed(self.seed)
            for _ in range(self.steps):
                pick = torch.randint(0, len(targets), (self.batch_size,), generator=batches)
                loss = F.l1_loss(net(x_train[pick])[:, 0], targets[pick])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            with torch.no_grad():
                predicted = net(x_test)[:, 0] * y_std + y_mean
        return float((predicted - y_test).abs().median()) * 1200.0 / math.log(2.0)

    def _frames(self, clips: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(context windows of the voiced frames [N, context * D], their log-F0 [N])."""
        half = self.context // 2
        xs, ys = [], []
        for features, log_f0, voiced in clips:
            n = min(len(features), len(log_f0))
            padded = np.pad(features[:n], ((half, half), (0, 0)), mode="edge")  # [n + 2 * half, D]
            windows = np.concatenate([padded[i:i + n] for i in range(self.context)], axis=1)  # [n, context * D]
            xs.append(windows[voiced[:n]])
            ys.append(log_f0[:n][voiced[:n]])
        return (torch.from_numpy(np.concatenate(xs).astype(np.float32)),
                torch.from_numpy(np.concatenate(ys).astype(np.float32)))


def pitch_targets(audio: np.ndarray, rate: int, hop_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(log_f0 [F], voiced [F]) of a clip on the codec's F = ceil(T / hop) frames."""
    return frame_pitch(audio, rate, hop_length, -(-len(audio) // hop_length))


@torch.no_grad()
def latent_features(model: DMCodec, codes: np.ndarray) -> np.ndarray:
    """The quantized latent the decoder reads (the sum of the levels coded): codes [n_q, F] -> [F, D]."""
    latent = model.quantizer.decode(torch.from_numpy(codes)[:, None].to(torch.int64))  # [1, D, F]
    return latent[0].T.float().numpy()


def latent_featurizer(tokenizer: Tokenizer, n_q: int | None = None) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """Clips -> their quantized latents [F, D], coded as the tokenizer codes them (first n_q levels)."""
    return lambda clips: [latent_features(tokenizer.codec.model, c) for c in tokenizer.encode_arrays(clips, n_q)]


@torch.no_grad()
def log_mel_features(audio: np.ndarray, rate: int, hop_length: int) -> np.ndarray:
    """The reference representation: 80-band log-mel at the codec's frame rate -> [F, 80]."""
    mel = MelSpectrogram(rate, 4 * hop_length, 80)  # its hop is a quarter of the FFT
    frames = -(-len(audio) // hop_length)
    return mel(torch.from_numpy(audio.astype(np.float32))[None])[0].T[:frames].numpy()


@dataclass
class ProbeClips:
    """The clips a probe trains on and the clips it scores, with their pitch targets (computed
    once per hop and shared by every representation scored).

    Args:
        train: training clips (a train split's), mono at `rate`.
        test: the evaluation clips, mono at `rate`.
        rate: their sample rate.
    """

    train: list[np.ndarray]
    test: list[np.ndarray]
    rate: int
    # hop -> (train targets, test targets), each (log_f0 [F], voiced [F]) per clip
    _targets: dict[int, tuple[list, list]] = field(default_factory=dict, init=False, repr=False)

    def score(self, probe: PitchProbe, hop_length: int,
              featurize: Callable[[list[np.ndarray]], list[np.ndarray]]) -> float:
        """The probe's median error in cents for a representation.

        Args:
            probe: the probe's settings.
            hop_length: the representation's hop (its frames are the codec's at this hop).
            featurize: clips -> features [F, D] per clip, on F = ceil(T / hop) frames.
        """
        if hop_length not in self._targets:
            self._targets[hop_length] = ([pitch_targets(a, self.rate, hop_length) for a in self.train],
                                         [pitch_targets(a, self.rate, hop_length) for a in self.test])
        train_targets, test_targets = self._targets[hop_length]
        return probe.cents([(f, *t) for f, t in zip(featurize(self.train), train_targets)],
                           [(f, *t) for f, t in zip(featurize(self.test), test_targets)])
