"""Token layouts and the vocabulary: every layout round-trips to the same codes, and ids that no
codes encode to are refused with their position."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import REPO

from dmcodec.config import preset
from dmcodec.layouts import LAYOUTS, LayoutError, decode_layout, encode_layout, layout_levels
from dmcodec.vocabulary import Vocabulary

VOCABULARIES = [Vocabulary(1024, 8), Vocabulary(64, 8), Vocabulary(5, 3), Vocabulary(3, 1), Vocabulary(1, 1)]
SHAPES = [(1, 1), (1, 7), (2, 1), (3, 2), (3, 50), (8, 1), (8, 13)]


def random_codes(vocabulary: Vocabulary, n_q: int, frames: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocabulary.codebook_size, (n_q, frames))


def cases():
    for vocabulary in VOCABULARIES:
        for n_q, frames in SHAPES:
            if n_q <= vocabulary.n_q:
                for seed in range(3):
                    yield pytest.param(vocabulary, n_q, frames, seed,
                                       id=f"{vocabulary.n_q}x{vocabulary.codebook_size}-{n_q}x{frames}-{seed}")


@pytest.mark.parametrize("vocabulary, n_q, frames, seed", list(cases()))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_round_trips_to_the_same_codes(layout, vocabulary, n_q, frames, seed):
    codes = random_codes(vocabulary, n_q, frames, seed)
    expected = codes[:1] if layout == "first" else codes
    ids = encode_layout(codes, layout, vocabulary)
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < vocabulary.size
    assert np.array_equal(decode_layout(ids, layout, vocabulary), expected)
    assert np.array_equal(decode_layout(ids, layout, vocabulary, n_q=expected.shape[0]), expected)
    if layout in ("flat", "first"):
        bare = encode_layout(codes, layout, vocabulary, bos_eos=False)
        assert np.array_equal(ids[1:-1], bare) and ids[0] == vocabulary.bos_token_id
        assert ids[-1] == vocabulary.eos_token_id
        padded = np.concatenate([ids, [vocabulary.pad_token_id] * 3])  # a batch's right padding
        for accepted in (bare, padded, ids[:-1], ids[1:]):
            assert np.array_equal(decode_layout(accepted, layout, vocabulary), expected)


@pytest.mark.parametrize("vocabulary", VOCABULARIES)
def test_the_layouts_have_their_documented_shapes_and_ids(vocabulary):
    n_q, frames = min(3, vocabulary.n_q), 4
    codes = random_codes(vocabulary, n_q, frames, seed=1)
    offsets = np.array(vocabulary.level_offsets[:n_q])[:, None]
    flat = encode_layout(codes, "flat", vocabulary, bos_eos=False)
    assert flat.shape == (frames * n_q,)
    assert np.array_equal(flat.reshape(frames, n_q), (codes + offsets).T)  # frame-major
    delay = encode_layout(codes, "delay", vocabulary)
    assert delay.shape == (n_q, frames + n_q - 1)
    for level in range(n_q):
        row = delay[level]
        assert (row[:level] == vocabulary.pad_token_id).all()
        assert np.array_equal(row[level : level + frames], codes[level] + level * vocabulary.codebook_size)
        assert (row[level + frames :] == vocabulary.pad_token_id).all()
    first = encode_layout(codes, "first", vocabulary, bos_eos=False)
    assert np.array_equal(first, codes[0])


@pytest.mark.parametrize("vocabulary", VOCABULARIES)
def test_no_special_id_is_a_code_id(vocabulary):
    code_ids = {offset + code for offset in vocabulary.level_offsets for code in range(vocabulary.codebook_size)}
    specials = [vocabulary.pad_token_id, vocabulary.bos_token_id, vocabulary.eos_token_id]
    assert len(code_ids) == vocabulary.code_ids and not code_ids & set(specials)
    assert len(set(specials)) == 3 and max(code_ids | set(specials)) == vocabulary.size - 1


def test_the_vocabulary_follows_the_model_config_and_round_trips():
    vocabulary = Vocabulary.from_config(preset("paper"))
    assert vocabulary.to_dict() == {
        "codebook_size": 1024, "n_q": 8, "level_offsets": [0, 1024, 2048, 3072, 4096, 5120, 6144, 7168],
        "vocab_version": 1, "vocab_size": 8195, "pad_token_id": 8192, "bos_token_id": 8193, "eos_token_id": 8194}
    assert Vocabulary.from_dict(vocabulary.to_dict()) == vocabulary
    as_headers = {name: str(value) for name, value in vocabulary.token_fields().items()}
    assert Vocabulary.from_token_fields(1024, as_headers) == vocabulary
    with pytest.raises(ValueError, match="disagree"):
        Vocabulary.from_dict({**vocabulary.to_dict(), "pad_token_id": 0})
    with pytest.raises(ValueError, match="version 2"):
        Vocabulary.from_dict({**vocabulary.to_dict(), "vocab_version": 2})


V = Vocabulary(4, 3)  # codes 0..3; level offsets 0, 4, 8; pad 12, bos 13, eos 14
CODES = np.array([[0, 1], [2, 3], [1, 0]])  # flat: [13, 0, 6, 9, 1, 7, 8, 14]


@pytest.mark.parametrize("layout, ids, message, index, frame, level", [
    ("flat", [13, 0, 6, 9, 1, 12, 8, 14], r"index 5 \(frame 1, level 2\): expected a level-2 id \(4..7\), got the "
     r"pad id", 5, 1, 2),
    ("flat", [13, 0, 6, 9, 1, 7, 0, 14], r"index 6 \(frame 1, level 3\).*got a level-1 id \(0\)", 6, 1, 3),
    ("flat", [13, 0, 6, 9, 1, 7, 14], r"the frame from index 4 ends after 2 of its 3 levels", 4, 1, 3),
    ("flat", [13, 0, 6, 13, 1, 7, 8, 14], r"index 3 \(frame 1, level 1\).*got the bos id", 3, 1, 1),
    ("flat", [13, 0, 6, 99, 1, 7, 8, 14], r"index 3 .*got id 99 \(outside the vocabulary 0..14\)", 3, 1, 1),
    ("delay", [[0, 1, 12, 12], [12, 6, 7, 12], [12, 12, 9, 8]], None, None, None, None),
    ("delay", [[0, 1, 12, 3], [12, 6, 7, 12], [12, 12, 9, 8]],
     r"row 0, column 3 \(a corner of the delay pattern\): expected the pad id \(12\), got a level-1 id", (0, 3),
     None, 1),
    ("delay", [[0, 12], [12, 6], [12, 12]], r"frames \+ n_q - 1", None, None, None),
    ("delay", [[0, 1, 12, 12], [12, 2, 7, 12], [12, 12, 9, 8]],
     r"row 1, column 1 \(frame 0, level 2\): expected a level-2 id \(4..7\), got a level-1 id \(2\)", (1, 1), 0, 2),
    ("first", [13, 0, 5, 14], r"index 2 \(frame 1, level 1\).*got a level-2 id", 2, 1, 1),
    ("codes", [[0, 1], [2, 4]], r"codes\[1\]\[1\] \(frame 1, level 2\) is 4, outside 0..3", (1, 1), 1, 2),
    ("flat", [13, 14], "no codes", None, None, None),
])
def test_malformed_ids_are_refused_with_their_position(layout, ids, message, index, frame, level):
    if message is None:  # the valid grid the next cases spoil
        assert np.array_equal(decode_layout(np.array(ids), layout, V), CODES)
        return
    with pytest.raises(LayoutError, match=message) as caught:
        decode_layout(np.array(ids), layout, V)
    assert (caught.value.index, caught.value.frame, caught.value.level) == (index, frame, level)


def test_flat_levels_come_from_the_first_frame_or_are_checked_against_n_q():
    ids = encode_layout(CODES, "flat", V)
    assert np.array_equal(decode_layout(ids, "flat", V, n_q=3), CODES)
    with pytest.raises(LayoutError, match="index 2 \\(frame 1, level 1\\)"):
        decode_layout(ids, "flat", V, n_q=1)
    two = encode_layout(CODES[:2], "flat", V)
    assert np.array_equal(decode_layout(two, "flat", V), CODES[:2])
    with pytest.raises(LayoutError, match="hold 3 levels, not n_q=2"):
        decode_layout(encode_layout(CODES, "delay", V), "delay", V, n_q=2)


def test_codes_that_do_not_fit_the_vocabulary_are_refused():
    with pytest.raises(LayoutError, match="n_q <= 3"):
        encode_layout(np.zeros((4, 2), dtype=np.int64), "flat", V)
    with pytest.raises(LayoutError, match=r"outside 0\.\.3"):
        encode_layout(np.array([[0, 4]]), "delay", V)
    with pytest.raises(ValueError, match="unknown layout"):
        encode_layout(CODES, "interleaved", V)
    assert layout_levels("first", None) == 1 and layout_levels("flat", 2) == 2
    with pytest.raises(ValueError, match="RVQ-1 alone"):
        layout_levels("first", 3)


def test_the_worked_example_in_tokens_md_is_what_the_layouts_write():
    text = (REPO / "docs" / "tokens.md").read_text()
    block = text[text.index("```text\n") + len("```text\n") :]
    rows = dict(line.split(maxsplit=1) for line in block[: block.index("```")].splitlines())
    assert set(rows) == set(LAYOUTS)
    codes = np.array(json.loads(rows["codes"]))
    for layout in LAYOUTS:
        assert encode_layout(codes, layout, Vocabulary(1024, 8)).tolist() == json.loads(rows[layout]), layout
