"""The copies' service: one blob copied under a deadline, against storage, over these modules.

* :mod:`copy_ops.copies.start`: start a copy (write-ahead record, lease, Copy Blob), undo a refused one;
* :mod:`copy_ops.copies.read`: an operation with live progress, pages of them;
* :mod:`copy_ops.copies.settle`: the sweep's work on one operation, and aborts on request;
* :mod:`copy_ops.copies.ending`: an operation's end recorded, cleaned up after, its job told;
* :mod:`copy_ops.copies.cleanup`: what an ended operation still owes;
* :mod:`copy_ops.copies.block_engine`: the block engine (planned, staged by the work queue, committed).

It takes and returns domain objects (:mod:`copy_ops.copies.model`). The jobs' service
(:mod:`copy_ops.jobs.job_service`) uses its modules; both sit behind the app's one service,
:mod:`copy_ops.app_service`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from copy_ops.copies.block_engine import BlockEngine
from copy_ops.copies.block_settle import BlockSettler
from copy_ops.copies.cleanup import Cleaner
from copy_ops.copies.ending import Ending
from copy_ops.copies.lifecycle import Timing
from copy_ops.copies.model import BlobRef, CopyRequest, ListQuery, Operation, OperationPage
from copy_ops.copies.owners import owner_of
from copy_ops.copies.ports import Announcer, BlockQueue, JobWatch, Storage, shown_url
from copy_ops.copies.read import Reader
from copy_ops.copies.records import Ledger
from copy_ops.copies.retries import Retrier
from copy_ops.copies.settle import Settled, Settler
from copy_ops.copies.start import Starter, StartOutcome
from copy_ops.core.callers import KEY_CALLER, Caller
from copy_ops.core.settings import Settings
from copy_ops.observability.telemetry import OFF, Telemetry

__all__ = ["CopyService", "StartOutcome"]


class CopyService:
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        announcer: Announcer | None = None,
        telemetry: Telemetry = OFF,
        *,
        ledger: Ledger | None = None,
        queue: BlockQueue | None = None,
        job_watch: JobWatch | None = None,
    ) -> None:
        """``queue``: where the block engine hands out its blocks (None: no block copy
        starts); ``job_watch``: told when a job's item ends (None: the jobs' scheduled checks
        alone end them)."""
        self.storage = storage
        self.ledger = ledger or Ledger(storage, settings.ledger_container)
        timing = Timing(
            start_grace=timedelta(seconds=settings.start_grace_seconds),
            first_check=timedelta(seconds=settings.first_check_seconds),
            longest_check=timedelta(seconds=settings.max_check_interval_seconds),
            announce=announcer is not None,
        )
        cleaner = Cleaner(self.ledger, storage, timing, announcer)
        end = Ending(self.ledger, cleaner, timing, telemetry, job_watch)
        self.blocks = BlockEngine(self.ledger, storage, end, queue)
        sweep = BlockSettler(self.blocks, self.ledger, storage, end, timing)
        retries = Retrier(self.ledger, storage, self.blocks, end, timing)
        self.settler = Settler(
            self.ledger, storage, cleaner, timing, end=end, blocks=sweep, retries=retries, telemetry=telemetry
        )
        self.starter = Starter(self.ledger, storage, cleaner, timing, telemetry, blocks=self.blocks)
        self._reader = Reader(self.ledger, storage, self.settler, timing, settings.sweep_concurrency)

    # Each request's caller (docs/callers.md, "Ownership"): a copy is its caller's, and another
    # caller's is answered as an unknown one. A key's holder (the default) is an admin.

    async def start(
        self, request: CopyRequest, now: datetime, idempotency_key: str | None = None, *, caller: Caller = KEY_CALLER
    ) -> StartOutcome:
        return await self.starter.start(dataclasses.replace(request, caller=owner_of(caller)), now, idempotency_key)

    async def get(self, operation_id: str, now: datetime, *, caller: Caller = KEY_CALLER) -> Operation:
        return await self._reader.get(operation_id, now, caller)

    async def list(self, query: ListQuery, *, caller: Caller = KEY_CALLER) -> OperationPage:
        return await self._reader.list(query, caller)

    async def abort(self, operation_id: str, now: datetime, *, caller: Caller = KEY_CALLER) -> Operation:
        return await self.settler.abort(operation_id, now, caller)

    async def process_due(self, operation_id: str, now: datetime) -> Settled:
        return await self.settler.process_due(operation_id, now)

    async def stage(self, operation_id: str, blocks: str, sas: str | None, now: datetime) -> str:
        """Stage a batch of a block-engine copy's blocks (a work message's)."""
        return await self.blocks.stage(operation_id, blocks, sas, now)

    def public_url(self, ref: BlobRef) -> str | None:
        return shown_url(self.storage, ref)
