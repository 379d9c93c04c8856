"""A job's report: one JSON line per item (source without SAS, destination, state, error,
bytes), written when every item has ended, before the job's final state.

A job of up to ``COPY_JOB_REPORT_PART`` items has one report, written by the check that ends it.
A larger one is written in parts, one work message each, on any instance: part ``p`` holds
the items whose id's hash begins with the hex digits ``p`` (ids are the job's id and a hash
of the item's name, so the parts are even and each is one listing by prefix), with as few
digits as keep a part near ``COPY_JOB_REPORT_PART`` items (5,000). No invocation's time grows with the
job: a part reads its own items only. The API serves the parts in order, each linking the next.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from copy_ops.aio.bounded import bounded_map
from copy_ops.copies.model import Operation
from copy_ops.copies.ports import Documents, WorkQueue, needed
from copy_ops.copies.records import RECORD_PREFIX, Ledger
from copy_ops.core.errors import Conflict, CopyOpsError, NotFound
from copy_ops.jobs.model import Job
from copy_ops.jobs.phases import JobPhase
from copy_ops.jobs.progress import item_prefix, part_count
from copy_ops.jobs.records import JobLedger
from copy_ops.work.messages import Check, ReportPart, encode

logger = logging.getLogger(__name__)

REPORT_PREFIX = "reports/"
REPORT_TYPE = "application/x-ndjson"

# Items a report part holds, about (COPY_JOB_REPORT_PART; the hash spreads them evenly): a
# part reads each of its items' records once, a few seconds' work at the app's concurrency.
# Records listed per request while writing a part.
LISTING_PAGE = 5000
# Parts go up to 16 ** 4 (65,536), a job of some 300 million items (docs/jobs.md, "Limits").
MOST_DIGITS = 4


def report_digits(items: int, per_part: int) -> int:
    """Hex digits of a part's name for a job of ``items``, parts of about ``per_part``: 0 (one report) up to 4."""
    digits = 0
    while items > per_part * 16**digits and digits < MOST_DIGITS:
        digits += 1
    return digits


def report_parts(digits: int) -> list[str]:
    """Every part's name, in order (``[""]``: the one report)."""
    return [format(index, f"0{digits}x") for index in range(16**digits)] if digits else [""]


def part_of(digits: int, index: int) -> str | None:
    """The name of part ``index`` of a report in ``16 ** digits`` parts, or None."""
    if not 0 <= index < part_count(digits):
        return None
    return format(index, f"0{digits}x") if digits else ""


@dataclass(frozen=True)
class ReportPage:
    """A part of a job's report, and the index of the next one (None after the last)."""

    lines: bytes
    next: int | None


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
        # Its attempts: the last one's number, of how many it was allowed, and each failed
        # attempt's cause and error (a copy that succeeded on its second try lists its first).
        "attempt": op.attempt,
        "attempts": op.terms.retry_attempts,
        "failed_attempts": [
            {"number": a.number, "cause": a.cause.value, "error": a.error.code.value, "message": a.error.message}
            for a in op.failed_attempts
        ],
    }


class Reports:
    """Where a job's report is kept (``reports/{id}.jsonl``, or its parts under
    ``reports/{id}/``), how it is written, and how it is read back a part at a time."""

    def __init__(
        self, documents: Documents, jobs: JobLedger, ledger: Ledger, work: WorkQueue | None, concurrency: int
    ) -> None:
        self._documents = documents
        self._jobs = jobs
        self._ledger = ledger
        self._work = work
        self._concurrency = concurrency

    def name(self, job_id: str, part: str = "") -> str:
        """The report's blob: the whole (``part`` empty) or one part; the job record keeps
        the whole's name, or the parts' folder."""
        return f"{REPORT_PREFIX}{job_id}/{part}.jsonl" if part else f"{REPORT_PREFIX}{job_id}.jsonl"

    @staticmethod
    def folder(job_id: str) -> str:
        return f"{REPORT_PREFIX}{job_id}/"

    async def write(self, job_id: str, part: str) -> tuple[int, int]:
        """Write ``part`` of the job's report (``""``: the whole of it); its lines, and how
        many of its items needed more than one attempt."""
        ids: list[str] = []
        continuation: str | None = None
        prefix = RECORD_PREFIX + item_prefix(job_id) + part
        while True:
            page, continuation = await self._ledger.page(LISTING_PAGE, continuation, prefix=prefix)
            ids += page
            if continuation is None:
                break
        records = await bounded_map(self._read, sorted(ids), self._concurrency)
        lines = [json.dumps(report_line(op), separators=(",", ":")) for op in records if op is not None]
        data = ("\n".join(lines) + "\n" if lines else "").encode()
        await self._documents.put_document(self._jobs.container, self.name(job_id, part), data, REPORT_TYPE)
        return len(lines), sum(1 for op in records if op is not None and op.failed_attempts)

    @staticmethod
    def _retried_folder(job_id: str) -> str:
        # Beside the parts' folder, not in it: the parts written are counted by its names.
        return f"{REPORT_PREFIX}{job_id}.retried/"

    async def retried(self, job_id: str) -> int:
        """Items of a report in parts that needed more than one attempt: the sum its parts
        left in their marks' names (one listing, as the parts' own)."""
        names = await self._jobs.names(self._retried_folder(job_id))
        return sum(int(name.rpartition("-")[2]) for name in names)

    async def written(self, job_id: str) -> set[str]:
        """The parts of the job's report written so far."""
        return {name[: -len(".jsonl")] for name in await self._jobs.names(self.folder(job_id))}

    async def send(self, job_id: str, parts: list[str]) -> None:
        """The parts' messages; a failure is logged, and a later check of the job sends them again."""
        try:
            await needed(self._work).send([encode(ReportPart(job_id, part)) for part in parts])
        except CopyOpsError as exc:
            logger.warning("job_report_deferred job=%s error=%s", job_id, exc.kind)

    async def write_part(self, message: ReportPart) -> str:
        """A part's message: the part written; once it was the last, a check of the job now."""
        stored = await self._jobs.read_or_none(message.job)
        job = stored.job if stored is not None else None
        if job is None or job.phase is not JobPhase.REPORTING or len(message.part) != job.report_digits:
            return "stale"  # ended already (a redelivery), or no report in parts
        # Written again if sent again (the same lines: its items have ended), which the job's
        # check does only when no part was written for a while.
        lines, retried = await self.write(job.id, message.part)
        if retried:
            # An empty blob named by its count: a part written again writes the same name.
            name = f"{self._retried_folder(job.id)}{message.part}-{retried}"
            await self._documents.put_document(self._jobs.container, name, b"", REPORT_TYPE)
        logger.info("job_report_part job=%s part=%s lines=%s retried=%s", job.id, message.part, lines, retried)
        try:
            # Listed after the write: of two last parts, the later one sees both.
            if len(await self.written(job.id)) >= part_count(job.report_digits):
                await needed(self._work).send([encode(Check(job.id))])
        except CopyOpsError as exc:
            logger.warning("job_look_deferred job=%s error=%s", job.id, exc.kind)  # its scheduled check ends it
        return "report"

    async def read(self, job: Job, index: int) -> ReportPage:
        """Part ``index`` of an ended job's report (a job of up to 5,000 items has one part)."""
        if not job.is_final or job.report is None:
            raise Conflict(f"job {job.id} is {job.state}: its report is written when it ends", code="JobNotFinished")
        part = part_of(job.report_digits, index)
        if part is None:
            count = part_count(job.report_digits)
            raise NotFound(f"job {job.id}'s report has {count} parts, numbered from 0: there is no part {index}")
        following = index + 1 if part_of(job.report_digits, index + 1) is not None else None
        document = await self._documents.read_document(self._jobs.container, self.name(job.id, part))
        return ReportPage(document.data, following)

    async def _read(self, operation_id: str) -> Operation | None:
        try:
            return await self._ledger.get(operation_id)
        except NotFound:
            return None
