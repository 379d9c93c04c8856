"""Concurrency bounded by asyncio: the one way copy-ops runs storage work side by side.

:class:`Bounded` is a task group with a limit: whoever submits waits while it is full,
so a walk of the due records never runs far ahead of the work and a time budget stays
meaningful; each task's outcome label is counted. :func:`bounded_map` runs one coroutine
per item, at most so many at once, and gives the results in the items' order.

Tasks copy the submitter's context (asyncio does), so a log record written by any of them
carries the invocation that caused it, as the Functions worker records it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Self, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Bounded:
    """``async with Bounded(n) as work: await work.submit(...)``; the outcomes, counted,
    once the block is left (every task awaited). A task's own error cancels the rest, as
    in :class:`asyncio.TaskGroup`, and is raised from the block as itself (the first one,
    not a group: callers handle errors by type, as they would from one call)."""

    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._group = asyncio.TaskGroup()
        self.outcomes: Counter[str] = Counter()
        self.submitted = 0

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            await self._group.__aexit__(kind, error, trace)
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None

    async def submit(self, work: Callable[[], Awaitable[str]]) -> None:
        """Start ``work`` as soon as a slot is free (waiting here until then)."""
        await self._slots.acquire()
        self.submitted += 1
        try:
            self._group.create_task(self._run(work))
        except BaseException:
            self._slots.release()
            raise

    async def _run(self, work: Callable[[], Awaitable[str]]) -> None:
        try:
            self.outcomes[await work()] += 1
        finally:
            self._slots.release()


async def bounded_map(work: Callable[[T], Awaitable[R]], items: Sequence[T], concurrency: int) -> list[R]:
    """``work`` of each item, at most ``concurrency`` at once, in the items' order."""
    slots = asyncio.Semaphore(max(1, concurrency))

    async def one(item: T) -> R:
        async with slots:
            return await work(item)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(item)) for item in items]
    return [task.result() for task in tasks]
