"""The copy lifecycle's decisions: pure functions of a record, an observation and ``now``.

Everything that talks to storage lives in the service's modules (starting, settling,
cleanup); this module only decides, and returns the record as it should become
(records are immutable), so every branch is tested with a table and no emulator.

Size: a little over the 250 lines a module should keep to. It is the whole state
machine of an operation (start, checks, aborts, endings, what each ending owes); split,
its transitions would have to be read in two places to be checked against each other.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from copy_ops.copies.model import (
    AbortReason,
    BlockState,
    Cleanup,
    CopyObservation,
    CopyRequest,
    CopyStatus,
    Engine,
    ErrorCode,
    OnAbort,
    Operation,
    OperationError,
    State,
    in_cleanup_order,
)
from copy_ops.copies.phases import Event, moved


@dataclass(frozen=True)
class Timing:
    """The lifecycle's clock settings."""

    # How long a start request may take before its record is given up as not started.
    start_grace: timedelta
    # The first check of a pending copy after its start; doubling per check...
    first_check: timedelta
    # ...up to this.
    longest_check: timedelta
    # Final states are announced (an event target is configured): the event is owed
    # from the moment the final state is recorded, as a cleanup step.
    announce: bool = False


# A job's item recorded but not started is given up this long after its claim, not after
# the start grace: the attempt that claimed it may have died with its host, and the
# Functions host then gets the page's message back only when the message's 10-minute
# peek lock runs out (host.json's visibilityTimeout applies to failed invocations only),
# or the job's stall check resumes the page after 5 minutes. Either delivery takes the
# item over and starts it (copy_ops.jobs.items); 15 minutes leaves room for both.
ITEM_START_GRACE = timedelta(minutes=15)


def claimed_at(op: Operation) -> datetime:
    """When the attempt now holding a job's item claimed it (its record's time, if unclaimed)."""
    return op.claim.claimed_at if op.claim is not None else op.created_at


def start_given_up_at(op: Operation, timing: Timing) -> datetime:
    """When a record whose copy never started is given up (``not_started``), deadline aside."""
    if op.job is not None:
        return claimed_at(op) + ITEM_START_GRACE
    return op.created_at + timing.start_grace


class Action(StrEnum):
    WAIT = "wait"
    ABORT = "abort"
    FINISH = "finish"


@dataclass(frozen=True)
class Decision:
    action: Action
    state: State = State.PENDING
    abort_reason: AbortReason | None = None
    error: OperationError | None = None
    # Set when the destination shows our copy but the record has no copy id yet
    # (the start crashed after Copy Blob): the sweep adopts it.
    adopt_copy_id: str | None = None


def lease_id_for(operation_id: str) -> str:
    """The source lease id of an operation: derived, so a repeated acquire is harmless."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"copy-ops:{operation_id}"))


def _finish(state: State, reason: AbortReason | None = None, error: OperationError | None = None) -> Decision:
    return Decision(Action.FINISH, state, reason, error)


def _failed(code: ErrorCode, message: str) -> Decision:
    return _finish(State.FAILED, error=OperationError(code, message))


def destination_gone() -> Decision:
    return _failed(ErrorCode.DESTINATION_GONE, "the destination blob no longer exists")


def superseded() -> Decision:
    # Another copy (or a plain write) replaced ours: it is not ours to abort.
    return _failed(ErrorCode.SUPERSEDED, "another operation replaced this copy on the destination")


def abort_at_once(op: Operation, now: datetime) -> Decision | None:
    """An abort that needs no read of the destination first, or None.

    Overdue (or asked to abort) with a known copy id: Abort Copy carries that id, so
    storage itself refuses anyone else's copy (CopyIdMismatch), and a copy that has
    already ended answers NoPendingCopy, after which the caller checks. A check first
    would cost one request more on every abort and settle nothing.
    """
    if op.copy_id is None:
        return None
    if op.abort_requested_at is not None:
        return Decision(Action.ABORT, State.ABORTED, AbortReason.REQUESTED)
    if now >= op.terms.deadline:
        return Decision(Action.ABORT, State.ABORTED, AbortReason.DEADLINE)
    return None


def decide(op: Operation, seen: CopyObservation | None, now: datetime, timing: Timing) -> Decision:
    """What to do with a pending operation, given its destination's copy state.

    ``seen`` is None when the destination blob does not exist.
    """
    copy_id = op.copy_id
    adopted = None
    if copy_id is None and seen is not None and seen.owner == op.id and seen.copy_id:
        copy_id = adopted = seen.copy_id
    if copy_id is None:
        # Nothing of ours has started (yet). The start request may still be running;
        # give it a grace period, but never past the deadline.
        if op.abort_requested_at is not None:
            return _finish(State.ABORTED, AbortReason.REQUESTED)
        if now >= min(op.terms.deadline, start_given_up_at(op, timing)):
            return _failed(ErrorCode.NOT_STARTED, "the copy was never started")
        return Decision(Action.WAIT)
    decision = _decide_started(op, copy_id, seen, now)
    return dataclasses.replace(decision, adopt_copy_id=adopted)


def _decide_started(op: Operation, copy_id: str, seen: CopyObservation | None, now: datetime) -> Decision:
    requested = op.abort_requested_at is not None
    reason = AbortReason.REQUESTED if requested else AbortReason.DEADLINE
    if seen is None:
        return destination_gone()
    if seen.copy_id != copy_id:
        return superseded()
    if seen.status is CopyStatus.SUCCESS:
        return _finish(State.SUCCEEDED)
    if seen.status is CopyStatus.FAILED:
        return _failed(ErrorCode.COPY_FAILED, seen.status_description or "the copy failed")
    if seen.status is CopyStatus.ABORTED:
        if not requested and now < op.terms.deadline:
            return _finish(State.ABORTED, AbortReason.EXTERNAL)
        return _finish(State.ABORTED, reason)
    if requested or now >= op.terms.deadline:
        return Decision(Action.ABORT, State.ABORTED, reason)
    return Decision(Action.WAIT)


def recorded(request: CopyRequest, operation_id: str, source: str, now: datetime, timing: Timing) -> Operation:
    """The write-ahead record of ``request``, pending, before anything starts. ``source``:
    the source as the record shows it (no query). If its start request dies before the
    copy id is recorded, the sweep checks it once the start grace is over (never after the deadline)."""
    op = Operation(
        id=operation_id,
        state=State.PENDING,
        source=source,
        source_blob=request.source_blob,
        destination=request.destination,
        terms=request.terms,
        created_at=now,
        had_destination=None if request.terms.overwrite else False,
        fingerprint=request.fingerprint,
        caller=request.caller,
        job=request.job,
        source_size=request.source_size,
        source_foreign=request.source_foreign,
        source_sas=request.source_blob is None and bool(request.source_url and urlsplit(request.source_url).query),
        blocks=BlockState() if request.terms.engine is Engine.BLOCKS else None,
    )
    return dataclasses.replace(op, next_check_at=min(request.terms.deadline, start_given_up_at(op, timing)))


def next_check(op: Operation, now: datetime, timing: Timing) -> datetime:
    """When to check again: doubling from the first check up to the longest interval,
    never past the deadline, nor past the moment ``auto`` hands a pending copy to the blocks."""
    interval = min(timing.longest_check, timing.first_check * (1 << min(op.checks, 20)))
    due = min(op.terms.deadline, now + interval)
    if op.terms.escalate_at is not None and op.terms.engine is Engine.ASYNC and now < op.terms.escalate_at:
        due = min(due, op.terms.escalate_at)
    return due


def escalation_due(op: Operation, decision: Decision, now: datetime) -> bool:
    """Whether an async copy of ``auto``, found still pending, is handed to the block engine
    now: its share of the time is gone, its deadline is not, and nobody asked to abort it."""
    return (
        decision.action is Action.WAIT
        and op.terms.engine is Engine.ASYNC
        and op.terms.escalate_at is not None
        and op.copy_id is not None
        and op.abort_requested_at is None
        and op.terms.escalate_at <= now < op.terms.deadline
    )


def waiting(op: Operation, now: datetime, timing: Timing) -> Operation:
    """A pending copy checked and left running: count the check, schedule the next."""
    checked = dataclasses.replace(op, checks=op.checks + 1)
    return dataclasses.replace(checked, next_check_at=next_check(checked, now, timing))


def request_abort(op: Operation, now: datetime, by: str | None = None) -> Operation:
    """Recorded before anything is aborted: a crash then still ends in an abort (by the
    sweep), and a sweep racing the request aborts for the right reason. ``by``: the caller
    who asked (None: a job's abort, or a key's holder)."""
    return dataclasses.replace(
        op,
        abort_requested_at=now,
        next_check_at=now,
        **moved(op.phase, op.history, Event.ABORT_REQUESTED, now, by=by),
    )


def cleanup_for(op: Operation, state: State, now: datetime, timing: Timing) -> tuple[Cleanup, ...]:
    """What remains to do once ``op`` ends in ``state`` at ``now``."""
    tasks: set[Cleanup] = {Cleanup.ANNOUNCE} if timing.announce else set()
    # The block engine sends nothing after its record ended (each of its sends follows a
    # conditional write of its record): no late start to look for. Its destination tasks
    # follow ``copy_id`` too: only an async copy (escalated or not) leaves anything there.
    if op.terms.engine is Engine.ASYNC and _send_unconfirmed(op) and now < late_start_check_at(op, timing):
        tasks.add(Cleanup.CHECK_LATE_START)
    destination_ours = op.error is None or op.error.code.destination_is_ours
    if state in (State.ABORTED, State.FAILED) and destination_ours and op.copy_id is not None:
        if op.terms.on_abort is OnAbort.DELETE:
            tasks.add(Cleanup.DELETE_DESTINATION)
        elif op.terms.on_abort is OnAbort.RESTORE:
            if op.restore is not None:
                tasks.add(Cleanup.RESTORE_DESTINATION)
            elif not op.had_destination:
                tasks.add(Cleanup.DELETE_DESTINATION)
    if op.restore is not None:
        tasks.add(Cleanup.DROP_SNAPSHOT)
    if op.terms.lease_source:
        tasks.add(Cleanup.RELEASE_SOURCE_LEASE)
    return in_cleanup_order(tasks)


def finish(
    op: Operation,
    state: State,
    now: datetime,
    timing: Timing,
    *,
    abort_reason: AbortReason | None = None,
    error: OperationError | None = None,
) -> Operation:
    """``op`` in its final state, with the cleanup it still needs scheduled."""
    ended = dataclasses.replace(
        op,
        state=state,
        abort_reason=abort_reason if state is State.ABORTED else None,
        error=error,
        finished_at=now,
        **moved(op.phase, op.history, Event.FINISHED, now, _why(state, abort_reason, error)),
    )
    cleanup = cleanup_for(ended, state, now, timing)
    return dataclasses.replace(ended, cleanup=cleanup, next_check_at=cleanup_due(ended, cleanup, now, timing, now))


def _why(state: State, reason: AbortReason | None, error: OperationError | None) -> str:
    """A final move's reason, as the history shows it: the state, and why."""
    because = reason.value if reason is not None and state is State.ABORTED else error.code.value if error else None
    return f"{state.value}: {because}" if because else state.value


def refused(op: Operation, message: str, now: datetime, timing: Timing) -> Operation:
    """A job's item that storage refused to start: failed, owing only its lease and snapshot
    (nothing started, so no late start to look for and no destination of ours)."""
    ended = finish(op, State.FAILED, now, timing, error=OperationError(ErrorCode.START_REFUSED, message))
    owed = tuple(task for task in ended.cleanup if task is not Cleanup.CHECK_LATE_START)
    return dataclasses.replace(ended, cleanup=owed, next_check_at=cleanup_due(ended, owed, now, timing, now))


def failed_before_start(op: Operation, code: ErrorCode, message: str, now: datetime, timing: Timing) -> Operation:
    """A job's item failed before anything of it was taken (no lease, no snapshot, no copy):
    a name copy-ops will not address, or a refusal before its record. It owes only its event."""
    ended = finish(op, State.FAILED, now, timing, error=OperationError(code, message))
    owed = tuple(task for task in ended.cleanup if task is Cleanup.ANNOUNCE)
    return dataclasses.replace(ended, cleanup=owed, next_check_at=cleanup_due(ended, owed, now, timing, now))


def late_start_check_at(op: Operation, timing: Timing) -> datetime:
    """When no start request of ``op`` can still be running (of its latest attempt's)."""
    return (op.attempt_at or op.created_at) + timing.start_grace


def _send_unconfirmed(op: Operation) -> bool:
    """Whether the Copy Blob of the attempt under way may have been sent with no copy of it
    recorded: no copy id at all, or (a later attempt, recorded before its send) still the
    id of a failed attempt's copy."""
    if op.copy_id is None:
        return True
    under_way = op.attempt > len(op.failed_attempts)
    return under_way and any(attempt.copy_id == op.copy_id for attempt in op.failed_attempts)


def cleanup_due(
    op: Operation, remaining: tuple[Cleanup, ...], now: datetime, timing: Timing, retry_at: datetime
) -> datetime | None:
    """When the sweep should next work on ``remaining``: a failed step at ``retry_at``, a
    late-start check not before the start grace is over."""
    times = [retry_at] if any(task is not Cleanup.CHECK_LATE_START for task in remaining) else []
    if Cleanup.CHECK_LATE_START in remaining:
        times.append(max(now, late_start_check_at(op, timing)))
    return min(times) if times else None


def adopted(op: Operation, copy_id: str, now: datetime, by: str | None = None) -> Operation:
    """A record with its Copy Blob started (its start's answer, or the sweep finding our
    copy on the destination after the start died): the copy id, and its copy pending.
    ``by``: the caller whose start request it answers."""
    return dataclasses.replace(op, copy_id=copy_id, **moved(op.phase, op.history, Event.STARTED, now, by=by))


def record_copy(
    op: Operation, copy_id: str, status: CopyStatus, now: datetime, timing: Timing, *, by: str | None = None
) -> Operation:
    """A pending record with its copy started: the copy id, and the end if it ended at once."""
    started = adopted(op, copy_id, now, by)
    if status is CopyStatus.SUCCESS:
        return finish(started, State.SUCCEEDED, now, timing)
    if status is CopyStatus.FAILED:
        return finish(
            started, State.FAILED, now, timing, error=OperationError(ErrorCode.COPY_FAILED, "the copy failed")
        )
    # An abort already requested is carried out at the next sweep, not after a backoff.
    due = now if started.abort_requested_at is not None else next_check(started, now, timing)
    return dataclasses.replace(started, next_check_at=due)


@dataclass(frozen=True)
class Merge:
    """A started copy brought into a record that another writer changed meanwhile."""

    op: Operation
    # The record ended without this copy, which still runs: it is ours, stop it.
    abort_copy: bool = False


def merge_started(
    current: Operation, copy_id: str, status: CopyStatus, now: datetime, timing: Timing, *, by: str | None = None
) -> Merge | None:
    """Our started copy in ``current`` (an abort request, a sweep that gave the start up
    came first); None when there is nothing to write."""
    if current.copy_id not in (None, copy_id):
        return None  # not ours to touch: the sweep settles it
    if not current.is_final:
        return Merge(record_copy(current, copy_id, status, now, timing, by=by)) if current.copy_id is None else None
    if current.copy_id is None:
        # It ended before our copy started, but our copy exists: clean up after it as
        # after any other (on_abort, the lease again: it may have been released before we took it).
        with_copy = dataclasses.replace(current, copy_id=copy_id)
        owed = {*current.cleanup, *cleanup_for(with_copy, current.state, now, timing)}
        merged = _without_late_start_check(with_copy, owed, now)
        return Merge(merged, abort_copy=status is CopyStatus.PENDING)
    if current.terms.lease_source and Cleanup.RELEASE_SOURCE_LEASE not in current.cleanup:
        # Its cleanup may have released the lease before this start took it.
        return Merge(_without_late_start_check(current, {*current.cleanup, Cleanup.RELEASE_SOURCE_LEASE}, now))
    return None


def _without_late_start_check(op: Operation, tasks: set[Cleanup], now: datetime) -> Operation:
    # The start merging its copy is the late start: nothing is left to look for.
    tasks.discard(Cleanup.CHECK_LATE_START)
    return dataclasses.replace(op, cleanup=in_cleanup_order(tasks), next_check_at=now)


def after_late_start_check(op: Operation, tasks: set[Cleanup], now: datetime, timing: Timing) -> tuple[Cleanup, ...]:
    """The tasks that follow a late-start check: those still queued, and the cleanup of
    the operation's ending, now that ``op`` carries the late copy's id if one was found."""
    owed = {*tasks, *cleanup_for(op, op.state, now, timing)}
    owed.discard(Cleanup.CHECK_LATE_START)
    return in_cleanup_order(owed)
