"""A job's items aborted on request: inline, or beyond the fan-out threshold in batches on
the work queue (each batch aborted by whichever instance takes it), never twice at once.

An abort message names its job, and is acted on only if that job's abort was asked for and
every id it names is an item of that job (its id begins with the job's): whoever can put a
message on the work queue cannot abort other operations with it (issue 28). One without a
job (sent by the version before, in a rolling deployment) is refused likewise: its items stay
pending until the job's next check finds them and hands them out again (once their batch's
time in flight, ``fanout.LEASE``, is over) or aborts them inline."""

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
from copy_ops.jobs.progress import item_prefix
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
            await self._work.send(list(batches(handed, partial(_abort_of, job_id), SETTLE_BATCH)))
            registry.add(handed, now + fanout.LEASE)
            await registry.save(now)
        logger.info("job_items_handed_out job=%s count=%s", job_id, len(handed))

    async def abort_batch(self, message: Abort, now: datetime) -> Counter[str]:
        """A batch of a job's items handed out by its abort, aborted; refused whole (nothing
        aborted) unless it names its job, that job's abort was asked for, and every id is
        an item of that job."""
        why = await self._refusal(message)
        if why is not None:
            what = f"ids={len(message.ids)}"
            logger.warning("job_abort_refused job=%s reason=%s %s", message.job or "-", why, what)
            return Counter({"refused": len(message.ids)})
        return await self.abort_all(message.ids, now)

    async def _refusal(self, message: Abort) -> str | None:
        if message.job is None:
            return "no_job"
        prefix = item_prefix(message.job)
        if not all(operation_id.startswith(prefix) for operation_id in message.ids):
            return "not_its_items"
        stored = await self._jobs.read_or_none(message.job)
        if stored is None or stored.job.abort_requested_at is None:
            return "not_aborted"
        return None

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


def _abort_of(job_id: str, ids: tuple[str, ...]) -> Abort:
    return Abort(ids, job_id)
