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
from functools import partial

from copy_ops.errors import CopyOpsError, Forbidden, InvalidRequest, NotFound, PreconditionFailed, StorageUnavailable
from copy_ops.jobs import progress
from copy_ops.jobs.model import Enumeration, Job, JobState
from copy_ops.jobs.records import JobLedger, StoredJob
from copy_ops.model import BlobRef, CopyRequest, ForeignBlob
from copy_ops.pool import Pool
from copy_ops.ports import Sources, WorkQueue
from copy_ops.redaction import redact
from copy_ops.starting import Starter
from copy_ops.work import Chunk, Page, encode

logger = logging.getLogger(__name__)

SAVE_ATTEMPTS = 10
# An item to start: its name below the prefixes, what Copy Blob reads, its size if known.
Item = tuple[str, str | BlobRef | ForeignBlob, int | None]
# A refusal to list (no such container, a SAS that does not allow it) ends the
# enumeration; a transient fault is retried by the host.
_REFUSALS = (NotFound, Forbidden, InvalidRequest)


class Enumerator:
    def __init__(
        self,
        jobs: JobLedger,
        sources: Sources,
        starter: Starter,
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

    def page(self, message: Page, now: datetime) -> str:
        """One page of a prefix job. Returns what happened, for the log."""
        try:
            stored = self._jobs.read(message.job)
        except NotFound:
            return "gone"
        job, checkpoint = stored.job, stored.job.enumeration
        if job.is_final or checkpoint.done or job.source is None:
            return "stale"
        if checkpoint.page == message.page + 1:
            # This page was done but its handler died before sending the next one's message.
            self._send(Page(job.id, checkpoint.page, message.sas))
            return "resent"
        if checkpoint.page != message.page:
            return "stale"
        if job.abort_requested_at is not None:
            self._save(stored, lambda e: progress.stopped(e, "the job was aborted", None, now), now)
            return "stopped"
        try:
            listed, marker = self._sources.list_source(job.source, message.sas, checkpoint.marker, self._page_size)
        except _REFUSALS as exc:
            reason = f"the source could not be listed: {exc.title}: {redact(exc.detail)}"
            logger.warning("job_enumeration_refused job=%s page=%s status=%s", job.id, message.page, exc.status)
            self._save(stored, lambda e: progress.stopped(e, reason, None, now), now)
            return "stopped"
        source = job.source
        items: list[Item] = [
            (progress.relative_name(source.prefix, item.name), source.item(item.name, message.sas), item.size)
            for item in listed
        ]
        outcomes = self._start_all(job, items, now, f"page {message.page}")
        mover = secrets.token_hex(8)

        def move(e: Enumeration) -> Enumeration | None:
            if e.page == message.page:
                return progress.page_done(e, len(listed), marker, now, mover)
            # Moved already: by this handler (a write whose answer was lost), or by another.
            moved_here.append(e.page == message.page + 1 and e.mover == mover)
            return None

        moved_here: list[bool] = []
        moved = self._save(stored, move, now) or any(moved_here)
        if moved and marker is not None:
            self._send(Page(job.id, message.page + 1, message.sas))
        logger.info("job_page job=%s page=%s listed=%s %s", job.id, message.page, len(listed), _counts(outcomes))
        return "page"

    def chunk(self, message: Chunk, now: datetime) -> str:
        """One chunk of a manifest job, in any order beside the others."""
        try:
            stored = self._jobs.read(message.job)
        except NotFound:
            return "gone"
        job = stored.job
        if job.is_final or job.enumeration.done or message.index in job.enumeration.chunks_done:
            return "stale"
        if job.abort_requested_at is not None:
            return "stopped"  # the job's check ends the enumeration
        items: list[Item] = [(entry.name, entry.source, None) for entry in message.entries]
        outcomes = self._start_all(job, items, now, f"chunk {message.index}")
        self._save(stored, lambda e: progress.chunk_done(e, message.index, now), now)
        logger.info("job_chunk job=%s chunk=%s %s", job.id, message.index, _counts(outcomes))
        return "chunk"

    def _start_all(self, job: Job, items: Sequence[Item], now: datetime, what: str) -> Counter[str]:
        pool = Pool(self._concurrency, "start")
        for relative, source, size in items:
            request = item_request(job, relative, source, size)
            operation_id = progress.item_id(job.id, request.destination.blob)
            pool.submit(partial(self._start_one, request, operation_id, now))
        outcomes = pool.finish()
        unrecorded = outcomes["deferred"] + outcomes["error"]
        if unrecorded:
            # The checkpoint stays: the host delivers this message again, and the items
            # recorded meanwhile are skipped.
            raise StorageUnavailable(f"{unrecorded} items of {what} of job {job.id} could not be recorded")
        return outcomes

    def _start_one(self, request: CopyRequest, operation_id: str, now: datetime) -> str:
        try:
            return self._starter.start_item(request, operation_id, now)
        except CopyOpsError as exc:
            logger.warning("job_item_deferred op=%s status=%s code=%s", operation_id, exc.status, exc.code)
            return "deferred"
        except Exception:
            logger.exception("job_item_error op=%s", operation_id)
            return "error"

    def _save(self, stored: StoredJob, change: Callable[[Enumeration], Enumeration | None], now: datetime) -> bool:
        """Apply ``change`` to the checkpoint, re-reading after a lost race; False when
        the change no longer applies (``change`` returns None) or the job ended."""
        for _ in range(SAVE_ATTEMPTS):
            job = stored.job
            enumeration = None if job.is_final else change(job.enumeration)
            if enumeration is None:
                return False
            state = JobState.RUNNING if enumeration.done else job.state
            try:
                self._jobs.save(dataclasses.replace(job, enumeration=enumeration, state=state), stored.etag, now)
                return True
            except PreconditionFailed:
                stored = self._jobs.read(job.id)
        raise StorageUnavailable(f"job {stored.job.id} is busy; the page is retried", code="Busy")

    def _send(self, message: Page) -> None:
        if self._work is None:
            raise StorageUnavailable("jobs need the work queue", code="NoWorkQueue")
        self._work.send([encode(message)])


def item_request(job: Job, relative: str, source: str | BlobRef | ForeignBlob, size: int | None) -> CopyRequest:
    """The start request of one item: the job's options, its own source and destination."""
    return CopyRequest(
        source_url=source if isinstance(source, str) else None,
        source_blob=source if isinstance(source, BlobRef) else None,
        source_foreign=source if isinstance(source, ForeignBlob) else None,
        destination=BlobRef(job.destination_container, progress.destination_name(job, relative)),
        deadline=job.deadline,
        metadata=job.metadata,
        overwrite=job.overwrite,
        lease_source=job.lease_source,
        on_abort=job.on_abort,
        fingerprint=job.fingerprint,
        job=job.id,
        source_size=size,
    )


def _counts(outcomes: Counter[str]) -> str:
    return " ".join(f"{name}={count}" for name, count in sorted(outcomes.items()))
