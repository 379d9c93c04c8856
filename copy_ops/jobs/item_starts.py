"""A batch's (or a manifest chunk's) items started, so many at once, each under its derived
id at most once (:mod:`copy_ops.jobs.items`); or, for a batch the host gave up on, recorded
as never started."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import partial

from copy_ops.aio.bounded import Bounded
from copy_ops.aio.clock import Elapsed
from copy_ops.copies.model import CopyRequest, ErrorCode
from copy_ops.core.errors import CopyOpsError, StorageUnavailable
from copy_ops.core.logtext import counts_text
from copy_ops.jobs import progress
from copy_ops.jobs.items import Item, ItemOutcome, ItemStarter, item_request
from copy_ops.jobs.model import Job

logger = logging.getLogger(__name__)

# Outcomes of an item's start that leave it to a later delivery: not recorded (a storage
# fault), claimed by an attempt that may still be at work, or started with an answer lost.
# A batch is done (and a chunk counted) only when none is left.
_UNSETTLED = tuple(outcome for outcome in ItemOutcome if not outcome.settled)


class ItemStarts:
    """A batch's (or a manifest chunk's) items started, at most so many at once."""

    def __init__(self, starter: ItemStarter, concurrency: int) -> None:
        self._starter = starter
        self._concurrency = concurrency

    async def start_all(
        self,
        job: Job,
        items: Sequence[Item],
        now: datetime,
        what: str,
        stopped: Callable[[datetime], Awaitable[bool]] | None = None,
    ) -> Counter[str]:
        """Each item started (or recorded as refused); the outcomes. Raises
        :class:`StorageUnavailable` when any item is left for a later delivery. ``stopped``:
        asked before each start whether the job stopped meanwhile (its items then ``late``)."""
        # An item's claim is never older, read by another attempt, than it is: each start's
        # ``now`` is moved on by the time the batch has taken so far.
        clock = Elapsed(now)
        async with Bounded(self._concurrency) as starting:
            for item in items:
                request = item_request(job, item.relative, item.source, item.size)
                operation_id = progress.item_id(job.id, request.destination.blob)
                why = item.unsafe or progress.destination_name_problem(request.destination.blob)
                start = partial(self._start_one, request, operation_id, clock, why, item.shown, stopped, job.lineage)
                await starting.submit(start)
        outcomes = starting.outcomes
        unsettled = sum(outcomes[outcome] for outcome in _UNSETTLED)
        if unsettled:
            # The host delivers the message again: the items started meanwhile are skipped,
            # and one whose attempt died is taken over.
            left = f"{unsettled} items of {what} of job {job.id} are not started yet"
            raise StorageUnavailable(f"{left}: {counts_text(outcomes)}")
        return outcomes

    async def record_unstarted(self, job: Job, items: Sequence[Item], now: datetime, why: str) -> Counter[str]:
        """Each item not recorded yet recorded as failed (``not_started``, ``why``); an item
        recorded already (started, or claimed: the sweep checks it) is left as it is.
        A storage fault raises (the rest are cancelled, and recorded at the next delivery)."""
        async with Bounded(self._concurrency) as recording:
            for item in items:
                request = item_request(job, item.relative, item.source, item.size)
                operation_id = progress.item_id(job.id, request.destination.blob)
                record = self._starter.record_failed
                await recording.submit(partial(record, request, operation_id, now, ErrorCode.NOT_STARTED, why))
        return recording.outcomes

    async def _start_one(  # noqa: PLR0917 - one item's start, as the batch hands it over
        self,
        request: CopyRequest,
        operation_id: str,
        clock: Elapsed,
        unsafe: str | None,
        shown: str | None,
        stopped: Callable[[datetime], Awaitable[bool]] | None,
        lineage: tuple[str, ...] = (),
    ) -> ItemOutcome:
        now = clock.now()
        if now >= request.terms.deadline or (stopped is not None and await stopped(now)):
            return ItemOutcome.LATE  # it could not finish in time, or the job was stopped
        try:
            if unsafe is not None:
                return await self._starter.record_unaddressed(request, operation_id, shown, unsafe, now)
            # Asked again just before its copy goes out: its record and lease may have taken
            # seconds, and no item of a stopped job may start more than a second after.
            go = (lambda: _going(stopped, clock)) if stopped is not None else None
            return await self._starter.start_item(request, operation_id, now, go, lineage)
        except CopyOpsError as exc:
            logger.warning("job_item_deferred op=%s error=%s code=%s", operation_id, exc.kind, exc.code)
            return ItemOutcome.DEFERRED
        except Exception:
            logger.exception("job_item_error op=%s", operation_id)
            return ItemOutcome.ERROR


async def _going(stopped: Callable[[datetime], Awaitable[bool]], clock: Elapsed) -> bool:
    return not await stopped(clock.now())
