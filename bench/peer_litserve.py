"""The peer that `bench/peer.py` measures against: the reference `speechtokenizer` model behind
LitServe with dynamic batching - what a user would build today in a few lines.

One 16 kHz audio upload (multipart field `file`) -> {"codes": [[...], ...]} (n_q x frames).
A batch is zero-padded to its longest clip (LitServe's usual collate), and each clip's codes are
cut back to its own frames.

    python bench/peer_litserve.py WEIGHTS.pt CONFIG.json --port 8100
"""

from __future__ import annotations

import argparse
import io
import json
import math

import litserve as ls
import numpy as np
import soundfile as sf
import torch

from dmcodec.reference import import_reference_class


class SpeechTokenizerAPI(ls.LitAPI):
    def __init__(self, weights: str, config: str):
        super().__init__()
        self.weights, self.config = weights, config

    def setup(self, device):
        with open(self.config) as f:
            config = json.load(f)
        self.model = import_reference_class()(config)
        self.model.load_state_dict(torch.load(self.weights, map_location="cpu", weights_only=True))
        self.model.eval()
        self.hop = int(np.prod(config["strides"]))

    def decode_request(self, request):
        audio, _ = sf.read(io.BytesIO(request["file"].file.read()), dtype="float32", always_2d=True)
        return torch.from_numpy(audio.mean(axis=1))

    def batch(self, inputs):
        lengths = [x.numel() for x in inputs]
        wav = torch.zeros(len(inputs), 1, max(lengths))
        for row, x in enumerate(inputs):
            wav[row, 0, : x.numel()] = x
        return wav, lengths

    def predict(self, batch):
        wav, lengths = batch
        with torch.inference_mode():
            codes = self.model.encode(wav)  # [n_q, B, F]
        return [codes[:, row, : math.ceil(n / self.hop)] for row, n in enumerate(lengths)]

    def unbatch(self, output):
        return output

    def encode_response(self, codes):
        return {"codes": codes.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("weights")
    parser.add_argument("config")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-timeout", type=float, default=0.01)
    args = parser.parse_args()
    server = ls.LitServer(SpeechTokenizerAPI(args.weights, args.config), accelerator="cpu",
                          max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout, api_path="/encode")
    server.run(host="127.0.0.1", port=args.port, num_api_servers=1, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
