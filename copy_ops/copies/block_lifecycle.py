"""The block engine's decisions: pure functions of a record and ``now`` (and, for a commit
already sent, of what the destination shows).

A block copy moves through its record: planned (the source's size and ETag pinned, its
blocks handed out to the work queue), staged block by block (checkpoints), committed (the
commit's send is recorded first), ended. Every send of the engine follows a conditional
write of the record that allows it, so a record that another writer ended (the sweep at
the deadline, an abort on request) stops every send that comes after: **nothing is
committed after the deadline**, and nothing of a copy that ended is staged again.

Size: a little over 250 lines: the engine's whole state machine, as lifecycle.py is the
async copy's; split, its transitions would be checked against each other in two places.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from copy_ops.copies import blocks, retry
from copy_ops.copies.lifecycle import Timing, start_given_up_at
from copy_ops.copies.model import (
    AbortReason,
    BlockState,
    CopyStatus,
    DestinationCondition,
    Engine,
    ErrorCode,
    Operation,
    OperationError,
    Progress,
    SourceFacts,
    State,
)
from copy_ops.copies.phases import Event, Phase, moved
from copy_ops.core.errors import CopyOpsError, DestinationChanged, SourceChanged
from copy_ops.core.redaction import redact

# Blocks per staging message: 512 MiB, seconds of one instance's work at Azure's rates; a
# large copy's messages spread over every instance the queue trigger scales out to.
STAGE_BATCH = 64
# A staging invocation starts no block after this long (those left go back to the queue).
STAGE_SECONDS = 60.0
# A staging that has checkpointed nothing for this long is handed out again by the sweep
# (its messages lost, or poisoned). Staging the same block twice is harmless.
STALL = timedelta(minutes=2)
# A commit (Put Block List, or the one Put Blob From URL) is sent only with at least this
# much time before the deadline, with a server timeout of at most the time left, no retry
# by the SDK, and a client timeout of the same: it lands before the deadline or not at all.
COMMIT_MARGIN = timedelta(seconds=5)
COMMIT_LONGEST = timedelta(seconds=30)
# After a commit was sent, by this long it has landed or never will (its timeouts above):
# the sweep may then check, and send it again or end the copy.
COMMIT_GRACE = COMMIT_LONGEST + timedelta(seconds=30)
# A staging found stalled this many checks in a row (its blocks handed out again each time)
# has blocks that keep failing: its attempt fails, and the next plans again from the blocks
# staged, if it has room; else the blocks are handed out again until the deadline.
BLOCK_STALLS = 3


class Step(StrEnum):
    WAIT = "wait"
    # Hand the blocks not yet staged to the work queue (again).
    HAND_OUT = "hand_out"
    COMMIT = "commit"
    # A commit was sent: read the destination to know whether it landed.
    CONFIRM = "confirm"
    # An escalated copy whose async copy may still run: abort it, find the leftover.
    ESCALATE = "escalate"
    # An escalated copy, its leftover known: pin the source and hand the blocks out.
    PLAN = "plan"
    END = "end"


@dataclass(frozen=True)
class BlockDecision:
    step: Step
    state: State = State.PENDING
    abort_reason: AbortReason | None = None
    error: OperationError | None = None


def _end(state: State, reason: AbortReason | None = None, error: OperationError | None = None) -> BlockDecision:
    return BlockDecision(Step.END, state, reason, error)


def stopped(op: Operation, now: datetime) -> BlockDecision | None:
    """The end of a copy that must stop: asked to, or out of time. Nothing was committed."""
    if op.abort_requested_at is not None:
        return _end(State.ABORTED, AbortReason.REQUESTED)
    if now >= op.terms.deadline:
        return _end(State.ABORTED, AbortReason.DEADLINE)
    return None


def decide(op: Operation, now: datetime, timing: Timing) -> BlockDecision:
    """What the sweep does with a pending block copy (no read of storage needed)."""
    if op.phase is Phase.COMMITTING:
        return BlockDecision(Step.CONFIRM)
    if op.phase is Phase.ESCALATING:
        return BlockDecision(Step.ESCALATE)  # first of all: no async copy of ours left running
    ending = stopped(op, now)
    if ending is not None:
        return ending
    if op.phase is Phase.PLANNING:
        return BlockDecision(Step.PLAN)  # escalated, its plan not made (yet)
    if op.phase is Phase.RECORDED:
        # Its start has not planned it (yet): the start may still be at work.
        if now >= start_given_up_at(op, timing):
            return _end(State.FAILED, error=OperationError(ErrorCode.NOT_STARTED, "the copy was never started"))
        return BlockDecision(Step.WAIT)
    if complete(op):
        return BlockDecision(Step.COMMIT) if may_commit(op, now) else BlockDecision(Step.WAIT)
    if op.checks >= BLOCK_STALLS:
        error = OperationError(ErrorCode.BLOCKS_FAILED, f"no block staged in {op.checks} checks in a row")
        if retry.retrying(op, error, now, timing.start_grace) is not None:
            return _end(State.FAILED, error=error)
    return BlockDecision(Step.HAND_OUT)


def confirm(op: Operation, committed: bool, now: datetime) -> BlockDecision:
    """A commit was sent; ``committed``: the destination shows it. Landed, still possibly in
    flight, or never landed (then sent again while time is left, else the copy ends)."""
    sent_at = part(op).commit_sent_at
    assert op.phase is Phase.COMMITTING and sent_at is not None
    if committed:
        return _end(State.SUCCEEDED)
    if now < sent_at + COMMIT_GRACE:
        return BlockDecision(Step.WAIT)
    ending = stopped(op, now)
    if ending is not None:
        return ending
    return BlockDecision(Step.COMMIT) if may_commit(op, now) else BlockDecision(Step.WAIT)


def failure(op: Operation, refusal: CopyOpsError) -> OperationError:
    """Why a block copy failed, from what storage refused: nothing was committed."""
    if isinstance(refusal, SourceChanged):
        return OperationError(ErrorCode.SOURCE_CHANGED, "the source changed (or vanished) while it was copied")
    if isinstance(refusal, DestinationChanged) and op.condition is DestinationCondition.ETAG:
        return OperationError(ErrorCode.SUPERSEDED, "the destination was written by someone else meanwhile")
    if isinstance(refusal, DestinationChanged):
        return OperationError(ErrorCode.DESTINATION_EXISTS, "the destination was written meanwhile; overwrite is false")
    return OperationError(ErrorCode.COPY_FAILED, f"{refusal.title}: {redact(refusal.detail)}")


def start_refusal(op: Operation, refusal: CopyOpsError) -> CopyOpsError:
    """A one-request copy's refusal as its start answers it: a source that changed since it
    was read is named as a copy's failure names it (``source_changed``), in one detail."""
    if not isinstance(refusal, SourceChanged):
        return refusal
    error = failure(op, refusal)
    return SourceChanged(f"{error.message}; nothing was written to the destination", code=error.code.value)


def shows_commit(op: Operation, owner: str | None, etag: str | None) -> bool:
    """Whether a destination with this owner and ETag is our commit: it names us, and it is
    not the blob our commit had to replace (an escalated copy's abort leftover names us too)."""
    leftover = part(op).condition_etag
    return owner == op.id and (leftover is None or etag != leftover)


def may_commit(op: Operation, now: datetime) -> bool:
    return op.abort_requested_at is None and now + COMMIT_MARGIN <= op.terms.deadline


def commit_window(op: Operation, now: datetime) -> float:
    """Seconds from ``now`` by which a commit sent now must have landed: never past the
    deadline, never past what COMMIT_GRACE leaves the sweep to wait for."""
    return min(op.terms.deadline - now, COMMIT_LONGEST).total_seconds()


def stage_refusal(op: Operation, wanted: frozenset[int], sas: str | None) -> str | None:
    """Why a stage message does not fit the operation it names (None: it fits): as if the
    work key had leaked, a message stages only blocks of its own copy's plan, and carries a
    SAS only for a source that came with one (else a forger's SAS would read it)."""
    if op.blocks is None:
        return "not_a_block_copy"
    if sas is not None and not op.source_sas:
        return "sas_not_asked_for"
    if op.source_size is not None and wanted and max(wanted) >= len(plan_of(op)):
        return "outside_the_plan"
    return None


def plan_of(op: Operation) -> tuple[blocks.Block, ...]:
    return blocks.plan(op.id, op.source_size or 0)


def single(op: Operation) -> bool:
    """Copied by one Put Blob From URL (no blocks to stage)."""
    return op.source_size is not None and blocks.single_request(op.source_size)


def part(op: Operation) -> BlockState:
    """The block engine's part of ``op``, which the engine's every step has (its engine is
    blocks): a record without it reaching here is a bug."""
    assert op.blocks is not None, op.id
    return op.blocks


def staged(op: Operation) -> blocks.Staged:
    return blocks.Staged.parse(part(op).staged)


def complete(op: Operation) -> bool:
    return not single(op) and not staged(op).missing(plan_of(op))


def counts(op: Operation) -> tuple[int, int] | None:
    """Blocks staged and in all, for the view (a one-request copy is one block); None before the plan."""
    if op.blocks is None or op.source_size is None or op.blocks.source_etag is None:
        return None
    if single(op):
        return (1 if op.state is State.SUCCEEDED else 0), 1
    return staged(op).count(), len(plan_of(op))


def planned(op: Operation, facts: SourceFacts, now: datetime, by: str | None = None) -> Operation:
    """``op`` with its source pinned and its plan made: the blocks go out next (or the one
    request, recorded as sent first). No metadata asked for copies the source's, as Copy Blob
    does. ``by``: the caller whose start request planned it (an escalation's plan: none)."""
    # A later attempt's plan keeps the blocks staged (the source read again is the version
    # they came from: copy_ops.copies.block_engine refuses another).
    kept = part(op).staged if part(op).source_etag == facts.etag else ""
    planned = dataclasses.replace(
        op,
        **moved(op.phase, op.history, Event.PLANNED, now, by=by),
        # The escalated copy's leftover stays the blob its commit replaces.
        blocks=BlockState(facts.etag, dict(facts.content), kept, condition_etag=part(op).condition_etag),
        source_size=facts.size,
        terms=dataclasses.replace(op.terms, metadata=op.terms.metadata or dict(facts.metadata)),
        progress=Progress(blocks.Staged.parse(kept).bytes_staged(blocks.plan(op.id, facts.size)), facts.size),
    )
    if single(planned):
        return sending_commit(planned, now)
    return dataclasses.replace(planned, next_check_at=min(op.terms.deadline, now + STALL))


def checkpointed(op: Operation, indexes: frozenset[int], now: datetime) -> Operation:
    """``op`` with more blocks staged (a union: two instances' checkpoints both count)."""
    plan = plan_of(op)
    now_staged = staged(op).with_(indexes & {block.index for block in plan})
    assert op.source_size is not None
    return dataclasses.replace(
        op,
        blocks=dataclasses.replace(part(op), staged=now_staged.text()),
        progress=Progress(now_staged.bytes_staged(plan), op.source_size),
        checks=0,  # progress made: a stall is counted afresh
        next_check_at=min(op.terms.deadline, now + STALL),
    )


def looked_at(op: Operation, now: datetime, timing: Timing) -> Operation:
    """``op`` checked by the sweep and left pending: when to check again. A commit in
    flight: once it can no longer land; a start not planned yet: when it is given up;
    else after a stall (blocks handed out again, or none staged since), never past the deadline."""
    sent_at = op.blocks.commit_sent_at if op.blocks is not None else None
    if op.phase is Phase.COMMITTING and sent_at is not None and now < sent_at + COMMIT_GRACE:
        at = sent_at + COMMIT_GRACE
    elif op.phase in (Phase.RECORDED, Phase.ESCALATING, Phase.PLANNING):
        at = min(op.terms.deadline, start_given_up_at(op, timing))
    else:
        # Each check that finds no progress waits longer before handing the blocks out again
        # (a queue backlog is not made longer by the same blocks every few minutes).
        at = min(op.terms.deadline, now + STALL * (1 + min(op.checks, 7)))
    return dataclasses.replace(op, checks=op.checks + 1, next_check_at=at)


def sending_commit(op: Operation, now: datetime) -> Operation:
    """Recorded before the commit is sent: whoever reads the record from now on knows a
    commit may land until ``now + COMMIT_GRACE`` and never after."""
    return dataclasses.replace(
        op,
        blocks=dataclasses.replace(part(op), commit_sent_at=now),
        next_check_at=now + COMMIT_GRACE,
        **moved(op.phase, op.history, Event.COMMIT_SENT, now),
    )


def restaging(op: Operation, present: frozenset[int], now: datetime) -> Operation:
    """A commit refused because blocks it names are gone (a write to the destination
    discarded them): the staged set becomes the blocks still there, handed out again."""
    plan = plan_of(op)
    kept = blocks.Staged.of(set(present & {block.index for block in plan}))
    assert op.source_size is not None
    return dataclasses.replace(
        op,
        **moved(op.phase, op.history, Event.COMMIT_MISSED, now),
        blocks=dataclasses.replace(part(op), staged=kept.text(), commit_sent_at=None),
        progress=Progress(kept.bytes_staged(plan), op.source_size),
        next_check_at=min(op.terms.deadline, now + STALL),
    )


def escalating(op: Operation, now: datetime) -> Operation:
    """An async copy of ``auto`` handed to the blocks, recorded before its Abort Copy is sent:
    its copy id kept (its leftover is ours, for ``on_abort``), the block engine's part begun,
    no plan yet. Whoever reads it from now on settles it as the block engine's, and aborts
    that copy first."""
    return dataclasses.replace(
        op,
        **moved(op.phase, op.history, Event.ESCALATED, now),
        terms=dataclasses.replace(op.terms, engine=Engine.BLOCKS),
        blocks=BlockState(),
        next_check_at=now,
    )


def escalation_unfinished(op: Operation) -> bool:
    """Escalated, its async copy not yet known to be stopped (no leftover recorded)."""
    return op.phase is Phase.ESCALATING


def leftover_found(op: Operation, etag: str, now: datetime) -> Operation:
    """The escalated copy's abort leftover: the commit must replace exactly that blob (its
    condition ``etag``)."""
    return dataclasses.replace(
        op,
        blocks=dataclasses.replace(part(op), condition_etag=etag),
        **moved(op.phase, op.history, Event.LEFTOVER_FOUND, now),
    )


def is_our_leftover(op: Operation, copy_id: str | None, status: CopyStatus | None, owner: str | None) -> bool:
    """A destination that is our aborted (or failed) async copy's leftover, and no one else's."""
    return copy_id == op.copy_id and owner == op.id and status in (CopyStatus.ABORTED, CopyStatus.FAILED)
