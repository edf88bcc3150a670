"""Token layouts: the codes grid [n_q, frames] as a language model's data pipeline wants it, and back.

- `codes`: the grid itself, [n_q, frames], each code in 0..codebook_size-1.
- `flat`: one sequence, frame-major (frame 0's levels, then frame 1's, ...), each code as its
  vocabulary id (level offset + code): [bos, ids (frames * n_q), eos].
- `delay`: the delay pattern (MusicGen): level k (0-based) shifted k steps right, the corners
  filled with the pad id, [n_q, frames + n_q - 1] vocabulary ids.
- `first`: RVQ-1 alone, the semantic level a first-stage model predicts: [bos, ids (frames), eos].

The two sequence layouts (`flat`, `first`) carry begin/end-of-audio ids by default, so that
clips concatenated into one training stream keep their boundaries; `bos_eos=False` gives the
bare ids. The grids (`codes`, `delay`) have no place for them. Decoding accepts a sequence with
or without them, followed by any number of pads (a batch's right padding).

`decode_layout` is the exact inverse of `encode_layout`, and refuses anything else with a
`LayoutError` that names the first wrong position.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .vocabulary import Vocabulary

LAYOUTS = ("codes", "flat", "delay", "first")
SEQUENCE_LAYOUTS = ("flat", "first")  # 1-D ids; the others are 2-D grids
# What `_kinds` writes where an id is not a code id (code ids get their level, 0-based).
PAD, BOS, EOS, FOREIGN = -1, -2, -3, -4


class LayoutError(ValueError):
    """Ids that no codes encode to in this layout. `index` is the position in the ids as given (a
    (row, column) pair in a grid); `frame` (0-based) and `level` (1-based, as RVQ-1) say which
    code it should have been, where that is known."""

    def __init__(self, message: str, index: Optional[int | tuple[int, int]] = None, frame: Optional[int] = None,
                 level: Optional[int] = None):
        super().__init__(message)
        self.index, self.frame, self.level = index, frame, level


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return layout


def layout_levels(layout: str, n_q: Optional[int]) -> Optional[int]:
    """The levels to encode for `layout` when `n_q` were asked (None: all): `first` needs one."""
    if check_layout(layout) != "first":
        return n_q
    if n_q not in (None, 1):
        raise ValueError(f"layout 'first' keeps RVQ-1 alone; n_q must be 1 or unset, got {n_q}")
    return 1


# -- codes -> ids ---------------------------------------------------------------------------------
def encode_layout(codes: np.ndarray, layout: str, vocabulary: Vocabulary, *, bos_eos: bool = True) -> np.ndarray:
    """Codes [n_q, frames] -> int64 ids in `layout` (shapes in the module docstring).

    Args:
        codes: [n_q, frames] integers in 0..codebook_size-1, n_q at most the vocabulary's.
        layout: one of LAYOUTS; `first` uses the first level alone.
        vocabulary: the model's (`Vocabulary.from_config`).
        bos_eos: whether the sequence layouts begin with bos and end with eos.
    """
    codes = _checked_codes(np.asarray(codes), vocabulary)
    if check_layout(layout) == "codes":
        return codes
    n_q, frames = codes.shape
    ids = codes + np.asarray(vocabulary.level_offsets[:n_q], dtype=np.int64)[:, None]
    if layout == "delay":
        delayed = np.full((n_q, frames + n_q - 1), vocabulary.pad_token_id, dtype=np.int64)
        for level in range(n_q):
            delayed[level, level : level + frames] = ids[level]
        return delayed
    sequence = ids.T.reshape(-1) if layout == "flat" else ids[0]  # [frames, n_q] row-major: frame-major
    if not bos_eos:
        return sequence
    return np.concatenate([[vocabulary.bos_token_id], sequence, [vocabulary.eos_token_id]]).astype(np.int64)


def _checked_codes(codes: np.ndarray, vocabulary: Vocabulary) -> np.ndarray:
    if codes.ndim != 2 or codes.shape[1] < 1 or not 1 <= codes.shape[0] <= vocabulary.n_q:
        raise LayoutError(f"expected codes [n_q <= {vocabulary.n_q}, frames >= 1], got shape {codes.shape}")
    if codes.dtype.kind not in "iu":
        raise LayoutError(f"codes must be integers, got {codes.dtype}")
    codes = codes.astype(np.int64)
    wrong = np.argwhere((codes < 0) | (codes >= vocabulary.codebook_size))
    if wrong.size:
        level, frame = (int(v) for v in wrong[0])
        raise LayoutError(f"codes[{level}][{frame}] (frame {frame}, level {level + 1}) is {codes[level, frame]}, "
                          f"outside 0..{vocabulary.codebook_size - 1}", (level, frame), frame, level + 1)
    return codes


# -- ids -> codes ---------------------------------------------------------------------------------
def decode_layout(ids: np.ndarray, layout: str, vocabulary: Vocabulary, *, n_q: Optional[int] = None) -> np.ndarray:
    """Ids in `layout` -> codes [n_q, frames] int64: the exact inverse of `encode_layout`.

    Args:
        ids: as `encode_layout` writes them (a sequence with or without bos/eos, then any pads).
        layout: one of LAYOUTS.
        vocabulary: the one the ids were written with.
        n_q: levels in `flat` ids (default: the run of levels that the first frame starts with);
            other layouts show it by their shape, and it is checked against them when given.
    Raises:
        LayoutError: naming the first position that no codes would have written.
    """
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu" or ids.ndim != (1 if check_layout(layout) in SEQUENCE_LAYOUTS else 2):
        shape = "a sequence" if layout in SEQUENCE_LAYOUTS else "a grid [n_q, columns]"
        raise LayoutError(f"{layout} ids must be integers in {shape}, got {ids.dtype} of shape {ids.shape}")
    if layout == "codes":
        codes = _checked_codes(ids, vocabulary)
    elif layout == "delay":
        codes = _undelay(ids.astype(np.int64), vocabulary)
    else:
        codes = _unflatten(ids.astype(np.int64), vocabulary, n_q if layout == "flat" else 1)
    if n_q is not None and codes.shape[0] != n_q:
        raise LayoutError(f"the {layout} ids hold {codes.shape[0]} levels, not n_q={n_q}")
    return codes


def _kinds(ids: np.ndarray, vocabulary: Vocabulary) -> np.ndarray:
    """Per id: its level (0-based) if a code id, else PAD, BOS, EOS or FOREIGN."""
    kinds = np.where((ids >= 0) & (ids < vocabulary.code_ids), ids // vocabulary.codebook_size, FOREIGN)
    for kind, special in ((PAD, vocabulary.pad_token_id), (BOS, vocabulary.bos_token_id),
                          (EOS, vocabulary.eos_token_id)):
        kinds[ids == special] = kind
    return kinds


def _name(kind: int, vocabulary: Vocabulary, value: Optional[int] = None) -> str:
    """'a level-2 id (1024..2047)', 'the pad id (8192)', 'id 9000 (outside 0..8194)'."""
    if kind >= 0:
        first = kind * vocabulary.codebook_size
        shown = f"{value}" if value is not None else f"{first}..{first + vocabulary.codebook_size - 1}"
        return f"a level-{kind + 1} id ({shown})"
    if kind == FOREIGN:
        return f"id {value} (outside the vocabulary 0..{vocabulary.size - 1})"
    name = {PAD: "pad", BOS: "bos", EOS: "eos"}[kind]
    return f"the {name} id ({value if value is not None else getattr(vocabulary, f'{name}_token_id')})"


# A position's description for messages, its index, frame and level (see LayoutError).
Place = tuple[str, "int | tuple[int, int]", Optional[int], Optional[int]]


def _first_wrong(ids: np.ndarray, kinds: np.ndarray, expected: np.ndarray, vocabulary: Vocabulary,
                 where: Callable[[int], Place]) -> None:
    """Raise for the first position (in row-major order) whose kind is not the expected one."""
    wrong = np.flatnonzero(kinds.reshape(-1) != expected.reshape(-1))
    if wrong.size:
        i = int(wrong[0])
        place, index, frame, level = where(i)
        got, want = int(kinds.reshape(-1)[i]), int(expected.reshape(-1)[i])
        raise LayoutError(f"{place}: expected {_name(want, vocabulary)}, got "
                          f"{_name(got, vocabulary, int(ids.reshape(-1)[i]))}", index, frame, level)


def _unflatten(ids: np.ndarray, vocabulary: Vocabulary, n_q: Optional[int]) -> np.ndarray:
    """[bos] frame-major ids [eos] pad* -> codes [n_q, frames]."""
    kinds = _kinds(ids, vocabulary)
    start, stop = 0, ids.size
    while stop > start and kinds[stop - 1] == PAD:  # right padding of a batch
        stop -= 1
    if stop > start and kinds[stop - 1] == EOS:
        stop -= 1
    if stop > start and kinds[start] == BOS:
        start += 1
    body, body_kinds = ids[start:stop], kinds[start:stop]
    if body.size == 0:
        raise LayoutError("the ids hold no codes (at least one frame is needed)")
    if n_q is None:  # the levels of a frame run 0, 1, 2, ...: the first frame shows how many there are
        n_q = 1
        while n_q < min(body.size, vocabulary.n_q) and body_kinds[n_q] == n_q:
            n_q += 1
    if not 1 <= n_q <= vocabulary.n_q:
        raise LayoutError(f"n_q must be in 1..{vocabulary.n_q}, got {n_q}")
    frames, partial = divmod(body.size, n_q)
    expected = np.tile(np.arange(n_q), frames + (partial > 0))[: body.size]

    def where(i: int) -> Place:
        frame, level = divmod(i, n_q)
        return f"index {start + i} (frame {frame}, level {level + 1})", start + i, frame, level + 1

    _first_wrong(body, body_kinds, expected, vocabulary, where)
    if partial:
        raise LayoutError(f"{body.size} code ids are not whole frames of n_q={n_q}: the frame from index "
                          f"{start + frames * n_q} ends after {partial} of its {n_q} levels",
                          start + frames * n_q, frames, partial + 1)
    offsets = np.asarray(vocabulary.level_offsets[:n_q], dtype=np.int64)
    return (body.reshape(frames, n_q) - offsets).T.copy()


def _undelay(ids: np.ndarray, vocabulary: Vocabulary) -> np.ndarray:
    """Delay-pattern ids [n_q, frames + n_q - 1] -> codes [n_q, frames]."""
    n_q, columns = ids.shape
    frames = columns - n_q + 1
    if not 1 <= n_q <= vocabulary.n_q or frames < 1:
        raise LayoutError(f"delay ids must be [n_q <= {vocabulary.n_q}, frames + n_q - 1] with frames >= 1, "
                          f"got shape {ids.shape}")
    level = np.arange(n_q)[:, None]
    frame = np.arange(columns)[None, :] - level  # the frame each column holds for each level
    expected = np.where((frame >= 0) & (frame < frames), level, PAD)

    def where(i: int) -> Place:
        row, column = divmod(i, columns)
        if expected[row, column] == PAD:
            return f"row {row}, column {column} (a corner of the delay pattern)", (row, column), None, row + 1
        at = int(frame[row, column])
        return f"row {row}, column {column} (frame {at}, level {row + 1})", (row, column), at, row + 1

    _first_wrong(ids, _kinds(ids, vocabulary), expected, vocabulary, where)
    offsets = np.asarray(vocabulary.level_offsets[:n_q], dtype=np.int64)[:, None]
    return np.stack([ids[k, k : k + frames] for k in range(n_q)]) - offsets
