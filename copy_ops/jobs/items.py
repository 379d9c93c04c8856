"""Starting a job's items: each under its derived id, at most once, whoever delivers its batch.

* An item is recorded before its copy starts (If-None-Match), carrying a token of the
  attempt that claimed it and when: a delivery that finds it recorded starts nothing,
  unless the claim is old and no copy was recorded, which is an attempt that died between
  its record and its Copy Blob. Then the item is taken over (a conditional write of a new
  claim, so two takers cannot both win) and started, or its copy adopted if it did start.
* An attempt sends its Copy Blob within half the claim or not at all, so a claim counted
  as abandoned can no longer be acted on by its first holder.
* A refusal by storage is recorded as the item's failure (``start_refused``), and an item
  whose name copy-ops will not address as ``unsafe_name`` without asking storage anything:
  either way the batch goes on and the report says why.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from copy_ops.copies import lifecycle
from copy_ops.copies.engines import engine_for
from copy_ops.copies.metrics import operation_ended
from copy_ops.copies.model import BlobRef, CopyRequest, CopyStatus, ErrorCode, ForeignBlob
from copy_ops.copies.ports import BlobCopies
from copy_ops.copies.records import Ledger, Stored
from copy_ops.copies.start import Go, SendWindowPassed, Starter
from copy_ops.core.errors import Conflict, CopyOpsError, NotFound, PreconditionFailed
from copy_ops.core.redaction import redact, strip_query
from copy_ops.jobs import progress
from copy_ops.jobs.model import Job
from copy_ops.jobs.reruns import replacing_leftover

logger = logging.getLogger(__name__)


def send_window(claim: timedelta) -> timedelta:
    """How soon after its claim an item's Copy Blob goes out, or not at all (the claim is
    then left to a later attempt, which counts it abandoned once the whole claim is over)."""
    return claim / 2


class ItemOutcome(StrEnum):
    """What became of an item a batch meant to start (counted in the batch's log line)."""

    STARTED = "started"
    # Recorded as failed: storage refused it, or copy-ops will not address its name.
    REFUSED = "refused"
    # Started or ended by an earlier attempt: nothing to do.
    EXISTS = "exists"
    # Claimed moments ago by an attempt that may be starting it now: the batch comes back.
    HELD = "held"
    # Recorded, its Copy Blob's outcome unknown: the batch comes back, and the claim's
    # next holder reads the destination before starting anything.
    UNCERTAIN = "uncertain"
    # Not recorded (a storage fault, or a fault of ours): the batch comes back.
    DEFERRED = "deferred"
    ERROR = "error"
    # Its batch's clock passed the deadline (or the job was stopped): not started.
    LATE = "late"

    @property
    def settled(self) -> bool:
        """Started or ended, or never to be: its batch (or chunk) may be done without it."""
        return self in (ItemOutcome.STARTED, ItemOutcome.REFUSED, ItemOutcome.EXISTS, ItemOutcome.LATE)


class ItemStarter:
    def __init__(
        self, starter: Starter, ledger: Ledger, copies: BlobCopies, claim: timedelta = progress.ITEM_CLAIM
    ) -> None:
        self._starter = starter
        self._ledger = ledger
        self._copies = copies
        # How long an attempt holds an item it recorded (COPY_JOB_ITEM_CLAIM_SECONDS).
        self._claim = claim

    async def start_item(
        self,
        request: CopyRequest,
        operation_id: str,
        now: datetime,
        go: Go | None = None,
        lineage: tuple[str, ...] = (),
    ) -> ItemOutcome:
        """Start one item of a job under its derived id, at most once. A refusal is recorded
        as the item's failure (``start_refused``), not undone. Returns what happened:
        ``started``, ``refused``, ``exists`` (started or ended by an earlier attempt),
        ``held`` (another attempt claimed it moments ago and may be starting it now) or
        ``uncertain`` (recorded, its Copy Blob's outcome unknown); a storage fault raises.

        An item recorded by an attempt that died before its Copy Blob (its claim is old,
        no copy id) is taken over: started now, or adopted if its copy did start after all.
        ``go``: asked just before its copy is sent (its job not stopped meanwhile); false,
        nothing is sent (``late``: the job's checks end the record, pending and copy-less).
        ``lineage``: the jobs this job retries failed items of (an ended item's leftover of
        theirs on the destination is replaced: :func:`copy_ops.jobs.reruns.replacing_leftover`)."""
        token = secrets.token_hex(8)
        began = time.monotonic()
        try:
            stored = await self._starter.record(request, operation_id, now, token)
        except Conflict as refusal:
            found = await self._recorded(operation_id, token, now)
            if found is None:
                # Not recorded: the refusal was the destination's, before the record (its
                # restore snapshot, refused while another copy is pending there).
                return await self.record_failed(request, operation_id, now, ErrorCode.START_REFUSED, _said(refusal))
            if isinstance(found, ItemOutcome):
                return found
            stored = found
        try:
            if lineage:
                request = await replacing_leftover(self._copies, request, lineage)
            # Checked just before Copy Blob goes out (after the lease, which may be slow too).
            op = await self._starter.begin(
                stored,
                request,
                now,
                keep_refused=True,
                send_by=began + send_window(self._claim).total_seconds(),
                go=go,
            )
        except SendWindowPassed as passed:
            if passed.code == "Stopped":
                logger.info("job_item_stopped op=%s", operation_id)
                return ItemOutcome.LATE
            # Too late to send: a later attempt may count this claim as abandoned already.
            logger.warning("job_item_start_late op=%s", operation_id)
            return ItemOutcome.HELD
        except CopyOpsError:
            return ItemOutcome.UNCERTAIN  # recorded: a later delivery or the sweep settles it
        refused = op.error is not None and op.error.code is ErrorCode.START_REFUSED
        return ItemOutcome.REFUSED if refused else ItemOutcome.STARTED

    async def _recorded(self, operation_id: str, token: str, now: datetime) -> Stored | ItemOutcome | None:
        """The item is recorded: by this very attempt (its answer lost, the retry refused),
        by an attempt still at work, by one that got as far as its copy, or by one that died
        before it. The record to start from, or what happened; None if it is not recorded."""
        try:
            current = await self._ledger.read(operation_id)
        except NotFound:
            return None
        op = current.op
        if op.claim is not None and op.claim.start_token == token and not op.started and not op.is_final:
            return current
        claim = progress.item_claim(op, now, self._claim)
        if claim is not progress.Claim.ABANDONED:
            return ItemOutcome.EXISTS if claim is progress.Claim.SETTLED else ItemOutcome.HELD
        try:
            seen = await self._copies.observe_copy(op.destination)
        except CopyOpsError:
            return ItemOutcome.HELD  # not knowing whether its copy started, start nothing yet
        if seen is not None and seen.owner == op.id and seen.copy_id:
            # The attempt that died did start the copy: adopt it, start nothing.
            logger.info("copy_adopted op=%s copy_id=%s", op.id, seen.copy_id)
            status = seen.status or CopyStatus.PENDING
            await self._starter.cleaner.run(await self._starter.save_started(current, seen.copy_id, status, now), now)
            return ItemOutcome.STARTED
        try:
            taken = await self._ledger.save(progress.claimed(op, token, now), current.etag, now)
        except PreconditionFailed:
            return ItemOutcome.HELD  # another attempt took it over first
        logger.info("job_item_taken_over op=%s", operation_id)
        return taken

    async def record_unaddressed(
        self, request: CopyRequest, operation_id: str, source: str | None, why: str, now: datetime
    ) -> ItemOutcome:
        """A job's item whose name copy-ops will not address: recorded as failed
        (``unsafe_name``) under its derived id, without a request to storage for the blob
        itself, so the batch goes on and the report says why. ``source``: the source as shown."""
        return await self.record_failed(request, operation_id, now, ErrorCode.UNSAFE_NAME, why, source=source)

    async def record_failed(
        self,
        request: CopyRequest,
        operation_id: str,
        now: datetime,
        code: ErrorCode,
        why: str,
        *,
        source: str | None = None,
    ) -> ItemOutcome:
        """The item recorded in its failed state at once: nothing of it was taken (no
        lease, no snapshot, no copy), so it owes nothing but its event."""
        shown = source if source is not None else shown_url_of(self._copies, request.source)
        op = lifecycle.recorded(request, operation_id, shown, now, self._starter.timing)
        ended = lifecycle.failed_before_start(op, code, why, now, self._starter.timing)
        try:
            stored = await self._ledger.create(ended, now)
        except Conflict:
            return ItemOutcome.EXISTS
        logger.info("job_item_failed_unstarted op=%s code=%s", operation_id, code)
        operation_ended(self._starter.telemetry, ended)
        await self._starter.cleaner.run(stored, now)
        return ItemOutcome.REFUSED


@dataclass(frozen=True)
class Item:
    """An item to start: its name below the prefixes, what Copy Blob reads, its size if
    known; the source as shown (no query) and why copy-ops will not address it, if so."""

    relative: str
    source: str | BlobRef | ForeignBlob
    size: int | None
    shown: str | None = None
    unsafe: str | None = None


def item_request(job: Job, relative: str, source: str | BlobRef | ForeignBlob, size: int | None) -> CopyRequest:
    """The start request of one item: the job's terms, its own source and destination, on the
    job's engine (auto: Copy Blob within the account, the block engine from elsewhere)."""
    return CopyRequest(
        source_url=source if isinstance(source, str) else None,
        source_blob=source if isinstance(source, BlobRef) else None,
        source_foreign=source if isinstance(source, ForeignBlob) else None,
        destination=BlobRef(job.destination_container, progress.destination_name(job, relative)),
        terms=engine_for(job.terms, isinstance(source, BlobRef)),
        fingerprint=job.fingerprint,
        job=job.id,
        source_size=size,
        caller=job.caller,
    )


def shown_source(source: str | BlobRef | ForeignBlob) -> str:
    """A source as a record may show it when it is not to be addressed: never a query."""
    if isinstance(source, str):
        return strip_query(source)
    account = f"{source.account}/" if isinstance(source, ForeignBlob) else ""
    return f"{account}{source.container}/{source.blob}"


def shown_url_of(copies: BlobCopies, source: str | BlobRef | ForeignBlob) -> str:
    """The source as a record shows it: a URL without its query."""
    if isinstance(source, str):
        return strip_query(source)
    try:
        return copies.public_url(source)
    except CopyOpsError:
        return shown_source(source)


def _said(refusal: CopyOpsError) -> str:
    return f"{refusal.title}: {redact(refusal.detail)}"
