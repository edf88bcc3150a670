"""dmcodec: the DM-Codec speech codec (SpeechTokenizer architecture).

Public entry points:
- `CodecConfig`, `preset`: model sizes (`config.json` key names).
- `DMCodec`: the model; `encode(wav[B,1,T]) -> codes[n_q,B,F]`, `decode(codes) -> wav`.
- `load_checkpoint`, `save_checkpoint`, `save_release_checkpoint`: our safetensors format and
  the release's `.pt` state dicts.
- `Tokenizer.from_pretrained`: files or arrays at any rate -> `EncodedAudio` (codes with
  `TokenMetadata`), batch-invariant and windowed for long audio (`WindowPolicy`); and back.
- `Vocabulary`, `encode_layout`, `decode_layout`: the codes as a language model's ids (`flat`,
  `delay`, `first`) over one vocabulary, and back (`LayoutError` names a malformed position).
- `dmcodec.client`: HTTP clients for the service; `dmcodec.bulk`: corpora to Parquet shards.
"""

from .checkpoint import CheckpointError, LoadedCodec, load_checkpoint, save_checkpoint, save_release_checkpoint
from .config import CodecConfig, preset
from .layouts import LAYOUTS, LayoutError, decode_layout, encode_layout
from .model import DMCodec
from .tokenizer import Tokenizer
from .tokens import EncodedAudio, TokenMetadata
from .vocabulary import Vocabulary
from .windows import WindowPolicy

__version__ = "0.1.0"

__all__ = [
    "LAYOUTS",
    "CheckpointError",
    "CodecConfig",
    "DMCodec",
    "EncodedAudio",
    "LayoutError",
    "LoadedCodec",
    "TokenMetadata",
    "Tokenizer",
    "Vocabulary",
    "WindowPolicy",
    "decode_layout",
    "encode_layout",
    "load_checkpoint",
    "preset",
    "save_checkpoint",
    "save_release_checkpoint",
]
