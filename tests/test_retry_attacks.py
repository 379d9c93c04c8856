"""Retries attacked (issue 32): the next attempt cut short or raced between its steps, its
own send failing, and what each attempt leaves, on the in-memory storage with ``now``
moved by hand (tests/support/retry_memory.py). Each test here failed on the code before
its fix."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from copy_ops.copies import lifecycle, retry
from copy_ops.copies.model import BlobRef, CopyStatus, Operation, State
from copy_ops.copies.phases import Phase
from copy_ops.core.errors import StorageUnavailable
from devkit.worker import run
from tests.support.retry_memory import DESTINATION, SERVER_FAULT, SETTINGS, SOURCE, T0, World

GRACE = timedelta(seconds=SETTINGS.start_grace_seconds)


async def unanswered(ref: BlobRef) -> None:
    raise StorageUnavailable("storage did not answer", code="Timeout")


def numbered(op: Operation) -> list[int]:
    return [attempt.number for attempt in op.failed_attempts]


def waiting_after_a_failed_copy(world: World, **fields: object) -> Operation:
    """A copy whose first attempt Azure failed for a server-side cause: waiting in ``retrying``."""
    op = world.start(retry={"attempts": 3, "backoff_seconds": 30}, **fields)
    world.storage.fail(DESTINATION, SERVER_FAULT)
    waiting = world.settle(op, T0 + timedelta(seconds=20))
    assert waiting.phase is Phase.RETRYING
    return waiting


def next_attempt_recorded(world: World, waiting: Operation) -> tuple[datetime, str]:
    """The next attempt of ``waiting`` recorded (``retried``) at its due time, as a host does just
    before its Copy Blob; when, and the failed attempt's leftover's ETag that Copy Blob replaces."""
    at = world.due(waiting)
    leftover = world.storage.blobs[DESTINATION].etag
    stored = run(world.service.ledger.read(waiting.id))
    run(world.service.ledger.save(retry.retried(stored.op, at, GRACE), stored.etag, at))
    return at, leftover


def attempt_copy_sent(world: World, waiting: Operation, leftover: str) -> str:
    """That attempt's Copy Blob, reaching storage (its answer lost): its copy id."""
    copy_id, _ = run(
        world.storage.start_copy(
            DESTINATION, SOURCE, {"copyops_operation": waiting.id}, False, readable_until=T0, replace_etag=leftover
        )
    )
    return copy_id


def test_an_adopted_copy_of_an_unanswered_start_is_numbered_after_the_failed_attempt() -> None:
    world = World()
    world.storage.before_copy = unanswered
    op = world.start(retry={"attempts": 3, "backoff_seconds": 1})
    assert numbered(op) == [1]
    # Its Copy Blob landed after all: the sweep adopts it as the attempt under way...
    run(world.storage.start_copy(DESTINATION, SOURCE, {"copyops_operation": op.id}, False, readable_until=T0))
    adopted = world.settle(op, world.due(op))
    assert adopted.phase is Phase.COPYING
    assert adopted.attempt == len(adopted.failed_attempts) + 1 == 2
    # ...and when it fails too, each failed attempt has its own number.
    world.storage.fail(DESTINATION, SERVER_FAULT)
    again = world.settle(op, world.due(op))
    assert again.phase is Phase.RETRYING and numbered(again) == [1, 2]


def test_a_retry_whose_own_copy_blob_is_unanswered_waits_the_start_grace_and_names_no_copy() -> None:
    world = World()
    waiting = waiting_after_a_failed_copy(world)
    first_copy = waiting.copy_id
    world.storage.before_copy = unanswered
    at = world.due(waiting)
    failed = world.settle(waiting, at)
    assert failed.phase is Phase.RETRYING and numbered(failed) == [1, 2]
    # The second attempt's copy is not known: it is not the first attempt's leftover.
    assert failed.failed_attempts[1].copy_id is None and failed.copy_id == first_copy
    # Its Copy Blob may still land: the next attempt looks only once it cannot.
    assert world.due(failed) >= at + GRACE


def test_an_abort_after_the_next_attempt_was_sent_but_not_recorded_stops_its_copy() -> None:
    world = World()
    waiting = waiting_after_a_failed_copy(world, on_abort="delete")
    # The next attempt recorded and its Copy Blob sent; its host died before the started write.
    at, leftover = next_attempt_recorded(world, waiting)
    second = attempt_copy_sent(world, waiting, leftover)
    aborted = run(world.service.abort(waiting.id, at + timedelta(seconds=5)))
    assert aborted.state is State.ABORTED
    # The copy of the attempt under way is stopped, and on_abort deletes what it left.
    assert (DESTINATION, second) in world.storage.aborts
    assert DESTINATION not in world.storage.blobs


def test_a_copy_out_of_room_after_its_next_attempt_was_sent_stops_that_copy() -> None:
    world = World()
    waiting = waiting_after_a_failed_copy(world)
    _, leftover = next_attempt_recorded(world, waiting)
    second = attempt_copy_sent(world, waiting, leftover)
    ended = world.settle(waiting, waiting.terms.deadline)
    assert ended.is_final
    # Nothing of the copy's runs past its deadline.
    assert world.storage.blobs[DESTINATION].copy_status is not CopyStatus.PENDING
    assert ended.copy_id == second


def test_a_source_lease_an_unanswered_start_did_not_take_is_taken_by_the_next_attempt() -> None:
    world = World()
    leases = world.storage.acquire_infinite_lease

    async def lost(ref: BlobRef, lease_id: str) -> None:
        world.storage.acquire_infinite_lease = leases  # type: ignore[method-assign]
        raise StorageUnavailable("storage did not answer", code="Timeout")

    world.storage.acquire_infinite_lease = lost  # type: ignore[method-assign]
    op = world.start(retry={"attempts": 3, "backoff_seconds": 1}, lease_source=True)
    assert op.phase is Phase.RETRYING and world.storage.blobs[SOURCE].lease_id is None
    again = world.settle(op, world.due(op))
    assert again.phase is Phase.COPYING
    assert world.storage.blobs[SOURCE].lease_id == lifecycle.lease_id_for(op.id)


def test_an_adopted_copy_azure_failed_for_a_server_side_cause_is_retried() -> None:
    world = World()
    world.storage.before_copy = unanswered
    op = world.start(retry={"attempts": 3, "backoff_seconds": 1})
    run(world.storage.start_copy(DESTINATION, SOURCE, {"copyops_operation": op.id}, False, readable_until=T0))
    world.storage.fail(DESTINATION, SERVER_FAULT)  # it landed, and failed for a cause that may pass
    again = world.settle(op, world.due(op))
    assert (again.state, again.phase) == (State.PENDING, Phase.RETRYING), again.error
    assert again.failed_attempts[-1].error.message == SERVER_FAULT


def test_a_slow_send_never_aborts_its_copy_another_sweep_adopted_meanwhile() -> None:
    world = World()
    waiting = waiting_after_a_failed_copy(world)
    at = world.due(waiting)
    send = world.storage.start_copy

    async def slow(*args: Any, **kwargs: Any) -> tuple[str, CopyStatus]:
        # Copy Blob took effect, its answer slower than the start grace: another sweep
        # finds the attempt's copy and adopts it before this send's answer is recorded.
        answer = await send(*args, **kwargs)
        await world.service.process_due(waiting.id, at + GRACE + timedelta(seconds=1))
        return answer

    world.storage.start_copy = slow  # type: ignore[method-assign]
    world.settle(waiting, at)
    current = run(world.service.ledger.get(waiting.id))
    assert (current.phase, current.attempt) == (Phase.COPYING, 2)
    assert world.storage.aborts == []
    assert world.storage.blobs[DESTINATION].copy_status is CopyStatus.PENDING


def test_a_next_attempts_copy_landing_after_its_ending_looked_is_stopped_by_the_late_start_check() -> None:
    world = World()
    waiting = waiting_after_a_failed_copy(world)  # on_abort keep: the leftover stays, so the send can land
    # The next attempt recorded, its Copy Blob on its way; its host dies before the answer.
    at, leftover = next_attempt_recorded(world, waiting)
    aborted = run(world.service.abort(waiting.id, at + timedelta(seconds=5)))
    assert aborted.state is State.ABORTED  # it looked: nothing of the attempt there yet
    assert aborted.next_check_at is not None and aborted.next_check_at >= at + GRACE
    # The Copy Blob lands after all, once the ending has looked.
    late = attempt_copy_sent(world, waiting, leftover)
    run(world.service.process_due(waiting.id, at + GRACE + timedelta(seconds=1)))
    done = run(world.service.ledger.get(waiting.id))
    assert (DESTINATION, late) in world.storage.aborts  # stopped, nothing of it runs on
    assert (done.copy_id, done.cleanup) == (late, ())  # the copy its ending kept, as on_abort says


def test_a_next_attempts_unrecorded_copy_that_already_landed_is_a_success_never_cleaned_away() -> None:
    world = World(pending=False)
    world.storage.pending = True
    waiting = waiting_after_a_failed_copy(world, on_abort="delete", timeout_seconds=120)
    _, leftover = next_attempt_recorded(world, waiting)
    world.storage.pending = False  # the attempt's Copy Blob ends at once, whole; its answer is lost
    attempt_copy_sent(world, waiting, leftover)
    # Past its deadline (no room left), the sweep ends it: as what it is, succeeded.
    ended = world.settle(waiting, waiting.terms.deadline + timedelta(seconds=1))
    assert (ended.state, ended.cleanup) == (State.SUCCEEDED, ())
    assert world.storage.blobs[DESTINATION].data == b"x" * 4096  # on_abort's delete never ran
