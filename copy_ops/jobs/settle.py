"""A job's check (:class:`JobSettler`): one job settled, not its items' copies (those are
:mod:`copy_ops.copies.settle` and :mod:`copy_ops.copies.block_settle`). The sweep finds the
job due (or an abort, an item's end or the listing's end asks for it now), and

1. an enumeration that made no progress for long is resumed from its checkpoint, or,
   when what it needs is gone (the caller's SAS, a manifest chunk), ended, the job
   being the items it did start;
2. an abort (or the deadline) stops the enumeration and the batches not taken yet (a
   batch under way stops within a second: :mod:`copy_ops.jobs.stops`), and an abort
   aborts every item still pending, inline or, beyond the fan-out threshold, in batches on
   the work queue, at every check; for a minute after an abort the job checks itself
   every 2 s (a check message), so that the items a batch started just before it stopped
   are aborted within seconds;
3. while batches of listed items are out (their marks fewer than the batches), the job
   waits without counting its items (a stopped job listed whole: until every batch is
   marked, done or stopped, and the index caught up; else a minute); then the items are
   counted from the blob index; when every item found has ended, the report is written
   (by this check, or in parts on the work queue: :mod:`copy_ops.jobs.report`) and then
   the final state, once (the record's ETag decides).

Size: about 280 lines. One check reads the job record once and writes it once (its ETag
decides between two checks); its steps each change that one record on the way, and read
best in the order they run.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from enum import StrEnum

from copy_ops.copies.model import Operation
from copy_ops.copies.ports import Announcer, Documents, WorkQueue
from copy_ops.copies.records import Ledger
from copy_ops.copies.settle import DUE_TOLERANCE, Settler
from copy_ops.core.errors import CopyOpsError, NotFound
from copy_ops.core.logtext import counts_text
from copy_ops.core.settings import Settings
from copy_ops.jobs import moves, progress
from copy_ops.jobs.aborts import ItemAborts
from copy_ops.jobs.events import job_event
from copy_ops.jobs.model import Job, JobState
from copy_ops.jobs.phases import JobPhase
from copy_ops.jobs.records import JobLedger, StoredJob
from copy_ops.jobs.report import Reports, report_digits, report_parts
from copy_ops.observability.telemetry import OFF, Telemetry
from copy_ops.work.messages import Check, Page, encode

logger = logging.getLogger(__name__)


class Checked(StrEnum):
    """What one check of a job did (the sweep counts these, prefixed ``job_``)."""

    VANISHED = "vanished"
    NOT_DUE = "not_due"
    WAITING = "waiting"
    ANNOUNCED = "announced"
    ANNOUNCE_DEFERRED = "announce_deferred"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    REPORTING = "reporting"
    RACED = "raced"
    DEFERRED = "deferred"
    ERROR = "error"


# A job's event that could not be sent is tried again by the sweep after this long.
ANNOUNCE_RETRY = timedelta(seconds=15)
# A report's parts not written while no part was written for this long are sent again (a
# message lost, or poisoned): a part takes seconds.
REPORT_RESEND = timedelta(minutes=2)


class JobSettler:
    def __init__(
        self,
        jobs: JobLedger,
        ledger: Ledger,
        documents: Documents,
        settler: Settler,
        *,
        work: WorkQueue | None,
        settings: Settings,
        announcer: Announcer | None = None,
        telemetry: Telemetry = OFF,
    ) -> None:
        self._announcer = announcer
        self._telemetry = telemetry
        self._jobs = jobs
        self._ledger = ledger
        self._work = work
        self._settings = settings
        self._reports = Reports(documents, jobs, ledger, work, settings.sweep_concurrency)
        self._aborts = ItemAborts(jobs, documents, settler, work, settings)

    async def check(self, job_id: str, now: datetime, *, asked: bool = False, item: str | None = None) -> Checked:
        """Check one job; returns what happened. ``asked``: a check asked for now (a
        message), whenever the next scheduled one is; ``item``: an item that just ended,
        counted as its record says (the index may lag behind it). :class:`PreconditionFailed`
        if the record changed meanwhile (the next check goes on from there)."""
        try:
            stored = await self._jobs.read(job_id)
        except NotFound:
            return Checked.VANISHED
        job = stored.job
        due = job.next_check_at is None or job.next_check_at <= now + DUE_TOLERANCE
        if not asked and not due:
            return Checked.NOT_DUE
        if job.is_final:
            return await self._announce(stored, now) if job.announce_owed else Checked.NOT_DUE
        if job.phase is JobPhase.REPORTING:
            return await self._close(stored, now)
        reason = progress.stop_reason(job, now)
        outstanding, cut = await self._outstanding(job)
        if (
            reason is not None
            and job.enumeration.settle_after is None
            and (not job.enumeration.done or outstanding or cut)
        ):
            # Aborted, or past its deadline: the job ends with the items it has, whatever its
            # enumeration was doing (a page failing again and again holds nothing up) and
            # whatever batches are still out or were stopped (they start nothing now, and
            # leave their marks).
            stopped = progress.stopped_reason(reason, job.enumeration.done)
            job = moves.stopped_by_check(job, stopped, now)
            logger.info("job_enumeration_ended job=%s reason=%s", job.id, stopped)
        soon = None if outstanding else progress.settling_soon(job.enumeration, now)
        if soon is not None:
            # Every batch it handed out is done or stopped: it ends once the index caught up.
            job = moves.batches_done(job, soon, now)
            logger.info("job_batches_stopped job=%s", job.id)
        if progress.stalled(job, now):
            job = await self._unstall(job, now)
            outstanding, _ = await self._outstanding(job)  # its listing may have ended here
        if job.abort_requested_at is not None:
            await self._aborts.abort_pending(job.id, now)
        settle_after = job.enumeration.settle_after
        if (outstanding and settle_after is None) or (settle_after is not None and now < settle_after):
            # Batches are still out, or may be: no item count can end the job yet, so none is
            # taken. A stopped job waits for them IN_FLIGHT at most (a batch lost for good
            # leaves no mark).
            waiting = dataclasses.replace(job, checks=job.checks + 1)
            return await self._wait(stored, waiting, now, due=due, soon=soon is not None)
        last = await self._read(item) if item is not None else None
        counts, failures = await self._jobs.counts(job.id, last if last is not None and last.is_final else None)
        job = dataclasses.replace(job, counts=counts, failures=failures, checks=job.checks + 1)
        end = progress.ending(job, counts, now)
        if end is None:
            return await self._wait(stored, job, now, due=due)
        digits = report_digits(counts.items, self._settings.job_report_part)
        if digits:
            return await self._report_in_parts(stored, job, end, digits, now)
        _, retried = await self._reports.write(job.id, "")
        job = dataclasses.replace(job, counts=dataclasses.replace(counts, retried=retried))
        return await self._end(stored, job, end, self._reports.name(job.id), now)

    async def _outstanding(self, job: Job) -> tuple[int, int]:
        """Batches of listed items not done yet, and how many were stopped: one listing of
        their marks, once the listing is done (before, the job cannot end anyway), and after
        its check stopped a job listed whole (each batch, stopped too, leaves its mark)."""
        enumeration = job.enumeration
        if not enumeration.done or not enumeration.batches:
            return 0, 0
        if enumeration.settle_after is not None and not progress.listed_whole(enumeration):
            return 0, 0
        marks = await self._jobs.batches_done(job)
        return max(0, enumeration.batches - marks.done), marks.stopped

    async def _wait(
        self, stored: StoredJob, job: Job, now: datetime, *, due: bool = True, soon: bool = False
    ) -> Checked:
        """The job saved to be checked again. While an abort is recent, every ABORT_LOOK: a
        check that was due sends the next one's message (one chain: a check asked for off
        that schedule leaves the next check where it is); and soon (``soon``) when the job
        ends once the index caught up."""
        when = progress.next_check(job, now)
        quick = progress.aborting(job, now)
        if quick and not due and stored.job.next_check_at is not None:
            when = min(when, stored.job.next_check_at)
        await self._jobs.save(
            dataclasses.replace(job, state=progress.running_state(job), next_check_at=when), stored.etag, now
        )
        if (quick and due) or soon:
            await self._look_again(job.id)
        return Checked.WAITING

    async def _look_again(self, job_id: str) -> None:
        """A check of the job in ABORT_LOOK (if the message cannot be sent, the sweep's)."""
        if self._work is None:
            return
        try:
            await self._work.send([encode(Check(job_id))], delay_seconds=int(progress.ABORT_LOOK.total_seconds()))
        except CopyOpsError as exc:
            logger.warning("job_look_deferred job=%s error=%s", job_id, exc.kind)

    async def _end(self, stored: StoredJob, job: Job, end: JobState, report: str, now: datetime) -> Checked:
        """The final state, once its report is written whole."""
        owed = self._announcer is not None
        ended = moves.finished(job, end, report, now, owed=owed)
        saved = await self._jobs.save(ended, stored.etag, now)
        self._telemetry.job_ended(end.value)
        logger.info("job_finished job=%s state=%s %s", job.id, end, counts_text(ended.counts.as_dict()))
        if owed:
            await self._announce(saved, now)
        return Checked(end.value)

    async def _report_in_parts(self, stored: StoredJob, job: Job, end: JobState, digits: int, now: datetime) -> Checked:
        """The end decided and recorded first, then each part's message sent: the job's
        checks send again what is not written after a while."""
        closing = moves.reporting(job, end, digits, now, now + REPORT_RESEND)
        await self._jobs.save(closing, stored.etag, now)
        await self._reports.send(job.id, report_parts(digits))
        logger.info("job_report_parts job=%s state=%s parts=%s", job.id, end, progress.part_count(digits))
        return Checked.REPORTING

    async def _close(self, stored: StoredJob, now: datetime) -> Checked:
        """A job whose end is decided: final once every part of its report is written."""
        job = stored.job
        assert job.closing is not None
        written = await self._reports.written(job.id)
        missing = [part for part in report_parts(job.report_digits) if part not in written]
        job_folder = self._reports.folder(job.id)
        if not missing:
            counts = dataclasses.replace(job.counts, retried=await self._reports.retried(job.id))
            return await self._end(stored, dataclasses.replace(job, counts=counts), job.closing, job_folder, now)
        if len(written) > job.report_written:
            # Parts are being written: the rest are most likely queued, not lost.
            job = dataclasses.replace(job, report_written=len(written), report_sent_at=now)
        elif job.report_sent_at is None or now - job.report_sent_at >= REPORT_RESEND:
            await self._reports.send(job.id, missing)
            logger.warning("job_report_parts_resent job=%s missing=%s", job.id, len(missing))
            job = dataclasses.replace(job, report_sent_at=now)
        await self._jobs.save(dataclasses.replace(job, next_check_at=now + REPORT_RESEND), stored.etag, now)
        return Checked.REPORTING

    async def _announce(self, stored: StoredJob, now: datetime) -> Checked:
        """Send the final state's event, then record it sent. If sending fails, the job
        stays due and the next sweep's check sends it again (at least once)."""
        job = stored.job
        if self._announcer is not None:
            event = job_event(job)
            try:
                await self._announcer.announce([event])
            except CopyOpsError as exc:
                logger.warning("job_announce_deferred job=%s error=%s code=%s", job.id, exc.kind, exc.code)
                retry = dataclasses.replace(job, next_check_at=now + ANNOUNCE_RETRY)
                await self._jobs.save(retry, stored.etag, now)
                return Checked.ANNOUNCE_DEFERRED
            logger.info("job_announced job=%s event=%s type=%s", job.id, event.id, event.type)
            await self._jobs.save(moves.announced(job, now), stored.etag, now)
            return Checked.ANNOUNCED
        # Events were turned off since it ended: the event it owed is dropped (no line in
        # its history: nothing was sent).
        await self._jobs.save(dataclasses.replace(job, announce_owed=False, next_check_at=None), stored.etag, now)
        return Checked.ANNOUNCED

    async def request_abort(self, stored: StoredJob, now: datetime, by: str | None = None) -> StoredJob:
        """Recorded first (``by``: the caller who asked), so a crash still ends in the abort;
        checked now (a message to the work queue), or at the next sweep if that message cannot be sent."""
        job = moves.abort_requested(stored.job, now, by)
        saved = await self._jobs.save(job, stored.etag, now)
        logger.info("job_abort_requested job=%s", job.id)
        return saved

    async def _unstall(self, job: Job, now: datetime) -> Job:
        source = job.source
        if source is not None and not source.needs_sas and self._work is not None:
            await self._work.send([encode(Page(job.id, job.enumeration.page))])
            logger.warning("job_enumeration_resumed job=%s page=%s", job.id, job.enumeration.page)
            return dataclasses.replace(job, enumeration=dataclasses.replace(job.enumeration, progressed_at=now))
        if source is None:
            missing = sorted(set(range(job.enumeration.chunks)) - set(job.enumeration.chunks_done))
            reason = (
                f"manifest chunks {missing} could not be started (their messages were lost); "
                "their items are not part of the job"
            )
        else:
            reason = (
                f"the listing stopped at page {job.enumeration.page} and cannot go on without the caller's SAS, "
                "which copy-ops does not keep"
            )
        # A listing's items are counted as handed out; a lost chunk's were never known.
        counted = (await self._jobs.counts(job.id))[0].items if source is None else None
        logger.error("job_enumeration_stopped job=%s reason=%s", job.id, reason)
        return moves.checkpoint_moved(job, progress.stopped(job.enumeration, reason, counted, now), now)

    async def _read(self, operation_id: str) -> Operation | None:
        try:
            return await self._ledger.get(operation_id)
        except NotFound:
            return None
