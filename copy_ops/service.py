"""The copy service: one door to the lifecycle against storage, over four rooms.

* :mod:`copy_ops.starting`: start a copy (write-ahead record, lease, Copy Blob), undo a refused one;
* :mod:`copy_ops.reading`: an operation with live progress, pages of them;
* :mod:`copy_ops.settling`: the sweep's work on one operation, and aborts on request;
* :mod:`copy_ops.cleanup`: what an ended operation still owes;

and, as ``service.jobs``, the jobs' door (:mod:`copy_ops.jobs.service`).

It takes and returns domain objects (:mod:`copy_ops.model`); parsing requests and
shaping responses is the adapters' work (:mod:`copy_ops.http`, :mod:`copy_ops.triggers`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from copy_ops.cleanup import Cleaner
from copy_ops.jobs.ports import JobStorage
from copy_ops.jobs.service import JobService
from copy_ops.ledger import Ledger
from copy_ops.lifecycle import Timing
from copy_ops.model import BlobRef, CopyRequest, ListQuery, Operation, OperationPage
from copy_ops.ports import Announcer, WorkQueue, shown_url
from copy_ops.reading import Reader
from copy_ops.settings import Settings
from copy_ops.settling import Settler
from copy_ops.starting import Starter, StartOutcome
from copy_ops.telemetry import OFF, Telemetry

__all__ = ["CopyService", "StartOutcome"]


class CopyService:
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
        # The work queue, for the sweep's fan-out; None: the sweep settles everything itself.
        self.work = work
        self.ledger = Ledger(storage, settings.ledger_container)
        timing = Timing(
            start_grace=timedelta(seconds=settings.start_grace_seconds),
            first_check=timedelta(seconds=settings.first_check_seconds),
            longest_check=timedelta(seconds=settings.max_check_interval_seconds),
            announce=announcer is not None,
        )
        cleaner = Cleaner(self.ledger, storage, timing, announcer)
        self._settler = Settler(self.ledger, storage, cleaner, timing, telemetry)
        self._starter = Starter(self.ledger, storage, cleaner, timing, telemetry)
        self._reader = Reader(self.ledger, storage, self._settler, timing, settings.sweep_concurrency)
        self.jobs = JobService(
            settings,
            storage,
            work,
            ledger=self.ledger,
            starter=self._starter,
            settler=self._settler,
            announcer=announcer,
            telemetry=telemetry,
        )

    async def start(self, request: CopyRequest, now: datetime, idempotency_key: str | None = None) -> StartOutcome:
        return await self._starter.start(request, now, idempotency_key)

    async def get(self, operation_id: str, now: datetime) -> Operation:
        return await self._reader.get(operation_id, now)

    async def list(self, query: ListQuery) -> OperationPage:
        return await self._reader.list(query)

    async def abort(self, operation_id: str, now: datetime) -> Operation:
        return await self._settler.abort(operation_id, now)

    async def process_due(self, operation_id: str, now: datetime) -> str:
        return await self._settler.process_due(operation_id, now)

    def public_url(self, ref: BlobRef) -> str | None:
        return shown_url(self.storage, ref)

    async def close(self) -> None:
        """Close the connections: storage's, the work queue's and the event targets'."""
        await self.storage.close()
        for part in (self.work, self.announcer):
            close = getattr(part, "close", None)
            if close is not None:
                await close()
