"""One operation settled (:class:`Settler`): check its copy, then wait, abort, or record
how it ended.

The sweep's work on each due operation, and an abort on request. A block-engine copy it
hands to :mod:`copy_ops.copies.block_settle`; a job (not its items) is checked by
:mod:`copy_ops.jobs.settle`. A final state is recorded (with the ETag read) before any
cleanup that changes the destination, so only the writer that won the record goes on to
clean up (invariant 3).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from copy_ops.aio.races import retried
from copy_ops.copies import lifecycle
from copy_ops.copies.cleanup import Cleaner
from copy_ops.copies.ending import Ending
from copy_ops.copies.lifecycle import Action, Decision, Timing
from copy_ops.copies.model import Engine, Operation, State
from copy_ops.copies.owners import by_of
from copy_ops.copies.phases import Phase
from copy_ops.copies.ports import BlobCopies
from copy_ops.copies.records import Ledger, Stored
from copy_ops.core.callers import Caller
from copy_ops.core.errors import Busy, Conflict, CopyIdMismatch, NoPendingCopy, NotFound, StorageUnavailable
from copy_ops.observability.telemetry import OFF, OPERATION_ID, Telemetry

if TYPE_CHECKING:
    from copy_ops.copies.block_settle import BlockSettler
    from copy_ops.copies.retries import Retrier

logger = logging.getLogger(__name__)


class Settled(StrEnum):
    """What one turn on an operation did: the sweep counts these, a batch is retried on them."""

    VANISHED = "vanished"  # no record (retention deleted it since the index named it)
    NOT_DUE = "not_due"  # the index lagged: the record says it is not due
    CLEANED = "cleaned"
    CLEANUP_PENDING = "cleanup_pending"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    ENDED = "ended"  # an abort found it ended otherwise first
    RACED = "raced"  # another writer changed it first
    DEFERRED = "deferred"  # storage failed: left for the next sweep
    ERROR = "error"  # a bug: logged with its traceback

    @classmethod
    def of(cls, state: State) -> Settled:
        return cls(state.value)


# How many times a requested abort re-reads the record after losing a race for it.
ABORT_ATTEMPTS = 5
# A record found through the (lagging) tag index is due if its own next check says so,
# give or take the index's second-resolution tags.
DUE_TOLERANCE = timedelta(seconds=1)


class Settler:
    def __init__(
        self,
        ledger: Ledger,
        copies: BlobCopies,
        cleaner: Cleaner,
        timing: Timing,
        *,
        end: Ending,
        blocks: BlockSettler,
        retries: Retrier,
        telemetry: Telemetry = OFF,
    ) -> None:
        self._ledger = ledger
        self._copies = copies
        self._cleaner = cleaner
        self._timing = timing
        self._telemetry = telemetry
        # How an operation's end is recorded (the block engine's copies end the same way).
        self.end = end
        # The block engine's sweep step, which settles its own copies.
        self._blocks = blocks
        # The next attempt of a copy whose attempt failed for a cause that may pass.
        self._retries = retries

    async def process_due(self, operation_id: str, now: datetime) -> Settled:
        """Do what is due for one operation; returns an outcome label for the sweep summary."""
        try:
            stored = await self._ledger.read(operation_id)
        except NotFound:
            return Settled.VANISHED
        op = stored.op
        # The tag index can lag: trust the record, not the index.
        if not op.needs_sweep or (op.next_check_at is not None and op.next_check_at > now + DUE_TOLERANCE):
            return Settled.NOT_DUE
        if op.is_final:
            _, done = await self._cleaner.run(stored, now)
            return Settled.CLEANED if done else Settled.CLEANUP_PENDING
        if now > op.terms.deadline:
            self._telemetry.overdue((now - op.terms.deadline).total_seconds())
        with self._telemetry.span("copyops.settle", **{OPERATION_ID: op.id}):
            outcome, _ = await self.settle(stored, now)
        return outcome

    async def settle(self, stored: Stored, now: datetime) -> tuple[Settled, Operation]:
        """Check a pending operation's copy and act: wait, abort, or record how it ended."""
        op = stored.op
        if op.phase is Phase.RETRYING:
            settled = await self._retries.next_attempt(stored, now)
            return (Settled.of(settled.state) if settled.is_final else Settled.WAITING), settled
        if op.terms.engine is Engine.BLOCKS:
            settled = await self._blocks.settle(stored, now)
            return (Settled.of(settled.state) if settled.is_final else Settled.WAITING), settled
        decision = lifecycle.abort_at_once(op, now)
        if decision is None:
            seen = await self._copies.observe_copy(op.destination)
            decision = lifecycle.decide(op, seen, now, self._timing)
            if decision.adopt_copy_id is not None:
                op = lifecycle.adopted(op, decision.adopt_copy_id, now)
                logger.info("copy_adopted op=%s copy_id=%s", op.id, op.copy_id)
            if seen is not None and seen.copy_id == op.copy_id and seen.progress is not None:
                op = dataclasses.replace(op, progress=seen.progress)
        if lifecycle.escalation_due(op, decision, now):
            escalated = await self._blocks.escalate(Stored(op, stored.etag), now)
            return (Settled.of(escalated.state) if escalated.is_final else Settled.WAITING), escalated
        if decision.action is Action.WAIT:
            saved = await self._ledger.save(lifecycle.waiting(op, now, self._timing), stored.etag, now)
            return Settled.WAITING, saved.op
        if decision.action is Action.ABORT:
            decision = await self._abort_copy(op, now, decision)
        ended = await self.end(Stored(op, stored.etag), decision, now)
        return Settled.of(decision.state), ended

    async def abort(self, operation_id: str, now: datetime, caller: Caller | None = None) -> Operation:
        """Abort on request of ``caller`` (None: a job's abort, the app's own). Idempotent for
        an aborted operation; :class:`Conflict` (with the operation) for one that ended
        otherwise; :class:`NotFound` for another caller's; ``CommitInFlight`` while a block
        copy's commit may still land (judged once the races are over: it is no race to retry)."""
        by = by_of(caller) if caller is not None else None

        async def attempt() -> Operation:
            stored = await self._ledger.read(operation_id, caller)
            if stored.op.is_final:
                return stored.op
            if stored.op.abort_requested_at is None:
                stored = await self._ledger.save(lifecycle.request_abort(stored.op, now, by), stored.etag, now)
                logger.info("copy_abort_requested op=%s", operation_id)
            _, op = await self.settle(stored, now)
            return op

        return _aborted_or_conflict(
            await retried(attempt, ABORT_ATTEMPTS, f"operation {operation_id} is busy; try again")
        )

    async def _abort_copy(self, op: Operation, now: datetime, abort: Decision) -> Decision:
        """Carry out an abort decision; the decision on how the operation ended."""
        assert op.copy_id is not None
        try:
            # Abort Copy carries our copy id: storage refuses it for anyone else's copy.
            await self._copies.abort_copy(op.destination, op.copy_id)
            logger.info("copy_aborted op=%s copy_id=%s reason=%s", op.id, op.copy_id, abort.abort_reason)
            return Decision(Action.FINISH, State.ABORTED, abort.abort_reason)
        except NotFound:
            decision = lifecycle.destination_gone()
        except CopyIdMismatch:
            decision = lifecycle.superseded()
        except NoPendingCopy:
            # It already ended (a normal race, or no check came first): read how.
            decision = lifecycle.decide(op, await self._copies.observe_copy(op.destination), now, self._timing)
        if decision.action is not Action.FINISH:
            raise StorageUnavailable("the copy is neither pending nor finished yet", code="CopyStateUnsettled")
        return decision


def _aborted_or_conflict(op: Operation) -> Operation:
    if op.state is State.ABORTED:
        return op
    if not op.is_final:
        # The block engine's commit is in flight: it lands, or it cannot any more, within a minute.
        raise Busy(f"operation {op.id}: its commit is in flight; ask again in a minute", code="CommitInFlight")
    raise Conflict(f"operation {op.id} already ended as {op.state}", code="AlreadyFinished", operation=op)
