"""The sweep: find the due operations and settle each, concurrently, within a time budget."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime

from copy_ops.errors import CopyOpsError, PreconditionFailed
from copy_ops.service import CopyService

logger = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    # True when the budget ran out with due operations left for the next run.
    left_over: bool = False
    failed: bool = False

    @property
    def due(self) -> int:
        return sum(self.outcomes.values())

    def line(self) -> str:
        counts = " ".join(f"{name}={count}" for name, count in sorted(self.outcomes.items()))
        return (
            f"sweep_summary due={self.due} {counts} left_over={self.left_over} "
            f"failed={self.failed} seconds={self.seconds:.3f}"
        ).replace("  ", " ")


def sweep(service: CopyService, now: datetime, clock: Callable[[], float] = time.monotonic) -> SweepSummary:
    """Settle every operation due at ``now``. Safe to run twice at once, or to cut short."""
    settings = service.settings
    summary = SweepSummary()
    started = clock()
    concurrency = settings.sweep_concurrency

    def collect(done: set[Future[str]]) -> None:
        for future in done:
            summary.outcomes[future.result()] += 1

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sweep") as pool:
        in_flight: set[Future[str]] = set()
        try:
            for operation_id in service.ledger.due(now):
                if clock() - started >= settings.sweep_budget_seconds:
                    summary.left_over = True
                    break
                # Bounded queue: the budget check above stays meaningful.
                while len(in_flight) >= concurrency * 2:
                    done, in_flight = _wait_some(in_flight)
                    collect(done)
                in_flight.add(pool.submit(_settle_one, service, operation_id, now))
        except CopyOpsError as exc:
            summary.failed = True
            logger.error("sweep_query_failed status=%s code=%s detail=%s", exc.status, exc.code, exc.detail)
        finally:
            done, _ = wait(in_flight)
            collect(done)
    summary.seconds = clock() - started
    logger.info("%s", summary.line())
    return summary


def _wait_some(in_flight: set[Future[str]]) -> tuple[set[Future[str]], set[Future[str]]]:
    done, pending = wait(in_flight, return_when=FIRST_COMPLETED)
    return set(done), set(pending)


def _settle_one(service: CopyService, operation_id: str, now: datetime) -> str:
    """One operation's turn. Never raises: one bad operation must not stop the sweep."""
    try:
        return service.process_due(operation_id, now)
    except PreconditionFailed:
        return "raced"  # another sweep or an abort request changed it first
    except CopyOpsError as exc:
        logger.warning(
            "sweep_operation_deferred op=%s status=%s code=%s detail=%s", operation_id, exc.status, exc.code, exc.detail
        )
        return "deferred"
    except Exception:
        logger.exception("sweep_operation_error op=%s", operation_id)
        return "error"
