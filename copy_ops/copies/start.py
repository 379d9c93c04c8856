"""Starting a copy, in an order that survives a crash at any step, and undone if refused.

* the record is written before anything starts, and holds the deadline;
* a refusal before anything started (source missing, destination exists...) is
  undone: lease released, snapshot dropped, record deleted;
* a refusal by our own copy (a retried Copy Blob whose first attempt got through) is
  adopted, never undone;
* a record that another writer changed meanwhile gets our copy merged into it.

The block engine's start (:mod:`copy_ops.copies.block_engine` plans and sends) is refused and
undone here the same way, by the same undo.

Size: about 350 lines: both engines' starts share its undo, its refusals and the retry of a
start storage did not answer; split, the two would each need a copy of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from copy_ops.copies import lifecycle, retry
from copy_ops.copies.cleanup import Cleaner, abort_ours_quietly
from copy_ops.copies.lifecycle import Timing
from copy_ops.copies.metrics import attempt_failed, operation_ended
from copy_ops.copies.model import (
    OWNER_METADATA_KEY,
    BlobRef,
    CopyRequest,
    CopyStatus,
    Engine,
    ItemClaim,
    OnAbort,
    Operation,
    Progress,
    Restore,
)
from copy_ops.copies.phases import Phase
from copy_ops.copies.ports import BlobCopies
from copy_ops.copies.records import Ledger, Stored, new_operation_id
from copy_ops.core.errors import Busy, CopyOpsError, NotFound, PreconditionFailed, StorageUnavailable
from copy_ops.core.redaction import redact, strip_query
from copy_ops.observability.telemetry import OFF, OPERATION_ID, Telemetry

if TYPE_CHECKING:
    from copy_ops.copies.block_engine import BlockEngine

logger = logging.getLogger(__name__)

# How many times a start re-reads its record after losing a race for it.
MERGE_ATTEMPTS = 5


@dataclass(frozen=True)
class StartOutcome:
    operation: Operation
    # True when an Idempotency-Key replay returned an operation started earlier.
    replayed: bool


# Asked just before a copy is sent: whether it is still wanted.
Go = Callable[[], Awaitable[bool]]


class SendWindowPassed(CopyOpsError):
    """A job item's Copy Blob was not sent: the window after its claim had passed."""


class Starter:
    def __init__(
        self,
        ledger: Ledger,
        copies: BlobCopies,
        cleaner: Cleaner,
        timing: Timing,
        telemetry: Telemetry = OFF,
        *,
        blocks: BlockEngine | None = None,
    ) -> None:
        self._ledger = ledger
        self._copies = copies
        self.cleaner = cleaner
        self.timing = timing
        self.telemetry = telemetry
        self._blocks = blocks

    async def start(self, request: CopyRequest, now: datetime, idempotency_key: str | None) -> StartOutcome:
        """Start a copy for its caller (``request.caller``), whose idempotency keys are its own."""
        operation_id = new_operation_id(now)
        if idempotency_key is not None:
            bound_id = await self._ledger.claim(
                idempotency_key, operation_id, request.fingerprint, owner=request.caller
            )
            if bound_id != operation_id:
                try:
                    return StartOutcome(await self._ledger.get(bound_id), replayed=True)
                except NotFound:
                    # The key was claimed but that start never got as far as its record
                    # (or failed and was undone): this request starts it.
                    operation_id = bound_id
        return StartOutcome(await self._start(request, operation_id, now), replayed=False)

    async def _start(self, request: CopyRequest, operation_id: str, now: datetime) -> Operation:
        with self.telemetry.span("copyops.start", **{OPERATION_ID: operation_id}):
            return await self.begin(await self.record(request, operation_id, now), request, now, keep_refused=False)

    async def record(self, request: CopyRequest, operation_id: str, now: datetime, token: str | None = None) -> Stored:
        """The write-ahead record (and, to restore on abort, the destination's snapshot first)."""
        dest, source = request.destination, request.source
        shown = strip_query(source) if isinstance(source, str) else self._copies.public_url(source)
        op = lifecycle.recorded(request, operation_id, shown, now, self.timing)
        if token is not None:
            op = dataclasses.replace(op, claim=ItemClaim(token, now))
        terms = request.terms
        if terms.on_abort is OnAbort.RESTORE and terms.overwrite and terms.engine is Engine.ASYNC:
            # Before the copy: a destination with a pending copy refuses snapshots. (The block
            # engine leaves the destination as it was when it misses: nothing to restore.)
            snapshot = await self._copies.snapshot(dest)
            restore = Restore(snapshot) if snapshot is not None else None
            op = dataclasses.replace(op, restore=restore, had_destination=snapshot is not None)
        try:
            stored = await self._ledger.create(op, now)
        except CopyOpsError:
            # Shielded: no record names this snapshot, so a cancelled drop would leak it.
            await asyncio.shield(self._drop_snapshot_quietly(op))
            raise
        logger.info("copy_recorded op=%s destination=%s/%s", op.id, dest.container, dest.blob)
        return stored

    async def begin(
        self,
        stored: Stored,
        request: CopyRequest,
        now: datetime,
        *,
        keep_refused: bool,
        send_by: float | None = None,
        go: Go | None = None,
    ) -> Operation:
        """Lease and Copy Blob for a recorded operation; a refusal undone, or kept as its failure.
        ``send_by``: a time of the monotonic clock after which Copy Blob is not sent at all
        (:class:`SendWindowPassed`; a job's item, whose claim another attempt may take over).
        ``go``: asked just before the copy is sent (a job's item: its job not stopped);
        false, nothing is sent (:class:`SendWindowPassed`, code ``Stopped``)."""
        op, dest, source = stored.op, request.destination, request.source
        if op.terms.engine is Engine.BLOCKS:
            return await self._begin_blocks(stored, request, now, keep_refused=keep_refused, send_by=send_by, go=go)
        by = started_by(request)
        try:
            await self._lease_within(request, op, send_by, go)
            metadata = {**request.terms.metadata, OWNER_METADATA_KEY: op.id}
            copy_id, status = await self._copies.start_copy(
                dest,
                source,
                metadata,
                request.terms.overwrite,
                readable_until=request.terms.deadline,
                replace_etag=request.replace_etag,
            )
        except SendWindowPassed:
            raise  # nothing was sent: the claim is left to a later attempt
        except StorageUnavailable as exc:
            # The copy may or may not have started: the record stays, and the sweep
            # settles it (it recognises our copy by the owner metadata).
            logger.warning("copy_start_uncertain op=%s", op.id)
            return await self._retry_or_raise(stored, exc, now, keep_refused=keep_refused)
        except CopyOpsError as exc:
            # A retried Copy Blob whose first attempt did reach storage is refused
            # (PendingCopyOperation, BlobAlreadyExists) by our own copy: adopt it.
            seen = await self._own_copy_on(dest, op.id)
            if seen is None:
                logger.info("copy_start_refused op=%s error=%s code=%s", op.id, exc.kind, exc.code)
                if keep_refused:
                    return await self._keep_refused(stored, exc, now)
                # Shielded: an invocation cancelled meanwhile still finishes the undo.
                await asyncio.shield(self._undo_start(op))
                raise
            copy_id, status = seen

        if request.job is not None and request.source_size is None and status is CopyStatus.SUCCESS:
            stored = Stored(dataclasses.replace(stored.op, progress=await self._progress_of(dest)), stored.etag)
        stored = await self.save_started(stored, copy_id, status, now, by)
        self.telemetry.copy_started(stored.op.state.value)
        if stored.op.is_final and stored.op.finished_at == now:
            operation_ended(self.telemetry, stored.op)  # it ended at once (or a merge ended it now)
        logger.info("copy_started op=%s copy_id=%s state=%s", op.id, copy_id, stored.op.state)
        ended, _ = await self.cleaner.run(stored, now)
        return ended

    async def _begin_blocks(
        self,
        stored: Stored,
        request: CopyRequest,
        now: datetime,
        *,
        keep_refused: bool,
        send_by: float | None,
        go: Go | None,
    ) -> Operation:
        """The block engine's start: the lease, then the plan and its sends. A refusal (the
        source unreadable, the destination there when not overwriting) wrote nothing to the
        destination: undone, or recorded as the item's failure, as Copy Blob's."""
        op = stored.op
        assert self._blocks is not None
        try:
            await self._lease_within(request, op, send_by, go)
            started = await self._blocks.launch(stored, request, now, started_by(request))
        except SendWindowPassed:
            raise
        except StorageUnavailable as exc:
            logger.warning("copy_start_uncertain op=%s", op.id)
            return await self._retry_or_raise(stored, exc, now, keep_refused=keep_refused)
        except CopyOpsError as exc:
            logger.info("copy_start_refused op=%s error=%s code=%s", op.id, exc.kind, exc.code)
            current = await self._ledger.read(op.id)
            if current.op.is_final:
                return current.op
            if keep_refused:
                return await self._keep_refused(current, exc, now)
            await asyncio.shield(self._undo_start(current.op))
            raise
        self.telemetry.copy_started(started.state.value)
        logger.info("copy_started op=%s engine=blocks state=%s", op.id, started.state)
        return started

    async def _lease_within(self, request: CopyRequest, op: Operation, send_by: float | None, go: Go | None) -> None:
        """Either engine's first steps: the source's lease, then the send window's check, then
        whether the copy is still wanted (asked last: the send follows at once)."""
        if request.terms.lease_source:
            await self._copies.acquire_infinite_lease(_own_source(request), lifecycle.lease_id_for(op.id))
        if send_by is not None and time.monotonic() > send_by:
            raise SendWindowPassed(f"operation {op.id}: too late to send its copy", code="SendWindowPassed")
        if go is not None and not await go():
            raise SendWindowPassed(f"operation {op.id}: no longer wanted; not sent", code="Stopped")

    async def _retry_or_raise(
        self, stored: Stored, fault: StorageUnavailable, now: datetime, *, keep_refused: bool
    ) -> Operation:
        """A copy's start that storage did not answer: for a single copy with attempts left and
        room, its attempt failed and the next scheduled (the caller is answered 202: it goes
        on); else the fault is raised, and the sweep settles the record. A job's item is left
        to its batch's next delivery, as before retries."""
        if keep_refused:
            raise fault
        error = retry.unanswered(fault)
        current = stored
        for _ in range(MERGE_ATTEMPTS):
            again = retry.retrying(current.op, error, now, self.timing.start_grace)
            if again is None or current.op.phase is not Phase.RECORDED:
                break  # nothing to retry by, or its start got further (the sweep settles it)
            try:
                saved = await self._ledger.save(again, current.etag, now)
            except PreconditionFailed:
                current = await self._ledger.read(stored.op.id)
                continue
            attempt_failed(self.telemetry, again)
            return saved.op
        raise fault

    async def _keep_refused(self, stored: Stored, refusal: CopyOpsError, now: datetime) -> Operation:
        """A job's item that storage refused: its failure recorded, its lease and snapshot let go.
        Lost to another writer (an abort of the job), the record is theirs to settle."""
        ended = lifecycle.refused(stored.op, f"{refusal.title}: {redact(refusal.detail)}", now, self.timing)
        try:
            saved = await self._ledger.save(ended, stored.etag, now)
        except PreconditionFailed:
            return await self._ledger.get(stored.op.id)
        operation_ended(self.telemetry, ended)
        done, _ = await self.cleaner.run(saved, now)
        return done

    async def save_started(
        self, stored: Stored, copy_id: str, status: CopyStatus, now: datetime, by: str | None = None
    ) -> Stored:
        """Record the started copy (``by``: the caller who asked). If another writer changed the
        record meanwhile (an abort request, a sweep that gave the start up), merge the copy
        into their version."""
        op, etag = lifecycle.record_copy(stored.op, copy_id, status, now, self.timing, by=by), stored.etag
        for _ in range(MERGE_ATTEMPTS):
            try:
                return await self._ledger.save(op, etag, now)
            except PreconditionFailed:
                current = await self._ledger.read(op.id)
            merge = lifecycle.merge_started(current.op, copy_id, status, now, self.timing, by=by)
            if merge is None:
                return current
            if merge.abort_copy:
                await abort_ours_quietly(self._copies, current.op.destination, current.op.id, copy_id)
            op, etag = merge.op, current.etag
        raise Busy(f"operation {op.id} is busy; the sweep settles it", code="Busy")

    async def _progress_of(self, dest: BlobRef) -> Progress | None:
        """The size of a job's item that ended at once and whose size no listing said (a
        manifest's): one read of the destination, so the job's bytes count it. Unknown if
        that read fails; the copy is not the worse for it."""
        try:
            seen = await self._copies.observe_copy(dest)
        except CopyOpsError:
            return None
        return seen.progress if seen is not None else None

    async def _own_copy_on(self, dest: BlobRef, operation_id: str) -> tuple[str, CopyStatus] | None:
        try:
            seen = await self._copies.observe_copy(dest)
        except CopyOpsError:
            return None
        if seen is None or seen.owner != operation_id or not seen.copy_id:
            return None
        logger.info("copy_adopted op=%s copy_id=%s", operation_id, seen.copy_id)
        return seen.copy_id, seen.status or CopyStatus.PENDING

    async def _undo_start(self, op: Operation) -> None:
        """Nothing started: leave nothing behind. What cannot be undone now, the sweep finishes."""
        try:
            if op.terms.lease_source and op.source_blob is not None:
                await self._copies.release_lease(op.source_blob, lifecycle.lease_id_for(op.id))
            await self._drop_snapshot_quietly(op)
            await self._ledger.delete(op.id)
        except CopyOpsError:
            logger.warning("copy_start_undo_incomplete op=%s", op.id)

    async def _drop_snapshot_quietly(self, op: Operation) -> None:
        if op.restore is None:
            return
        try:
            await self._copies.delete_blob(op.destination, snapshot=op.restore.snapshot)
        except CopyOpsError:
            logger.warning("snapshot_left_behind op=%s", op.id)


def started_by(request: CopyRequest) -> str | None:
    """Who a start's move is made by: a copy's caller, who asked for it; none for a job's
    item, which the job's batches start on the work queue, not a request of its caller."""
    return request.caller.id if request.caller is not None and request.job is None else None


def _own_source(request: CopyRequest) -> BlobRef:
    assert request.source_blob is not None
    return request.source_blob
