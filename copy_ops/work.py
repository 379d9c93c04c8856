"""Messages on the work queue: what the sweep and the jobs hand to every instance.

Plain JSON text (host.json sets the queues' ``messageEncoding`` to ``none``), versioned,
each under Azure's 64 KiB. Decoding is strict: a message that is not one of these is
refused whole. Pure: no storage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from copy_ops.errors import FieldError, InvalidRequest

VERSION = 1
# Azure refuses a message over 64 KiB; every message stays below this.
MESSAGE_LIMIT_BYTES = 60 * 1024
# Ids per settle batch: a batch is one invocation's work on one instance, a few seconds.
SETTLE_BATCH = 200

T = TypeVar("T")


@dataclass(frozen=True)
class Settle:
    """Settle these operations (the sweep's fan-out): as the sweep would, each only if due."""

    ids: tuple[str, ...]


Work = Settle


def encode(work: Work) -> str:
    return json.dumps({"v": VERSION, "kind": "settle", "ids": list(work.ids)}, separators=(",", ":"))


def decode(text: str) -> Work:
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise _invalid("is not a copy-ops work message of this version")
    if data.get("kind") == "settle":
        ids = data.get("ids")
        if isinstance(ids, list) and ids and all(isinstance(item, str) for item in ids):
            return Settle(tuple(ids))
    raise _invalid("has no known kind, or fields of the wrong type")


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest.of(FieldError("message", message))


def batches(items: Iterable[T], make: Callable[[tuple[T, ...]], Work], most: int) -> Iterator[str]:
    """Encoded messages of ``make(batch)``, each with at most ``most`` items and under the
    size limit (a batch too large is split)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == most:
            yield from _fitting(tuple(batch), make)
            batch = []
    if batch:
        yield from _fitting(tuple(batch), make)


def _fitting(batch: tuple[T, ...], make: Callable[[tuple[T, ...]], Work]) -> Iterator[str]:
    text = encode(make(batch))
    if len(text.encode()) <= MESSAGE_LIMIT_BYTES or len(batch) == 1:
        yield text
        return
    half = len(batch) // 2
    yield from _fitting(batch[:half], make)
    yield from _fitting(batch[half:], make)
