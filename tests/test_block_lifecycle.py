"""The block engine's decisions (copy_ops/copies/block_lifecycle.py), table-driven: pure,
no storage, ``now`` passed in."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.copies import block_lifecycle as rules
from copy_ops.copies import blocks
from copy_ops.copies.lifecycle import Timing
from copy_ops.copies.model import (
    AbortReason,
    BlobRef,
    BlockState,
    CopyStatus,
    DestinationCondition,
    Engine,
    ErrorCode,
    Operation,
    SourceFacts,
    State,
    Terms,
)
from copy_ops.copies.phases import Phase
from copy_ops.core.errors import ConditionNotMet, DestinationChanged, Forbidden, SourceChanged
from tests.support.records import changed

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DEADLINE = T0 + timedelta(minutes=10)
TIMING = Timing(timedelta(seconds=300), timedelta(seconds=15), timedelta(seconds=300))
SIZE = 3 * blocks.BLOCK_SIZE  # three blocks


def op(**fields: object) -> Operation:
    base = Operation(
        id="op-1",
        state=State.PENDING,
        source="https://partner.example/c/a",
        destination=BlobRef("dst", "b"),
        terms=Terms(DEADLINE, engine=Engine.BLOCKS),
        created_at=T0,
        blocks=BlockState(),
    )
    return changed(base, **fields)


PLANNED = {"phase": Phase.STAGING, "source_etag": '"e"', "source_size": SIZE}
SENT = {"phase": Phase.COMMITTING, "commit_sent_at": T0}
ALL = {**PLANNED, "staged": "0-2"}
LATE = DEADLINE - rules.COMMIT_MARGIN + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("fields", "now", "step", "state", "reason"),
    [
        # Not planned yet: the start may still be at work; given up as the async start is.
        ({}, T0 + timedelta(seconds=10), rules.Step.WAIT, State.PENDING, None),
        ({}, T0 + timedelta(seconds=300), rules.Step.END, State.FAILED, None),
        # Planned, blocks missing: handed out again; all staged: committed, if time is left.
        ({**PLANNED, "staged": "0"}, T0 + timedelta(minutes=3), rules.Step.HAND_OUT, State.PENDING, None),
        (ALL, T0 + timedelta(minutes=3), rules.Step.COMMIT, State.PENDING, None),
        (ALL, LATE, rules.Step.WAIT, State.PENDING, None),
        # The deadline, or an abort asked for: ended, nothing committed.
        (ALL, DEADLINE, rules.Step.END, State.ABORTED, AbortReason.DEADLINE),
        ({**ALL, "abort_requested_at": T0}, T0, rules.Step.END, State.ABORTED, AbortReason.REQUESTED),
        # A commit sent: only a look at the destination says more, even past the deadline.
        ({**ALL, **SENT}, DEADLINE + timedelta(hours=1), rules.Step.CONFIRM, State.PENDING, None),
        # Escalated: its async copy stopped first, whatever else is due; then planned.
        ({"phase": Phase.ESCALATING, "copy_id": "c"}, DEADLINE, rules.Step.ESCALATE, State.PENDING, None),
        ({"phase": Phase.PLANNING, "copy_id": "c", "condition_etag": '"x"'}, T0, rules.Step.PLAN, State.PENDING, None),
        (
            {"phase": Phase.PLANNING, "copy_id": "c", "condition_etag": '"x"'},
            DEADLINE,
            rules.Step.END,
            State.ABORTED,
            AbortReason.DEADLINE,
        ),
    ],
)
def test_what_the_sweep_does_with_a_block_copy(
    fields: dict[str, object], now: datetime, step: rules.Step, state: State, reason: AbortReason | None
) -> None:
    decision = rules.decide(op(**fields), now, TIMING)
    assert (decision.step, decision.state, decision.abort_reason) == (step, state, reason)


@pytest.mark.parametrize(
    ("committed", "now", "abort", "step", "state"),
    [
        (True, DEADLINE + timedelta(hours=1), False, rules.Step.END, State.SUCCEEDED),  # it landed: succeeded
        (False, T0 + timedelta(seconds=30), False, rules.Step.WAIT, State.PENDING),  # may still land
        (False, T0 + rules.COMMIT_GRACE, False, rules.Step.COMMIT, State.PENDING),  # never landed: again
        (False, T0 + rules.COMMIT_GRACE, True, rules.Step.END, State.ABORTED),
        (False, DEADLINE, False, rules.Step.END, State.ABORTED),
    ],
)
def test_a_commit_sent_is_confirmed_waited_for_sent_again_or_ended(
    committed: bool, now: datetime, abort: bool, step: rules.Step, state: State
) -> None:
    sent = op(**{**ALL, **SENT}, abort_requested_at=T0 if abort else None)
    decision = rules.confirm(sent, committed, now)
    assert (decision.step, decision.state) == (step, state)


@pytest.mark.parametrize(
    ("owner", "etag", "condition_etag", "ours"),
    [
        ("op-1", '"new"', None, True),
        ("someone", '"new"', None, False),
        ("op-1", '"leftover"', '"leftover"', False),  # the abort's leftover names us too: not the commit
        ("op-1", '"new"', '"leftover"', True),
    ],
)
def test_what_shows_our_commit(owner: str, etag: str, condition_etag: str | None, ours: bool) -> None:
    assert rules.shows_commit(op(condition_etag=condition_etag), owner, etag) is ours


# The record's fields that make each commit condition: the terms', or an escalated copy's leftover.
AS_ASKED: dict[DestinationCondition, dict[str, object]] = {
    DestinationCondition.ABSENT: {},
    DestinationCondition.ANY: {"overwrite": True},
    DestinationCondition.ETAG: {"overwrite": True, "condition_etag": '"leftover"'},
}


@pytest.mark.parametrize(
    ("refusal", "condition", "code"),
    [
        (SourceChanged("x"), DestinationCondition.ABSENT, ErrorCode.SOURCE_CHANGED),
        (DestinationChanged("x"), DestinationCondition.ABSENT, ErrorCode.DESTINATION_EXISTS),
        (DestinationChanged("x"), DestinationCondition.ETAG, ErrorCode.SUPERSEDED),
        # A lease (or any other refusal of the destination): what storage said, not "exists".
        (ConditionNotMet("lease"), DestinationCondition.ANY, ErrorCode.COPY_FAILED),
        (Forbidden("no"), DestinationCondition.ANY, ErrorCode.COPY_FAILED),
    ],
)
def test_why_a_block_copy_failed(refusal: Exception, condition: DestinationCondition, code: ErrorCode) -> None:
    copy = op(**AS_ASKED[condition])
    assert copy.condition is condition
    assert rules.failure(copy, refusal).code is code  # type: ignore[arg-type]


def test_a_plan_pins_the_source_and_a_one_request_copy_records_its_send_first() -> None:
    facts = SourceFacts(size=10, etag='"e"', content={"content-type": "text/plain"}, metadata={"m": "1"})
    small = rules.planned(op(), facts, T0)
    assert small.blocks == BlockState('"e"', {"content-type": "text/plain"}, commit_sent_at=T0)
    assert small.terms.metadata == {"m": "1"}
    big = rules.planned(op(metadata={"asked": "yes"}), dataclasses.replace(facts, size=SIZE), T0)
    assert (rules.part(big).commit_sent_at, big.terms.metadata, rules.counts(big)) == (None, {"asked": "yes"}, (0, 3))
    assert big.next_check_at == T0 + rules.STALL


def test_checkpoints_are_a_union_and_a_look_without_progress_waits_longer_each_time() -> None:
    planned = op(**PLANNED)
    first = rules.checkpointed(planned, frozenset({0}), T0)
    both = rules.checkpointed(first, frozenset({2, 7}), T0)  # 7 is no block of the plan
    assert (rules.part(both).staged, both.checks) == ("0,2", 0)
    assert both.progress is not None and both.progress.bytes_copied == 2 * blocks.BLOCK_SIZE
    looks = [planned]
    for _ in range(3):
        looks.append(rules.looked_at(looks[-1], T0, TIMING))
    waits = [(look.next_check_at - T0) for look in looks[1:] if look.next_check_at is not None]
    assert waits == [rules.STALL, 2 * rules.STALL, 3 * rules.STALL]


def test_an_escalation_keeps_the_copy_id_and_finds_only_our_leftover() -> None:
    async_op = op(engine=Engine.ASYNC, blocks=None, copy_id="c", escalate_at=T0, phase=Phase.COPYING)
    escalating = rules.escalating(async_op, T0)
    assert (escalating.terms.engine, escalating.copy_id, rules.escalation_unfinished(escalating)) == (
        Engine.BLOCKS,
        "c",
        True,
    )
    assert escalating.blocks == BlockState() and async_op.blocks is None  # its part begun
    assert rules.is_our_leftover(escalating, "c", CopyStatus.ABORTED, "op-1")
    assert not rules.is_our_leftover(escalating, "c", CopyStatus.ABORTED, "someone")
    assert not rules.is_our_leftover(escalating, "other", CopyStatus.ABORTED, "op-1")
    assert not rules.is_our_leftover(escalating, "c", CopyStatus.PENDING, "op-1")
    found = rules.leftover_found(escalating, '"l"', T0)
    assert (found.condition, rules.part(found).condition_etag, rules.escalation_unfinished(found)) == (
        DestinationCondition.ETAG,
        '"l"',
        False,
    )
