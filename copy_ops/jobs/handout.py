"""A job's items started on every instance: a listed page handed out as batches on the work
queue, each batch's items started by whichever instance takes it, its mark left, and the
job told when the last batch is done.

* A batch taken twice (redelivered, or by two instances) starts nothing twice: each item
  has its derived id and start token (:mod:`copy_ops.jobs.items`).
* A batch with an item storage could not record raises, and the host delivers it again;
  its mark is left only when every item is started or recorded (a page's checkpoint moved
  on as soon as its batches were sent: the batch carries what the listing said).
* A batch taken once the job was aborted or past its deadline starts nothing: the job ends
  with the items started before (its check waits a moment for batches in flight).
* A batch the host gave up on (the poison queue) has its items not yet recorded recorded
  as failed, ``not_started``, with the reason: the report names each one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from copy_ops.copies.ports import WorkQueue, needed
from copy_ops.core.errors import CopyOpsError
from copy_ops.core.logtext import counts_text
from copy_ops.jobs import progress
from copy_ops.jobs.items import Item, ItemOutcome
from copy_ops.jobs.model import Job, PrefixSource
from copy_ops.jobs.ports import Listed
from copy_ops.jobs.records import JobLedger
from copy_ops.jobs.starts import ItemStarts
from copy_ops.work.messages import BATCH, Batch, Check, encode, groups

logger = logging.getLogger(__name__)

# A batch running this long reads its job again before starting more (an abort meanwhile
# stops it): well within the minute a stopped job waits for batches in flight.
RECHECK = timedelta(seconds=20)

# Up to this many batches (a million items), every batch done after the listing counts the
# marks (a listing request per 5,000); beyond, only the last page's batches do, so that the
# counting does not grow with the square of the job.
MARKS_COUNTED_BY_ALL = 5000

POISONED = (
    "copy-ops did not start it: its batch of the job failed every delivery the host made "
    "and was moved to the poison queue"
)


def listed_items(source: PrefixSource, names: Sequence[str], sizes: Sequence[int], sas: str | None) -> list[Item]:
    """The items of listed blobs: where each lands, what Copy Blob reads, how it is shown."""
    return [
        Item(
            relative=progress.relative_name(source.prefix, name),
            source=source.item(name, sas),
            size=size,
            shown=source.shown(name),
            unsafe=progress.source_name_problem(name),
        )
        for name, size in zip(names, sizes, strict=True)
    ]


def _foreign(source: PrefixSource, message: Batch) -> bool:
    """Whether the batch names a blob outside its job's source prefix: no listing of the
    job's did, so it is not the app's batch (whoever can put a message on the work queue
    must not steer the app's credential to other blobs, nor onto a listed item's place).
    Refused whole: nothing of it starts or is recorded."""
    outside = [name for name in message.names if not name.startswith(source.prefix)]
    if outside:
        logger.warning(
            "job_batch_refused job=%s page=%s batch=%s reason=outside_prefix names=%s",
            message.job,
            message.page,
            message.index,
            len(outside),
        )
    return bool(outside)


def batch_messages(job_id: str, page: int, listed: Sequence[Listed], sas: str | None, handout: str) -> list[str]:
    """A listed page as batch messages, each at most :data:`BATCH` items and under the size limit."""
    sized = [(item.name, item.size) for item in listed]

    def make(group: tuple[tuple[str, int], ...], index: int = 0) -> Batch:
        return Batch(job_id, page, index, tuple(n for n, _ in group), tuple(s for _, s in group), sas, handout)

    return [encode(make(group, index)) for index, group in enumerate(groups(sized, make, BATCH))]


def _stopped(job: Job, now: datetime) -> bool:
    """No more of the job's items start: it ended, its end is decided, it was aborted or
    its deadline passed."""
    return job.is_final or job.closing is not None or progress.stop_reason(job, now) is not None


class Batches:
    """The batches of a prefix job's pages: handed out, started, poisoned."""

    def __init__(self, jobs: JobLedger, starts: ItemStarts, work: WorkQueue | None) -> None:
        self._jobs = jobs
        self._starts = starts
        self._work = work

    async def hand_out(self, job_id: str, page: int, listed: Sequence[Listed], sas: str | None, handout: str) -> int:
        """The page's items sent to the work queue as batches of ``handout``; how many batches."""
        messages = batch_messages(job_id, page, listed, sas, handout)
        if messages:
            await needed(self._work).send(messages)
        return len(messages)

    async def start(self, message: Batch, now: datetime) -> str:
        """Start a batch's items; what it did (for the log)."""
        stored = await self._jobs.read_or_none(message.job)
        job = stored.job if stored is not None else None
        if job is None or job.source is None:
            return "gone"
        if _stopped(job, now):
            logger.info("job_batch_skipped job=%s page=%s batch=%s", job.id, message.page, message.index)
            return "stopped"
        if _foreign(job.source, message):
            return "refused"
        items = listed_items(job.source, message.names, message.sizes, message.sas)
        what = f"batch {message.page}-{message.index}"
        outcomes = await self._starts.start_all(job, items, now, what, self._stopping(job.id, now))
        if outcomes[ItemOutcome.LATE]:
            # Items it did not start (the deadline, an abort): no mark, so the job's look
            # finds a batch out and stops the job, which is then the items started.
            at = f"page={message.page} batch={message.index}"
            logger.info("job_batch_cut job=%s %s %s", job.id, at, counts_text(outcomes))
            return "stopped"
        await self._done(message)
        logger.info("job_batch job=%s page=%s batch=%s %s", job.id, message.page, message.index, counts_text(outcomes))
        return "batch"

    async def poisoned(self, message: Batch, now: datetime) -> str:
        """A batch the host gave up on: its items not recorded yet are recorded as failed,
        so the job ends and its report names them."""
        stored = await self._jobs.read_or_none(message.job)
        job = stored.job if stored is not None else None
        if job is None or _stopped(job, now) or job.source is None:
            return "stopped"  # the job ends without the items not started (its check stops it)
        if _foreign(job.source, message):
            return "refused"
        items = listed_items(job.source, message.names, message.sizes, message.sas)
        # A storage fault raises: the poison queue's own trigger delivers the message again.
        outcomes = await self._starts.record_unstarted(job, items, now, POISONED)
        at = f"page={message.page} batch={message.index}"
        logger.warning("job_batch_poisoned job=%s %s %s", job.id, at, counts_text(outcomes))
        await self._done(message)
        return "poisoned"

    def _stopping(self, job_id: str, read_at: datetime) -> Callable[[datetime], Awaitable[bool]]:
        """Whether the job was stopped meanwhile, read again (after it was at ``read_at``)
        at most every :data:`RECHECK`: a batch held up by storage starts nothing long after an abort."""
        last = [read_at]
        seen: list[bool] = []  # once stopped, stopped for every item after

        async def stopped(now: datetime) -> bool:
            if seen or now - last[0] < RECHECK:
                return bool(seen)
            last[:] = [now]
            try:
                stored = await self._jobs.read_or_none(job_id)
            except CopyOpsError:
                return False  # not known: the items go on (a storage fault must not cut a batch)
            if stored is None or _stopped(stored.job, now):
                seen.append(True)
            return bool(seen)

        return stopped

    async def _done(self, message: Batch) -> None:
        """The batch's mark; and, once the listing is done and this was the last batch, a
        look at the job now (marks are written before they are counted, so of two last
        batches at least one sees both)."""
        await self._jobs.mark_batch(message.job, progress.mark_name(message.page, message.index, message.handout))
        try:
            job = (await self._jobs.read(message.job)).job
            if not job.enumeration.done or job.is_final:
                return  # the listing's end asks for the look, and counts this batch's mark
            last_page = message.page >= job.enumeration.page - 1
            if job.enumeration.batches > MARKS_COUNTED_BY_ALL and not last_page:
                return  # a huge job: the last page's batches count (else its scheduled look ends it)
            if await self._jobs.batches_done(job) < job.enumeration.batches:
                return
            await needed(self._work).send([encode(Check(job.id))])
        except CopyOpsError as exc:
            # Its items are started; the job's scheduled look ends the job instead.
            logger.warning("job_look_deferred job=%s error=%s", message.job, exc.kind)
