"""The jobs' service: start, read, list, abort, report (a retry: :attr:`JobService.reruns`);
and the work messages of jobs. Domain objects in and out (:mod:`copy_ops.jobs.model`): the
adapters parse and shape."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from copy_ops.aio.races import retried
from copy_ops.copies.model import ListQuery, Operation
from copy_ops.copies.owners import by_of, owner_of
from copy_ops.copies.ports import Announcer, WorkQueue, needed
from copy_ops.copies.read import read_page
from copy_ops.copies.records import Ledger, new_operation_id
from copy_ops.copies.settle import Settler
from copy_ops.copies.start import Starter
from copy_ops.core.callers import KEY_CALLER, Caller
from copy_ops.core.errors import Conflict, CopyOpsError, NotFound
from copy_ops.core.settings import Settings
from copy_ops.jobs import progress
from copy_ops.jobs.aborts import ItemAborts
from copy_ops.jobs.chunks import ChunkDigests
from copy_ops.jobs.handout import Batches
from copy_ops.jobs.item_starts import ItemStarts
from copy_ops.jobs.items import ItemStarter
from copy_ops.jobs.listing import Enumerator, Paged
from copy_ops.jobs.model import Enumeration, Job, JobOutcome, JobRequest, JobState
from copy_ops.jobs.phases import DECIDED
from copy_ops.jobs.ports import JobStorage
from copy_ops.jobs.records import JobLedger
from copy_ops.jobs.report import ReportPage, Reports
from copy_ops.jobs.reruns import Reruns
from copy_ops.jobs.settle import Checked, JobSettler
from copy_ops.observability.telemetry import JOB_ID, OFF, Telemetry
from copy_ops.work.messages import CHUNK, Abort, Batch, Check, Chunk, Page, ReportPart, encode, groups

logger = logging.getLogger(__name__)

IDEMPOTENCY_SCOPE = "jobs/"
CHECK_ATTEMPTS = 3
# How many times an abort reads the job again after losing a race for its record.
ABORT_ATTEMPTS = 10


@dataclass(frozen=True)
class JobPage:
    items: list[Job]
    continuation: str | None


@dataclass(frozen=True)
class ItemPage:
    items: list[Operation]
    continuation: str | None


class JobService:
    def __init__(
        self,
        settings: Settings,
        storage: JobStorage,
        work: WorkQueue | None,
        *,
        ledger: Ledger,
        starter: Starter,
        settler: Settler,
        announcer: Announcer | None = None,
        telemetry: Telemetry = OFF,
    ) -> None:
        self._telemetry = telemetry
        self._settings = settings
        self._work = work
        self._ledger = ledger
        self._settler = settler
        self.records = JobLedger(storage, settings.ledger_container, ledger)
        self._job_settler = JobSettler(
            self.records,
            ledger,
            storage,
            settler,
            work=work,
            settings=settings,
            announcer=announcer,
            telemetry=telemetry,
        )
        self._aborts = ItemAborts(self.records, storage, settler, work, settings)
        claim = timedelta(seconds=settings.job_item_claim_seconds)
        starts = ItemStarts(ItemStarter(starter, ledger, storage, claim), settings.sweep_concurrency)
        self._batches = Batches(self.records, starts, work)
        self._reports = Reports(storage, self.records, ledger, work, settings.sweep_concurrency)
        self._chunks = ChunkDigests(storage, settings.ledger_container)
        # A job's failed items run again as a new job (POST /api/jobs/{id}/retry).
        self.reruns = Reruns(self.records, ledger, settings, self.start)
        self._enumerator = Enumerator(
            self.records, storage, starts, self._batches, work, chunks=self._chunks, page=settings.job_page_size
        )

    # -- the API --------------------------------------------------------------------

    # ``caller``: who asks (a key's holder by default); another's job is answered as unknown.

    async def start(
        self, request: JobRequest, now: datetime, idempotency_key: str | None = None, *, caller: Caller = KEY_CALLER
    ) -> JobOutcome:
        job_id, owner = new_operation_id(now), owner_of(caller)
        if idempotency_key is not None:
            bound = await self._ledger.claim(
                idempotency_key, job_id, request.fingerprint, IDEMPOTENCY_SCOPE, owner=owner
            )
            if bound != job_id:
                try:
                    return JobOutcome((await self.records.read(bound)).job, replayed=True)
                except NotFound:
                    job_id = bound  # claimed, but that start never got as far as its record
        chunks = list(groups(request.manifest, lambda group: Chunk(job_id, 10**9, group), CHUNK))
        job = Job(
            id=job_id,
            state=JobState.ENUMERATING,
            source=request.source,
            manifest_size=len(request.manifest),
            destination_container=request.destination_container,
            destination_prefix=request.destination_prefix,
            terms=request.terms,
            created_at=now,
            fingerprint=request.fingerprint,
            caller=owner,
            lineage=request.lineage,
            enumeration=Enumeration(items=len(request.manifest), chunks=len(chunks), progressed_at=now),
            next_check_at=now + progress.FIRST_CHECK,
        )
        if request.source is not None:
            messages = [encode(Page(job_id, 0, request.sas))]
        else:
            sent = [Chunk(job_id, index, group) for index, group in enumerate(chunks)]
            await self._chunks.keep(job_id, sent)  # before they go: only these are taken
            messages = [encode(chunk) for chunk in sent]
        # The messages first, then the record: a job exists only once its work is handed
        # out, so nothing is ever undone, and a replay (the same key) returns only a job that
        # stays. A message may meet no record yet: it is delivered again (Enumerator).
        await needed(self._work).send(messages)
        try:
            job = (await self.records.create(job, now)).job
        except Conflict:
            # A request with the same key, at the same time, recorded it first: the same job.
            return JobOutcome((await self.records.read(job_id)).job, replayed=True)
        logger.info(
            "job_started job=%s kind=%s messages=%s", job_id, "prefix" if request.source else "manifest", len(messages)
        )
        return JobOutcome(job, replayed=False)

    async def get(self, job_id: str, now: datetime, *, caller: Caller = KEY_CALLER) -> Job:
        """The job with its counts as the index has them now (a final job: as it ended)."""
        job = (await self.records.read(job_id, caller)).job
        if job.is_final:
            return job
        counts, failures = await self.records.counts(job_id)
        return dataclasses.replace(job, counts=counts, failures=failures)

    async def list(self, limit: int, continuation: str | None, *, caller: Caller = KEY_CALLER) -> JobPage:
        ids, token = await self.records.page(limit, continuation, caller)
        found = [await self.records.read_or_none(job_id, caller) for job_id in ids]  # gone: deleted since listed
        return JobPage([stored.job for stored in found if stored is not None], token)

    async def items(self, job_id: str, query: ListQuery, *, caller: Caller = KEY_CALLER) -> ItemPage:
        await self.records.read(job_id, caller)  # 404 for a job that is not there, or another's

        async def fetch(limit: int, continuation: str | None) -> tuple[list[str], str | None]:
            return await self.records.items_page(job_id, query.state, limit, continuation)

        items, token = await read_page(self._ledger, fetch, query, self._settings.sweep_concurrency, caller)
        return ItemPage(items, token)

    async def abort(self, job_id: str, now: datetime, *, caller: Caller = KEY_CALLER) -> Job:
        """Stop the enumeration and abort every pending item; idempotent. :class:`Conflict`
        for a job that ended otherwise."""
        job = await self._request_abort(job_id, now, caller)
        if job.is_final:
            return job
        try:
            await needed(self._work).send([encode(Check(job_id))])
        except CopyOpsError:
            logger.warning("job_abort_deferred job=%s", job_id)  # the next sweep does it
        return job

    async def _request_abort(self, job_id: str, now: datetime, caller: Caller) -> Job:
        """The abort recorded (or found recorded, or the job aborted already). A write that
        lost the record to another writer (a page's checkpoint, a sweep's check, another
        abort) reads it again: an abort never answers 412 for a race it did not cause."""

        async def attempt() -> Job:
            stored = await self.records.read(job_id, caller)
            job = stored.job
            if job.phase in DECIDED:
                if (job.closing or job.state) is JobState.ABORTED:
                    return job
                ended = job.closing or job.state
                raise Conflict(f"job {job_id} already ended as {ended}", code="AlreadyFinished")
            if job.abort_requested_at is not None:
                return job
            return (await self._job_settler.request_abort(stored, now, by_of(caller))).job

        return await retried(attempt, ABORT_ATTEMPTS, f"job {job_id} is busy; try again")

    async def report(self, job_id: str, index: int = 0, *, caller: Caller = KEY_CALLER) -> ReportPage:
        """Part ``index`` of an ended job's report (:class:`Conflict` before it ends)."""
        return await self._reports.read((await self.records.read(job_id, caller)).job, index)

    # -- the work -------------------------------------------------------------------

    async def check(self, job_id: str, now: datetime, *, asked: bool = False, item: str | None = None) -> Checked:
        """Check a job (``asked``: now, by a message; see :meth:`JobSettler.check`); a
        check that lost the record to another writer (a page moving the checkpoint) tries
        again, and after a few tries leaves it to the next sweep."""
        return await retried(
            lambda: self._job_settler.check(job_id, now, asked=asked, item=item),
            CHECK_ATTEMPTS,
            "",
            otherwise=lambda: Checked.RACED,
        )

    async def page(self, message: Page, now: datetime, sent_at: datetime | None = None) -> Paged:
        with self._telemetry.span("copyops.job.page", **{JOB_ID: message.job}):
            return await self._enumerator.page(message, now, sent_at)

    async def chunk(self, message: Chunk, now: datetime, sent_at: datetime | None = None) -> Paged:
        return await self._enumerator.chunk(message, now, sent_at)

    async def batch(self, message: Batch, now: datetime) -> str:
        with self._telemetry.span("copyops.job.batch", **{JOB_ID: message.job}):
            return await self._batches.start(message, now)

    async def poisoned(self, message: Batch | Chunk, now: datetime) -> str:
        """A batch or manifest chunk the host gave up on: its items recorded as not started."""
        if isinstance(message, Chunk):
            return await self._enumerator.chunk_poisoned(message, now)
        return await self._batches.poisoned(message, now)

    async def report_part(self, message: ReportPart, now: datetime) -> str:
        return await self._reports.write_part(message)

    async def abort_batch(self, message: Abort, now: datetime) -> Counter[str]:
        """A job's items handed out by its abort: only items of that job, once it was aborted."""
        return await self._aborts.abort_batch(message, now)
