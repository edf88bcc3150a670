"""The one vocabulary of token ids that the sequence layouts write (see docs/tokens.md).

A code c of level k (0-based) is the id `k * codebook_size + c`, so the levels never share an
id and a language model can hold them in one embedding table. The special ids (pad, then the
begin and end of audio) come after the code ids of every level the model has, so none of them
is ever a code id, and the ids of a clip encoded with fewer levels (n_q=2 of 8) are the same as
the first two levels' of all eight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .config import CodecConfig

VOCABULARY_VERSION = 1  # bumped when the rule above changes (offsets, special ids or their order)
SPECIAL_TOKENS = ("pad", "bos", "eos")  # in the order of their ids, after the last code id


@dataclass(frozen=True)
class Vocabulary:
    """The ids of one model's codes and of the special tokens.

    Args:
        codebook_size: entries per codebook.
        n_q: levels of the model (ids are laid out for all of them, whatever a clip keeps).
        version: the rule the ids follow; only VOCABULARY_VERSION is known.
    """

    codebook_size: int
    n_q: int
    version: int = VOCABULARY_VERSION

    def __post_init__(self) -> None:
        if self.version != VOCABULARY_VERSION:
            raise ValueError(f"vocabulary version {self.version} is not known here (this library reads "
                             f"version {VOCABULARY_VERSION})")
        if self.codebook_size < 1 or self.n_q < 1:
            raise ValueError(f"a vocabulary needs codebook_size >= 1 and n_q >= 1, got {self.codebook_size}, "
                             f"{self.n_q}")

    @classmethod
    def from_config(cls, config: CodecConfig) -> Vocabulary:
        return cls(config.codebook_size, config.n_q)

    @property
    def level_offsets(self) -> tuple[int, ...]:
        """The id of code 0 of each level."""
        return tuple(level * self.codebook_size for level in range(self.n_q))

    @property
    def code_ids(self) -> int:
        """How many ids are codes: they are 0..code_ids-1."""
        return self.n_q * self.codebook_size

    @property
    def pad_token_id(self) -> int:
        return self.code_ids

    @property
    def bos_token_id(self) -> int:
        return self.code_ids + 1

    @property
    def eos_token_id(self) -> int:
        return self.code_ids + 2

    @property
    def size(self) -> int:
        """Every id is below this: a language model's `vocab_size`."""
        return self.code_ids + len(SPECIAL_TOKENS)

    def token_fields(self) -> dict[str, int]:
        """The token metadata's vocabulary fields (named as a `transformers` config names them)."""
        return {"vocab_version": self.version, "vocab_size": self.size, "pad_token_id": self.pad_token_id,
                "bos_token_id": self.bos_token_id, "eos_token_id": self.eos_token_id}

    def to_dict(self) -> dict[str, Any]:
        """Everything about the vocabulary, derived values included, as plain JSON values."""
        return {"codebook_size": self.codebook_size, "n_q": self.n_q, "level_offsets": list(self.level_offsets),
                **self.token_fields()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """The inverse of `to_dict`; the derived values it holds must agree with the rule."""
        try:
            vocabulary = cls(int(data["codebook_size"]), int(data["n_q"]), int(data.get("vocab_version", 1)))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a vocabulary: {err}") from None
        vocabulary._check_agrees(data, vocabulary.to_dict())
        return vocabulary

    @classmethod
    def from_token_fields(cls, codebook_size: int, fields: Mapping[str, Any]) -> Vocabulary:
        """The vocabulary that token metadata (`token_fields()` beside `codebook_size`) describe:
        the model's levels follow from vocab_size (the metadata's own n_q is the clip's)."""
        try:
            size, version = int(fields["vocab_size"]), int(fields["vocab_version"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"no vocabulary in the token metadata: {err}") from None
        if codebook_size < 1:
            raise ValueError(f"codebook_size must be positive, got {codebook_size}")
        levels, rest = divmod(size - len(SPECIAL_TOKENS), codebook_size)
        if rest:
            raise ValueError(f"vocab_size {size} is not n_q x {codebook_size} codes + {len(SPECIAL_TOKENS)} "
                             "special ids")
        vocabulary = cls(codebook_size, levels, version)
        vocabulary._check_agrees(fields, vocabulary.token_fields())  # (their n_q is the clip's, not ours)
        return vocabulary

    def _check_agrees(self, data: Mapping[str, Any], derived: Mapping[str, Any]) -> None:
        wrong = sorted(name for name in derived.keys() & data.keys() if data[name] != derived[name]
                       and not (isinstance(derived[name], int) and str(data[name]) == str(derived[name])))
        if wrong:
            raise ValueError(f"vocabulary fields {wrong} disagree with version {self.version} of the rule for "
                             f"codebook_size={self.codebook_size}, n_q={self.n_q}")
