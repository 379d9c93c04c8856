"""The block engine's plan of a copy (issue 19, its pure part): how a blob is cut into
blocks, the block ids, and which blocks are staged. Pure: no I/O, no clock.

Sizes, from Azure's documented limits (service version 2020-04-08 and later):

* **Put Blob From URL** takes a whole blob of up to 5,000 MiB in one request, and **Put
  Block From URL** a block of up to 4,000 MiB; a block blob holds at most 50,000 committed
  blocks (about 190.7 TiB at 4,000 MiB each).
* A blob is copied in **one request** (Put Blob From URL) when it is no larger than one
  block: such a request costs what one block costs, and there is nothing to resume. A
  larger one is cut into blocks, staged by Put Block From URL and committed by Put Block
  List, so that a failure retries one block, not the blob, and the progress is exact.
* A block is **8 MiB** (`BLOCK_SIZE`), or more when the blob would need more than 50,000 of
  them (the size divided by 50,000, rounded up to a whole MiB). 8 MiB costs 128 requests a
  GiB (plus one commit): at Azure's prices a few thousandths of a cent per GiB, and well
  inside one blob's ~500 requests a second with 32 in flight; a failed block re-reads 8
  MiB, under a second at the server-side rates Azure reaches between accounts. Larger
  blocks save requests nobody pays much for and make each retry and each staging batch
  longer; smaller ones multiply requests for no gain. (AzCopy's service-to-service copies
  default to the same size.)

A block's id is derived from the operation and the block's index, the same length for
every block of the blob (Azure requires it) and under 64 bytes before its base64: a
redelivered staging message stages the same blocks under the same ids, harmlessly, and
another operation's uncommitted blocks on the same destination are never ours.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

MIB = 1024 * 1024
BLOCK_SIZE = 8 * MIB
MOST_BLOCKS = 50_000
BLOCK_LIMIT = 4000 * MIB
# Azure's largest block blob: 50,000 blocks of 4,000 MiB.
LARGEST_BLOB = MOST_BLOCKS * BLOCK_LIMIT
# Block indexes are written with this many digits: every id of a blob is as long as the others.
INDEX_DIGITS = 5


@dataclass(frozen=True)
class Block:
    index: int
    offset: int
    length: int
    id: str

    @property
    def range_end(self) -> int:
        """The last byte's offset (HTTP ranges are inclusive)."""
        return self.offset + self.length - 1


def block_size_for(size: int) -> int:
    """The block size for a blob of ``size`` bytes (see the module's notes)."""
    if size < 0 or size > LARGEST_BLOB:
        raise ValueError(f"a block blob holds 0 to {LARGEST_BLOB} bytes, not {size}")
    needed = -(-size // MOST_BLOCKS)  # the smallest block that keeps within 50,000 blocks
    return BLOCK_SIZE if needed <= BLOCK_SIZE else -(-needed // MIB) * MIB


def single_request(size: int) -> bool:
    """Copied whole by one Put Blob From URL (no larger than one block)?"""
    return size <= block_size_for(size)


def block_id(operation_id: str, index: int) -> str:
    """The id of block ``index`` of ``operation_id``'s copy: base64, the same length for every
    index of a blob, 32 bytes before encoding."""
    return _id(_id_prefix(operation_id), _within_plan(index))


def plan(operation_id: str, size: int) -> tuple[Block, ...]:
    """The blocks of a blob of ``size`` bytes, in order, covering it exactly once."""
    step, prefix = block_size_for(size), _id_prefix(operation_id)
    return tuple(
        Block(index, offset, min(step, size - offset), _id(prefix, index))
        for index, offset in enumerate(range(0, size, step))
    )


def _id_prefix(operation_id: str) -> str:
    return f"copyops-{hashlib.sha256(operation_id.encode()).hexdigest()[:16]}-"


def _id(prefix: str, index: int) -> str:
    return base64.b64encode(f"{prefix}{index:0{INDEX_DIGITS}d}".encode()).decode()


@dataclass(frozen=True)
class Staged:
    """Which blocks of a plan are staged: a set of indexes, kept as ranges so that a record
    stays small however many blocks a copy has (``0-99,120-140``)."""

    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, indexes: set[int] | frozenset[int]) -> Staged:
        runs: list[tuple[int, int]] = []
        for index in sorted(indexes):
            if runs and runs[-1][1] == index - 1:
                runs[-1] = (runs[-1][0], index)
            else:
                runs.append((index, index))
        return cls(tuple(runs))

    @classmethod
    def parse(cls, text: str) -> Staged:
        """The record's text form back; ValueError for anything else. Read as ranges: the
        work follows the text's length, never how many blocks its ranges span (a message
        naming ``0-49999`` a thousand times costs what its bytes cost)."""
        ranges: list[tuple[int, int]] = []
        for part in filter(None, text.split(",")):
            first, _, last = part.partition("-")
            low, high = _index(first), _index(last or first)
            if low > high:
                raise ValueError(f"not a range of block indexes: {part!r}")
            ranges.append((low, high))
        merged: list[tuple[int, int]] = []
        for low, high in sorted(ranges):
            if merged and low <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], high))
            else:
                merged.append((low, high))
        return cls(tuple(merged))

    def text(self) -> str:
        return ",".join(f"{low}" if low == high else f"{low}-{high}" for low, high in self.ranges)

    def indexes(self) -> frozenset[int]:
        return frozenset(index for low, high in self.ranges for index in range(low, high + 1))

    def with_(self, more: set[int] | frozenset[int]) -> Staged:
        return Staged.of(self.indexes() | more)

    def count(self) -> int:
        return sum(high - low + 1 for low, high in self.ranges)

    def missing(self, blocks: tuple[Block, ...]) -> tuple[Block, ...]:
        """The blocks of the plan still to stage, in order."""
        done = self.indexes()
        return tuple(block for block in blocks if block.index not in done)

    def bytes_staged(self, blocks: tuple[Block, ...]) -> int:
        done = self.indexes()
        return sum(block.length for block in blocks if block.index in done)


def _index(text: str) -> int:
    """A block index in its text form (at most five ASCII digits, below MOST_BLOCKS)."""
    if not (0 < len(text) <= INDEX_DIGITS and text.isascii() and text.isdigit()):
        raise ValueError(f"not a block index: {text[:20]!r}")
    return _within_plan(int(text))


def _within_plan(index: int) -> int:
    """``index``, when a plan can have it (below MOST_BLOCKS); else ValueError."""
    if not 0 <= index < MOST_BLOCKS:
        raise ValueError(f"a block index is 0 to {MOST_BLOCKS - 1}, not {index}")
    return index
