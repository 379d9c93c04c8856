"""A job ends with its last item: told of each item that ends after being pending, the
watch asks for a check of the job when that item may have been the last.

"May have been the last" costs one request: the index asked for a few of the job's items
still pending. None but the item itself: the job is checked now, with that item counted
as its record says (the index may not show its end yet). A few: they may be items that
ended at the same moment, each seeing the others still pending in an index that lags, so
the check comes a little later, when the index has caught up. More than a few: a later
item's end asks. The enumeration asks for a check when it ends (items that ended at their
start never pass here), and the sweep's scheduled check stays the safety net for a check
that was never asked for (a crash between an item's end and its message).
"""

from __future__ import annotations

import logging
from datetime import datetime

from copy_ops.copies.model import Operation
from copy_ops.copies.ports import WorkQueue
from copy_ops.core.errors import CopyOpsError
from copy_ops.jobs.records import JobLedger
from copy_ops.work.messages import Check, encode

logger = logging.getLogger(__name__)

# Items that may end within one lag of the blob index of each other (a sweep's or a
# batch's concurrency): each of them asks for a delayed check.
AT_ONCE = 32
# How long a delayed check waits for the index: Azure's lag is under a second at a job's
# rates (docs/ledger.md); the scheduled check covers a longer one.
INDEX_CATCH_UP_SECONDS = 2


class LastItemWatch:
    def __init__(self, jobs: JobLedger, work: WorkQueue | None) -> None:
        self._jobs = jobs
        self._work = work

    async def item_ended(self, operation: Operation, now: datetime) -> None:
        job = operation.job
        if job is None or self._work is None:
            return
        try:
            others = [item for item in await self._jobs.pending_sample(job, AT_ONCE + 1) if item != operation.id]
            if len(others) > AT_ONCE:
                return
            delay = INDEX_CATCH_UP_SECONDS if others else 0
            await self._work.send([encode(Check(job, operation.id))], delay_seconds=delay)
        except CopyOpsError as exc:
            # The item's end is recorded; the job's scheduled check ends the job instead.
            logger.warning("job_look_deferred job=%s op=%s error=%s", job, operation.id, exc.kind)
            return
        logger.info("job_look_asked job=%s op=%s others_pending=%s", job, operation.id, len(others))
