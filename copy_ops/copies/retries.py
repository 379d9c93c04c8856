"""The next attempt of an operation whose attempt failed for a cause that may pass
(:class:`Retrier`): the sweep hands it every record in phase ``retrying`` that is due.

The rules (which failures may pass, the backoff, the room an attempt needs) are
:mod:`copy_ops.copies.retry`'s; this module does the attempt, in an order that survives a
crash at any step:

* an abort asked for, or a deadline with no room left, ends the copy now (``on_abort``
  applies to the failed attempt's leftover, which is ours);
* Copy Blob's attempt looks at the destination first: a copy of ours from a send whose
  answer was lost is adopted; the failed attempt's leftover is replaced, by its ETag
  (If-Match), so that nobody else's blob is ever overwritten by a retry; anything else
  there means the destination is no longer ours (``superseded``);
* the attempt is recorded (``retried``) before its Copy Blob or its plan is sent;
* the block engine's attempt plans again from the blocks staged: the source read again
  must still be the version the blocks came from (else ``source_changed``).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from copy_ops.copies import lifecycle, retry
from copy_ops.copies.block_engine import BlockEngine
from copy_ops.copies.cleanup import abort_ours_quietly
from copy_ops.copies.ending import Ending
from copy_ops.copies.lifecycle import Action, Decision, Timing
from copy_ops.copies.model import (
    OWNER_METADATA_KEY,
    AbortReason,
    CopyObservation,
    CopyStatus,
    Engine,
    ErrorCode,
    Operation,
    OperationError,
    State,
)
from copy_ops.copies.phases import Phase
from copy_ops.copies.ports import BlobCopies, BlockSource
from copy_ops.copies.records import Ledger, Stored
from copy_ops.core.errors import ConditionNotMet, Conflict, CopyOpsError, PreconditionFailed, StorageUnavailable
from copy_ops.core.redaction import redact

logger = logging.getLogger(__name__)


class Retrier:
    def __init__(self, ledger: Ledger, copies: BlobCopies, blocks: BlockEngine, end: Ending, timing: Timing) -> None:
        self._ledger = ledger
        self._copies = copies
        self._blocks = blocks
        self._end = end
        self._timing = timing

    async def next_attempt(self, stored: Stored, now: datetime) -> Operation:
        """The due record of a copy in ``retrying``: ended, or its next attempt under way."""
        op = stored.op
        ending = _ending(op, now)
        if ending is not None:
            stopped, landed = await self._attempt_copy_stopped(stored)
            # The attempt's copy ended first, whole: the copy succeeded (an abort asked is 409, as ever).
            return await self._ended(stopped, Decision(Action.FINISH, State.SUCCEEDED) if landed else ending, now)
        if op.terms.lease_source and op.source_blob is not None:
            # The lease again (its id is the operation's: harmless when held): a start whose
            # acquire went unanswered may never have taken it. A storage fault defers the attempt.
            try:
                await self._copies.acquire_infinite_lease(op.source_blob, lifecycle.lease_id_for(op.id))
            except StorageUnavailable:
                raise
            except CopyOpsError as exc:
                return await self._ended(stored, _source_refused(op, exc), now)
        if op.terms.engine is Engine.BLOCKS:
            return await self._plan_again(stored, now)
        seen = await self._copies.observe_copy(op.destination)
        if _own_later_copy(op, seen):
            return await self._adopt(stored, seen, now)
        replace = None
        if op.copy_id is not None and seen is not None:
            if seen.copy_id != op.copy_id or seen.owner != op.id or seen.etag is None:
                return await self._ended(stored, lifecycle.superseded(), now)
            replace = seen.etag  # the failed attempt's leftover, replaced by exactly its ETag
        stored = await self._ledger.save(retry.retried(op, now, self._timing.start_grace), stored.etag, now)
        logger.info("copy_retried op=%s attempt=%s", op.id, stored.op.attempt)
        return await self._send(stored, replace, now)

    async def _send(self, stored: Stored, replace: str | None, now: datetime) -> Operation:
        """The attempt's Copy Blob; its refusal or its storage fault ends the attempt."""
        op = stored.op
        try:
            copy_id, status = await self._copies.start_copy(
                op.destination,
                _source_of(op),
                {**op.terms.metadata, OWNER_METADATA_KEY: op.id},
                op.terms.overwrite,
                readable_until=op.terms.deadline,
                replace_etag=replace,
            )
        except StorageUnavailable as exc:
            return await self._ended(stored, _failing(retry.unanswered(exc)), now)
        except CopyOpsError as exc:
            seen = await self._observe_quietly(op)
            if _own_later_copy(op, seen):  # its first send got through: the refusal is our own copy's
                return await self._adopt(stored, seen, now)
            logger.info("copy_retry_refused op=%s error=%s code=%s", op.id, exc.kind, exc.code)
            return await self._ended(stored, _refused(op, exc), now)
        return await self._started(stored, copy_id, status, now)

    async def _adopt(self, stored: Stored, seen: CopyObservation | None, now: datetime) -> Operation:
        """A copy of this attempt found on the destination (its send's answer lost), recorded
        as its copy; one that ended already ends the copy as Azure says (a failure by its status)."""
        assert seen is not None and seen.copy_id is not None
        logger.info("copy_adopted op=%s copy_id=%s", stored.op.id, seen.copy_id)
        status = seen.status or CopyStatus.PENDING
        return await self._started(stored, seen.copy_id, status, now, seen.status_description)

    async def _started(
        self, stored: Stored, copy_id: str, status: CopyStatus, now: datetime, description: str | None = None
    ) -> Operation:
        """The attempt's copy recorded (``started``), merged into a record an abort changed
        meanwhile; a copy that ended at once, ended as any other."""
        for _ in range(2):
            op = stored.op
            if op.is_final or op.phase is not Phase.RETRYING:
                # Ended (an abort, a sweep) before its copy was recorded: the copy is ours to
                # stop; unless another sweep found and adopted it meanwhile: it runs on.
                if status is CopyStatus.PENDING and (op.is_final or op.copy_id != copy_id):
                    await abort_ours_quietly(self._copies, op.destination, op.id, copy_id)
                return op
            if op.attempt <= len(op.failed_attempts):
                # A copy found before its attempt was recorded (an unanswered start's that
                # landed): the attempt under way, numbered after the attempts that failed.
                op = retry.retried(op, now, self._timing.start_grace)
            started = lifecycle.adopted(op, copy_id, now)
            started = dataclasses.replace(started, next_check_at=lifecycle.next_check(started, now, self._timing))
            if started.abort_requested_at is not None:
                started = dataclasses.replace(started, next_check_at=now)
            try:
                stored = await self._ledger.save(started, stored.etag, now)
                break
            except PreconditionFailed:
                stored = await self._ledger.read(op.id)
        else:
            return stored.op  # still losing its race: the sweep finds the copy by its owner
        logger.info("copy_started op=%s copy_id=%s attempt=%s", stored.op.id, copy_id, stored.op.attempt)
        if status is CopyStatus.SUCCESS:
            return await self._ended(stored, Decision(Action.FINISH, State.SUCCEEDED), now)
        if status is CopyStatus.FAILED:  # judged by the status its description begins with, if it has one
            error = OperationError(ErrorCode.COPY_FAILED, description or "the copy failed")
            return await self._ended(stored, _failing(error), now)
        return stored.op

    async def _plan_again(self, stored: Stored, now: datetime) -> Operation:
        """The block engine's next attempt: recorded, then planned again from the blocks
        staged (the app reads the source itself: a copy given a SAS is never retried)."""
        op = stored.op
        stored = await self._ledger.save(retry.retried(op, now, self._timing.start_grace), stored.etag, now)
        logger.info("copy_retried op=%s attempt=%s engine=blocks", op.id, stored.op.attempt)
        source: BlockSource = self._blocks.source_of(op, None)
        try:
            return await self._blocks.plan_and_send(stored, source, None, now, at_start=False)
        except StorageUnavailable as exc:
            return await self._ended(await self._ledger.read(op.id), _failing(retry.unanswered(exc)), now)
        except CopyOpsError as exc:
            current = await self._ledger.read(op.id)
            return current.op if current.op.is_final else await self._blocks.fail(current, exc, now)

    async def _attempt_copy_stopped(self, stored: Stored) -> tuple[Stored, bool]:
        """A copy ending whose next attempt was recorded (``retried``) but not its copy: that
        attempt's Copy Blob may have been sent before its host died. A copy of it found is
        stopped (nothing of the copy runs past its end), and is the copy its ending cleans;
        True when that copy had already succeeded (then nothing is to be cleaned)."""
        op = stored.op
        if op.terms.engine is not Engine.ASYNC or op.attempt <= len(op.failed_attempts):
            return stored, False  # no attempt under way (the block engine sends nothing before its plan's write)
        seen = await self._copies.observe_copy(op.destination)
        if not _own_later_copy(op, seen):
            return stored, False
        assert seen is not None and seen.copy_id is not None
        if seen.status is CopyStatus.PENDING:
            await abort_ours_quietly(self._copies, op.destination, op.id, seen.copy_id)
        found = dataclasses.replace(op, copy_id=seen.copy_id, progress=seen.progress or op.progress)
        return Stored(found, stored.etag), seen.status is CopyStatus.SUCCESS

    async def _ended(self, stored: Stored, ending: Decision, now: datetime) -> Operation:
        try:
            return await self._end(stored, ending, now)
        except PreconditionFailed:
            return (await self._ledger.read(stored.op.id)).op  # another writer came first: theirs to settle

    async def _observe_quietly(self, op: Operation) -> CopyObservation | None:
        try:
            return await self._copies.observe_copy(op.destination)
        except CopyOpsError:
            return None


def _ending(op: Operation, now: datetime) -> Decision | None:
    """A copy waiting for its next attempt that ends instead: an abort asked for (its failed
    attempt's leftover cleaned as ``on_abort`` says), or no room left before its deadline
    (failed, with the last attempt's error)."""
    if op.abort_requested_at is not None:
        return Decision(Action.FINISH, State.ABORTED, AbortReason.REQUESTED)
    if now + retry.needed(op) > op.terms.deadline:
        error = retry.last_error(op) or OperationError(ErrorCode.COPY_FAILED, "the copy failed")
        return _failing(error)
    return None


def _own_later_copy(op: Operation, seen: CopyObservation | None) -> bool:
    """A copy of ours on the destination that no attempt that failed made: this attempt's."""
    return (
        seen is not None
        and seen.owner == op.id
        and seen.copy_id is not None
        and seen.copy_id != op.copy_id
        and not retry.earlier_copy(op, seen.copy_id)
    )


def _source_of(op: Operation) -> BlockSource:
    """What the attempt's Copy Blob reads: as the record names it (never a caller's SAS: a
    copy given one is tried once)."""
    if op.source_blob is not None:
        return op.source_blob
    if op.source_foreign is not None:
        return op.source_foreign
    return op.source


def _refused(op: Operation, refusal: CopyOpsError) -> Decision:
    """A later attempt's Copy Blob refused: the destination no longer the leftover it was to
    replace (someone else's now), or the source refused (the leftover stays ours)."""
    if isinstance(refusal, ConditionNotMet | Conflict) and op.copy_id is not None:
        return lifecycle.superseded()
    return _source_refused(op, refusal)


def _source_refused(op: Operation, refusal: CopyOpsError) -> Decision:
    """A later attempt refused by its source (gone, forbidden, leased by someone else): the
    leftover of an attempt that failed stays ours."""
    code = ErrorCode.START_REFUSED if op.copy_id is None else ErrorCode.RETRY_REFUSED
    return _failing(OperationError(code, f"{refusal.title}: {redact(refusal.detail)}"))


def _failing(error: OperationError) -> Decision:
    return Decision(Action.FINISH, State.FAILED, error=error)
