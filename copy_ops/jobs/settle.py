"""Looking after a job: the sweep finds it due (or an abort asks for it now), and

1. an enumeration that made no progress for long is resumed from its checkpoint, or,
   when what it needs is gone (the caller's SAS, a manifest chunk), ended, the job
   being the items it did start;
2. an abort stops the enumeration and aborts every item still pending, inline or,
   beyond the fan-out threshold, in batches on the work queue;
3. the items are counted from the blob index; when every item found has ended, the
   report is written and then the final state, once (the record's ETag decides).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial

from copy_ops.aio.bounded import Bounded, bounded_map
from copy_ops.copies.model import Operation
from copy_ops.copies.ports import Announcer, Documents, WorkQueue
from copy_ops.copies.records import RECORD_PREFIX, Ledger
from copy_ops.copies.settle import DUE_TOLERANCE, Settled, Settler
from copy_ops.core.errors import Conflict, CopyOpsError, NotFound
from copy_ops.core.logtext import counts_text
from copy_ops.core.settings import Settings
from copy_ops.jobs import progress
from copy_ops.jobs.events import job_event
from copy_ops.jobs.model import Job
from copy_ops.jobs.records import JobLedger, StoredJob
from copy_ops.observability.telemetry import OFF, Telemetry
from copy_ops.work import fanout
from copy_ops.work.messages import SETTLE_BATCH, Abort, Page, batches, encode

logger = logging.getLogger(__name__)


class Checked(StrEnum):
    """What one look at a job did (the sweep counts these, prefixed ``job_``)."""

    VANISHED = "vanished"
    NOT_DUE = "not_due"
    WAITING = "waiting"
    ANNOUNCED = "announced"
    ANNOUNCE_DEFERRED = "announce_deferred"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    RACED = "raced"
    DEFERRED = "deferred"
    ERROR = "error"


# A job's event that could not be sent is tried again by the sweep after this long.
ANNOUNCE_RETRY = timedelta(seconds=15)
# Records listed per request while writing a report.
REPORT_PAGE = 5000


class JobChecker:
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
        self._documents = documents
        self._settler = settler
        self._work = work
        self._settings = settings

    async def check(self, job_id: str, now: datetime, *, asked: bool = False, item: str | None = None) -> Checked:
        """Look after one job; returns what happened. ``asked``: a look asked for now (a
        message), whenever the next scheduled one is; ``item``: an item that just ended,
        counted as its record says (the index may lag behind it). :class:`PreconditionFailed`
        if the record changed meanwhile (the next check goes on from there)."""
        try:
            stored = await self._jobs.read(job_id)
        except NotFound:
            return Checked.VANISHED
        job = stored.job
        if not asked and job.next_check_at is not None and job.next_check_at > now + DUE_TOLERANCE:
            return Checked.NOT_DUE
        if job.is_final:
            return await self._announce(stored, now) if job.announce_owed else Checked.NOT_DUE
        reason = progress.stop_reason(job, now)
        if reason is not None and not job.enumeration.done:
            # Aborted, or past its deadline: the job ends with the items it has, whatever its
            # enumeration was doing (a page failing again and again holds nothing up).
            job = dataclasses.replace(job, enumeration=progress.stopped_by_check(job.enumeration, reason, now))
            logger.info("job_enumeration_ended job=%s reason=%s", job.id, reason)
        if progress.stalled(job, now):
            job = await self._unstall(job, now)
        if job.abort_requested_at is not None:
            await self._abort_items(job.id, now)
        last = await self._read(item) if item is not None else None
        counts, failures = await self._jobs.counts(job.id, last if last is not None and last.is_final else None)
        job = dataclasses.replace(job, counts=counts, failures=failures, checks=job.checks + 1)
        end = progress.ending(job, counts, now)
        if end is None:
            waiting = dataclasses.replace(
                job, state=progress.running_state(job), next_check_at=progress.next_check(job, now)
            )
            await self._jobs.save(waiting, stored.etag, now)
            return Checked.WAITING
        report = await self._write_report(job)
        owed = self._announcer is not None
        ended = dataclasses.replace(
            job, state=end, finished_at=now, report=report, next_check_at=now if owed else None, announce_owed=owed
        )
        saved = await self._jobs.save(ended, stored.etag, now)
        self._telemetry.job_ended(end.value)
        logger.info("job_finished job=%s state=%s %s", job.id, end, _counts(ended))
        if owed:
            await self._announce(saved, now)
        return Checked(end.value)

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
        await self._jobs.save(dataclasses.replace(job, announce_owed=False, next_check_at=None), stored.etag, now)
        return Checked.ANNOUNCED

    async def request_abort(self, stored: StoredJob, now: datetime) -> StoredJob:
        """Recorded first, so a crash still ends in the abort; looked after now (a message
        to the work queue), or at the next sweep if that message cannot be sent."""
        job = dataclasses.replace(stored.job, abort_requested_at=now, next_check_at=now)
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
        counted, _ = await self._jobs.counts(job.id)
        logger.error("job_enumeration_stopped job=%s reason=%s", job.id, reason)
        return dataclasses.replace(job, enumeration=progress.stopped(job.enumeration, reason, counted.items, now))

    async def _abort_items(self, job_id: str, now: datetime) -> None:
        pending = [operation_id async for operation_id in self._jobs.pending_items(job_id)]
        if not pending:
            return
        if self._work is None or len(pending) <= self._settings.fanout_threshold:
            async with Bounded(self._settings.sweep_concurrency) as aborting:
                for operation_id in pending:
                    await aborting.submit(partial(abort_one, self._settler, operation_id, now))
            logger.info("job_items_aborted job=%s %s", job_id, counts_text(aborting.outcomes))
            return
        registry = fanout.InFlight(self._documents, self._settings.ledger_container)
        in_flight = await registry.load(now)
        handed = [operation_id for operation_id in pending if operation_id not in in_flight]
        if handed:
            await self._work.send(list(batches(handed, Abort, SETTLE_BATCH)))
            registry.add(handed, now + fanout.LEASE)
            await registry.save(now)
        logger.info("job_items_handed_out job=%s count=%s", job_id, len(handed))

    async def _write_report(self, job: Job) -> str:
        """One JSON line per item, in id order: read from every item's record, once."""
        ids: list[str] = []
        continuation: str | None = None
        while True:
            page, continuation = await self._ledger.page(
                REPORT_PAGE, continuation, prefix=RECORD_PREFIX + progress.item_prefix(job.id)
            )
            ids += page
            if continuation is None:
                break
        records = await bounded_map(self._read, ids, self._settings.sweep_concurrency)
        lines = [json.dumps(report_line(op), separators=(",", ":")) for op in records if op is not None]
        return await self._jobs.write_report(job.id, ("\n".join(lines) + "\n" if lines else "").encode())

    async def _read(self, operation_id: str) -> Operation | None:
        try:
            return await self._ledger.get(operation_id)
        except NotFound:
            return None


async def abort_one(settler: Settler, operation_id: str, now: datetime) -> Settled:
    """Abort one item on request; never raises (one item must not stop the others)."""
    try:
        return Settled.of((await settler.abort(operation_id, now)).state)
    except Conflict:
        return Settled.ENDED
    except NotFound:
        return Settled.VANISHED
    except CopyOpsError as exc:
        logger.warning("job_item_abort_deferred op=%s error=%s code=%s", operation_id, exc.kind, exc.code)
        return Settled.DEFERRED


def report_line(op: Operation) -> dict[str, object]:
    """An item as the report shows it: never a secret (records hold none)."""
    size = op.progress.bytes_total if op.progress is not None else op.source_size
    return {
        "id": op.id,
        "source": op.source,
        "destination": op.destination.as_dict(),
        "state": op.state.value,
        "error": op.error.code.value if op.error is not None else None,
        "message": op.error.message if op.error is not None else None,
        "abort_reason": op.abort_reason.value if op.abort_reason is not None else None,
        "bytes": size,
    }


def _counts(job: Job) -> str:
    return counts_text(job.counts.as_dict())
