"""The block engine, against storage: a copy planned, its blocks staged by the work
queue's messages on any instance, committed before the deadline or not at all.

Every send follows a conditional write of the record that allows it (the plan before the
blocks go out, the commit's send before the commit), so whoever ends the record first (the
sweep at the deadline, an abort on request) stops every send after it. The decisions are
:mod:`copy_ops.copies.block_lifecycle`'s; the requests are the
:class:`~copy_ops.copies.ports.BlockCopies` port's.

Size: a little over 250 lines: every send of the engine, each beside the conditional write
that allows it, so that the rule "no send without its write" is read in one place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from copy_ops.aio.clock import Elapsed
from copy_ops.copies import block_lifecycle as rules
from copy_ops.copies.blocks import LARGEST_BLOB, Block, Staged
from copy_ops.copies.lifecycle import Action, Decision
from copy_ops.copies.model import CopyRequest, DestinationCondition, Operation, Progress, State
from copy_ops.copies.phases import Phase
from copy_ops.copies.ports import BlockQueue, BlockSource, Commit, Storage
from copy_ops.copies.records import Ledger, Stored
from copy_ops.core.errors import (
    BlocksMissing,
    CopyOpsError,
    DestinationChanged,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    SourceChanged,
    StorageUnavailable,
)

logger = logging.getLogger(__name__)

# How many times a checkpoint re-reads the record after losing a race for it (another
# instance's checkpoint of the same copy, most often).
CHECKPOINT_ATTEMPTS = 10
# Blocks that failed for a moment go back to the queue this much later.
RETRY_DELAY_SECONDS = 5


class Finisher(Protocol):
    """Records a final state and cleans up after it (:class:`~copy_ops.copies.ending.Ending`);
    ``watch``: tell the item's job (not for an item that ended at its start: its page does)."""

    async def __call__(
        self, stored: Stored, ending: Decision, now: datetime, *, clean: bool = True, watch: bool = True
    ) -> Operation: ...


class BlockEngine:
    def __init__(self, ledger: Ledger, storage: Storage, finish: Finisher, queue: BlockQueue | None) -> None:
        self._ledger = ledger
        self._storage = storage
        self._finish = finish
        # Where blocks are handed out (the work queue); None: the engine cannot run, and a
        # copy that needs it is refused at its start.
        self.queue = queue

    # -- the start ----------------------------------------------------------------------

    async def launch(self, stored: Stored, request: CopyRequest, now: datetime, by: str | None = None) -> Operation:
        """Pin the source, record the plan, and send the blocks out (or the one request).
        A refusal of the source, or of the one request, raises: nothing was written to the
        destination, and the starter undoes or records it. ``by``: the caller who asked."""
        # A caller's SAS goes with the staging messages (never into the record).
        sas = urlsplit(request.source_url).query if stored.op.source_sas and request.source_url else None
        return await self.plan_and_send(stored, request.source, sas, now, at_start=True, by=by)

    async def plan_and_send(
        self,
        stored: Stored,
        source: BlockSource,
        sas: str | None,
        now: datetime,
        *,
        at_start: bool,
        by: str | None = None,
    ) -> Operation:
        clock = Elapsed(now)
        facts = await self._storage.source_facts(source)
        pinned = rules.part(stored.op).source_etag
        if pinned is not None and pinned != facts.etag:
            # A later attempt: its blocks staged are of the version pinned, which is gone.
            raise SourceChanged("the source changed between attempts", code="SourceChanged")
        if facts.size > LARGEST_BLOB:
            raise InvalidRequest(f"the source is larger than a block blob may be ({LARGEST_BLOB} bytes)")
        if not rules.may_commit(stored.op, clock.now()):
            # Too close to its deadline for any commit: nothing is sent; the sweep ends it then.
            logger.info("blocks_too_late op=%s", stored.op.id)
            return stored.op
        planned = rules.planned(stored.op, facts, clock.now(), by)
        if at_start and not rules.single(planned):
            await self._refuse_an_existing_destination(planned)
        try:
            stored = await self._ledger.save(planned, stored.etag, clock.now())
        except PreconditionFailed:
            # An abort (or the sweep) changed the record first: nothing was sent; they settle it.
            return await self._ledger.get(stored.op.id)
        op = stored.op
        logger.info("blocks_planned op=%s size=%s blocks=%s", op.id, facts.size, rules.counts(op))
        if rules.single(op):
            return await self.copy_whole(stored, source, clock.now(), at_start=at_start)
        if rules.complete(op):  # a later attempt whose blocks were all staged: its commit is left
            await self.commit(stored, clock.now(), sas)
            return await self._ledger.get(op.id)
        await self.hand_out(op, rules.staged(op).missing(rules.plan_of(op)), sas)
        return op

    # -- the work queue's messages ------------------------------------------------------

    async def stage(self, operation_id: str, blocks: str, sas: str | None, now: datetime) -> str:
        """Stage a message's blocks (those not staged yet), checkpoint them, and commit if
        they were the last; what it did, for the trigger's log line. Blocks that failed for
        a moment, or that the invocation's time did not reach, go back to the queue."""
        clock = Elapsed(now)
        try:
            stored = await self._ledger.read(operation_id)
        except NotFound:
            return "vanished"  # its start was undone, or retention deleted it
        op, wanted = stored.op, Staged.parse(blocks).indexes()
        refusal = rules.stage_refusal(op, wanted, sas)
        if refusal is not None:
            logger.warning("stage_refused op=%s reason=%s", op.id, refusal)
            return "refused"
        if op.phase is not Phase.STAGING or rules.single(op):
            return "nothing"  # not planned yet, its commit sent, or ended
        if not rules.may_commit(op, now):
            return "stopped"  # past the last moment a commit could be sent: the sweep ends it
        todo = [block for block in rules.staged(op).missing(rules.plan_of(op)) if block.index in wanted]
        done, left, failure = await self._stage_blocks(op, self.source_of(op, sas), todo, clock)
        stored_or_none = await self._checkpoint(op.id, done, clock.now())
        if stored_or_none is None:
            return "ended"
        stored = stored_or_none
        if failure is not None:
            await self.fail(stored, failure, clock.now())
            return "failed"
        if rules.complete(stored.op):
            await self.commit(stored, clock.now(), sas)
            return "committed"
        if left:
            await self.hand_out(stored.op, left, sas, delay=RETRY_DELAY_SECONDS)
            return "continued"
        return "staged"

    async def _stage_blocks(
        self, op: Operation, source: BlockSource, todo: Sequence[Block], clock: Elapsed
    ) -> tuple[frozenset[int], list[Block], CopyOpsError | None]:
        """Each block staged (the process bounds how many at once): those staged, those
        left for later, and a failure that ends the copy, if one came."""
        stop_at = time.monotonic() + rules.STAGE_SECONDS
        done: set[int] = set()
        left: list[Block] = []
        failures: list[CopyOpsError] = []
        etag = rules.part(op).source_etag
        assert etag is not None

        def go() -> bool:
            return not failures and time.monotonic() <= stop_at and rules.may_commit(op, clock.now())

        async def one(block: Block) -> None:
            try:  # the engine's time, and a failure, are checked once the block's slot is held
                await self._storage.stage_block(op.destination, source, etag, block, go)
            except StorageUnavailable:  # for a moment, or not sent at all (NotSent)
                left.append(block)
            except CopyOpsError as exc:
                failures.append(exc)
            else:
                done.add(block.index)

        await asyncio.gather(*(one(block) for block in todo))
        left.sort(key=lambda block: block.index)
        return frozenset(done), left, (failures[0] if failures else None)

    async def _checkpoint(self, operation_id: str, indexes: frozenset[int], now: datetime) -> Stored | None:
        """The record with ``indexes`` staged too; None if it ended, or its commit was sent."""
        for attempt in range(CHECKPOINT_ATTEMPTS):
            stored = await self._ledger.read(operation_id)
            if stored.op.phase is not Phase.STAGING:
                return None
            if indexes <= rules.staged(stored.op).indexes():
                return stored
            try:
                return await self._ledger.save(rules.checkpointed(stored.op, indexes, now), stored.etag, now)
            except PreconditionFailed:
                # Another instance's checkpoint of the same copy: read it again, a little apart.
                await asyncio.sleep(random.uniform(0, 0.05 * (attempt + 1)))  # noqa: S311  (jitter, not a secret)
        raise StorageUnavailable(f"operation {operation_id}: its checkpoint kept losing races", code="Busy")

    # -- the commit ---------------------------------------------------------------------

    async def commit(self, stored: Stored, now: datetime, sas: str | None = None) -> None:
        """Put Block List, if the deadline leaves time for it: its send recorded first, its
        last moment taken after that write, on the time it is then."""
        clock = Elapsed(now)
        op = stored.op
        if not rules.may_commit(op, clock.now()):
            return  # the sweep ends it at the deadline
        try:
            sent_at = clock.now()
            stored = await self._ledger.save(rules.sending_commit(op, sent_at), stored.etag, sent_at)
        except PreconditionFailed:
            return  # another instance commits it, or the copy ended
        terms = self._terms(op, clock.now())
        try:
            await self._storage.commit_blocks(op.destination, [block.id for block in rules.plan_of(op)], terms)
        except BlocksMissing:
            await self._restage(stored, clock.now(), sas)
            return
        except StorageUnavailable:
            logger.warning("blocks_commit_uncertain op=%s", op.id)
            return  # the sweep checks once the commit cannot land any more
        except CopyOpsError as exc:
            await self.fail(stored, exc, now)
            return
        await self._succeeded(stored, now)

    async def _refuse_an_existing_destination(self, op: Operation) -> None:
        """Not overwriting, a copy of many blocks is refused at its start when its destination
        is there (409, nothing sent), as the one request of a small blob is by its
        If-None-Match: *; else the commit would refuse it only once every block was staged.
        One read of the destination; the commit keeps its condition for a blob written
        meanwhile."""
        if op.condition is not DestinationCondition.ABSENT:
            return
        if await self._storage.observe_copy(op.destination) is not None:
            raise DestinationChanged("the destination exists and overwrite is false: nothing was copied")

    async def copy_whole(self, stored: Stored, source: BlockSource, now: datetime, *, at_start: bool) -> Operation:
        """The one Put Blob From URL of a small blob (its send recorded already). Its outcome
        unknown (a timeout, a lost answer), the copy stays pending: it may land until its
        grace is over, and the sweep then checks (landed: succeeded; else sent again, or ended
        at the deadline); a start answers it so, never as if nothing had started."""
        op = stored.op
        etag = rules.part(op).source_etag
        assert etag is not None
        try:
            await self._storage.copy_whole(op.destination, source, etag, self._terms(op, now))
        except StorageUnavailable as exc:
            logger.warning("blocks_commit_uncertain op=%s code=%s", op.id, exc.code)
            return op
        except CopyOpsError as exc:
            if at_start:  # the start's refusal: undone, or recorded, by the starter
                raise rules.start_refusal(op, exc) from None
            return await self.fail(stored, exc, now)
        return await self._succeeded(stored, now, watch=not at_start)

    def _terms(self, op: Operation, now: datetime) -> Commit:
        """The commit's terms; ``now`` the time it is (after its send was recorded)."""
        return Commit(
            content=rules.part(op).content,
            metadata=op.terms.metadata | {"copyops_operation": op.id},
            condition=op.condition,
            etag=rules.part(op).condition_etag,
            last_moment=time.monotonic() + rules.commit_window(op, now),
        )

    async def _restage(self, stored: Stored, now: datetime, sas: str | None) -> None:
        """The commit named blocks no longer staged (a write to the destination discarded
        them): the staged set becomes what is there, and the rest goes out again."""
        op = stored.op
        present = await self._storage.uncommitted_blocks(op.destination)
        indexes = frozenset(block.index for block in rules.plan_of(op) if block.id in present)
        try:
            stored = await self._ledger.save(rules.restaging(op, indexes, now), stored.etag, now)
        except PreconditionFailed:
            return
        logger.warning("blocks_restaged op=%s kept=%s", op.id, len(indexes))
        if sas is not None or not stored.op.source_sas:
            await self.hand_out(stored.op, rules.staged(stored.op).missing(rules.plan_of(stored.op)), sas)

    async def _succeeded(self, stored: Stored, now: datetime, *, watch: bool = True) -> Operation:
        whole = Progress(stored.op.source_size or 0, stored.op.source_size or 0)
        done = Stored(dataclasses.replace(stored.op, progress=whole), stored.etag)
        try:
            return await self._finish(done, Decision(Action.FINISH, State.SUCCEEDED), now, watch=watch)
        except PreconditionFailed:
            return await self._ledger.get(stored.op.id)  # the sweep saw it land first

    async def fail(self, stored: Stored, exc: CopyOpsError, now: datetime) -> Operation:
        """The copy ends failed: nothing was committed (the destination is as it was)."""
        op = stored.op
        error = rules.failure(op, exc)
        logger.info("blocks_failed op=%s code=%s kind=%s", op.id, error.code, exc.kind)
        try:
            return await self._finish(stored, Decision(Action.FINISH, State.FAILED, error=error), now)
        except PreconditionFailed:
            return await self._ledger.get(op.id)

    # -- helpers ------------------------------------------------------------------------

    def source_of(self, op: Operation, sas: str | None) -> BlockSource:
        """What the blocks are read from, from the record (and a message's SAS)."""
        if op.source_blob is not None:
            return op.source_blob
        if op.source_foreign is not None:
            return op.source_foreign
        return f"{op.source}?{sas}" if sas else op.source

    async def hand_out(self, op: Operation, todo: Sequence[Block], sas: str | None, delay: int = 0) -> None:
        """The blocks to stage as work messages, a batch each, for any instance to take."""
        if not todo:
            return
        if self.queue is None:
            raise StorageUnavailable("the block engine needs the work queue (COPY_WORK_QUEUE)", code="NoWorkQueue")
        indexes = [block.index for block in todo]
        batches = [indexes[at : at + rules.STAGE_BATCH] for at in range(0, len(indexes), rules.STAGE_BATCH)]
        await self.queue.hand_out(op.id, [Staged.of(set(batch)).text() for batch in batches], sas, delay)
