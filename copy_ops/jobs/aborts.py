"""A job's items aborted on request: inline, or beyond the fan-out threshold in batches on
the work queue (each batch aborted by whichever instance takes it), never twice at once."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from functools import partial

from copy_ops.aio.bounded import Bounded
from copy_ops.copies.ports import Documents, WorkQueue
from copy_ops.copies.settle import Settled, Settler
from copy_ops.core.errors import Conflict, CopyOpsError, NotFound
from copy_ops.core.logtext import counts_text
from copy_ops.core.settings import Settings
from copy_ops.jobs.records import JobLedger
from copy_ops.work import fanout
from copy_ops.work.messages import SETTLE_BATCH, Abort, batches

logger = logging.getLogger(__name__)


class ItemAborts:
    def __init__(
        self, jobs: JobLedger, documents: Documents, settler: Settler, work: WorkQueue | None, settings: Settings
    ) -> None:
        self._jobs = jobs
        self._documents = documents
        self._settler = settler
        self._work = work
        self._settings = settings

    async def abort_pending(self, job_id: str, now: datetime) -> None:
        """Every item of the job the index shows pending, aborted (or handed out to be)."""
        pending = [operation_id async for operation_id in self._jobs.pending_items(job_id)]
        if not pending:
            return
        if self._work is None or len(pending) <= self._settings.fanout_threshold:
            outcomes = await self.abort_all(pending, now)
            logger.info("job_items_aborted job=%s %s", job_id, counts_text(outcomes))
            return
        registry = fanout.InFlight(self._documents, self._settings.ledger_container)
        in_flight = await registry.load(now)
        handed = [operation_id for operation_id in pending if operation_id not in in_flight]
        if handed:
            await self._work.send(list(batches(handed, Abort, SETTLE_BATCH)))
            registry.add(handed, now + fanout.LEASE)
            await registry.save(now)
        logger.info("job_items_handed_out job=%s count=%s", job_id, len(handed))

    async def abort_all(self, ids: Iterable[str], now: datetime) -> Counter[str]:
        """Each item aborted on request, so many at once; the outcomes."""
        async with Bounded(self._settings.sweep_concurrency) as aborting:
            for operation_id in ids:
                await aborting.submit(partial(self._abort_one, operation_id, now))
        return aborting.outcomes

    async def _abort_one(self, operation_id: str, now: datetime) -> Settled:
        """Never raises: one item must not stop the others."""
        try:
            return Settled.of((await self._settler.abort(operation_id, now)).state)
        except Conflict:
            return Settled.ENDED
        except NotFound:
            return Settled.VANISHED
        except CopyOpsError as exc:
            logger.warning("job_item_abort_deferred op=%s error=%s code=%s", operation_id, exc.kind, exc.code)
            return Settled.DEFERRED
