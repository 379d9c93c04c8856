"""The sweep: find the due operations and settle each, concurrently, within a time budget.

Up to ``COPY_FANOUT_THRESHOLD`` due operations a run settles itself; beyond that, when a
work queue is there, it hands the rest to the queue in batches (:mod:`copy_ops.work.messages`),
which the queue trigger settles on every instance the platform scales out to, and
remembers them as in flight (:mod:`copy_ops.work.fanout`) so the next run does not hand them
out again. Below the threshold no queue request is made at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from copy_ops.aio.bounded import Bounded
from copy_ops.aio.clock import Elapsed
from copy_ops.app_service import AppService
from copy_ops.copies.settle import Settled
from copy_ops.core.errors import CopyOpsError, PreconditionFailed
from copy_ops.core.logtext import counts_text
from copy_ops.jobs.settle import Checked
from copy_ops.work import fanout, messages

logger = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    # True when the budget ran out with due operations left for the next run.
    left_over: bool = False
    failed: bool = False
    # Due operations handed to the work queue, and in how many messages.
    handed_out: int = 0
    batches: int = 0

    @property
    def due(self) -> int:
        """Operations found due (jobs checked are counted apart, as ``job_...``)."""
        return sum(count for name, count in self.outcomes.items() if not name.startswith("job_")) + self.handed_out

    def line(self) -> str:
        counts = counts_text(self.outcomes)
        return (
            f"sweep_summary due={self.due} {counts} handed_out={self.handed_out} batches={self.batches} "
            f"left_over={self.left_over} failed={self.failed} seconds={self.seconds:.3f}"
        ).replace("  ", " ")


class Settling(Bounded):
    """Settle operations (and check jobs), so many at once, as tasks of the sweep's invocation."""

    def __init__(self, service: AppService, now: datetime, concurrency: int) -> None:
        super().__init__(concurrency)
        self._service = service
        # Each operation is settled on the time it is when its turn comes, not the time the
        # sweep began (a budget of minutes: a commit decided on a stale time could be late).
        self._clock = Elapsed(now)

    async def settle(self, operation_id: str) -> None:
        await self.submit(lambda: settle_one(self._service, operation_id, self._clock.now()))

    async def check_job(self, job_id: str) -> None:
        await self.submit(lambda: check_job(self._service, job_id, self._clock.now()))


async def sweep(service: AppService, now: datetime, clock: Callable[[], float] = time.monotonic) -> SweepSummary:
    """Settle (or hand out) every operation due at ``now``. Safe to run twice at once, or to cut short."""
    settings = service.settings
    summary = SweepSummary()
    started = clock()
    registry = fanout.InFlight(service.storage, settings.ledger_container)
    async with Settling(service, now, settings.sweep_concurrency) as settling:
        try:
            # The budget bounds the walk; what was submitted before it ran out is finished
            # (a settle cut short is safe, but finishing one costs a request or two).
            async with asyncio.timeout(settings.sweep_budget_seconds):
                handed = await _walk(
                    service, settling, registry, now, summary=summary, elapsed=lambda: clock() - started
                )
        except TimeoutError:
            summary.left_over, handed = True, []
        if handed:
            # Handed out before the inline part is waited for, so that other instances
            # (and this one's queue trigger) work on them meanwhile.
            await _hand_out(service, registry, handed, now, summary)
    summary.outcomes = settling.outcomes
    summary.seconds = clock() - started
    service.telemetry.sweep_finished(summary.seconds, summary.due, summary.batches)
    logger.info("%s", summary.line())
    return summary


async def _walk(
    service: AppService,
    settling: Settling,
    registry: fanout.InFlight,
    now: datetime,
    *,
    summary: SweepSummary,
    elapsed: Callable[[], float],
) -> list[str]:
    """Submit the due records to ``settling`` up to the fan-out threshold; the operation
    ids to hand out beyond it (none in flight already)."""
    settings = service.settings
    handed: list[str] = []
    in_flight: set[str] | None = None
    try:
        async for kind, record_id in service.ledger.due_records(now):
            if elapsed() >= settings.sweep_budget_seconds:
                summary.left_over = True
                break
            if kind == "job":
                await settling.check_job(record_id)
                continue
            operation_id = record_id
            if service.work is None or settling.submitted < settings.fanout_threshold:
                await settling.settle(operation_id)
                continue
            if in_flight is None:
                in_flight = await registry.load(now)
            if operation_id not in in_flight:
                handed.append(operation_id)
    except CopyOpsError as exc:
        summary.failed = True
        logger.error("sweep_query_failed error=%s code=%s detail=%s", exc.kind, exc.code, exc.detail)
    return handed


async def _hand_out(
    service: AppService, registry: fanout.InFlight, handed: list[str], now: datetime, summary: SweepSummary
) -> None:
    assert service.work is not None
    batches = list(messages.batches(handed, messages.Settle, messages.SETTLE_BATCH))
    try:
        # Sent first, remembered second: a crash in between hands them out again (harmless),
        # never leaves them unsent yet remembered (late).
        await service.work.send(batches)
        registry.add(handed, now + fanout.LEASE)
        await registry.save(now)
    except CopyOpsError as exc:
        # Their records stay due: the next sweep finds them.
        summary.failed = True
        logger.error("sweep_fanout_failed error=%s code=%s count=%s", exc.kind, exc.code, len(handed))
        return
    summary.handed_out, summary.batches = len(handed), len(batches)


async def settle_batch(service: AppService, ids: Iterable[str], now: datetime) -> Counter[str]:
    """A batch from the work queue, settled as the sweep would."""
    async with Settling(service, now, service.settings.sweep_concurrency) as settling:
        for operation_id in ids:
            await settling.settle(operation_id)
    return settling.outcomes


async def check_job(service: AppService, job_id: str, now: datetime) -> str:
    """One job's turn: ``job_`` and what the check did. Never raises, as :func:`settle_one`."""
    try:
        return f"job_{await service.jobs.check(job_id, now)}"
    except PreconditionFailed:
        return f"job_{Checked.RACED}"
    except CopyOpsError as exc:
        logger.warning("job_check_deferred job=%s error=%s code=%s detail=%s", job_id, exc.kind, exc.code, exc.detail)
        return f"job_{Checked.DEFERRED}"
    except Exception:
        logger.exception("job_check_error job=%s", job_id)
        return f"job_{Checked.ERROR}"


async def settle_one(service: AppService, operation_id: str, now: datetime) -> Settled:
    """One operation's turn. Never raises: one bad operation must not stop the others."""
    try:
        return await service.process_due(operation_id, now)
    except PreconditionFailed:
        return Settled.RACED  # another sweep or an abort request changed it first
    except CopyOpsError as exc:
        logger.warning(
            "sweep_operation_deferred op=%s error=%s code=%s detail=%s", operation_id, exc.kind, exc.code, exc.detail
        )
        return Settled.DEFERRED
    except Exception:
        logger.exception("sweep_operation_error op=%s", operation_id)
        return Settled.ERROR
