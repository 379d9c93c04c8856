"""An operation's end, recorded: its final state written with the ETag it was read with,
then its cleanup done, then its job told. The one way every part of the copies (the
sweep's check, an abort, the block engine, a view that finds a copy ended) ends one.

A final state is written before any cleanup that changes the destination, so only the
writer that won the record goes on to clean up (invariant 3). A failure that may pass, with
room for another attempt, is no end: the record is written ``retrying`` instead
(:mod:`copy_ops.copies.retry`), owing nothing yet: its lease and snapshot serve the next attempt.
"""

from __future__ import annotations

import logging
from datetime import datetime

from copy_ops.copies import lifecycle, retry
from copy_ops.copies.cleanup import Cleaner
from copy_ops.copies.lifecycle import Decision, Timing
from copy_ops.copies.metrics import attempt_failed, operation_ended
from copy_ops.copies.model import Operation
from copy_ops.copies.ports import JobWatch
from copy_ops.copies.records import Ledger, Stored
from copy_ops.observability.telemetry import OFF, Telemetry

logger = logging.getLogger(__name__)


class Ending:
    def __init__(
        self,
        ledger: Ledger,
        cleaner: Cleaner,
        timing: Timing,
        telemetry: Telemetry = OFF,
        job_watch: JobWatch | None = None,
    ) -> None:
        self._ledger = ledger
        self._cleaner = cleaner
        self._timing = timing
        self._telemetry = telemetry
        # Told when an item of a job ends here (none: the jobs' scheduled checks alone end them).
        self._job_watch = job_watch

    async def __call__(
        self, stored: Stored, ending: Decision, now: datetime, *, clean: bool = True, watch: bool = True
    ) -> Operation:
        """Record the final state, then clean up (unless ``clean`` is false: the cleanup
        stays on the record, due now, for the sweep); ``watch``: tell the job of an item
        (false for an item that ended at its start: its page's end tells the job).
        :class:`PreconditionFailed` if another writer got to the record first: then nothing
        is touched."""
        if ending.error is not None:
            again = retry.retrying(stored.op, ending.error, now, self._timing.start_grace)
            if again is not None:
                return await self.attempt_failed(stored, again, now)
        op = lifecycle.finish(
            stored.op, ending.state, now, self._timing, abort_reason=ending.abort_reason, error=ending.error
        )
        saved = await self._ledger.save(op, stored.etag, now)
        operation_ended(self._telemetry, op)
        logger.info(
            "copy_finished op=%s state=%s reason=%s error=%s",
            op.id,
            op.state,
            op.abort_reason,
            op.error.code if op.error else None,
        )
        if clean:
            ended, _ = await self._cleaner.run(saved, now)
        else:
            ended = saved.op
        if watch and ended.job is not None and self._job_watch is not None:
            # After the item's own cleanup: a job that ends now finds its items settled.
            await self._job_watch.item_ended(ended, now)
        return ended

    async def attempt_failed(self, stored: Stored, again: Operation, now: datetime) -> Operation:
        """An attempt's failure recorded, its next attempt scheduled (``again``: the record so)."""
        saved = await self._ledger.save(again, stored.etag, now)
        attempt_failed(self._telemetry, again)
        return saved.op
