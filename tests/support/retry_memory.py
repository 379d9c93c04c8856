"""A copy retried on the in-memory storage (tests/support/memory.py), as the operator sees
it: the events its service sends, kept, and OpenTelemetry's in-memory reader of its metrics;
``now`` moved by hand past each backoff."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from copy_ops.app_service import AppService
from copy_ops.copies.model import BlobRef, Operation
from copy_ops.core.settings import Settings
from copy_ops.observability.events import Event
from copy_ops.observability.telemetry import OpenTelemetry
from devkit.worker import run
from tests.support.memory import MemoryQueue, MemoryStorage
from tests.support.requests import copy_body, start
from tests.support.telemetry import points

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
SETTINGS = Settings.from_env({"COPY_STORAGE": "UseDevelopmentStorage=true", "COPY_ENGINE": "async"})
SOURCE, DESTINATION = BlobRef("src", "a.bin"), BlobRef("dst", "a.bin")
SERVER_FAULT = '500 InternalServerError "Copy failed."'
GONE = "404 BlobNotFound The specified blob does not exist."


class Announced:
    """The events the service sends, kept."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def announce(self, events: Sequence[Event]) -> None:
        self.events.extend(events)

    async def close(self) -> None:
        return None


class World:
    """The app on in-memory storage (its copies pending until finished or failed by hand,
    unless ``pending`` is false), its work queue, the events it sends and its metrics."""

    def __init__(self, pending: bool = True) -> None:
        self.storage, self.queue = MemoryStorage(), MemoryQueue()
        self.storage.pending = pending
        self.storage.put(SOURCE, b"x" * 4096)
        self.announced = Announced()
        self.reader = InMemoryMetricReader()
        telemetry = OpenTelemetry(
            MeterProvider(metric_readers=[self.reader]).get_meter("test"), TracerProvider().get_tracer("test")
        )
        self.service = AppService(SETTINGS, self.storage, self.queue, self.announced, telemetry)

    def start(self, **fields: Any) -> Operation:
        body = {**copy_body("src", "dst"), "timeout_seconds": 3600, **fields}
        return start(self.service, body, T0).operation

    def settle(self, op: Operation, now: datetime) -> Operation:
        run(self.service.process_due(op.id, now))
        return run(self.service.ledger.get(op.id))

    def due(self, op: Operation) -> datetime:
        current = run(self.service.ledger.get(op.id))
        assert current.next_check_at is not None
        return current.next_check_at

    def retried(self) -> dict[str, int]:
        return {p.attributes["cause"]: p.value for p in points(self.reader).get("copyops.operations.retried", [])}

    def attempts(self) -> list[tuple[int, float]]:
        """Each recording of the attempts histogram: how many ends, and their attempts summed."""
        return [(p.count, p.sum) for p in points(self.reader).get("copyops.operations.attempts", [])]


def fail_attempt(world: World, op: Operation, now: datetime, description: str = SERVER_FAULT) -> Operation:
    """The attempt under way ended ``failed`` by Azure, as the next check finds."""
    world.storage.fail(DESTINATION, description)
    return world.settle(op, now)
