"""The block engine's plan (copy_ops.copies.blocks): pure, table-driven and property-based."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copy_ops.copies.blocks import (
    BLOCK_LIMIT,
    BLOCK_SIZE,
    LARGEST_BLOB,
    MIB,
    MOST_BLOCKS,
    Staged,
    block_id,
    block_size_for,
    plan,
    single_request,
)

SIZES = st.integers(0, LARGEST_BLOB)
OPERATION_IDS = st.text(min_size=1, max_size=80)


@pytest.mark.parametrize(
    ("size", "block", "single"),
    [
        (0, BLOCK_SIZE, True),
        (1, BLOCK_SIZE, True),
        (BLOCK_SIZE, BLOCK_SIZE, True),
        (BLOCK_SIZE + 1, BLOCK_SIZE, False),
        (MOST_BLOCKS * BLOCK_SIZE, BLOCK_SIZE, False),  # 390 GiB: exactly 50,000 blocks of 8 MiB
        (MOST_BLOCKS * BLOCK_SIZE + 1, 9 * MIB, False),
        (1024**4, 21 * MIB, False),  # 1 TiB
        (LARGEST_BLOB, BLOCK_LIMIT, False),
    ],
)
def test_the_block_size_grows_only_to_stay_within_50000_blocks(size: int, block: int, single: bool) -> None:
    assert block_size_for(size) == block
    assert single_request(size) is single


@pytest.mark.parametrize("size", [-1, LARGEST_BLOB + 1])
def test_no_plan_for_a_size_a_block_blob_cannot_have(size: int) -> None:
    with pytest.raises(ValueError, match="block blob holds"):
        block_size_for(size)


@settings(deadline=None, max_examples=60)  # a plan may have 50,000 blocks
@given(OPERATION_IDS, st.integers(0, 64 * BLOCK_SIZE) | SIZES)
def test_a_plan_covers_the_blob_exactly_once_in_order_with_legal_blocks(operation_id: str, size: int) -> None:
    blocks = plan(operation_id, size)
    assert len(blocks) <= MOST_BLOCKS
    assert [block.index for block in blocks] == list(range(len(blocks)))
    offset = 0
    for block in blocks:
        assert block.offset == offset and 0 < block.length <= BLOCK_LIMIT
        assert block.range_end == offset + block.length - 1
        offset += block.length
    assert offset == size
    # Ids: one per block, all of one length (Azure's rule), at most 64 bytes before base64.
    ids = {block.id for block in blocks}
    assert len(ids) == len(blocks) and len({len(found) for found in ids}) <= 1
    assert all(len(base64.b64decode(found)) <= 64 for found in ids)


@given(OPERATION_IDS, OPERATION_IDS, st.integers(0, MOST_BLOCKS - 1))
def test_ids_are_derived_so_a_redelivery_stages_the_same_and_another_operation_never_does(
    first: str, second: str, index: int
) -> None:
    assert block_id(first, index) == block_id(first, index)
    if first != second:
        assert block_id(first, index) != block_id(second, index)


@pytest.mark.parametrize("index", [-1, MOST_BLOCKS])
def test_a_block_index_beyond_the_limit_has_no_id(index: int) -> None:
    with pytest.raises(ValueError, match="block index"):
        block_id("op", index)


@given(st.sets(st.integers(0, MOST_BLOCKS - 1), max_size=300), st.sets(st.integers(0, 200), max_size=50))
def test_staged_blocks_are_kept_as_ranges_and_read_back_whole(first: set[int], more: set[int]) -> None:
    staged = Staged.of(first)
    assert Staged.parse(staged.text()) == staged
    assert staged.indexes() == frozenset(first) and staged.count() == len(first)
    grown = staged.with_(more)
    assert grown.indexes() == frozenset(first | more)
    # Ranges never touch or overlap: the text is as short as it can be.
    assert all(low <= high for low, high in grown.ranges)
    assert all(earlier[1] + 1 < later[0] for earlier, later in zip(grown.ranges, grown.ranges[1:], strict=False))


def test_what_is_missing_and_how_many_bytes_are_staged() -> None:
    blocks = plan("op", 3 * BLOCK_SIZE + 5)
    staged = Staged.parse("0,2")
    assert [block.index for block in staged.missing(blocks)] == [1, 3]
    assert staged.bytes_staged(blocks) == 2 * BLOCK_SIZE
    assert staged.text() == "0,2" and Staged.parse("0-2").text() == "0-2"


@pytest.mark.parametrize("text", ["x", "3-1", "-1", f"0-{MOST_BLOCKS}", "1--2"])
def test_a_staged_text_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Staged.parse(text)
