"""The copy lifecycle's decisions: pure functions of a record, an observation and ``now``.

Everything that talks to storage lives in :mod:`copy_ops.service`; this module only
decides, so every branch is tested with a table and no emulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from copy_ops.model import (
    CLEANUP_ORDER,
    AbortReason,
    Cleanup,
    CopyObservation,
    OnAbort,
    Operation,
    State,
)


class Action(StrEnum):
    WAIT = "wait"
    ABORT = "abort"
    FINISH = "finish"


@dataclass(frozen=True)
class Decision:
    action: Action
    state: State = State.PENDING
    abort_reason: AbortReason | None = None
    error: dict[str, str] | None = None
    # Set when the destination shows our copy but the record has no copy id yet
    # (the start crashed after Copy Blob): the sweep adopts it.
    adopt_copy_id: str | None = None


def _finish(state: State, reason: AbortReason | None = None, code: str = "", message: str = "") -> Decision:
    error = {"code": code, "message": message} if code else None
    return Decision(Action.FINISH, state, reason, error)


def destination_gone() -> Decision:
    return _finish(State.FAILED, code="destination_gone", message="the destination blob no longer exists")


def superseded() -> Decision:
    # Another copy (or a plain write) replaced ours: it is not ours to abort.
    return _finish(State.FAILED, code="superseded", message="another operation replaced this copy on the destination")


def abort_at_once(op: Operation, now: datetime) -> Decision | None:
    """An abort that needs no look at the destination first, or None.

    Overdue (or asked to abort) with a known copy id: Abort Copy carries that id, so
    storage itself refuses anyone else's copy (CopyIdMismatch), and a copy that has
    already ended answers NoPendingCopyOperation, after which the caller looks. A look
    first would cost one request more on every abort and settle nothing.
    """
    if op.copy_id is None:
        return None
    if op.abort_requested_at is not None:
        return Decision(Action.ABORT, State.ABORTED, AbortReason.REQUESTED)
    if now >= op.deadline:
        return Decision(Action.ABORT, State.ABORTED, AbortReason.DEADLINE)
    return None


def decide(op: Operation, seen: CopyObservation | None, now: datetime, start_grace: timedelta) -> Decision:
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
        if now >= min(op.deadline, op.created_at + start_grace):
            return _finish(State.FAILED, code="not_started", message="the copy was never started")
        return Decision(Action.WAIT)

    decision = _decide_started(op, copy_id, seen, now)
    if adopted is not None:
        return Decision(decision.action, decision.state, decision.abort_reason, decision.error, adopted)
    return decision


def _decide_started(op: Operation, copy_id: str, seen: CopyObservation | None, now: datetime) -> Decision:
    requested = op.abort_requested_at is not None
    reason = AbortReason.REQUESTED if requested else AbortReason.DEADLINE
    if seen is None:
        return destination_gone()
    if seen.copy_id != copy_id:
        return superseded()
    if seen.status == "success":
        return _finish(State.SUCCEEDED)
    if seen.status == "failed":
        return _finish(State.FAILED, code="copy_failed", message=seen.status_description or "the copy failed")
    if seen.status == "aborted":
        if not requested and now < op.deadline:
            return _finish(State.ABORTED, AbortReason.EXTERNAL)
        return _finish(State.ABORTED, reason)
    if requested or now >= op.deadline:
        return Decision(Action.ABORT, State.ABORTED, reason)
    return Decision(Action.WAIT)


def next_check(op: Operation, now: datetime, first: timedelta, longest: timedelta) -> datetime:
    """When to look again: doubling from ``first`` up to ``longest``, never past the deadline."""
    interval = min(longest, first * (1 << min(op.checks, 20)))
    return min(op.deadline, now + interval)


def cleanup_for(op: Operation, state: State, now: datetime, start_grace: timedelta) -> list[Cleanup]:
    """What remains to do once ``op`` ends in ``state`` at ``now``."""
    tasks: set[Cleanup] = set()
    if op.copy_id is None and now < op.created_at + start_grace:
        tasks.add(Cleanup.CHECK_LATE_START)
    superseded_or_gone = op.error is not None and op.error.get("code") in ("superseded", "destination_gone")
    if state in (State.ABORTED, State.FAILED) and not superseded_or_gone and op.copy_id is not None:
        if op.on_abort is OnAbort.DELETE:
            tasks.add(Cleanup.DELETE_DESTINATION)
        elif op.on_abort is OnAbort.RESTORE:
            if op.snapshot is not None:
                tasks.add(Cleanup.RESTORE_DESTINATION)
            elif not op.had_destination:
                tasks.add(Cleanup.DELETE_DESTINATION)
    if op.snapshot is not None:
        tasks.add(Cleanup.DROP_SNAPSHOT)
    if op.lease_source:
        tasks.add(Cleanup.RELEASE_SOURCE_LEASE)
    return [task for task in CLEANUP_ORDER if task in tasks]


def finish(
    op: Operation,
    state: State,
    now: datetime,
    start_grace: timedelta,
    *,
    abort_reason: AbortReason | None = None,
    error: dict[str, str] | None = None,
) -> None:
    """Put ``op`` in its final state, with the cleanup it still needs scheduled."""
    op.state = state
    op.abort_reason = abort_reason if state is State.ABORTED else None
    op.error = error
    op.finished_at = now
    op.updated_at = now
    op.cleanup = cleanup_for(op, state, now, start_grace)
    op.next_check_at = cleanup_due(op, op.cleanup, now, start_grace, now)


def late_start_check_at(op: Operation, start_grace: timedelta) -> datetime:
    """When no start request of ``op`` can still be running."""
    return op.created_at + start_grace


def cleanup_due(
    op: Operation, remaining: list[Cleanup], now: datetime, start_grace: timedelta, retry_at: datetime
) -> datetime | None:
    """When the sweep should next work on ``remaining``: a failed step at ``retry_at``, a
    late-start check not before the start grace is over."""
    times = [retry_at] if any(task is not Cleanup.CHECK_LATE_START for task in remaining) else []
    if Cleanup.CHECK_LATE_START in remaining:
        times.append(max(now, late_start_check_at(op, start_grace)))
    return min(times) if times else None
