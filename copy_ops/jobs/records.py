"""Job records, their items as the blob index sees them, and their batches' marks.

A job is one JSON blob, ``jobs/{id}.json``, beside the operation records, written with
ETags like them and tagged ``due`` while it is not final, so the sweep finds it with
the same query. Its items are ordinary operation records, tagged with the job's id,
their state, size and error code (:func:`copy_ops.copies.records.record_tags`): a job's counts
come from the index alone, a page of up to 5,000 items per request, never from reading
its items. (Reports: :mod:`copy_ops.jobs.report`.) A job's messages go out before its
record, so a message may find none yet: :meth:`JobLedger.read_arriving` waits a moment,
then has the message delivered again while the job is young.

A job is its caller's (copy_ops.copies.owners): to another, it reads as unknown. It is tagged
with its owner (``caller``) and ``kind`` ``job``, so a caller's jobs are listed by the index
apart from its operations (tagged with a ``state``, which a job is not).

Size: a little over 250 lines: every read and query of the jobs' records and their items,
a caller's own among them, over the index's helpers here.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from copy_ops.copies.model import Operation, State
from copy_ops.copies.owners import owner_query, owner_tags, sees
from copy_ops.copies.ports import Documents, Tagged
from copy_ops.copies.records import (
    FIND_PAGE_SIZE,
    JOB_PREFIX,
    RECORD_PREFIX,
    UNKNOWN,
    Ledger,
    created_at_of,
    is_operation_id,
    record_tags,
    with_container,
)
from copy_ops.core.callers import Caller
from copy_ops.core.errors import NotFound, StorageUnavailable
from copy_ops.core.times import format_time
from copy_ops.jobs.handouts import Marks, marks_counted
from copy_ops.jobs.model import Counts, Failure, Job
from copy_ops.jobs.progress import FAILURES_SHOWN, item_prefix

# A batch of a job's listed items leaves an empty blob here when it is done: counted by a
# listing (5,000 names a request), they tell a job that every batch was taken, without a
# write to the job record per batch (one blob, which every instance would race for).
BATCH_PREFIX = "batches/"
MARK_TYPE = "application/octet-stream"
NAMES_PAGE = 5000
JOB_KIND, JOB_KIND_QUERY = {"kind": "job"}, "\"kind\" = 'job'"
# A job's messages go out before its record: one that finds no record is delivered again
# while the job is this young (its start request may still be writing it, or retried with
# its key); an older one belongs to a start that failed, and is dropped.
RECORD_WAIT = timedelta(minutes=2)
# Reads of a missing job record before its message is given back to the queue.
RECORD_PAUSES = (0.2, 0.5, 1.0)


@dataclass(frozen=True)
class StoredJob:
    job: Job
    etag: str


def job_tags(job: Job) -> dict[str, str]:
    tags = {**owner_tags(job.caller), **JOB_KIND}
    if (job.is_final and not job.announce_owed) or job.next_check_at is None:
        return tags
    return {**tags, "due": format_time(job.next_check_at)}


def _quoted(value: str) -> str:
    # Ids are digits, a-f and hyphens; states are words: nothing to escape, checked anyway.
    if "'" in value:
        raise ValueError(f"cannot query for {value!r}")
    return f"'{value}'"


class JobLedger:
    def __init__(self, documents: Documents, container: str, ledger: Ledger) -> None:
        self._documents = documents
        self._container = container
        self._ledger = ledger

    @property
    def container(self) -> str:
        """The ledger's container, where job records, marks and reports are kept."""
        return self._container

    @staticmethod
    def record_name(job_id: str) -> str:
        return f"{JOB_PREFIX}{job_id}.json"

    async def create(self, job: Job, now: datetime) -> StoredJob:
        job = dataclasses.replace(job, updated_at=now)
        name = self.record_name(job.id)
        etag = await with_container(
            self._documents,
            self._container,
            lambda: self._documents.create_document(self._container, name, job.to_json(), job_tags(job)),
        )
        return StoredJob(job, etag)

    async def save(self, job: Job, etag: str, now: datetime) -> StoredJob:
        """Replace the record if it still has ``etag``; else :class:`PreconditionFailed`."""
        job = dataclasses.replace(job, updated_at=now)
        name = self.record_name(job.id)
        return StoredJob(
            job, await self._documents.replace_document(self._container, name, job.to_json(), job_tags(job), etag)
        )

    async def read(self, job_id: str, caller: Caller | None = None) -> StoredJob:
        unknown = NotFound(f"no job {job_id!r}")
        if not is_operation_id(job_id) or job_id.count("-") != 1:
            raise unknown
        try:
            document = await self._documents.read_document(self._container, self.record_name(job_id))
        except NotFound:
            raise unknown from None
        job = Job.from_json(document.data)
        if caller is not None and not sees(caller, job.caller):
            raise unknown
        return StoredJob(job, document.etag)

    async def read_or_none(self, job_id: str, caller: Caller | None = None) -> StoredJob | None:
        try:
            return await self.read(job_id, caller)
        except NotFound:
            return None

    async def read_arriving(self, job_id: str, now: datetime, sent_at: datetime | None) -> StoredJob | None:
        """The job of a message; None if it is gone for good. A job's messages are sent
        before its record is written: a young message that finds no record is delivered
        again. Young by the time the queue took it in; the job id's time is the fallback,
        and a start retried with its key reuses an older id, so the later of the two counts."""
        try:
            return await self.read(job_id)
        except NotFound:
            pass
        if not is_operation_id(job_id):
            return None  # no job ever had that id
        created = created_at_of(job_id)
        if now - max(created, sent_at or created) >= RECORD_WAIT:
            return None
        for pause in RECORD_PAUSES:
            # Its start is most likely writing the record right now: a moment's wait spares
            # the message a redelivery, which comes only after the visibility timeout.
            await asyncio.sleep(pause)
            try:
                return await self.read(job_id)
            except NotFound:
                continue
        raise StorageUnavailable(f"job {job_id} is not recorded yet", code="JobNotRecorded")

    async def page(self, limit: int, continuation: str | None, caller: Caller) -> tuple[list[str], str | None]:
        """Job ids, newest first (ids sort so), a page at a time: an admin's all, by name; others' their own."""
        owned = owner_query(caller)
        if owned is None:
            return await self._ledger.page(limit, continuation, prefix=JOB_PREFIX)
        return await self._ledger.find_page(f"{owned} AND {JOB_KIND_QUERY}", limit, continuation, prefix=JOB_PREFIX)

    # -- items, as the index sees them -----------------------------------------------

    async def counts(self, job_id: str, ended: Operation | None = None) -> tuple[Counts, tuple[Failure, ...]]:
        """Items by state, bytes, and the first failures: from the index, a page per 5,000
        items. ``ended``: an item whose final record was just read, counted as it ended
        (the index may still show it as it was)."""
        query = f'"job" = {_quoted(job_id)} AND "state" >= \'a\' AND "bytes" >= \'0\' AND "error" >= \'a\''
        by_state: Counter[str] = Counter()
        copied = total = 0
        failures: list[Failure] = []
        async for found in self._find(query):
            item = found
            if ended is not None and _id_of(found.name) == ended.id:
                item = dataclasses.replace(found, tags={**found.tags, **record_tags(ended)})
            state = item.tags.get("state", "")
            by_state[state] += 1
            size = item.tags.get("bytes", UNKNOWN)
            if size.isdigit():
                total += int(size)
                copied += int(size) if state == State.SUCCEEDED.value else 0
            if state == State.FAILED.value and len(failures) < FAILURES_SHOWN:
                failures.append(Failure(_id_of(item.name), item.tags.get("error", UNKNOWN)))
        return Counts(dict(by_state), copied, total), tuple(failures)

    async def pending_sample(self, job_id: str, most: int) -> list[str]:
        """Up to ``most`` ids of the job's items still pending, as the index says: one request."""
        try:
            found, _ = await self._documents.find_tagged(self._container, _pending(job_id), most, None)
        except NotFound:
            return []
        return [_id_of(item.name) for item in found]

    async def pending_items(self, job_id: str) -> AsyncIterator[str]:
        """Ids of the job's items still pending, as the index says."""
        async for item in self._find(_pending(job_id)):
            yield _id_of(item.name)

    async def items_page(
        self, job_id: str, state: State | None, limit: int, continuation: str | None
    ) -> tuple[list[str], str | None]:
        """A page of the job's item ids: by name from the records, or by state from the index."""
        if state is None:
            return await self._ledger.page(limit, continuation, prefix=RECORD_PREFIX + item_prefix(job_id))
        query = f'"job" = {_quoted(job_id)} AND "state" = {_quoted(state.value)}'
        return await self._ledger.find_page(query, limit, continuation)

    async def _find(self, query: str) -> AsyncIterator[Tagged]:
        marker: str | None = None
        while True:
            try:
                found, marker = await self._documents.find_tagged(self._container, query, FIND_PAGE_SIZE, marker)
            except NotFound:
                return
            for item in found:
                if item.name.startswith(RECORD_PREFIX):
                    yield item
            if marker is None:
                return

    # -- batches ---------------------------------------------------------------------------

    async def mark_batch(self, job_id: str, mark: str) -> None:
        """A batch is done (every item of it started or recorded, or the job stopped it):
        its mark, named by :func:`copy_ops.jobs.handouts.mark_name`."""
        await self._documents.put_document(self._container, f"{BATCH_PREFIX}{job_id}/{mark}", b"", MARK_TYPE)

    async def batches_done(self, job: Job) -> Marks:
        """How many of the job's batches are done (and how many of those stopped), of the
        handouts its checkpoint counts (by their marks: a request per 5,000)."""
        marks = await self.names(f"{BATCH_PREFIX}{job.id}/")
        return marks_counted(marks, job.enumeration)

    async def names(self, prefix: str) -> list[str]:
        """The names under ``prefix``, without it."""
        names: list[str] = []
        marker: str | None = None
        while True:
            try:
                page, marker = await self._documents.list_names(self._container, prefix, NAMES_PAGE, marker)
            except NotFound:
                return names
            names += [name[len(prefix) :] for name in page]
            if marker is None:
                return names


def _pending(job_id: str) -> str:
    """The index query for the job's items still pending."""
    return f'"job" = {_quoted(job_id)} AND "state" = \'pending\''


def _id_of(name: str) -> str:
    return name[len(RECORD_PREFIX) : -len(".json")]
