"""A job's enumeration: a page of its source listed and handed to the work queue as
batches of items to start (any instance takes them: :mod:`copy_ops.jobs.handout`), or a
chunk of its manifest started, and the checkpoint in the job record moved on, in that order.

* Listed again (a redelivery, a handler that died before moving the checkpoint), a page
  hands out its batches again: an item's id is derived from the job and its name, so a
  batch taken twice starts nothing twice (invariant 8).
* The checkpoint moves only once the page's batches are sent: a page whose batches could
  not all be sent raises, and the host delivers it again.
* Only the writer that moved the checkpoint sends the next page's message. A message
  for the page before the checkpoint (its handler died between the two) sends it again.
* The page's list is the chain (a page after the other); the starting of its items is not.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from copy_ops.copies.ports import WorkQueue, needed
from copy_ops.core.errors import Busy, CopyOpsError, Forbidden, InvalidRequest, NotFound, PreconditionFailed
from copy_ops.core.logtext import counts_text
from copy_ops.core.redaction import redact
from copy_ops.jobs import handouts, moves, progress
from copy_ops.jobs.chunks import ChunkDigests
from copy_ops.jobs.handout import POISONED, Batches
from copy_ops.jobs.item_starts import ItemStarts
from copy_ops.jobs.items import Item, ItemOutcome
from copy_ops.jobs.model import Enumeration, JobState
from copy_ops.jobs.ports import Sources
from copy_ops.jobs.records import JobLedger, StoredJob
from copy_ops.work.messages import Check, Chunk, Page, encode

logger = logging.getLogger(__name__)


def _keeping(enumeration: Enumeration, page: int, handout: str) -> Enumeration | None:
    """The checkpoint keeping ``handout`` as page ``page``'s, before its batches are sent
    (written again after a lost answer: the same); None if the page is no longer the one to
    list (another handler moved on, or the job's check stopped it)."""
    if enumeration.page != page or enumeration.done:
        return None
    return dataclasses.replace(enumeration, handouts=handouts.with_handout(enumeration.handouts, page, handout))


class Paged(StrEnum):
    """What a page's or a chunk's message did."""

    GONE = "gone"  # no job has that id (any more)
    STALE = "stale"  # the checkpoint is past it, or the job ended
    RESENT = "resent"  # the next page's message, sent again (its sender died)
    STOPPED = "stopped"  # the enumeration ended here (deadline, abort, a refused listing)
    PAGE = "page"
    CHUNK = "chunk"
    REFUSED = "refused"  # a chunk its job's start never sent (issue 28: forged with the key)


SAVE_ATTEMPTS = 10


# A refusal to list (no such container, a SAS that does not allow it) ends the
# enumeration; a transient fault is retried by the host.
_REFUSALS = (NotFound, Forbidden, InvalidRequest)


class Enumerator:
    def __init__(
        self,
        jobs: JobLedger,
        sources: Sources,
        starts: ItemStarts,
        batches: Batches,
        work: WorkQueue | None,
        *,
        chunks: ChunkDigests,
        page: int,
    ) -> None:
        self._jobs = jobs
        self._sources = sources
        self._starts = starts
        self._batches = batches
        self._work = work
        # A manifest's chunks as its start sent them: any other is refused.
        self._chunks = chunks
        self._page_size = page

    async def page(self, message: Page, now: datetime, sent_at: datetime | None = None) -> Paged:
        """One page of a prefix job. Returns what happened, for the log."""
        stored = await self._jobs.read_arriving(message.job, now, sent_at)
        if stored is None:
            return Paged.GONE
        job, checkpoint = stored.job, stored.job.enumeration
        if checkpoint.done and not job.is_final and checkpoint.page == message.page + 1:
            await self._ended(job.id)  # the last page again: its handler may have died before asking
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
        attempt = secrets.token_hex(8)  # this listing attempt of the page
        handout = handouts.handout_of(attempt)
        # The handout in the checkpoint first, then the batches: a batch is taken for the
        # app's only if the checkpoint keeps its handout for its page.
        kept = await self._save(stored, lambda e: _keeping(e, message.page, handout), now)
        if kept is None:
            return Paged.STALE  # moved on by another handler, or stopped by the job's check
        handed = await self._batches.hand_out(job.id, message.page, listed, message.sas, handout)

        def move(e: Enumeration) -> Enumeration | None:
            if e.page == message.page:
                if e.done:
                    return None  # stopped meanwhile by the job's check, which ends the job
                if handouts.handout_at(e.handouts, e.page) != handout:
                    # Another delivery of the page wrote its handout since: its batches count,
                    # once it moves the checkpoint (if it died first, this delivery comes back).
                    raise Busy(f"page {message.page} of job {job.id} is listed again elsewhere", code="Busy")
                return progress.page_done(e, len(listed), marker, now, attempt, batches=handed)
            # Moved already: by this handler (a write whose answer was lost), or by another.
            if e.page == message.page + 1 and e.moved_by == attempt:
                moved_here.append(e)
            return None

        moved_here: list[Enumeration] = []
        saved = await self._save(kept, move, now)
        ours = saved.job.enumeration if saved is not None else (moved_here[-1] if moved_here else None)
        if ours is not None and ours.done:
            await self._ended(job.id)
        elif ours is not None and marker is not None:
            await self._send(Page(job.id, message.page + 1, message.sas))
        logger.info("job_page job=%s page=%s listed=%s batches=%s", job.id, message.page, len(listed), handed)
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
        if not await self._chunks.sent(message):
            return Paged.REFUSED
        items = [Item(entry.name, entry.source, None) for entry in message.entries]
        stopping = self._batches.stopping(job.id)
        outcomes = await self._starts.start_all(job, items, now, f"chunk {message.index}", stopping)
        late = outcomes[ItemOutcome.LATE]
        saved = await self._save(
            stored, lambda e: None if e.done else progress.chunk_done(e, message.index, now, late), now
        )
        if saved is not None and saved.job.enumeration.done:
            await self._ended(job.id)
        logger.info("job_chunk job=%s chunk=%s %s", job.id, message.index, counts_text(outcomes))
        return Paged.CHUNK

    async def chunk_poisoned(self, message: Chunk, now: datetime) -> str:
        """A manifest chunk the host gave up on: its items not recorded yet recorded as
        failed (``not_started``), and the chunk counted, so the job ends and says which."""
        stored = await self._jobs.read_or_none(message.job)
        job = stored.job if stored is not None else None
        if job is None or job.is_final or job.enumeration.done or message.index in job.enumeration.chunks_done:
            return "stale"
        if progress.stop_reason(job, now) is not None:
            return "stopped"  # the job's check ends the enumeration
        if not await self._chunks.sent(message):
            return "refused"
        items = [Item(entry.name, entry.source, None) for entry in message.entries]
        outcomes = await self._starts.record_unstarted(job, items, now, POISONED)
        assert stored is not None
        saved = await self._save(stored, lambda e: None if e.done else progress.chunk_done(e, message.index, now), now)
        if saved is not None and saved.job.enumeration.done:
            await self._ended(job.id)
        logger.warning("job_chunk_poisoned job=%s chunk=%s %s", job.id, message.index, counts_text(outcomes))
        return "poisoned"

    async def _save(
        self, stored: StoredJob, change: Callable[[Enumeration], Enumeration | None], now: datetime
    ) -> StoredJob | None:
        """Apply ``change`` to the checkpoint, re-reading after a lost race: the job saved,
        or None when the change no longer applies (``change`` returns None) or the job ended."""
        for _ in range(SAVE_ATTEMPTS):
            job = stored.job
            enumeration = None if job.is_final else change(job.enumeration)
            if enumeration is None:
                return None
            state = JobState.RUNNING if enumeration.done else job.state
            moved = moves.checkpoint_moved(job, enumeration, now)
            try:
                return await self._jobs.save(dataclasses.replace(moved, state=state), stored.etag, now)
            except PreconditionFailed:
                stored = await self._jobs.read(job.id)
        raise Busy(f"job {stored.job.id} is busy; the page is retried", code="Busy")

    async def _send(self, message: Page) -> None:
        await needed(self._work).send([encode(message)])

    async def _ended(self, job_id: str) -> None:
        """The enumeration ended: a check of the job now, which ends it if its items have
        (those that ended at their start never tell the job). With batches handed out,
        only once every one is done: else the last batch asks (the checkpoint was written
        before the marks are counted here, and a batch's mark before it reads the
        checkpoint, so one of the two sees both). If the message cannot be sent, the job's
        scheduled check does it."""
        try:
            job = (await self._jobs.read(job_id)).job
            batches = job.enumeration.batches
            if batches and job.enumeration.settle_after is None and (await self._jobs.batches_done(job)).done < batches:
                return
            await needed(self._work).send([encode(Check(job_id))])
        except CopyOpsError as exc:
            logger.warning("job_look_deferred job=%s error=%s", job_id, exc.kind)
