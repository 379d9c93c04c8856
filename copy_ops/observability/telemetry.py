"""Metrics and traces of copy-ops, through the OpenTelemetry API.

:data:`OFF` does nothing and imports nothing (the default: cold start stays as it is).
With ``APPLICATIONINSIGHTS_CONNECTION_STRING`` set, the composition root configures the
Azure Monitor distro and hands the service an :class:`OpenTelemetry` on its global
providers; tests hand it one on the SDK's in-memory readers. The names are stable:
docs/operations.md lists them, with the queries an operator saves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

METER = "copy_ops"
# Operation and job ids on spans, as the operations doc's queries name them.
OPERATION_ID = "copyops.operation_id"
JOB_ID = "copyops.job_id"


class Telemetry:
    """The no-op: every hook of the service, doing nothing."""

    def copy_started(self, state: str) -> None:
        """An operation recorded and its copy started (``pending`` or already final)."""

    def copy_ended(self, state: str, reason: str) -> None:
        """An operation reached its final ``state``; ``reason``: the abort reason or error code."""

    def copy_retried(self, cause: str) -> None:
        """An attempt failed for a cause that may pass, and another was scheduled."""

    def copy_attempts(self, attempts: int) -> None:
        """An operation ended after so many attempts."""

    def job_ended(self, state: str) -> None:
        """A job reached its final state."""

    def abort_lateness(self, seconds: float) -> None:
        """A deadline abort recorded this long after the deadline."""

    def sweep_finished(self, seconds: float, due: int, batches: int) -> None:
        """A sweep ended: how long it took, how much was due, batches handed out."""

    def overdue(self, seconds: float) -> None:
        """An operation seen still pending this long past its deadline (by the sweep)."""

    def work_refused(self, reason: str) -> None:
        """A work message dropped unread: the app did not seal it (``reason``: why)."""

    def span(self, name: str, **attributes: str) -> AbstractContextManager[Any]:
        """A span around work on one operation or job (its id as an attribute)."""
        return nullcontext()


OFF = Telemetry()


class OpenTelemetry(Telemetry):
    """The hooks as OpenTelemetry instruments on ``meter`` and spans on ``tracer``."""

    def __init__(self, meter: Any, tracer: Any) -> None:
        self._tracer = tracer
        self._started = meter.create_counter(
            "copyops.operations.started", unit="{operation}", description="operations started, by state"
        )
        self._ended = meter.create_counter(
            "copyops.operations.ended", unit="{operation}", description="operations ended, by state and reason"
        )
        self._retried = meter.create_counter(
            "copyops.operations.retried", unit="{attempt}", description="attempts failed and tried again, by cause"
        )
        self._attempts = meter.create_histogram(
            "copyops.operations.attempts", unit="{attempt}", description="attempts per operation, at its end"
        )
        self._jobs_ended = meter.create_counter("copyops.jobs.ended", unit="{job}", description="jobs ended, by state")
        self._lateness = meter.create_histogram(
            "copyops.abort.lateness", unit="s", description="from a deadline to the abort that enforced it"
        )
        self._sweep_duration = meter.create_histogram("copyops.sweep.duration", unit="s", description="one sweep")
        self._sweep_due = meter.create_histogram("copyops.sweep.due", unit="{operation}", description="due per sweep")
        self._batches = meter.create_counter(
            "copyops.sweep.batches", unit="{batch}", description="batches handed to the work queue"
        )
        self._refused = meter.create_counter(
            "copyops.work.refused", unit="{message}", description="work messages dropped unread: not sealed by the app"
        )
        # The oldest overdue operation the last sweep saw (0: none); a gauge read on export.
        self._oldest = 0.0
        self._seen = 0.0
        self._lock = threading.Lock()
        meter.create_observable_gauge(
            "copyops.overdue.oldest_age",
            callbacks=[self._observe_oldest],
            unit="s",
            description="how long past its deadline the oldest still-pending operation was, at the last sweep",
        )

    @classmethod
    def from_global(cls) -> OpenTelemetry:
        """On the global providers (those the Azure Monitor distro configured)."""
        from opentelemetry import metrics, trace

        return cls(metrics.get_meter(METER), trace.get_tracer(METER))

    def copy_started(self, state: str) -> None:
        self._started.add(1, {"state": state})

    def copy_ended(self, state: str, reason: str) -> None:
        self._ended.add(1, {"state": state, "reason": reason})

    def copy_retried(self, cause: str) -> None:
        self._retried.add(1, {"cause": cause})

    def copy_attempts(self, attempts: int) -> None:
        self._attempts.record(attempts)

    def job_ended(self, state: str) -> None:
        self._jobs_ended.add(1, {"state": state})

    def abort_lateness(self, seconds: float) -> None:
        self._lateness.record(max(seconds, 0.0))

    def sweep_finished(self, seconds: float, due: int, batches: int) -> None:
        self._sweep_duration.record(seconds)
        self._sweep_due.record(due)
        if batches:
            self._batches.add(batches)
        with self._lock:
            self._oldest, self._seen = self._seen, 0.0

    def overdue(self, seconds: float) -> None:
        with self._lock:
            self._seen = max(self._seen, seconds)

    def work_refused(self, reason: str) -> None:
        self._refused.add(1, {"reason": reason})

    def _observe_oldest(self, options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation

        with self._lock:
            yield Observation(self._oldest)

    @contextmanager
    def _span(self, name: str, attributes: dict[str, str]) -> Iterator[Any]:
        with self._tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span

    def span(self, name: str, **attributes: str) -> AbstractContextManager[Any]:
        return self._span(name, attributes)
