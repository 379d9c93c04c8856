"""The cleanup runner: what an ended operation still owes, done and recorded.

Steps are idempotent and stay on the record until each succeeds; the sweep retries
what failed. Order matters: a restore reads the snapshot, so the snapshot is dropped
only after the restore copy has succeeded; a late-start check may add the cleanup of a
copy it finds.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta

from copy_ops.copies import lifecycle
from copy_ops.copies.events import operation_event
from copy_ops.copies.lifecycle import Timing
from copy_ops.copies.model import BlobRef, Cleanup, CopyStatus, Operation
from copy_ops.copies.ports import Announcer, BlobCopies, shown_url
from copy_ops.copies.records import Ledger, Stored
from copy_ops.core.errors import Conflict, CopyOpsError, NotFound, PreconditionFailed, UnsafeName

logger = logging.getLogger(__name__)

# How long a restore copy may read the snapshot (a SAS the adapter mints, with an
# identity): a copy within one account; if it fails, the next sweep starts another.
RESTORE_WINDOW = timedelta(hours=1)


async def abort_ours_quietly(copies: BlobCopies, dest: BlobRef, operation_id: str, copy_id: str) -> None:
    """Abort a copy known to be ours; if that fails (it ended meanwhile, or storage is
    away), the sweep's checks take it from here."""
    try:
        await copies.abort_copy(dest, copy_id)
        logger.info("copy_late_start_aborted op=%s copy_id=%s", operation_id, copy_id)
    except CopyOpsError as exc:
        logger.warning("copy_late_start_abort_failed op=%s error=%s code=%s", operation_id, exc.kind, exc.code)


class Cleaner:
    def __init__(self, ledger: Ledger, copies: BlobCopies, timing: Timing, announcer: Announcer | None = None) -> None:
        self._ledger = ledger
        self._copies = copies
        self._timing = timing
        self._announcer = announcer

    async def run(self, stored: Stored, now: datetime) -> tuple[Operation, bool]:
        """Do the outstanding cleanup; what fails stays on the record for the next sweep.

        Returns the record as it now stands, and True when nothing is left to do.
        """
        op = stored.op
        if not op.cleanup:
            return op, True
        remaining: list[Cleanup] = []
        tasks = list(op.cleanup)
        while tasks:
            task = tasks.pop(0)
            if task is Cleanup.DROP_SNAPSHOT and Cleanup.RESTORE_DESTINATION in remaining:
                remaining.append(task)  # the restore still reads from the snapshot
                continue
            if task is Cleanup.CHECK_LATE_START and now < lifecycle.late_start_check_at(op, self._timing):
                remaining.append(task)  # the start may still be running
                continue
            try:
                op, done = await self._step(op, task)
            except UnsafeName as exc:
                # A name copy-ops will never address: retrying cannot help, so the task
                # is dropped, said once, instead of deferred at every sweep for ever.
                logger.error("cleanup_dropped op=%s task=%s code=%s", op.id, task, exc.code)
                done = True
            except CopyOpsError as exc:
                logger.warning("cleanup_deferred op=%s task=%s error=%s code=%s", op.id, task, exc.kind, exc.code)
                done = False
            if not done:
                remaining.append(task)
            elif task is Cleanup.CHECK_LATE_START:
                # The start may have taken the lease after it was released, or begun a copy:
                # what ending it owes (with the copy id, if one was found) comes next.
                tasks = list(lifecycle.after_late_start_check(op, set(tasks), now, self._timing))
        left = tuple(remaining)
        retry_at = now + self._timing.first_check
        op = dataclasses.replace(
            op, cleanup=left, next_check_at=lifecycle.cleanup_due(op, left, now, self._timing, retry_at)
        )
        try:
            op = (await self._ledger.save(op, stored.etag, now)).op
        except PreconditionFailed:
            return op, False  # someone else is cleaning up this operation
        return op, not left

    async def _step(self, op: Operation, task: Cleanup) -> tuple[Operation, bool]:
        if task is Cleanup.CHECK_LATE_START:
            return await self._check_late_start(op), True
        if task is Cleanup.ANNOUNCE:
            return op, await self._announce(op)
        if task is Cleanup.RELEASE_SOURCE_LEASE:
            if op.source_blob is not None:
                await self._copies.release_lease(op.source_blob, lifecycle.lease_id_for(op.id))
            return op, True
        if task is Cleanup.DROP_SNAPSHOT:
            assert op.restore is not None
            await self._copies.delete_blob(op.destination, snapshot=op.restore.snapshot)
            return op, True
        if task is Cleanup.DELETE_DESTINATION:
            try:
                await self._copies.delete_blob(op.destination)
            except Conflict as exc:
                # The blob has snapshots of its own (not ours): keeping it loses nothing.
                logger.warning("destination_kept op=%s code=%s", op.id, exc.code)
            return op, True
        try:
            return await self._restore_step(op)
        except NotFound as exc:
            # The snapshot is gone (deleted with its blob by someone else): nothing is left
            # to restore from, at this sweep or any later one.
            logger.error("cleanup_dropped op=%s task=%s code=%s", op.id, task, exc.code)
            return op, True

    async def _announce(self, op: Operation) -> bool:
        """Send the final state's event; True once a target took it. Without a target
        (events turned off since the state was recorded) there is nothing to owe."""
        if self._announcer is None:
            return True
        event = operation_event(op, shown_url(self._copies, op.destination))
        await self._announcer.announce([event])
        logger.info("copy_announced op=%s event=%s type=%s", op.id, event.id, event.type)
        return True

    async def _check_late_start(self, op: Operation) -> Operation:
        """Look for a copy of ours that began after the operation ended; stop it if found.
        The record then carries its copy id."""
        seen = await self._copies.observe_copy(op.destination)
        if seen is None or seen.owner != op.id or not seen.copy_id:
            return op
        if seen.status is CopyStatus.PENDING:
            await abort_ours_quietly(self._copies, op.destination, op.id, seen.copy_id)
        logger.info("copy_late_start_found op=%s copy_id=%s", op.id, seen.copy_id)
        return dataclasses.replace(op, copy_id=seen.copy_id)

    async def _restore_step(self, op: Operation) -> tuple[Operation, bool]:
        """Copy the pre-copy snapshot back over the destination; True once it is back."""
        restore = op.restore
        assert restore is not None
        if restore.restore_copy_id is not None:
            seen = await self._copies.observe_copy(op.destination)
            if seen is not None and seen.copy_id == restore.restore_copy_id:
                if seen.status is CopyStatus.SUCCESS:
                    return op, True
                if seen.status is CopyStatus.PENDING:
                    return op, False
        # No metadata given: Copy Blob then restores the snapshot's own metadata too.
        copy_id, status = await self._copies.start_copy(
            op.destination,
            op.destination,
            None,
            overwrite=True,
            readable_until=datetime.now(UTC) + RESTORE_WINDOW,
            source_snapshot=restore.snapshot,
        )
        logger.info("destination_restore_started op=%s error=%s", op.id, status)
        restoring = dataclasses.replace(restore, restore_copy_id=copy_id)
        return dataclasses.replace(op, restore=restoring), status is CopyStatus.SUCCESS
