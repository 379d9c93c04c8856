"""Messages on the work queue: what the sweep and the jobs hand to every instance.

Plain JSON text (host.json sets the queues' ``messageEncoding`` to ``none``), versioned,
each under Azure's 64 KiB. Decoding is strict: a message that is not one of these is
refused whole. Pure: no storage.

A job's enumeration messages (``page``, ``batch``, ``chunk``) and the block engine's
(``stage``) may carry the caller's SAS for its source: the one place it is kept, for as long as the work
needs it (docs/jobs.md and docs/engines.md).

Size: a little over 250 lines. Every kind's encoding and its strict decoding sit together,
so that no kind can be added to one side only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from copy_ops.copies.block_lifecycle import STAGE_BATCH
from copy_ops.copies.blocks import Staged
from copy_ops.copies.model import BlobRef, ForeignBlob, ManifestEntry
from copy_ops.core.errors import FieldError, InvalidRequest

VERSION = 1
# Azure refuses a message over 64 KiB; every message stays below this.
MESSAGE_LIMIT_BYTES = 60 * 1024
# Ids per settle or abort batch: a batch is one invocation's work on one instance, a few seconds.
SETTLE_BATCH = 200
# Manifest entries per chunk (fewer when their URLs are long: each message fits the limit).
CHUNK = 200
# Listed blobs per batch of a prefix job's page (fewer when their names are long): a batch is
# one invocation's work on any instance, about a second or two of item starts.
BATCH = 200

T = TypeVar("T")


@dataclass(frozen=True)
class Settle:
    """Settle these operations (the sweep's fan-out): as the sweep would, each only if due."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class Abort:
    """Abort these items of job ``job`` on request (its abort, fanned out). Without ``job``
    (sent by the version before): refused, its items aborted by the job's next check."""

    ids: tuple[str, ...]
    job: str | None = None


@dataclass(frozen=True)
class Page:
    """List page ``page`` of a prefix job from its checkpoint, and start its items."""

    job: str
    page: int
    sas: str | None = None


@dataclass(frozen=True)
class Batch:
    """Start these listed blobs of page ``page`` of a prefix job (its ``index``-th batch):
    their names and sizes as the listing gave them, and the caller's SAS if it listed with one."""

    job: str
    page: int
    index: int
    names: tuple[str, ...]
    sizes: tuple[int, ...]
    sas: str | None = None
    # The page's handout it belongs to (its mark counts only if the checkpoint took that one).
    handout: str = ""


@dataclass(frozen=True)
class ReportPart:
    """Write part ``part`` of an ended job's report: its items whose id's hash begins with it."""

    job: str
    part: str


@dataclass(frozen=True)
class Chunk:
    """Start the items of chunk ``index`` of a manifest job."""

    job: str
    index: int
    entries: tuple[ManifestEntry, ...]


@dataclass(frozen=True)
class Check:
    """Check a job now: an abort was asked for, its enumeration ended, or ``item``
    ended and may have been its last (the index may not show that item's end yet)."""

    job: str
    item: str | None = None


@dataclass(frozen=True)
class Stage:
    """Stage these blocks of a block-engine copy (``blocks``: ranges of indexes, as
    ``0-63``), with the caller's SAS for its source when it came with one."""

    op: str
    blocks: str
    sas: str | None = None


Work = Settle | Abort | Page | Batch | Chunk | Check | Stage | ReportPart


def encode(work: Work) -> str:
    data: dict[str, Any]
    if isinstance(work, Settle):
        data = {"kind": "settle", "ids": list(work.ids)}
    elif isinstance(work, Abort):
        data = {"kind": "abort", "ids": list(work.ids), **({"job": work.job} if work.job is not None else {})}
    elif isinstance(work, Page):
        data = {"kind": "page", "job": work.job, "page": work.page, "sas": work.sas}
    elif isinstance(work, Chunk):
        entries = [{"source": _source_data(entry.source), "name": entry.name} for entry in work.entries]
        data = {"kind": "chunk", "job": work.job, "index": work.index, "entries": entries}
    elif isinstance(work, Batch):
        data = {
            "kind": "batch",
            "job": work.job,
            "page": work.page,
            "index": work.index,
            "names": list(work.names),
            "sizes": list(work.sizes),
            "sas": work.sas,
            "handout": work.handout,
        }
    elif isinstance(work, Stage):
        data = {"kind": "stage", "op": work.op, "blocks": work.blocks, "sas": work.sas}
    elif isinstance(work, ReportPart):
        data = {"kind": "report", "job": work.job, "part": work.part}
    else:
        data = {"kind": "check", "job": work.job, **({"item": work.item} if work.item is not None else {})}
    return json.dumps({"v": VERSION, **data}, separators=(",", ":"))


def decode(text: str) -> Work:
    """The message, or InvalidRequest. Bounded: its size is checked before it is parsed, and
    every list in it before its items are read, so no message costs more than its bytes."""
    if len(text) > MESSAGE_LIMIT_BYTES or len(text.encode()) > MESSAGE_LIMIT_BYTES:
        raise _invalid(f"is over {MESSAGE_LIMIT_BYTES} bytes")
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise _invalid("is not a copy-ops work message of this version")
    try:
        work = _decode(data)
    except (KeyError, TypeError, ValueError):
        work = None
    if work is None:
        raise _invalid("has no known kind, or fields of the wrong type")
    return work


def _decode(data: dict[str, Any]) -> Work | None:
    kind = data.get("kind")
    if kind in ("settle", "abort"):
        ids = data["ids"]
        job = data.get("job") if kind == "abort" else None
        if _listing(ids, SETTLE_BATCH) and all(isinstance(item, str) for item in ids) and isinstance(job, str | None):
            return Settle(tuple(ids)) if kind == "settle" else Abort(tuple(ids), job)
        return None
    if kind == "stage":
        op, blocks, sas = data["op"], data["blocks"], data.get("sas")
        if isinstance(op, str) and isinstance(blocks, str) and isinstance(sas, str | None):
            # Ranges of block indexes, at most a hand-out's worth, or ValueError: refused whole
            # (more ranges than blocks a hand-out holds, before any is read).
            if blocks.count(",") >= STAGE_BATCH or Staged.parse(blocks).count() > STAGE_BATCH:
                raise ValueError(f"more than {STAGE_BATCH} blocks")
            return Stage(op, blocks, sas)
        return None
    job = data["job"]
    if not isinstance(job, str):
        return None
    if kind == "check" and isinstance(data.get("item"), str | None):
        return Check(job, data.get("item"))
    if kind == "page" and _whole(data["page"]) and isinstance(data.get("sas"), str | None):
        return Page(job, data["page"], data.get("sas"))
    if kind == "batch":
        return _batch(job, data)
    if kind == "report" and isinstance(data["part"], str) and _is_part(data["part"]):
        return ReportPart(job, data["part"])
    if kind == "chunk" and _whole(data["index"]) and _listing(data["entries"], CHUNK):
        entries = tuple(ManifestEntry(_source_of(item["source"]), _text(item["name"])) for item in data["entries"])
        return Chunk(job, data["index"], entries)
    return None


def _batch(job: str, data: dict[str, Any]) -> Batch | None:
    names, sizes, sas, handout = data["names"], data["sizes"], data.get("sas"), data.get("handout", "")
    if not (_listing(names, BATCH) and isinstance(sizes, list) and len(names) == len(sizes)):
        return None
    if not (_whole(data["page"]) and _whole(data["index"]) and isinstance(sas, str | None)):
        return None
    if not isinstance(handout, str) or not _is_part(handout):
        return None
    if not all(isinstance(name, str) and name for name in names) or not all(_whole(size) for size in sizes):
        return None
    return Batch(job, data["page"], data["index"], tuple(names), tuple(sizes), sas, handout)


def _listing(value: Any, most: int) -> bool:
    """A list of one to ``most`` items: no kind carries an empty one, nor more than its sender
    puts in one message."""
    return isinstance(value, list) and 0 < len(value) <= most


def _is_part(part: str) -> bool:
    """A report part: up to four lowercase hex digits (``""``: the whole report)."""
    return len(part) <= 4 and all(c in "0123456789abcdef" for c in part)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _source_data(source: str | BlobRef | ForeignBlob) -> dict[str, str]:
    if isinstance(source, str):
        return {"url": source}
    if isinstance(source, ForeignBlob):
        return {"account": source.account, "container": source.container, "blob": source.blob}
    return source.as_dict()


def _source_of(data: Any) -> str | BlobRef | ForeignBlob:
    if not isinstance(data, dict):
        raise TypeError("not an object")
    if "url" in data:
        return _text(data["url"])
    if "account" in data:
        return ForeignBlob(_text(data["account"]), _text(data["container"]), _text(data["blob"]))
    return BlobRef(_text(data["container"]), _text(data["blob"]))


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest.of(FieldError("message", message))


def batches(items: Iterable[T], make: Callable[[tuple[T, ...]], Work], most: int) -> Iterator[str]:
    """Encoded messages of ``make(batch)``, each with at most ``most`` items and under the
    size limit (a batch too large is split)."""
    for group in groups(items, make, most):
        yield encode(make(group))


def groups(items: Iterable[T], make: Callable[[tuple[T, ...]], Work], most: int) -> Iterator[tuple[T, ...]]:
    """``items`` in groups of at most ``most`` whose message ``make(group)`` fits the limit."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == most:
            yield from _fitting(tuple(batch), make)
            batch = []
    if batch:
        yield from _fitting(tuple(batch), make)


def _fitting(batch: tuple[T, ...], make: Callable[[tuple[T, ...]], Work]) -> Iterator[tuple[T, ...]]:
    if len(encode(make(batch)).encode()) <= MESSAGE_LIMIT_BYTES or len(batch) == 1:
        yield batch
        return
    half = len(batch) // 2
    yield from _fitting(batch[:half], make)
    yield from _fitting(batch[half:], make)
