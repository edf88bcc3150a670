"""dmcodec: the DM-Codec speech codec (SpeechTokenizer architecture).

Public entry points:
- `CodecConfig`, `preset`: model sizes (`config.json` key names).
- `DMCodec`: the model; `encode(wav[B,1,T]) -> codes[n_q,B,F]`, `decode(codes) -> wav`.
- `load_checkpoint`, `save_checkpoint`, `save_release_checkpoint`: our safetensors format and
  the release's `.pt` state dicts.
- `Tokenizer.from_pretrained`: files or arrays at any rate -> `EncodedAudio` (codes with
  `TokenMetadata`), batch-invariant and windowed for long audio (`WindowPolicy`); and back.
- `dmcodec.client`: HTTP clients for the service; `dmcodec.bulk`: corpora to Parquet shards.
"""

from .checkpoint import CheckpointError, LoadedCodec, load_checkpoint, save_checkpoint, save_release_checkpoint
from .config import CodecConfig, preset
from .model import DMCodec
from .tokenizer import Tokenizer
from .tokens import EncodedAudio, TokenMetadata
from .windows import WindowPolicy

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CodecConfig",
    "DMCodec",
    "EncodedAudio",
    "LoadedCodec",
    "TokenMetadata",
    "Tokenizer",
    "WindowPolicy",
    "load_checkpoint",
    "preset",
    "save_checkpoint",
    "save_release_checkpoint",
]
