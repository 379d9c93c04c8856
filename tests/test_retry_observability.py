"""A copy's attempts as the operator sees them (issue 32, item 3), on the in-memory storage
with ``now`` moved by hand (tests/support/retry_memory.py): the one event of its final state
carries every attempt (its data is the view), a failed attempt announces nothing, and the
metrics count the retries by cause (``copyops.operations.retried``) and the attempts of
each operation at its end (``copyops.operations.attempts``), through OpenTelemetry's
in-memory reader."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from copy_ops.copies.model import BlobRef, State
from copy_ops.copies.phases import Phase
from copy_ops.core.errors import StorageUnavailable
from tests.support.retry_memory import DESTINATION, GONE, SERVER_FAULT, T0, World, fail_attempt


def test_a_copy_that_succeeds_at_its_third_attempt_announces_once_with_every_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    op = world.start(retry={"attempts": 3, "backoff_seconds": 0})
    now = T0
    for number in (1, 2):
        now += timedelta(seconds=20)
        waiting = fail_attempt(world, op, now)
        assert (waiting.phase, len(waiting.failed_attempts)) == (Phase.RETRYING, number)
        # A failed attempt is no end: nothing announced, nothing counted as ended.
        assert world.announced.events == [] and world.attempts() == []
        assert world.retried() == {"copy_failed": number}
        now = max(now, world.due(op))
        assert world.settle(op, now).attempt == number + 1
    world.storage.finish(DESTINATION)
    with caplog.at_level(logging.INFO):
        done = world.settle(op, world.due(op))
    assert (done.state, done.attempt) == (State.SUCCEEDED, 3)
    [event] = world.announced.events
    assert event.type == "copyops.copy.succeeded"
    attempt = event.data["attempt"]
    assert (attempt["number"], attempt["of"]) == (3, 3)
    assert [(failed["number"], failed["cause"]) for failed in attempt["failed"]] == [
        (1, "copy_failed"),
        (2, "copy_failed"),
    ]
    assert attempt["last_error"] == {"code": "copy_failed", "message": SERVER_FAULT}
    assert [move["event"] for move in event.data["history"]].count("attempt_failed") == 2
    assert world.retried() == {"copy_failed": 2} and world.attempts() == [(1, 3.0)]
    assert "copy_finished" in caplog.text


def test_a_copy_that_fails_for_good_keeps_each_attempts_error_in_its_event() -> None:
    world = World()
    op = world.start(retry={"attempts": 2, "backoff_seconds": 0})
    fail_attempt(world, op, T0 + timedelta(seconds=20))
    world.settle(op, world.due(op))
    ended = fail_attempt(world, op, world.due(op) + timedelta(seconds=20), "503 ServerBusy Busy.")
    assert (ended.state, ended.attempt) == (State.FAILED, 2)
    [event] = world.announced.events
    assert event.type == "copyops.copy.failed"
    assert event.data["error"] == {"code": "copy_failed", "message": "503 ServerBusy Busy."}
    assert [failed["error"]["message"] for failed in event.data["attempt"]["failed"]] == [SERVER_FAULT]
    assert world.retried() == {"copy_failed": 1} and world.attempts() == [(1, 2.0)]


def test_retries_are_counted_by_their_cause_and_a_permanent_failure_not_at_all() -> None:
    world = World()

    async def unavailable(ref: BlobRef) -> None:
        raise StorageUnavailable("storage did not answer", code="ServerBusy")

    world.storage.before_copy = unavailable
    busy = world.start(retry={"attempts": 2, "backoff_seconds": 0})
    assert busy.phase is Phase.RETRYING
    world.storage.before_copy = None
    permanent = world.start(destination={"container": "dst", "blob": "b.bin"}, retry={"attempts": 3})
    world.storage.fail(BlobRef("dst", "b.bin"), GONE)
    ended = world.settle(permanent, T0 + timedelta(seconds=20))
    assert (ended.state, ended.failed_attempts) == (State.FAILED, ())
    assert world.retried() == {"storage_busy": 1}
    assert world.attempts() == [(1, 1.0)]  # the permanent one, ended at its first attempt
    [event] = world.announced.events
    assert event.data["attempt"] == {"number": 1, "of": 3, "last_error": None, "failed": []}
