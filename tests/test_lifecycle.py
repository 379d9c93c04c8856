"""The sweep's decisions, as a table: each copy state before and after the deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from copy_ops.copies import lifecycle
from copy_ops.copies.lifecycle import Action, Timing
from copy_ops.copies.model import (
    AbortReason,
    BlobRef,
    Cleanup,
    CopyObservation,
    CopyStatus,
    ErrorCode,
    OnAbort,
    Operation,
    OperationError,
    State,
    Terms,
)
from tests.support.records import changed

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
DEADLINE = T0 + timedelta(minutes=10)
BEFORE, AFTER = T0 + timedelta(minutes=5), T0 + timedelta(minutes=11)
GRACE = timedelta(minutes=5)
TIMING = Timing(start_grace=GRACE, first_check=timedelta(seconds=15), longest_check=timedelta(seconds=300))
OURS = "copy-ours"


def operation(copy_id: str | None = OURS, **fields: object) -> Operation:
    op = Operation(
        id="op",
        state=State.PENDING,
        source="https://a/c/b",
        destination=BlobRef("d", "b"),
        terms=Terms(DEADLINE),
        created_at=T0,
        updated_at=T0,
        copy_id=copy_id,
    )
    return changed(op, **fields)


def seen(status: str, copy_id: str = OURS, owner: str | None = "op") -> CopyObservation:
    return CopyObservation(copy_id=copy_id, status=CopyStatus(status), owner=owner)


@pytest.mark.parametrize(
    ("observed", "now", "action", "state", "reason", "error"),
    [
        (seen("pending"), BEFORE, Action.WAIT, State.PENDING, None, None),
        (seen("pending"), AFTER, Action.ABORT, State.ABORTED, AbortReason.DEADLINE, None),
        (seen("pending"), DEADLINE, Action.ABORT, State.ABORTED, AbortReason.DEADLINE, None),
        (seen("success"), BEFORE, Action.FINISH, State.SUCCEEDED, None, None),
        (seen("success"), AFTER, Action.FINISH, State.SUCCEEDED, None, None),
        (seen("failed"), BEFORE, Action.FINISH, State.FAILED, None, "copy_failed"),
        (seen("failed"), AFTER, Action.FINISH, State.FAILED, None, "copy_failed"),
        (seen("aborted"), BEFORE, Action.FINISH, State.ABORTED, AbortReason.EXTERNAL, None),
        (seen("aborted"), AFTER, Action.FINISH, State.ABORTED, AbortReason.DEADLINE, None),
        (None, BEFORE, Action.FINISH, State.FAILED, None, "destination_gone"),
        (None, AFTER, Action.FINISH, State.FAILED, None, "destination_gone"),
        (seen("pending", copy_id="theirs"), BEFORE, Action.FINISH, State.FAILED, None, "superseded"),
        (seen("pending", copy_id="theirs"), AFTER, Action.FINISH, State.FAILED, None, "superseded"),
        (seen("success", copy_id="theirs"), AFTER, Action.FINISH, State.FAILED, None, "superseded"),
    ],
)
def test_decide_for_a_started_copy(
    observed: CopyObservation | None,
    now: datetime,
    action: Action,
    state: State,
    reason: AbortReason | None,
    error: str | None,
) -> None:
    decision = lifecycle.decide(operation(), observed, now, TIMING)
    assert (decision.action, decision.state, decision.abort_reason) == (action, state, reason)
    assert (decision.error.code if decision.error else None) == error
    assert decision.adopt_copy_id is None


@pytest.mark.parametrize(
    ("observed", "now", "action", "state", "reason"),
    [
        (seen("pending"), BEFORE, Action.ABORT, State.ABORTED, AbortReason.REQUESTED),
        (seen("aborted"), BEFORE, Action.FINISH, State.ABORTED, AbortReason.REQUESTED),
        (seen("success"), BEFORE, Action.FINISH, State.SUCCEEDED, None),
    ],
)
def test_decide_with_an_abort_request(
    observed: CopyObservation, now: datetime, action: Action, state: State, reason: AbortReason | None
) -> None:
    decision = lifecycle.decide(operation(abort_requested_at=T0), observed, now, TIMING)
    assert (decision.action, decision.state, decision.abort_reason) == (action, state, reason)


@pytest.mark.parametrize(
    ("observed", "now", "action", "state", "adopt", "error"),
    [
        # The start crashed after Copy Blob: our owner mark identifies the copy.
        (seen("pending"), BEFORE, Action.WAIT, State.PENDING, OURS, None),
        (seen("pending"), AFTER, Action.ABORT, State.ABORTED, OURS, None),
        (seen("success"), BEFORE, Action.FINISH, State.SUCCEEDED, OURS, None),
        # Someone else's copy is never adopted.
        (
            seen("pending", copy_id="theirs", owner="other-op"),
            T0 + timedelta(minutes=1),
            Action.WAIT,
            State.PENDING,
            None,
            None,
        ),
        (seen("pending", copy_id="theirs", owner=None), AFTER, Action.FINISH, State.FAILED, None, "not_started"),
        (None, T0 + timedelta(minutes=1), Action.WAIT, State.PENDING, None, None),
        (None, T0 + GRACE, Action.FINISH, State.FAILED, None, "not_started"),
    ],
)
def test_decide_before_the_copy_id_is_recorded(
    observed: CopyObservation | None,
    now: datetime,
    action: Action,
    state: State,
    adopt: str | None,
    error: str | None,
) -> None:
    decision = lifecycle.decide(operation(copy_id=None), observed, now, TIMING)
    assert (decision.action, decision.state, decision.adopt_copy_id) == (action, state, adopt)
    assert (decision.error.code if decision.error else None) == error


@pytest.mark.parametrize(
    ("copy_id", "requested", "now", "expected"),
    [
        (OURS, False, BEFORE, None),
        (OURS, False, DEADLINE, AbortReason.DEADLINE),
        (OURS, False, AFTER, AbortReason.DEADLINE),
        (OURS, True, BEFORE, AbortReason.REQUESTED),
        (OURS, True, AFTER, AbortReason.REQUESTED),
        # Without a copy id there is nothing to name in Abort Copy: look first.
        (None, False, AFTER, None),
        (None, True, BEFORE, None),
    ],
)
def test_abort_at_once_only_when_overdue_with_a_known_copy_id(
    copy_id: str | None, requested: bool, now: datetime, expected: AbortReason | None
) -> None:
    op = operation(copy_id=copy_id, abort_requested_at=T0 if requested else None)
    decision = lifecycle.abort_at_once(op, now)
    if expected is None:
        assert decision is None
    else:
        assert decision is not None
        assert (decision.action, decision.state, decision.abort_reason) == (Action.ABORT, State.ABORTED, expected)


def test_a_requested_abort_of_a_copy_never_started_ends_aborted() -> None:
    decision = lifecycle.decide(operation(copy_id=None, abort_requested_at=T0), None, BEFORE, TIMING)
    assert (decision.action, decision.state, decision.abort_reason) == (
        Action.FINISH,
        State.ABORTED,
        AbortReason.REQUESTED,
    )


@pytest.mark.parametrize(
    ("checks", "now", "expected"),
    [
        (0, T0, T0 + timedelta(seconds=15)),
        (1, T0, T0 + timedelta(seconds=30)),
        (3, T0, T0 + timedelta(seconds=120)),
        (5, T0, T0 + timedelta(seconds=300)),
        (50, T0, T0 + timedelta(seconds=300)),
        (5, DEADLINE - timedelta(seconds=20), DEADLINE),
    ],
)
def test_next_check_backs_off_but_never_past_the_deadline(checks: int, now: datetime, expected: datetime) -> None:
    op = operation(checks=checks)
    assert lifecycle.next_check(op, now, TIMING) == expected


@pytest.mark.parametrize(
    ("fields", "state", "error", "expected"),
    [
        ({}, State.SUCCEEDED, None, []),
        ({}, State.ABORTED, None, []),
        ({"on_abort": OnAbort.DELETE}, State.ABORTED, None, [Cleanup.DELETE_DESTINATION]),
        ({"on_abort": OnAbort.DELETE}, State.SUCCEEDED, None, []),
        ({"on_abort": OnAbort.DELETE}, State.FAILED, "copy_failed", [Cleanup.DELETE_DESTINATION]),
        ({"on_abort": OnAbort.DELETE}, State.FAILED, "superseded", []),
        ({"on_abort": OnAbort.DELETE}, State.FAILED, "destination_gone", []),
        (
            {"on_abort": OnAbort.RESTORE, "snapshot": "s1", "had_destination": True},
            State.ABORTED,
            None,
            [Cleanup.RESTORE_DESTINATION, Cleanup.DROP_SNAPSHOT],
        ),
        ({"on_abort": OnAbort.RESTORE, "had_destination": False}, State.ABORTED, None, [Cleanup.DELETE_DESTINATION]),
        ({"on_abort": OnAbort.RESTORE, "snapshot": "s1"}, State.SUCCEEDED, None, [Cleanup.DROP_SNAPSHOT]),
        ({"on_abort": OnAbort.RESTORE, "snapshot": "s1"}, State.FAILED, "superseded", [Cleanup.DROP_SNAPSHOT]),
        ({"lease_source": True}, State.SUCCEEDED, None, [Cleanup.RELEASE_SOURCE_LEASE]),
        (
            {"lease_source": True, "on_abort": OnAbort.DELETE},
            State.ABORTED,
            None,
            [Cleanup.DELETE_DESTINATION, Cleanup.RELEASE_SOURCE_LEASE],
        ),
        ({"on_abort": OnAbort.DELETE, "copy_id": None}, State.FAILED, "not_started", []),
    ],
)
def test_finish_schedules_the_cleanup_each_end_needs(
    fields: dict[str, Any], state: State, error: str | None, expected: list[Cleanup]
) -> None:
    op = operation(**fields)
    op = lifecycle.finish(
        op,
        state,
        AFTER,
        TIMING,
        abort_reason=AbortReason.DEADLINE,
        error=OperationError(ErrorCode(error), "m") if error else None,
    )
    assert list(op.cleanup) == expected
    assert op.state is state and op.finished_at == AFTER
    assert op.next_check_at == (AFTER if expected else None)
    assert op.abort_reason == (AbortReason.DEADLINE if state is State.ABORTED else None)
