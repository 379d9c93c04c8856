"""The sweep's look at a block-engine copy, and ``auto``'s escalation of an async one.

The sweep (or an abort on request) settles a block copy from its record: ends it at its
deadline or on request (nothing committed), confirms a commit that was sent, commits a
staging that completed without its commit, hands out again the blocks of a staging that
stalled. The decisions are :mod:`copy_ops.copies.block_lifecycle`'s; the sends are the
engine's (:mod:`copy_ops.copies.staging`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from copy_ops.copies import block_lifecycle as rules
from copy_ops.copies.lifecycle import Action, Decision, Timing
from copy_ops.copies.model import Operation
from copy_ops.copies.ports import Storage
from copy_ops.copies.records import Ledger, Stored
from copy_ops.copies.staging import BlockEngine, Finisher
from copy_ops.core.errors import CopyIdMismatch, CopyOpsError, NoPendingCopy, NotFound, StorageUnavailable

logger = logging.getLogger(__name__)


class BlockSweep:
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
        if decision.step is rules.Step.CONFIRM:
            seen = await self._storage.observe_copy(op.destination)
            shown = seen is not None and rules.shows_commit(op, seen.owner, seen.etag)
            decision = rules.confirm(op, shown, now)
        if decision.step is rules.Step.END:
            ending = Decision(Action.FINISH, decision.state, decision.abort_reason, decision.error)
            return await self._finish(stored, ending, now)
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
        try:
            return await self._engine.copy_whole(stored, self._engine.source_of(op, None), now, at_start=False)
        except StorageUnavailable:
            return stored.op

    async def escalate(self, stored: Stored, now: datetime) -> Operation | None:
        """An async copy of ``auto`` still pending at its share of the time: aborted, and
        finished by the block engine. None when the copy was no longer pending (the caller
        settles it as usual)."""
        op = stored.op
        assert op.copy_id is not None
        try:
            await self._storage.abort_copy(op.destination, op.copy_id)
        except (NoPendingCopy, CopyIdMismatch, NotFound):
            return None
        seen = await self._storage.observe_copy(op.destination)
        escalated = rules.escalated(op, seen.etag if seen is not None else None, now)
        logger.info("copy_escalated op=%s copy_id=%s", op.id, op.copy_id)
        stored = await self._ledger.save(escalated, stored.etag, now)
        try:
            return await self._engine.plan_and_send(
                stored, self._engine.source_of(stored.op, None), None, now, at_start=False
            )
        except StorageUnavailable:
            return stored.op  # planned by the next look
        except CopyOpsError as exc:
            current = await self._ledger.read(op.id)
            return current.op if current.op.is_final else await self._engine.fail(current, exc, now)
