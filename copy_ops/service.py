"""The copy lifecycle against storage: start, read, abort, list, and settling one operation.

Decisions come from :mod:`copy_ops.lifecycle`; this module carries them out in an
order that survives a crash at any step:

* the record is written before anything starts, and holds the deadline;
* a final state is recorded (with the ETag read) before any cleanup that changes
  the destination, so only the writer that won the record goes on to clean up;
* cleanup steps are idempotent and stay on the record until done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from copy_ops import lifecycle
from copy_ops.errors import (
    Conflict,
    CopyOpsError,
    FieldError,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    StorageUnavailable,
)
from copy_ops.ledger import Ledger, new_operation_id
from copy_ops.lifecycle import Action, Decision
from copy_ops.model import (
    CLEANUP_ORDER,
    OWNER_METADATA_KEY,
    BlobRef,
    Cleanup,
    CopyObservation,
    CopyRequest,
    OnAbort,
    Operation,
    State,
)
from copy_ops.redaction import strip_query
from copy_ops.settings import Settings
from copy_ops.storage import BlobStorage, lease_id_for
from copy_ops.validation import parse_copy_request
from copy_ops.views import operation_view

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX = 200
# How many times a requested abort re-reads the record after losing a race for it.
ABORT_ATTEMPTS = 5


@dataclass(frozen=True)
class StartOutcome:
    operation: Operation
    # True when an Idempotency-Key replay returned an operation started earlier.
    replayed: bool


@dataclass(frozen=True)
class OperationPage:
    items: list[Operation]
    continuation: str | None


class CopyService:
    def __init__(self, settings: Settings, storage: BlobStorage) -> None:
        self.settings = settings
        self.storage = storage
        self.ledger = Ledger(storage, settings.ledger_container)
        self._grace = timedelta(seconds=settings.start_grace_seconds)
        self._first_check = timedelta(seconds=settings.first_check_seconds)
        self._longest_check = timedelta(seconds=settings.max_check_interval_seconds)

    # -- start -------------------------------------------------------------------

    def start(self, body: Any, now: datetime, idempotency_key: str | None = None) -> StartOutcome:
        request = parse_copy_request(body, self.settings, now)
        operation_id = new_operation_id(now)
        if idempotency_key is not None:
            _check_idempotency_key(idempotency_key)
            bound_id = self.ledger.claim(idempotency_key, operation_id, request.fingerprint)
            if bound_id != operation_id:
                try:
                    return StartOutcome(self.ledger.get(bound_id), replayed=True)
                except NotFound:
                    # The key was claimed but that start never got as far as its record
                    # (or failed and was undone): this request starts it.
                    operation_id = bound_id
        return StartOutcome(self._start(request, operation_id, now), replayed=False)

    def _start(self, request: CopyRequest, operation_id: str, now: datetime) -> Operation:
        dest = request.destination
        snapshot: str | None = None
        had_destination: bool | None = None if request.overwrite else False
        if request.on_abort is OnAbort.RESTORE and request.overwrite:
            # Before the copy: a destination with a pending copy refuses snapshots.
            snapshot = self.storage.snapshot(dest)
            had_destination = snapshot is not None
        op = Operation(
            id=operation_id,
            state=State.PENDING,
            source=strip_query(request.source_url) if request.source_url else self.storage.public_url(_source(request)),
            source_blob=request.source_blob,
            destination=dest,
            deadline=request.deadline,
            created_at=now,
            updated_at=now,
            on_abort=request.on_abort,
            metadata=request.metadata,
            lease_source=request.lease_source,
            snapshot=snapshot,
            had_destination=had_destination,
            # If this request dies before the copy id is recorded, the sweep looks
            # after the start grace (never later than the deadline).
            next_check_at=min(request.deadline, now + self._grace),
            fingerprint=request.fingerprint,
        )
        try:
            self.ledger.create(op)
        except CopyOpsError:
            self._drop_snapshot_quietly(op)
            raise
        logger.info("copy_recorded op=%s destination=%s/%s", op.id, dest.container, dest.blob)

        source: str | BlobRef = request.source_url or _source(request)
        try:
            if request.lease_source:
                self.storage.acquire_infinite_lease(_source(request), lease_id_for(op.id))
            copy_id, status = self.storage.start_copy(
                dest, source, {**request.metadata, OWNER_METADATA_KEY: op.id}, request.overwrite
            )
        except StorageUnavailable:
            # The copy may or may not have started: the record stays, and the sweep
            # settles it (it recognises our copy by the owner metadata).
            logger.warning("copy_start_uncertain op=%s", op.id)
            raise
        except CopyOpsError as exc:
            # A retried Copy Blob whose first attempt did reach storage is refused
            # (PendingCopyOperation, BlobAlreadyExists) by our own copy: adopt it.
            seen = self._own_copy_on(dest, op.id)
            if seen is None:
                logger.info("copy_start_refused op=%s status=%s code=%s", op.id, exc.status, exc.code)
                self._undo_start(op)
                raise
            copy_id, status = seen

        self._record_copy(op, copy_id, status, now)
        op = self._save_started(op, copy_id, status, now)
        logger.info("copy_started op=%s copy_id=%s state=%s", op.id, copy_id, op.state)
        self.run_cleanup(op, now)
        return op

    def _record_copy(self, op: Operation, copy_id: str, status: str, now: datetime) -> None:
        """Put the started copy on a pending record: its id, and its end if it ended at once."""
        op.copy_id = copy_id
        op.updated_at = now
        if status == "success":
            lifecycle.finish(op, State.SUCCEEDED, now, self._grace)
        elif status == "failed":
            error = {"code": "copy_failed", "message": "the copy failed"}
            lifecycle.finish(op, State.FAILED, now, self._grace, error=error)
        else:
            op.next_check_at = lifecycle.next_check(op, now, self._first_check, self._longest_check)

    def _save_started(self, op: Operation, copy_id: str, status: str, now: datetime) -> Operation:
        """Record the started copy. If another writer changed the record meanwhile (an abort
        request, a sweep that gave the start up), merge the copy into their version."""
        for _ in range(ABORT_ATTEMPTS):
            try:
                self.ledger.save(op)
                return op
            except PreconditionFailed:
                op = self.ledger.get(op.id)
            if not self._merge_started(op, copy_id, status, now):
                return op
        raise StorageUnavailable(f"operation {op.id} is busy; the sweep settles it", code="Busy")

    def _merge_started(self, current: Operation, copy_id: str, status: str, now: datetime) -> bool:
        """Bring our started copy into ``current``; True when it changed and must be saved."""
        if current.copy_id not in (None, copy_id):
            return False  # not ours to touch: the sweep settles it
        if not current.is_final:
            if current.copy_id is None:
                self._record_copy(current, copy_id, status, now)
                return True
            return False
        if current.copy_id is None:
            # It ended before our copy started (given up, or aborted on request), but our
            # copy runs: stop it, it is ours, and clean up after it as after any other.
            if status == "pending":
                self._abort_ours_quietly(current.destination, current.id, copy_id)
            current.copy_id = copy_id
            owed = lifecycle.cleanup_for(current, current.state, now, self._grace)
            current.cleanup = [task for task in CLEANUP_ORDER if task in {*current.cleanup, *owed}]
        elif current.lease_source and Cleanup.RELEASE_SOURCE_LEASE not in current.cleanup:
            # Its cleanup may have released the lease before this start took it.
            current.cleanup.append(Cleanup.RELEASE_SOURCE_LEASE)
        else:
            return False
        if Cleanup.CHECK_LATE_START in current.cleanup:
            current.cleanup.remove(Cleanup.CHECK_LATE_START)  # this is the late start, handled
        current.next_check_at = now
        current.updated_at = now
        return True

    def _abort_ours_quietly(self, dest: BlobRef, operation_id: str, copy_id: str) -> None:
        try:
            self.storage.abort_copy(dest, copy_id)
            logger.info("copy_late_start_aborted op=%s copy_id=%s", operation_id, copy_id)
        except CopyOpsError as exc:
            # Ended meanwhile (NoPendingCopyOperation) or not reachable: the cleanup
            # and the sweep's checks take it from here.
            logger.warning("copy_late_start_abort_failed op=%s status=%s code=%s", operation_id, exc.status, exc.code)

    def _own_copy_on(self, dest: BlobRef, operation_id: str) -> tuple[str, str] | None:
        try:
            seen = self.storage.observe_copy(dest)
        except CopyOpsError:
            return None
        if seen is None or seen.owner != operation_id or not seen.copy_id:
            return None
        logger.info("copy_adopted op=%s copy_id=%s", operation_id, seen.copy_id)
        return seen.copy_id, seen.status or "pending"

    def _undo_start(self, op: Operation) -> None:
        """Nothing started: leave nothing behind. What cannot be undone now, the sweep finishes."""
        try:
            if op.lease_source and op.source_blob is not None:
                self.storage.release_lease(op.source_blob, lease_id_for(op.id))
            self._drop_snapshot_quietly(op)
            self.ledger.delete(op.id)
        except CopyOpsError:
            logger.warning("copy_start_undo_incomplete op=%s", op.id)

    def _drop_snapshot_quietly(self, op: Operation) -> None:
        if op.snapshot is None:
            return
        try:
            self.storage.delete_blob(op.destination, snapshot=op.snapshot)
        except CopyOpsError:
            logger.warning("snapshot_left_behind op=%s", op.id)

    # -- read --------------------------------------------------------------------

    def get(self, operation_id: str, now: datetime) -> Operation:
        """The record, with live progress; a copy seen finished is recorded as such."""
        op = self.ledger.get(operation_id)
        if op.is_final or op.copy_id is None:
            return op
        seen = self.storage.observe_copy(op.destination)
        if seen is not None and seen.copy_id == op.copy_id and seen.progress is not None:
            op.progress = seen.progress
        decision = lifecycle.decide(op, seen, now, self._grace)
        if decision.action is Action.FINISH:
            try:
                self._finish_and_clean(op, decision, now)
            except PreconditionFailed:
                return self.ledger.get(operation_id)
        return op

    def list(self, state: State | None, limit: int, continuation: str | None) -> OperationPage:
        """Newest first. With ``state``, the page holds only operations in that state."""
        ids, token = self.ledger.page(limit, continuation)
        items = []
        for operation_id in ids:
            try:
                op = self.ledger.get(operation_id)
            except NotFound:
                continue
            if state is None or op.state is state:
                items.append(op)
        return OperationPage(items, token)

    # -- abort -------------------------------------------------------------------

    def abort(self, operation_id: str, now: datetime) -> Operation:
        """Abort on request. Idempotent for an aborted operation; 409 for one finished otherwise."""
        for _ in range(ABORT_ATTEMPTS):
            op = self.ledger.get(operation_id)
            if op.is_final:
                return self._aborted_or_conflict(op)
            try:
                if op.abort_requested_at is None:
                    # Recorded first, so a crash here still ends in an abort (by the sweep),
                    # and a sweep racing us aborts for the right reason.
                    op.abort_requested_at = now
                    op.next_check_at = now
                    op.updated_at = now
                    self.ledger.save(op)
                    logger.info("copy_abort_requested op=%s", op.id)
                self.settle(op, now)
            except PreconditionFailed:
                continue
            return self._aborted_or_conflict(op)
        raise StorageUnavailable(f"operation {operation_id} is busy; try again", code="Busy")

    def _aborted_or_conflict(self, op: Operation) -> Operation:
        if op.state is State.ABORTED:
            return op
        raise Conflict(
            f"operation {op.id} already ended as {op.state}", code="AlreadyFinished", operation=self.view(op)
        )

    def view(self, op: Operation) -> dict[str, Any]:
        return operation_view(op, self.storage.public_url(op.destination))

    # -- settling (the sweep's work on one operation) ----------------------------

    def process_due(self, operation_id: str, now: datetime) -> str:
        """Do what is due for one operation; returns an outcome label for the sweep summary."""
        try:
            op = self.ledger.get(operation_id)
        except NotFound:
            return "vanished"
        # The tag index can lag: trust the record, not the index.
        if not op.needs_sweep or (op.next_check_at is not None and op.next_check_at > now + timedelta(seconds=1)):
            return "not_due"
        if op.is_final:
            return "cleaned" if self.run_cleanup(op, now) else "cleanup_pending"
        return self.settle(op, now)

    def settle(self, op: Operation, now: datetime) -> str:
        """Look at a pending operation's copy and act: wait, abort, or record how it ended."""
        decision = lifecycle.abort_at_once(op, now)
        if decision is None:
            seen = self.storage.observe_copy(op.destination)
            decision = lifecycle.decide(op, seen, now, self._grace)
            if decision.adopt_copy_id is not None:
                op.copy_id = decision.adopt_copy_id
                logger.info("copy_adopted op=%s copy_id=%s", op.id, op.copy_id)
            if seen is not None and seen.copy_id == op.copy_id and seen.progress is not None:
                op.progress = seen.progress
        if decision.action is Action.WAIT:
            op.checks += 1
            op.next_check_at = lifecycle.next_check(op, now, self._first_check, self._longest_check)
            op.updated_at = now
            self.ledger.save(op)
            return "waiting"
        if decision.action is Action.ABORT:
            decision = self._abort_copy(op, now, decision)
        self._finish_and_clean(op, decision, now)
        return decision.state.value

    def _abort_copy(self, op: Operation, now: datetime, abort: Decision) -> Decision:
        """Carry out an abort decision; the decision on how the operation ended."""
        assert op.copy_id is not None
        try:
            # Abort Copy carries our copy id: Azure refuses it for anyone else's copy.
            self.storage.abort_copy(op.destination, op.copy_id)
            logger.info("copy_aborted op=%s copy_id=%s reason=%s", op.id, op.copy_id, abort.abort_reason)
            return Decision(Action.FINISH, State.ABORTED, abort.abort_reason)
        except NotFound:
            decision = lifecycle.destination_gone()
        except Conflict as exc:
            if exc.code == "CopyIdMismatch":
                decision = lifecycle.superseded()
            elif exc.code == "NoPendingCopyOperation":
                # It already ended (a normal race, or no look came first): read how.
                decision = lifecycle.decide(op, self.storage.observe_copy(op.destination), now, self._grace)
            else:
                raise
        if decision.action is not Action.FINISH:
            raise StorageUnavailable("the copy is neither pending nor finished yet", code="CopyStateUnsettled")
        return decision

    def _finish_and_clean(self, op: Operation, ending: Decision, now: datetime) -> None:
        lifecycle.finish(op, ending.state, now, self._grace, abort_reason=ending.abort_reason, error=ending.error)
        # The final state is recorded before any cleanup touches the destination:
        # if another writer got there first, this raises and we touch nothing.
        self.ledger.save(op)
        logger.info(
            "copy_finished op=%s state=%s reason=%s error=%s",
            op.id,
            op.state,
            op.abort_reason,
            op.error["code"] if op.error else None,
        )
        self.run_cleanup(op, now)

    # -- cleanup -----------------------------------------------------------------

    def run_cleanup(self, op: Operation, now: datetime) -> bool:
        """Do the outstanding cleanup; what fails stays on the record for the next sweep.

        Returns True when nothing is left to do.
        """
        if not op.cleanup:
            return True
        remaining: list[Cleanup] = []
        tasks = list(op.cleanup)
        while tasks:
            task = tasks.pop(0)
            if task is Cleanup.DROP_SNAPSHOT and Cleanup.RESTORE_DESTINATION in remaining:
                remaining.append(task)  # the restore still reads from the snapshot
                continue
            if task is Cleanup.CHECK_LATE_START and now < lifecycle.late_start_check_at(op, self._grace):
                remaining.append(task)  # the start may still be running
                continue
            try:
                done = self._cleanup_step(op, task, now)
            except CopyOpsError as exc:
                logger.warning("cleanup_deferred op=%s task=%s status=%s code=%s", op.id, task, exc.status, exc.code)
                done = False
            if not done:
                remaining.append(task)
            elif task is Cleanup.CHECK_LATE_START:
                # The start may have taken the lease after it was released, or begun a copy:
                # what ending it owes (with the copy id, if one was found) comes next.
                owed = lifecycle.cleanup_for(op, op.state, now, self._grace)
                tasks = [t for t in CLEANUP_ORDER if t in {*tasks, *owed} and t is not Cleanup.CHECK_LATE_START]
        op.cleanup = remaining
        op.next_check_at = lifecycle.cleanup_due(op, remaining, now, self._grace, now + self._first_check)
        op.updated_at = now
        try:
            self.ledger.save(op)
        except PreconditionFailed:
            return False  # someone else is cleaning up this operation
        return not remaining

    def _cleanup_step(self, op: Operation, task: Cleanup, now: datetime) -> bool:
        if task is Cleanup.CHECK_LATE_START:
            return self._check_late_start(op)
        if task is Cleanup.RELEASE_SOURCE_LEASE:
            if op.source_blob is not None:
                self.storage.release_lease(op.source_blob, lease_id_for(op.id))
            return True
        if task is Cleanup.DROP_SNAPSHOT:
            self.storage.delete_blob(op.destination, snapshot=op.snapshot)
            return True
        if task is Cleanup.DELETE_DESTINATION:
            try:
                self.storage.delete_blob(op.destination)
            except Conflict as exc:
                # The blob has snapshots of its own (not ours): keeping it loses nothing.
                logger.warning("destination_kept op=%s code=%s", op.id, exc.code)
            return True
        return self._restore_step(op)

    def _check_late_start(self, op: Operation) -> bool:
        """Look for a copy of ours that began after the operation ended; stop it if found.
        True once looked (the copy id, if any, is then on the record)."""
        seen = self.storage.observe_copy(op.destination)
        if seen is None or seen.owner != op.id or not seen.copy_id:
            return True
        if seen.status == "pending":
            self._abort_ours_quietly(op.destination, op.id, seen.copy_id)
        op.copy_id = seen.copy_id
        logger.info("copy_late_start_found op=%s copy_id=%s", op.id, op.copy_id)
        return True

    def _restore_step(self, op: Operation) -> bool:
        """Copy the pre-copy snapshot back over the destination; True once it is back."""
        assert op.snapshot is not None
        if op.restore_copy_id is not None:
            seen: CopyObservation | None = self.storage.observe_copy(op.destination)
            if seen is not None and seen.copy_id == op.restore_copy_id:
                if seen.status == "success":
                    return True
                if seen.status == "pending":
                    return False
        # No metadata given: Copy Blob then restores the snapshot's own metadata too.
        copy_id, status = self.storage.start_copy(
            op.destination, op.destination, None, overwrite=True, source_snapshot=op.snapshot
        )
        op.restore_copy_id = copy_id
        logger.info("destination_restore_started op=%s status=%s", op.id, status)
        return status == "success"


def _source(request: CopyRequest) -> BlobRef:
    assert request.source_blob is not None
    return request.source_blob


def _check_idempotency_key(key: str) -> None:
    if not 0 < len(key) <= IDEMPOTENCY_KEY_MAX or not key.isascii() or not key.isprintable():
        raise InvalidRequest.of(
            FieldError("Idempotency-Key", f"must be 1-{IDEMPOTENCY_KEY_MAX} printable ASCII characters")
        )
