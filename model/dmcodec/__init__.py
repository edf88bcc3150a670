"""dmcodec: the DM-Codec speech codec (SpeechTokenizer architecture).

Public entry points:
- `CodecConfig`, `preset`: model sizes (`config.json` key names).
- `DMCodec`: the model; `encode(wav[B,1,T]) -> codes[n_q,B,F]`, `decode(codes) -> wav`.
- `load_checkpoint`, `save_checkpoint`, `save_release_checkpoint`: our safetensors format and
  the release's `.pt` state dicts.
- `Tokenizer`: files or arrays at any rate -> codes with metadata, batch-invariant and
  windowed for long audio; and back.
"""

from .checkpoint import CheckpointError, LoadedCodec, load_checkpoint, save_checkpoint, save_release_checkpoint
from .config import CodecConfig, preset
from .model import DMCodec
from .tokenizer import EncodedAudio, Tokenizer, WindowPolicy

__version__ = "0.1.0"

__all__ = [
    "CodecConfig", "preset", "DMCodec", "load_checkpoint", "save_checkpoint", "save_release_checkpoint",
    "CheckpointError", "LoadedCodec", "Tokenizer", "EncodedAudio", "WindowPolicy",
]
