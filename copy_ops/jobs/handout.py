"""A job's items started on every instance: a listed page handed out as batches on the work
queue, each batch's items started by whichever instance takes it, its mark left, and the
job told when the last batch is done.

* A batch taken twice (redelivered, or by two instances) starts nothing twice: each item
  has its derived id and start token (:mod:`copy_ops.jobs.items`).
* A batch with an item storage could not record raises, and the host delivers it again;
  its mark is left only when every item is started or recorded (a page's checkpoint moved
  on as soon as its batches were sent: the batch carries what the listing said).
* A batch is the app's only if its names lie under its job's source prefix and its handout
  is the one the checkpoint keeps for its page (:mod:`copy_ops.jobs.handouts`): any other
  is refused whole, on the work queue and on its poison queue (issue 28).
* A batch taken once the job was aborted or past its deadline starts nothing; one under
  way reads its job again at most every second (one read shared by the instance's batches
  of that job) and stops. Either way it leaves its mark once nothing more of it can start,
  so that the job's check knows it is done.
* A batch the host gave up on (the poison queue) has its items not yet recorded recorded
  as failed, ``not_started``, with the reason: the report names each one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import partial

from copy_ops.copies.ports import WorkQueue, needed
from copy_ops.core.errors import CopyOpsError, StorageUnavailable
from copy_ops.core.logtext import counts_text
from copy_ops.jobs import progress
from copy_ops.jobs.handouts import Handed, handed, mark_name
from copy_ops.jobs.item_starts import ItemStarts
from copy_ops.jobs.items import Item, ItemOutcome
from copy_ops.jobs.model import Job, PrefixSource
from copy_ops.jobs.phases import DECIDED
from copy_ops.jobs.ports import Listed
from copy_ops.jobs.records import JobLedger
from copy_ops.jobs.stops import StopLooks, stopped_for_good
from copy_ops.work.messages import BATCH, Batch, Check, encode, groups

logger = logging.getLogger(__name__)

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
        _refused(message, "outside_prefix", f"names={len(outside)}")
    return bool(outside)


def _not_handed_out(job: Job, message: Batch, *, early: Handed) -> bool:
    """Whether the batch's handout is not the one the checkpoint keeps for its page: no
    page of the job's sent it (a page writes its handout before sending its batches).
    Refused whole. ``early``: what a batch of the page being listed, which keeps none yet,
    is taken for (an instance of the version before writes it after sending)."""
    seen = handed(job.enumeration, message.page, message.handout)
    if seen is Handed.EARLY:
        seen = early
    if seen is Handed.EARLY:
        raise StorageUnavailable(
            f"batch {message.page}-{message.index} of job {job.id}: its page keeps no handout yet", code="Busy"
        )
    if seen is not Handed.OURS:
        _refused(message, "not_handed_out", f"handout={message.handout or '-'}")
    return seen is not Handed.OURS


def _refused(message: Batch, reason: str, what: str) -> None:
    at = f"page={message.page} batch={message.index}"
    logger.warning("job_batch_refused job=%s %s reason=%s %s", message.job, at, reason, what)


def batch_messages(job_id: str, page: int, listed: Sequence[Listed], sas: str | None, handout: str) -> list[str]:
    """A listed page as batch messages, each at most :data:`BATCH` items and under the size limit."""
    sized = [(item.name, item.size) for item in listed]

    def make(group: tuple[tuple[str, int], ...], index: int = 0) -> Batch:
        return Batch(job_id, page, index, tuple(n for n, _ in group), tuple(s for _, s in group), sas, handout)

    return [encode(make(group, index)) for index, group in enumerate(groups(sized, make, BATCH))]


def _stopped(job: Job, now: datetime) -> bool:
    """No more of the job's items start: it ended, its end is decided, it was aborted or
    its deadline passed."""
    return stopped_for_good(job) or progress.stop_reason(job, now) is not None


class Batches:
    """The batches of a prefix job's pages: handed out, started, poisoned."""

    def __init__(self, jobs: JobLedger, starts: ItemStarts, work: WorkQueue | None) -> None:
        self._jobs = jobs
        self._starts = starts
        self._work = work
        self.looks = StopLooks(jobs)

    async def hand_out(self, job_id: str, page: int, listed: Sequence[Listed], sas: str | None, handout: str) -> int:
        """The page's items sent to the work queue as batches of ``handout``; how many batches."""
        messages = batch_messages(job_id, page, listed, sas, handout)
        if messages:
            await needed(self._work).send(messages)
        return len(messages)

    def stopping(self, job_id: str) -> Callable[[datetime], Awaitable[bool]]:
        """Asked before each of the job's items starts: whether the job was stopped meanwhile."""
        return partial(self.looks.stopped, job_id)

    async def start(self, message: Batch, now: datetime) -> str:
        """Start a batch's items; what it did (for the log)."""
        stored = await self._jobs.read_or_none(message.job)
        job = stored.job if stored is not None else None
        if job is None or job.source is None:
            return "gone"
        if _foreign(job.source, message) or _not_handed_out(job, message, early=Handed.EARLY):
            return "refused"
        self.looks.seen(job, now)
        if _stopped(job, now):
            logger.info("job_batch_skipped job=%s page=%s batch=%s", job.id, message.page, message.index)
            await self._stopped(job, message)
            return "stopped"
        items = listed_items(job.source, message.names, message.sizes, message.sas)
        what = f"batch {message.page}-{message.index}"
        outcomes = await self._starts.start_all(job, items, now, what, self.stopping(job.id))
        if outcomes[ItemOutcome.LATE]:
            # Items it did not start (the deadline, an abort): the rest are started or
            # recorded, so nothing more of it starts, and its mark says so.
            at = f"page={message.page} batch={message.index}"
            logger.info("job_batch_cut job=%s %s %s", job.id, at, counts_text(outcomes))
            await self._done(message, stopped=True)
            return "stopped"
        await self._done(message)
        logger.info("job_batch job=%s page=%s batch=%s %s", job.id, message.page, message.index, counts_text(outcomes))
        return "batch"

    async def poisoned(self, message: Batch, now: datetime) -> str:
        """A batch the host gave up on: its items not recorded yet are recorded as failed,
        so the job ends and its report names them. Only a batch the app handed out."""
        stored = await self._jobs.read_or_none(message.job)
        job = stored.job if stored is not None else None
        if job is None or job.source is None:
            return "stopped"
        if _foreign(job.source, message) or _not_handed_out(job, message, early=Handed.FOREIGN):
            return "refused"
        if _stopped(job, now):
            await self._stopped(job, message)
            return "stopped"  # the job ends without the items not started
        items = listed_items(job.source, message.names, message.sizes, message.sas)
        # A storage fault raises: the poison queue's own trigger delivers the message again.
        outcomes = await self._starts.record_unstarted(job, items, now, POISONED)
        at = f"page={message.page} batch={message.index}"
        logger.warning("job_batch_poisoned job=%s %s %s", job.id, at, counts_text(outcomes))
        await self._done(message)
        return "poisoned"

    async def _stopped(self, job: Job, message: Batch) -> None:
        """A batch of a stopped job starts nothing: its mark, unless the job ended."""
        if job.phase not in DECIDED:
            await self._done(message, stopped=True)

    async def _done(self, message: Batch, *, stopped: bool = False) -> None:
        """The batch's mark; and, once the listing is done and this was the last batch, a
        check of the job now (marks are written before they are counted, so of two last
        batches at least one sees both)."""
        await self._jobs.mark_batch(
            message.job, mark_name(message.page, message.index, message.handout, stopped=stopped)
        )
        try:
            job = (await self._jobs.read(message.job)).job
            if not job.enumeration.done or job.is_final:
                return  # the listing's end asks for the check, and counts this batch's mark
            last_page = message.page >= job.enumeration.page - 1
            if job.enumeration.batches > MARKS_COUNTED_BY_ALL and not last_page:
                return  # a huge job: the last page's batches count (else its scheduled check ends it)
            if (await self._jobs.batches_done(job)).done < job.enumeration.batches:
                return
            await needed(self._work).send([encode(Check(job.id))])
        except CopyOpsError as exc:
            # Its items are started; the job's scheduled check ends the job instead.
            logger.warning("job_look_deferred job=%s error=%s", message.job, exc.kind)
