"""One loop for a write that lost its record to another writer.

Every record is written with the ETag it was read with (optimistic concurrency): a
writer that loses the race gets :class:`~copy_ops.core.errors.PreconditionFailed`, reads the
record again and decides afresh. ``attempt`` does the reading and the deciding; this
only repeats it, a bounded number of times.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from copy_ops.core.errors import Busy, PreconditionFailed

T = TypeVar("T")


async def retried(
    attempt: Callable[[], Awaitable[T]], attempts: int, busy: str, otherwise: Callable[[], T] | None = None
) -> T:
    """``attempt()``, again while it loses the race. If it loses every time: ``otherwise()``
    when given, else :class:`~copy_ops.core.errors.Busy` (saying ``busy``): the caller
    tries later, or the sweep does."""
    for _ in range(attempts):
        try:
            return await attempt()
        except PreconditionFailed:
            continue
    if otherwise is not None:
        return otherwise()
    raise Busy(busy, code="Busy")
