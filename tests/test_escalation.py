"""auto's escalation, on the in-memory storage (tests/support/memory.py): a copy within the
app's account that Copy Blob still holds pending at half its time goes to the block engine.

On Azure a copy within one account ends at once, and so it does on the stand-in, whatever
its switches say (tests/test_blocks_engine.py: auto's copy within the account ends at once);
the escalation is for the copy Azure takes its time over all the same. The fake's
``pending`` holds such a copy, so the rule is tested here: the escalation, its Abort Copy,
the leftover found, the plan, the blocks staged from the work queue and the commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from copy_ops.app_service import AppService
from copy_ops.background.dispatch import do_work
from copy_ops.copies import block_lifecycle, blocks
from copy_ops.copies.model import OWNER_METADATA_KEY, AbortReason, BlobRef, Engine, Operation, State
from copy_ops.copies.request import parse_copy_request
from copy_ops.core.errors import StorageUnavailable
from copy_ops.core.settings import Settings
from devkit.worker import run
from tests.support.memory import MemoryQueue, MemoryStorage

NOW = datetime.now(UTC).replace(microsecond=0)
BLOCK = 1024
DATA = bytes(range(256)) * 17  # five blocks, the last one short
SOURCE, DESTINATION = BlobRef("src", "a.bin"), BlobRef("dst", "b.bin")
SETTINGS = Settings.from_env({"COPY_STORAGE": "UseDevelopmentStorage=true", "COPY_ENGINE": "auto"})


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "BLOCK_SIZE", BLOCK)
    monkeypatch.setattr(block_lifecycle, "STAGE_BATCH", 2)


class World:
    """The app on in-memory storage whose Copy Blob stays pending, and its work queue."""

    def __init__(self) -> None:
        self.storage, self.queue = MemoryStorage(), MemoryQueue()
        self.storage.pending = True
        self.storage.put(SOURCE, DATA)
        self.service = AppService(SETTINGS, self.storage, self.queue)

    def start(self, **fields: Any) -> Operation:
        body = {
            "source": {"container": SOURCE.container, "blob": SOURCE.blob},
            "destination": {"container": DESTINATION.container, "blob": DESTINATION.blob},
            "engine": "auto",
            "timeout_seconds": 100,
            **fields,
        }
        return run(self.service.start(parse_copy_request(body, SETTINGS, NOW), NOW)).operation

    def deliver(self, now: datetime) -> None:
        """Every work message, as the host's queue trigger hands them over, until none is left."""
        for _ in range(20):
            taken = self.queue.take()
            if not taken:
                return
            for text in taken:
                run(do_work(self.service, text, now))
        raise AssertionError("the work queue never ran dry")

    def get(self, operation_id: str, now: datetime = NOW) -> Operation:
        return run(self.service.get(operation_id, now))


@pytest.fixture
def world() -> Iterator[World]:
    yield World()


def test_auto_hands_a_copy_still_pending_at_half_its_time_to_the_blocks(world: World) -> None:
    op = world.start(metadata={"k": "v"})
    assert (op.terms.engine, op.terms.escalate_at) == (Engine.ASYNC, NOW + timedelta(seconds=50))
    assert op.next_check_at is not None and op.next_check_at <= NOW + timedelta(seconds=50)

    run(world.service.process_due(op.id, NOW + timedelta(seconds=49)))
    assert world.get(op.id).terms.engine is Engine.ASYNC  # not yet
    half = NOW + timedelta(seconds=50)
    run(world.service.process_due(op.id, half))
    escalated = world.get(op.id, half)
    assert (escalated.state, escalated.terms.engine, escalated.copy_id) == (State.PENDING, Engine.BLOCKS, op.copy_id)
    assert world.storage.aborts == [(DESTINATION, op.copy_id)]
    world.deliver(half)
    done = world.get(op.id, half)
    assert done.state is State.SUCCEEDED
    # Complete, never the abort's zero-length leftover; the request's metadata and our mark.
    blob = world.storage.blobs[DESTINATION]
    assert (blob.data, blob.metadata) == (DATA, {"k": "v", OWNER_METADATA_KEY: op.id})
    moves = [(move.event.value, move.phase.value) for move in done.history]
    assert moves == [
        ("started", "copying"),
        ("escalated", "escalating"),
        ("leftover_found", "planning"),
        ("planned", "staging"),
        ("commit_sent", "committing"),
        ("finished", "ended"),
    ]


def test_an_escalated_copy_that_misses_its_deadline_too_ends_as_on_abort_says(world: World) -> None:
    op = world.start(on_abort="delete")
    run(world.service.process_due(op.id, NOW + timedelta(seconds=50)))
    assert DESTINATION in world.storage.blobs  # the abort's zero-length leftover, for now
    world.queue.take()  # its blocks never staged
    late = NOW + timedelta(seconds=100)
    run(world.service.process_due(op.id, late))
    ended = world.get(op.id, late)
    assert (ended.state, ended.abort_reason) == (State.ABORTED, AbortReason.DEADLINE)
    assert DESTINATION not in world.storage.blobs  # never half-written, no leftover: deleted
    assert world.storage.commits == []


def test_a_named_async_engine_is_never_escalated(world: World) -> None:
    op = world.start(engine="async")
    run(world.service.process_due(op.id, NOW + timedelta(seconds=60)))
    assert world.get(op.id).terms.engine is Engine.ASYNC
    assert world.storage.aborts == []


def test_an_escalation_cut_short_after_its_record_is_finished_by_the_next_look_whatever_reads_meanwhile(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = world.start()
    half = NOW + timedelta(seconds=50)

    async def died(*args: object) -> None:
        raise RuntimeError("the instance died after recording the escalation")

    with monkeypatch.context() as patch:  # recorded, then the Abort Copy never sent
        patch.setattr(world.storage, "abort_copy", died)
        with pytest.raises(RuntimeError, match="died"):
            run(world.service.process_due(op.id, half))
    escalating = world.get(op.id, half)  # a read meanwhile changes nothing (no "external" abort)
    assert (escalating.state, escalating.terms.engine) == (State.PENDING, Engine.BLOCKS)
    assert world.storage.aborts == []
    run(world.service.process_due(op.id, half))  # the next look: aborts it, plans, hands out
    world.deliver(half)
    assert world.get(op.id, half).state is State.SUCCEEDED
    assert world.storage.blobs[DESTINATION].data == DATA
    assert world.storage.aborts == [(DESTINATION, op.copy_id)]


def test_an_escalated_copy_whose_plan_failed_for_a_moment_is_planned_by_the_next_look(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = world.start(timeout_seconds=600)
    half = NOW + timedelta(seconds=300)

    async def unavailable(*args: object) -> None:
        raise StorageUnavailable("the source's properties: 503", code="ServerBusy")

    with monkeypatch.context() as patch:
        patch.setattr(world.storage, "source_facts", unavailable)
        run(world.service.process_due(op.id, half))
    unplanned = world.get(op.id, half)
    assert (unplanned.terms.engine, unplanned.state) == (Engine.BLOCKS, State.PENDING)
    assert block_lifecycle.part(unplanned).source_etag is None  # escalated (its copy id kept), not planned
    later = half + block_lifecycle.STALL + timedelta(seconds=10)
    run(world.service.process_due(op.id, later))
    world.deliver(later)
    assert world.get(op.id, later).state is State.SUCCEEDED
    assert world.storage.blobs[DESTINATION].data == DATA


def test_an_escalation_is_no_attempt(world: World) -> None:
    """Issue 32: the block engine taking over from Copy Blob is the same attempt going on by
    other means; its attempt stays the first, and none of its failed attempts is counted."""
    op = world.start(retry={"attempts": 2, "backoff_seconds": 0})
    half = NOW + timedelta(seconds=50)
    run(world.service.process_due(op.id, half))
    escalated = world.get(op.id, half)
    assert (escalated.terms.engine, escalated.attempt, escalated.failed_attempts) == (Engine.BLOCKS, 1, ())
    world.deliver(half)
    done = world.get(op.id, half)
    assert (done.state, done.attempt, done.failed_attempts, done.terms.retry_attempts) == (State.SUCCEEDED, 1, (), 2)
    assert "retried" not in [move.event.value for move in done.history]
