"""Tokens and their metadata: one schema, rendered the same way everywhere, and token files.

The flat field names below are the schema (see docs/tokens.md). They are the keys of `.npy`
side indexes, the Parquet and Ray columns of bulk jobs, and, as `X-DMCodec-<Name>` headers,
the metadata of `.npy` HTTP responses. The JSON form (HTTP encode responses, `.json` token
files) nests the `model_*` fields as a `model` object (`model.sha256` is `model_sha256`).

The tokens themselves are the codes grid or, in another layout (dmcodec.layouts), vocabulary
ids: `codes` or `input_ids` by name, and `layout` says which. Whatever reads tokens back turns
any layout into codes with `codes_from_tokens`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .layouts import check_layout, decode_layout, encode_layout
from .vocabulary import Vocabulary

# 2: the layout and vocabulary fields; the tokens may be `input_ids` (a layout other than codes).
SCHEMA_VERSION = 2
HEADER_PREFIX = "X-DMCodec-"


@dataclass(frozen=True)
class TokenMetadata:
    """Everything needed to decode or cite a clip's codes, except the codes."""

    n_q: int  # levels, coarse to fine
    frames: int  # frames per level: ceil(num_samples / hop_length)
    codebook_size: int
    frame_rate: float  # frames per second
    sample_rate: int  # the model's rate; num_samples counts at it
    num_samples: int  # length of the audio after conversion to the model's rate, mono
    model_name: str
    model_sha256: str  # sha256 of the weights file: tokens compare only between equal hashes
    backend: str
    precision: str
    layout: str = "codes"  # of the tokens these metadata come with (dmcodec.layouts)
    # The model's vocabulary (dmcodec.vocabulary), under the names a `transformers` config uses;
    # all 0 in schema-1 metadata, which had none.
    vocab_version: int = 0
    vocab_size: int = 0
    pad_token_id: int = 0
    bos_token_id: int = 0
    eos_token_id: int = 0
    schema_version: int = SCHEMA_VERSION

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate

    def vocabulary(self) -> Vocabulary | None:
        """The vocabulary the ids are written in; None for schema-1 metadata."""
        return recorded_vocabulary(self.flat())

    def flat(self) -> dict[str, Any]:
        """The schema's fields (and duration_s) as a flat dict of plain values."""
        return {**asdict(self), "duration_s": self.duration_s}

    def headers(self) -> dict[str, str]:
        """`X-DMCodec-Model-Sha256: ...` and so on, one header per flat field."""
        return {header_name(name): str(value) for name, value in self.flat().items()}

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> TokenMetadata:
        """The inverse of `flat()` (extra keys, duration_s among them, are ignored); values are
        converted to the schema's types, so header strings parse too."""
        kinds = {f.name: f.type for f in fields(cls)}
        converters = {"int": int, "float": float, "str": str}
        try:
            return cls(**{name: converters[str(kind)](values[name]) for name, kind in kinds.items()
                          if name in values})
        except (TypeError, ValueError) as err:
            raise ValueError(f"not token metadata: {err}") from None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> TokenMetadata:
        return cls.from_flat(header_fields(headers))


def header_fields(headers: Mapping[str, str]) -> dict[str, str]:
    """The schema's fields among `headers` (any case), by field name, as strings: what a `.npy`
    body's `X-DMCodec-*` headers record, complete or not (`codes_from_tokens` takes them)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    names = (f.name for f in fields(TokenMetadata))
    return {name: lowered[header_name(name).lower()] for name in names if header_name(name).lower() in lowered}


def metadata_headers(values: Mapping[str, Any]) -> dict[str, str]:
    """The `X-DMCodec-*` headers of whichever schema fields `values` (flat metadata) hold: what a
    `.npy` body is sent with, for `header_fields` to read back."""
    return {header_name(f.name): str(values[f.name]) for f in fields(TokenMetadata) if f.name in values}


def recorded_vocabulary(fields: Mapping[str, Any]) -> Vocabulary | None:
    """The vocabulary that flat token metadata (or a token JSON object) record, if any."""
    if not _int_field(fields, "vocab_version"):
        return None
    codebook_size = _int_field(fields, "codebook_size")
    if codebook_size is None:
        raise ValueError("the token metadata record a vocabulary but no codebook_size")
    return Vocabulary.from_token_fields(codebook_size, fields)


def _int_field(fields: Mapping[str, Any], name: str) -> int | None:
    """fields[name] as an int (from a number or a header's string), None if absent."""
    value = fields.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def tokens_in_layout(codes: np.ndarray, metadata: TokenMetadata) -> np.ndarray:
    """Codes [n_q, frames] in the layout that `metadata` name, with the vocabulary they record."""
    if metadata.layout == "codes":
        return codes
    vocabulary = metadata.vocabulary()
    if vocabulary is None:
        raise ValueError("the token metadata record no vocabulary: only the codes layout can be written")
    return encode_layout(codes, metadata.layout, vocabulary)


def payload_name(layout: str) -> str:
    """Where tokens go in JSON, `.npz` files and bulk rows: `codes` for the grid, else `input_ids`."""
    return "codes" if check_layout(layout) == "codes" else "input_ids"


def header_name(field_name: str) -> str:
    """n_q -> X-DMCodec-N-Q, model_sha256 -> X-DMCodec-Model-Sha256."""
    return HEADER_PREFIX + "-".join(part.capitalize() for part in field_name.split("_"))


@dataclass
class EncodedAudio:
    """Codes for one clip, with what identifies the model and how the clip was windowed.

    Args:
        codes: [n_q, frames] int64.
        metadata: the schema's fields.
        model: the JSON `model` object (name, sha256, backend, precision, device and, for a
            mode other than fp32 torch, its measured code_agreement).
        windowing: window_frames, context_frames, batch_size, intra_op_threads.
    """

    codes: np.ndarray
    metadata: TokenMetadata
    model: dict[str, Any]
    windowing: dict[str, Any]

    @property
    def n_q(self) -> int:
        return self.metadata.n_q

    @property
    def num_samples(self) -> int:
        return self.metadata.num_samples

    @property
    def sample_rate(self) -> int:
        return self.metadata.sample_rate

    @property
    def duration_s(self) -> float:
        return self.metadata.duration_s

    @property
    def layout(self) -> str:
        return self.metadata.layout

    def tokens(self) -> np.ndarray:
        """The codes in the metadata's layout: [n_q, frames] codes, or int64 vocabulary ids."""
        return tokens_in_layout(self.codes, self.metadata)

    def with_layout(self, layout: str) -> EncodedAudio:
        """The same clip, to be written in `layout` (`first` keeps RVQ-1 alone)."""
        codes = self.codes[:1] if check_layout(layout) == "first" else self.codes
        return replace(self, codes=codes, metadata=replace(self.metadata, layout=layout, n_q=int(codes.shape[0])))

    def to_json(self) -> dict[str, Any]:
        flat = self.metadata.flat()
        plain = {k: v for k, v in flat.items() if not k.startswith("model_")}
        return {payload_name(self.layout): self.tokens().tolist(), **plain, "model": self.model,
                "windowing": self.windowing}


def codes_to_uint16(codes: np.ndarray) -> np.ndarray:
    if codes.size and (codes.min() < 0 or codes.max() > np.iinfo(np.uint16).max):
        raise ValueError("codes do not fit in uint16")
    return codes.astype(np.uint16)


def stored_tokens(encoded: EncodedAudio) -> np.ndarray:
    """The tokens as files and `.npy` bodies hold them: codes as uint16, ids as int32 (a
    vocabulary may pass 65535)."""
    tokens = encoded.tokens()
    return codes_to_uint16(tokens) if encoded.layout == "codes" else tokens.astype(np.int32)


def codes_from_tokens(tokens: Any, recorded: Mapping[str, Any], *, layout: str | None = None,
                      vocabulary: Vocabulary | None = None) -> tuple[np.ndarray, int | None]:
    """Tokens in any layout -> (codes [n_q, frames] int64, num_samples or None).

    Args:
        tokens: the `codes` or `input_ids` as read (nested lists or an array).
        recorded: the metadata that came with them, flat (a token JSON object, `.npz` fields,
            `header_fields(headers)`), as values or strings; any of them may be missing.
        layout: the layout declared by the caller; default: the recorded one, else `codes`.
        vocabulary: the model's; used where none is recorded, and must equal a recorded one.
    Raises:
        ValueError (LayoutError for ids no codes encode to, naming the position).
    """
    declared, recorded_layout = layout, recorded.get("layout")
    if declared and recorded_layout and declared != recorded_layout:
        raise ValueError(f"the tokens say layout {recorded_layout!r}, not {declared!r}")
    chosen = check_layout(declared or recorded_layout or "codes")
    own = recorded_vocabulary(recorded)
    if own is not None and vocabulary is not None and own != vocabulary:
        raise ValueError(f"the tokens were written in the vocabulary of {own.n_q} x {own.codebook_size} codes; "
                         f"this model's has {vocabulary.n_q} x {vocabulary.codebook_size}")
    vocabulary = own or vocabulary
    array = np.asarray(tokens)
    if array.dtype.kind not in "iu":
        raise ValueError(f"tokens must be integers, got {array.dtype}")
    n_q = _int_field(recorded, "n_q")
    if vocabulary is not None:
        codes = decode_layout(array, chosen, vocabulary, n_q=n_q)
    elif chosen == "codes":  # schema-1 tokens read without a model: the model checks them when decoding
        codes = array.astype(np.int64)
    else:
        raise ValueError(f"{chosen} ids need the vocabulary they were written in: none is recorded or given")
    frames = _int_field(recorded, "frames")
    if frames is not None and codes.ndim == 2 and codes.shape[1] != frames:
        raise ValueError(f"the tokens hold {codes.shape[1]} frames; their metadata say {frames}")
    return codes, _int_field(recorded, "num_samples")


def save_tokens(path: str | Path, encoded: EncodedAudio) -> None:
    """By the suffix: `.npz`, the tokens (`stored_tokens`) with every metadata field as its own
    array; `.npy`, the tokens alone (the metadata go to a side index); anything else, JSON."""
    path = Path(path)
    if path.suffix == ".npz":
        arrays: dict[str, Any] = {name: np.asarray(value) for name, value in encoded.metadata.flat().items()}
        arrays[payload_name(encoded.layout)] = stored_tokens(encoded)
        np.savez(path, **arrays)
    elif path.suffix == ".npy":
        np.save(path, stored_tokens(encoded))
    else:
        path.write_text(json.dumps(encoded.to_json()))


def load_tokens(path: str | Path, layout: str | None = None,
                vocabulary: Vocabulary | None = None) -> tuple[np.ndarray, int | None]:
    """Read a token file in any layout -> (codes [n_q, frames] int64, num_samples or None for a
    bare `.npy`). `layout` and `vocabulary`: as for `codes_from_tokens` (a bare `.npy` of ids
    records neither)."""
    path = Path(path)
    recorded: dict[str, Any] = {}
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                recorded = {name: archive[name].item() for name in archive.files if archive[name].ndim == 0}
                tokens = archive[payload_name(recorded.get("layout") or layout or "codes")]
        elif path.suffix == ".npy":
            tokens = np.load(path, allow_pickle=False)
        else:
            recorded = json.loads(path.read_text())
            if not isinstance(recorded, dict):
                raise ValueError("expected a JSON object")
            name = payload_name(recorded.get("layout") or layout or "codes")
            if name not in recorded:
                raise ValueError(f"expected a JSON object with a '{name}' field (ids need their 'layout' too)")
            tokens = np.asarray(recorded[name])
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: not a readable token file ({err})") from err
    try:
        return codes_from_tokens(tokens, recorded, layout=layout, vocabulary=vocabulary)
    except ValueError as err:
        err.args = (f"{path}: {err}",)  # the class (a LayoutError keeps its position) stays
        raise


def made_by(path: str | Path) -> str | None:
    """The sha256 of the model that made a `.npz` or `.json` token file, when it says."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return str(archive["model_sha256"]) if "model_sha256" in archive else None
        if path.suffix == ".json":
            model = json.loads(path.read_text()).get("model") or {}
            return model.get("sha256") if isinstance(model, dict) else None
    except (OSError, ValueError, AttributeError):
        return None
    return None
