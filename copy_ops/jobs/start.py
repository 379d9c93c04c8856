"""A job's enumeration: a page of its source listed (or a chunk of its manifest taken),
each item started as an ordinary operation under an id derived from the job and its
name, and the checkpoint in the job record moved on, in that order.

* Redelivered or replayed, a page starts nothing twice: an item's id is recorded before
  its copy starts, and a recorded id is skipped (invariant 8).
* The checkpoint moves only when every item of the page is recorded (started, or
  refused and recorded as failed): a page with an item storage could not record raises,
  and the host delivers it again.
* Only the writer that moved the checkpoint sends the next page's message. A message
  for the page before the checkpoint (its handler died between the two) sends it again.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from functools import partial

from copy_ops.aio.bounded import Bounded
from copy_ops.aio.clock import Elapsed
from copy_ops.copies.model import CopyRequest
from copy_ops.copies.ports import WorkQueue, needed
from copy_ops.core.errors import (
    Busy,
    CopyOpsError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    StorageUnavailable,
)
from copy_ops.core.logtext import counts_text
from copy_ops.core.redaction import redact
from copy_ops.jobs import progress
from copy_ops.jobs.items import Item, ItemOutcome, ItemStarter, item_request
from copy_ops.jobs.model import Enumeration, Job, JobState
from copy_ops.jobs.ports import Sources
from copy_ops.jobs.records import JobLedger, StoredJob
from copy_ops.work.messages import Check, Chunk, Page, encode

logger = logging.getLogger(__name__)


class Paged(StrEnum):
    """What a page's or a chunk's message did."""

    GONE = "gone"  # no job has that id (any more)
    STALE = "stale"  # the checkpoint is past it, or the job ended
    RESENT = "resent"  # the next page's message, sent again (its sender died)
    STOPPED = "stopped"  # the enumeration ended here (deadline, abort, a refused listing)
    PAGE = "page"
    CHUNK = "chunk"


SAVE_ATTEMPTS = 10
# Outcomes of an item's start that leave it to a later delivery of the page: not recorded
# (a storage fault), claimed by an attempt that may still be at work, or started with an
# answer lost. The checkpoint moves only when none is left (every item started or ended),
# so a page is never stale while one of its items still waits for its start.
_UNSETTLED = tuple(outcome for outcome in ItemOutcome if not outcome.settled)


# A refusal to list (no such container, a SAS that does not allow it) ends the
# enumeration; a transient fault is retried by the host.
_REFUSALS = (NotFound, Forbidden, InvalidRequest)


class Enumerator:
    def __init__(
        self,
        jobs: JobLedger,
        sources: Sources,
        starter: ItemStarter,
        work: WorkQueue | None,
        *,
        concurrency: int,
        page: int,
    ) -> None:
        self._jobs = jobs
        self._sources = sources
        self._starter = starter
        self._work = work
        self._concurrency = concurrency
        self._page_size = page

    async def page(self, message: Page, now: datetime, sent_at: datetime | None = None) -> Paged:
        """One page of a prefix job. Returns what happened, for the log."""
        stored = await self._jobs.read_arriving(message.job, now, sent_at)
        if stored is None:
            return Paged.GONE
        job, checkpoint = stored.job, stored.job.enumeration
        if job.is_final or checkpoint.done or job.source is None:
            return Paged.STALE
        if checkpoint.page == message.page + 1:
            # This page was done but its handler died before sending the next one's message.
            await self._send(Page(job.id, checkpoint.page, message.sas))
            return Paged.RESENT
        if checkpoint.page != message.page:
            return Paged.STALE
        ending = progress.stop_reason(job, now)
        if ending is not None:
            if await self._save(stored, lambda e: progress.stopped(e, ending, None, now), now) is not None:
                await self._ended(job.id)
            return Paged.STOPPED
        try:
            listed, marker = await self._sources.list_source(
                job.source, message.sas, checkpoint.marker, self._page_size
            )
        except _REFUSALS as exc:
            reason = f"the source could not be listed: {exc.title}: {redact(exc.detail)}"
            logger.warning("job_enumeration_refused job=%s page=%s error=%s", job.id, message.page, exc.kind)
            if await self._save(stored, lambda e: progress.stopped(e, reason, None, now), now) is not None:
                await self._ended(job.id)
            return Paged.STOPPED
        source = job.source
        items = [
            Item(
                relative=progress.relative_name(source.prefix, item.name),
                source=source.item(item.name, message.sas),
                size=item.size,
                shown=source.shown(item.name),
                unsafe=progress.source_name_problem(item.name),
            )
            for item in listed
        ]
        outcomes = await self._start_all(job, items, now, f"page {message.page}")
        mover = secrets.token_hex(8)
        late = outcomes[ItemOutcome.LATE]

        def move(e: Enumeration) -> Enumeration | None:
            if e.page == message.page:
                if e.done:
                    return None  # stopped meanwhile by the job's check, which ends the job
                if late:
                    # The deadline passed midway: the items this page started are the last.
                    return progress.stopped(e, progress.DEADLINE_PASSED, e.items + len(listed) - late, now)
                return progress.page_done(e, len(listed), marker, now, mover)
            # Moved already: by this handler (a write whose answer was lost), or by another.
            moved_here.append(e.page == message.page + 1 and e.mover == mover)
            return None

        moved_here: list[bool] = []
        saved = await self._save(stored, move, now)
        if saved is not None and saved.done:
            await self._ended(job.id)
        elif (saved is not None or any(moved_here)) and marker is not None and not late:
            await self._send(Page(job.id, message.page + 1, message.sas))
        logger.info("job_page job=%s page=%s listed=%s %s", job.id, message.page, len(listed), counts_text(outcomes))
        return Paged.PAGE

    async def chunk(self, message: Chunk, now: datetime, sent_at: datetime | None = None) -> Paged:
        """One chunk of a manifest job, in any order beside the others."""
        stored = await self._jobs.read_arriving(message.job, now, sent_at)
        if stored is None:
            return Paged.GONE
        job = stored.job
        if job.is_final or job.enumeration.done or message.index in job.enumeration.chunks_done:
            return Paged.STALE
        if progress.stop_reason(job, now) is not None:
            return Paged.STOPPED  # the job's check ends the enumeration
        items = [Item(entry.name, entry.source, None) for entry in message.entries]
        outcomes = await self._start_all(job, items, now, f"chunk {message.index}")
        late = outcomes[ItemOutcome.LATE]
        saved = await self._save(
            stored, lambda e: None if e.done else progress.chunk_done(e, message.index, now, late), now
        )
        if saved is not None and saved.done:
            await self._ended(job.id)
        logger.info("job_chunk job=%s chunk=%s %s", job.id, message.index, counts_text(outcomes))
        return Paged.CHUNK

    async def _start_all(self, job: Job, items: Sequence[Item], now: datetime, what: str) -> Counter[str]:
        # A page may take many seconds: each item's start (its claim's time) is ``now`` moved
        # on by the time the page has taken so far, so that a claim's age read by another
        # attempt is never more than its real age by the length of the page.
        # A page's items' clock: an item's claim is never older, read by another attempt, than it is.
        clock = Elapsed(now)
        async with Bounded(self._concurrency) as starting:
            for item in items:
                request = item_request(job, item.relative, item.source, item.size)
                operation_id = progress.item_id(job.id, request.destination.blob)
                why = item.unsafe or progress.destination_name_problem(request.destination.blob)
                await starting.submit(partial(self._start_one, request, operation_id, clock, why, item.shown))
        outcomes = starting.outcomes
        unsettled = sum(outcomes[outcome] for outcome in _UNSETTLED)
        if unsettled:
            # The checkpoint stays: the host delivers this message again; the items started
            # meanwhile are skipped, and one whose attempt died is taken over.
            left = f"{unsettled} items of {what} of job {job.id} are not started yet"
            raise StorageUnavailable(f"{left}: {counts_text(outcomes)}")
        return outcomes

    async def _start_one(
        self, request: CopyRequest, operation_id: str, clock: Elapsed, unsafe: str | None, shown: str | None
    ) -> ItemOutcome:
        now = clock.now()
        if now >= request.deadline:
            return ItemOutcome.LATE  # it could not finish in time; the job ends with what it has
        try:
            if unsafe is not None:
                return await self._starter.record_unaddressed(request, operation_id, shown, unsafe, now)
            return await self._starter.start_item(request, operation_id, now)
        except CopyOpsError as exc:
            logger.warning("job_item_deferred op=%s error=%s code=%s", operation_id, exc.kind, exc.code)
            return ItemOutcome.DEFERRED
        except Exception:
            logger.exception("job_item_error op=%s", operation_id)
            return ItemOutcome.ERROR

    async def _save(
        self, stored: StoredJob, change: Callable[[Enumeration], Enumeration | None], now: datetime
    ) -> Enumeration | None:
        """Apply ``change`` to the checkpoint, re-reading after a lost race: the checkpoint
        saved, or None when the change no longer applies (``change`` returns None) or the
        job ended."""
        for _ in range(SAVE_ATTEMPTS):
            job = stored.job
            enumeration = None if job.is_final else change(job.enumeration)
            if enumeration is None:
                return None
            state = JobState.RUNNING if enumeration.done else job.state
            try:
                await self._jobs.save(dataclasses.replace(job, enumeration=enumeration, state=state), stored.etag, now)
                return enumeration
            except PreconditionFailed:
                stored = await self._jobs.read(job.id)
        raise Busy(f"job {stored.job.id} is busy; the page is retried", code="Busy")

    async def _send(self, message: Page) -> None:
        await needed(self._work).send([encode(message)])

    async def _ended(self, job_id: str) -> None:
        """The enumeration ended: a look at the job now, which ends it if its items have
        (those that ended at their start never tell the job). If the message cannot be
        sent, the job's scheduled look does it."""
        try:
            await needed(self._work).send([encode(Check(job_id))])
        except CopyOpsError as exc:
            logger.warning("job_look_deferred job=%s error=%s", job_id, exc.kind)
