"""The app's one service: the copies' and the jobs' services side by side, on one account.

``service.start / get / list / abort / process_due`` are the copies'
(:class:`copy_ops.copies.copy_service.CopyService`), ``service.jobs`` the jobs'
(:class:`copy_ops.jobs.job_service.JobService`, which starts and settles its items through the
copies' modules). The edges and the background work hold this service; the composition root
(:mod:`copy_ops.edges.runtime`) builds it once per process. Domain objects in and out:
parsing requests and shaping responses is the adapters' work.
"""

from __future__ import annotations

from datetime import datetime

from copy_ops.copies.copy_service import CopyService, StartOutcome
from copy_ops.copies.model import BlobRef, CopyRequest, ListQuery, Operation, OperationPage
from copy_ops.copies.ports import Announcer, WorkQueue
from copy_ops.copies.records import Ledger
from copy_ops.copies.settle import Settled
from copy_ops.core.callers import KEY_CALLER, Caller
from copy_ops.core.settings import Settings
from copy_ops.jobs.job_service import JobService
from copy_ops.jobs.ports import JobStorage
from copy_ops.jobs.records import JobLedger
from copy_ops.jobs.watch import LastItemWatch
from copy_ops.observability.telemetry import OFF, Telemetry
from copy_ops.work.keys import SealedQueue, WorkKeys
from copy_ops.work.stage_messages import StageMessages

__all__ = ["AppService", "StartOutcome"]


class AppService:
    def __init__(
        self,
        settings: Settings,
        storage: JobStorage,
        work: WorkQueue | None = None,
        announcer: Announcer | None = None,
        telemetry: Telemetry = OFF,
    ) -> None:
        self.settings = settings
        self.storage = storage
        # Metrics and spans (OpenTelemetry), or the no-op.
        self.telemetry = telemetry
        # Where final states are announced; None: events are off (settings name no target).
        self.announcer = announcer
        # The work key: every message sent is sealed with it, every message taken checked.
        self.keys = WorkKeys(storage, settings.ledger_container, settings.work_unsealed_until)
        # The work queue, for the sweep's fan-out and the jobs; None: the sweep settles everything itself.
        # (Another instance's queue, as tests hand it over, is sealed with this one's key.)
        if isinstance(work, SealedQueue):
            work = work.unsealed
        self.work = SealedQueue(work, self.keys) if work is not None else None
        self.ledger = Ledger(storage, settings.ledger_container)
        # An item of a job that ends after being pending asks for a check of its job.
        watch = LastItemWatch(JobLedger(storage, settings.ledger_container, self.ledger), self.work)
        self.copies = CopyService(
            settings,
            storage,
            announcer,
            telemetry,
            ledger=self.ledger,
            # The block engine hands its blocks out on the work queue.
            queue=StageMessages(self.work) if self.work is not None else None,
            job_watch=watch,
        )
        self.jobs = JobService(
            settings,
            storage,
            self.work,
            ledger=self.ledger,
            starter=self.copies.starter,
            settler=self.copies.settler,
            announcer=announcer,
            telemetry=telemetry,
        )

    # ``caller``: who asks (the edges pass the request's); a key's holder, an admin, by default.

    async def start(
        self, request: CopyRequest, now: datetime, idempotency_key: str | None = None, *, caller: Caller = KEY_CALLER
    ) -> StartOutcome:
        return await self.copies.start(request, now, idempotency_key, caller=caller)

    async def get(self, operation_id: str, now: datetime, *, caller: Caller = KEY_CALLER) -> Operation:
        return await self.copies.get(operation_id, now, caller=caller)

    async def list(self, query: ListQuery, *, caller: Caller = KEY_CALLER) -> OperationPage:
        return await self.copies.list(query, caller=caller)

    async def abort(self, operation_id: str, now: datetime, *, caller: Caller = KEY_CALLER) -> Operation:
        return await self.copies.abort(operation_id, now, caller=caller)

    async def process_due(self, operation_id: str, now: datetime) -> Settled:
        return await self.copies.process_due(operation_id, now)

    def public_url(self, ref: BlobRef) -> str | None:
        return self.copies.public_url(ref)

    async def close(self) -> None:
        """Close the connections: storage's, the work queue's and the event targets'."""
        await self.storage.close()
        for part in (self.work, self.announcer):
            close = getattr(part, "close", None)
            if close is not None:
                await close()
