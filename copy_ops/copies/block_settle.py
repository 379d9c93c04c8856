"""One block-engine operation settled (:class:`BlockSettler`), and ``auto``'s escalation of an
async one; :mod:`copy_ops.copies.settle` hands these over, and settles Copy Blob's itself.

The sweep (or an abort on request) settles a block copy from its record: ends it at its
deadline or on request (nothing committed), confirms a commit that was sent, commits a
staging that completed without its commit, hands out again the blocks of a staging that
stalled. The decisions are :mod:`copy_ops.copies.block_lifecycle`'s; the sends are the
engine's (:mod:`copy_ops.copies.block_engine`).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from copy_ops.copies import block_lifecycle as rules
from copy_ops.copies import lifecycle
from copy_ops.copies.block_engine import BlockEngine, Finisher
from copy_ops.copies.lifecycle import Action, Decision, Timing
from copy_ops.copies.model import CopyStatus, Operation, State
from copy_ops.copies.ports import Storage
from copy_ops.copies.records import Ledger, Stored
from copy_ops.core.errors import (
    CopyIdMismatch,
    CopyOpsError,
    NoPendingCopy,
    NotFound,
    PreconditionFailed,
    StorageUnavailable,
)

logger = logging.getLogger(__name__)


class BlockSettler:
    def __init__(self, engine: BlockEngine, ledger: Ledger, storage: Storage, finish: Finisher, timing: Timing) -> None:
        self._engine = engine
        self._ledger = ledger
        self._storage = storage
        self._finish = finish
        self._timing = timing

    async def settle(self, stored: Stored, now: datetime) -> Operation:
        """The sweep's (or an abort's) work on a pending block copy; the record after it."""
        op = stored.op
        decision = rules.decide(op, now, self._timing)
        if decision.step is rules.Step.ESCALATE:
            return await self._stop_async_copy(stored, now)
        if decision.step is rules.Step.PLAN:
            return await self._plan(stored, now)
        if decision.step is rules.Step.CONFIRM:
            seen = await self._storage.observe_copy(op.destination)
            shown = seen is not None and rules.shows_commit(op, seen.owner, seen.etag)
            decision = rules.confirm(op, shown, now)
        if decision.step is rules.Step.END:
            return await self._finish(
                stored, Decision(Action.FINISH, decision.state, decision.abort_reason, decision.error), now
            )
        if decision.step is rules.Step.COMMIT:
            if rules.single(op):
                return await self._whole_again(stored, now)
            await self._engine.commit(stored, now)
            return await self._ledger.get(op.id)
        if decision.step is rules.Step.HAND_OUT and not op.source_sas:
            await self._engine.hand_out(op, rules.staged(op).missing(rules.plan_of(op)), None)
            logger.warning("blocks_handed_out_again op=%s", op.id)
        return (await self._ledger.save(rules.looked_at(op, now, self._timing), stored.etag, now)).op

    async def _whole_again(self, stored: Stored, now: datetime) -> Operation:
        """A one-request copy whose request never landed: sent again (its send recorded anew),
        if the app can read the source itself; else it waits for its deadline."""
        op = stored.op
        if op.source_sas:
            return (await self._ledger.save(rules.looked_at(op, now, self._timing), stored.etag, now)).op
        stored = await self._ledger.save(rules.sending_commit(op, now), stored.etag, now)
        return await self._engine.copy_whole(stored, self._engine.source_of(op, None), now, at_start=False)

    async def escalate(self, stored: Stored, now: datetime) -> Operation:
        """An async copy of ``auto`` still pending at its share of the time, handed to the
        block engine: recorded first (whoever reads it from then on settles it as a block
        copy, and aborts the async copy before anything else), then aborted, its leftover
        found, its blocks planned."""
        op = stored.op
        try:
            stored = await self._ledger.save(rules.escalating(op, now), stored.etag, now)
        except PreconditionFailed:
            return await self._ledger.get(op.id)  # another writer came first: theirs to settle
        logger.info("copy_escalated op=%s copy_id=%s", op.id, op.copy_id)
        return await self._stop_async_copy(stored, now)

    async def _stop_async_copy(self, stored: Stored, now: datetime) -> Operation:
        """Abort Copy on the escalated copy (again, harmlessly, after a crash), then read the destination: our
        leftover is recorded as the blob the commit replaces; a copy that Azure finished first
        ends the operation; anyone else's blob there is not ours to replace."""
        op = stored.op
        assert op.copy_id is not None
        try:
            await self._storage.abort_copy(op.destination, op.copy_id)
        except NoPendingCopy:
            pass  # it ended first (by itself, or by our earlier abort): the check says how
        except CopyIdMismatch:
            return await self._end(stored, lifecycle.superseded(), now)
        except NotFound:
            return await self._end(stored, lifecycle.destination_gone(), now)
        seen = await self._storage.observe_copy(op.destination)
        if seen is None:
            return await self._end(stored, lifecycle.destination_gone(), now)
        if seen.copy_id == op.copy_id and seen.status is CopyStatus.SUCCESS:
            done = Stored(dataclasses.replace(op, progress=seen.progress), stored.etag)
            return await self._end(done, Decision(Action.FINISH, State.SUCCEEDED), now)
        if seen.etag is None or not rules.is_our_leftover(op, seen.copy_id, seen.status, seen.owner):
            return await self._end(stored, lifecycle.superseded(), now)
        stored = await self._ledger.save(rules.leftover_found(op, seen.etag, now), stored.etag, now)
        return await self._plan(stored, now)

    async def _plan(self, stored: Stored, now: datetime) -> Operation:
        """An escalated copy's plan, made and sent (the app reads its own account's source)."""
        op = stored.op
        stopped = rules.stopped(op, now)
        if stopped is not None:
            return await self._end(stored, Decision(Action.FINISH, stopped.state, stopped.abort_reason), now)
        try:
            return await self._engine.plan_and_send(stored, self._engine.source_of(op, None), None, now, at_start=False)
        except StorageUnavailable:
            try:  # left for the next check (planned, or not)
                return (await self._ledger.save(rules.looked_at(op, now, self._timing), stored.etag, now)).op
            except PreconditionFailed:
                return await self._ledger.get(op.id)
        except CopyOpsError as exc:
            current = await self._ledger.read(op.id)
            return current.op if current.op.is_final else await self._engine.fail(current, exc, now)

    async def _end(self, stored: Stored, ending: Decision, now: datetime) -> Operation:
        try:
            return await self._finish(stored, ending, now)
        except PreconditionFailed:
            return await self._ledger.get(stored.op.id)
