"""Retries on the in-memory storage (tests/support/memory.py): each attempt of a copy whose
attempt failed for a cause that may pass, with ``now`` moved by hand past each backoff.
The stand-in's failures drive the same through real storage (tests/test_retry_standin.py)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copy_ops.background.dispatch import do_work
from copy_ops.copies import block_lifecycle, blocks, retry
from copy_ops.copies.model import (
    Attempt,
    BlobRef,
    Cause,
    Engine,
    ErrorCode,
    Operation,
    OperationError,
    Progress,
    State,
    Terms,
)
from copy_ops.copies.phases import Event, Phase
from copy_ops.copies.views import operation_view
from copy_ops.core.errors import StorageUnavailable
from devkit.worker import run
from tests.support.retry_memory import DESTINATION, SERVER_FAULT, SETTINGS, SOURCE, T0, World


def test_a_copy_azure_failed_for_a_server_side_cause_is_copied_again_and_succeeds() -> None:
    world = World()
    op = world.start(retry={"attempts": 3, "backoff_seconds": 30})
    first_copy = op.copy_id
    world.storage.fail(DESTINATION, SERVER_FAULT)
    leftover_etag = world.storage.blobs[DESTINATION].etag
    failed = world.settle(op, T0 + timedelta(seconds=20))
    assert (failed.state, failed.phase, failed.attempt) == (State.PENDING, Phase.RETRYING, 1)
    assert failed.failed_attempts[0].cause is Cause.COPY_FAILED and failed.failed_attempts[0].copy_id == first_copy
    view = operation_view(failed, None)["attempt"]
    assert view["number"] == 1 and view["of"] == 3
    assert view["last_error"] == {"code": "copy_failed", "message": SERVER_FAULT}
    # Its backoff: 30 s, jittered between one half and one, from the failure.
    due = world.due(op)
    assert T0 + timedelta(seconds=35) <= due <= T0 + timedelta(seconds=50)
    copies_before = len(world.storage.aborts)
    again = world.settle(op, due)
    assert (again.phase, again.attempt) == (Phase.COPYING, 2)
    assert again.copy_id not in (None, first_copy)
    assert world.storage.blobs[DESTINATION].etag != leftover_etag  # the leftover, replaced
    assert len(world.storage.aborts) == copies_before  # the failed copy is never aborted
    world.storage.finish(DESTINATION)
    done = world.settle(op, world.due(op))
    assert (done.state, done.error, done.attempt) == (State.SUCCEEDED, None, 2)
    events = [move.event for move in done.history]
    assert events == [Event.STARTED, Event.ATTEMPT_FAILED, Event.RETRIED, Event.STARTED, Event.FINISHED]
    assert done.history[1].reason is not None and done.history[1].reason.startswith("attempt 1 of 3: copy_failed")


def test_a_read_of_a_copy_waiting_for_its_next_attempt_changes_nothing() -> None:
    world = World()
    op = world.start(retry={"attempts": 3})
    world.storage.fail(DESTINATION, SERVER_FAULT)
    waiting = run(world.service.get(op.id, T0 + timedelta(seconds=20)))  # a read finds it failed
    assert (waiting.phase, len(waiting.failed_attempts)) == (Phase.RETRYING, 1)
    for _ in range(3):
        read = run(world.service.get(op.id, T0 + timedelta(seconds=25)))
        assert read == run(world.service.ledger.get(op.id)) and len(read.failed_attempts) == 1


def test_a_copy_failed_for_a_permanent_cause_ends_at_once() -> None:
    world = World()
    op = world.start(retry={"attempts": 3})
    world.storage.fail(DESTINATION, "404 BlobNotFound The specified blob does not exist.")
    ended = world.settle(op, T0 + timedelta(seconds=20))
    assert (ended.state, ended.error and ended.error.code, ended.failed_attempts) == (
        State.FAILED,
        ErrorCode.COPY_FAILED,
        (),
    )


def test_every_attempt_failing_ends_failed_with_each_error_kept() -> None:
    world = World()
    op = world.start(retry={"attempts": 3, "backoff_seconds": 0})
    now = T0
    for _ in range(3):
        world.storage.fail(DESTINATION, SERVER_FAULT)
        now = max(now, world.due(op)) + timedelta(seconds=1)
        current = world.settle(op, now)
        if current.phase is Phase.RETRYING:
            current = world.settle(op, max(now, world.due(op)))
    ended = run(world.service.ledger.get(op.id))
    assert (ended.state, ended.attempt) == (State.FAILED, 3)
    assert ended.error is not None and ended.error.code is ErrorCode.COPY_FAILED
    assert [attempt.number for attempt in ended.failed_attempts] == [1, 2]


def test_no_attempt_starts_that_the_deadline_leaves_no_room_to_end() -> None:
    world = World()
    op = world.start(retry={"attempts": 3, "backoff_seconds": 600}, timeout_seconds=300)
    world.storage.fail(DESTINATION, SERVER_FAULT)
    ended = world.settle(op, T0 + timedelta(seconds=20))
    assert ended.state is State.FAILED and ended.failed_attempts == ()


def test_an_abort_while_a_copy_waits_for_its_next_attempt_cleans_its_leftover_as_on_abort_says() -> None:
    world = World()
    op = world.start(retry={"attempts": 3}, on_abort="delete")
    world.storage.fail(DESTINATION, SERVER_FAULT)
    assert world.settle(op, T0 + timedelta(seconds=20)).phase is Phase.RETRYING
    aborted = run(world.service.abort(op.id, T0 + timedelta(seconds=25)))
    assert (aborted.state, aborted.cleanup) == (State.ABORTED, ())
    assert DESTINATION not in world.storage.blobs


def test_a_leftover_someone_else_replaced_is_never_overwritten_by_the_next_attempt() -> None:
    world = World()
    op = world.start(retry={"attempts": 3})
    world.storage.fail(DESTINATION, SERVER_FAULT)
    world.settle(op, T0 + timedelta(seconds=20))
    world.storage.put(DESTINATION, b"theirs")
    ended = world.settle(op, world.due(op))
    assert ended.state is State.FAILED and ended.error is not None and ended.error.code is ErrorCode.SUPERSEDED
    assert world.storage.blobs[DESTINATION].data == b"theirs"


def test_a_start_storage_did_not_answer_is_retried_and_its_late_copy_adopted() -> None:
    world = World()

    async def unavailable(ref: BlobRef) -> None:
        raise StorageUnavailable("storage did not answer", code="Timeout")

    world.storage.before_copy = unavailable
    op = world.start(retry={"attempts": 2, "backoff_seconds": 1})
    assert (op.state, op.phase, op.failed_attempts[0].cause) == (State.PENDING, Phase.RETRYING, Cause.STORAGE_BUSY)
    # It waits out the start grace: its Copy Blob may still land.
    assert world.due(op) >= T0 + timedelta(seconds=SETTINGS.start_grace_seconds)
    # It did land after all: the next attempt adopts it instead of copying again.
    landed = run(world.storage.start_copy(DESTINATION, SOURCE, {"copyops_operation": op.id}, False, readable_until=T0))
    adopted = world.settle(op, world.due(op))
    assert (adopted.phase, adopted.copy_id) == (Phase.COPYING, landed[0])


def test_a_start_storage_did_not_answer_without_attempts_left_is_the_callers_503() -> None:
    world = World()

    async def unavailable(ref: BlobRef) -> None:
        raise StorageUnavailable("storage did not answer", code="Timeout")

    world.storage.before_copy = unavailable
    with pytest.raises(StorageUnavailable):
        world.start(retry={"attempts": 1})


def test_a_copy_that_succeeds_at_its_first_attempt_is_as_before() -> None:
    world = World(pending=False)
    op = world.start()
    assert (op.state, op.attempt, op.failed_attempts, op.terms.retry_attempts) == (State.SUCCEEDED, 1, (), 3)
    assert [move.event for move in op.history] == [Event.STARTED, Event.FINISHED]


@pytest.mark.parametrize(
    ("code", "message", "cause"),
    [
        (ErrorCode.STORAGE_UNAVAILABLE, "Storage unavailable: 503", Cause.STORAGE_BUSY),
        (ErrorCode.NOT_STARTED, "the copy was never started", Cause.NOT_STARTED),
        (ErrorCode.BLOCKS_FAILED, "no block staged", Cause.BLOCKS_FAILED),
        (ErrorCode.COPY_FAILED, '500 InternalServerError "Copy failed."', Cause.COPY_FAILED),
        (ErrorCode.COPY_FAILED, "503 ServerBusy The server is busy.", Cause.COPY_FAILED),
        (ErrorCode.COPY_FAILED, "408 OperationTimedOut", Cause.COPY_FAILED),
        (ErrorCode.COPY_FAILED, "429 TooManyRequests", Cause.COPY_FAILED),
        (ErrorCode.COPY_FAILED, "404 BlobNotFound", None),
        (ErrorCode.COPY_FAILED, "403 AuthorizationPermissionMismatch", None),
        (ErrorCode.COPY_FAILED, "412 ConditionNotMet", None),
        (ErrorCode.COPY_FAILED, "the copy failed", None),
        (ErrorCode.COPY_FAILED, "5000 not a status", None),
        (ErrorCode.SOURCE_CHANGED, "500 looks transient, is not", None),
        (ErrorCode.SUPERSEDED, "", None),
        (ErrorCode.DESTINATION_GONE, "", None),
        (ErrorCode.DESTINATION_EXISTS, "", None),
        (ErrorCode.START_REFUSED, "Service unavailable", None),
        (ErrorCode.RETRY_REFUSED, "", None),
        (ErrorCode.UNSAFE_NAME, "", None),
    ],
)
def test_which_failures_may_pass_row_by_row(code: ErrorCode, message: str, cause: Cause | None) -> None:
    assert retry.cause_of(OperationError(code, message)) is cause


def test_every_error_code_is_judged_by_the_table() -> None:
    """A new error code is permanent unless the table says otherwise: no code is forgotten."""
    judged = {*retry.CAUSES, ErrorCode.COPY_FAILED}
    permanent = {
        ErrorCode.SUPERSEDED,
        ErrorCode.DESTINATION_GONE,
        ErrorCode.START_REFUSED,
        ErrorCode.UNSAFE_NAME,
        ErrorCode.SOURCE_CHANGED,
        ErrorCode.DESTINATION_EXISTS,
        ErrorCode.RETRY_REFUSED,
    }
    assert judged | permanent == set(ErrorCode) and not judged & permanent


def test_the_block_engine_whose_blocks_keep_failing_plans_again_from_the_blocks_staged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blocks, "BLOCK_SIZE", 1024)
    monkeypatch.setattr(block_lifecycle, "STAGE_BATCH", 2)
    world = World(pending=False)
    op = world.start(engine="blocks", retry={"attempts": 2, "backoff_seconds": 0})
    assert op.phase is Phase.STAGING
    # Two blocks of four staged, then every message lost: the staging stalls, check after check.
    first = world.queue.take()[0]
    run(do_work(world.service, first, T0))
    world.queue.take()
    staged_before = block_lifecycle.staged(run(world.service.ledger.get(op.id))).count()
    assert staged_before == 2
    now = T0
    current = run(world.service.ledger.get(op.id))
    while current.phase is Phase.STAGING:
        world.queue.take()  # lost again
        now = world.due(op)
        current = world.settle(op, now)
    assert current.phase is Phase.RETRYING and current.failed_attempts[-1].cause is Cause.BLOCKS_FAILED
    again = world.settle(op, world.due(op))
    assert (again.phase, again.attempt) == (Phase.STAGING, 2)
    assert block_lifecycle.staged(again).count() == staged_before  # the blocks staged, kept
    for text in world.queue.take():
        run(do_work(world.service, text, world.due(op)))
    done = run(world.service.ledger.get(op.id))
    assert done.state is State.SUCCEEDED
    assert world.storage.blobs[DESTINATION].data == b"x" * 4096


def test_a_source_changed_between_the_block_engines_attempts_is_permanent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "BLOCK_SIZE", 1024)
    world = World(pending=False)
    op = world.start(engine="blocks", retry={"attempts": 2, "backoff_seconds": 0})
    world.queue.take()
    now, current = T0, op
    while current.phase is Phase.STAGING:
        world.queue.take()
        now = world.due(op)
        current = world.settle(op, now)
    assert current.phase is Phase.RETRYING
    world.storage.put(SOURCE, b"y" * 4096)  # a new version: its ETag moved
    ended = world.settle(op, world.due(op))
    assert ended.state is State.FAILED and ended.error is not None and ended.error.code is ErrorCode.SOURCE_CHANGED


def test_the_backoff_doubles_is_capped_and_jittered_the_same_way_each_time() -> None:
    op = World(pending=False).start(retry={"attempts": 10, "backoff_seconds": 100})
    waits = [retry.backoff(op, failed).total_seconds() for failed in range(1, 10)]
    for failed, wait in enumerate(waits, start=1):
        full = min(600, 100 * 2 ** (failed - 1))
        assert full / 2 <= wait <= full
    assert waits == [retry.backoff(op, failed).total_seconds() for failed in range(1, 10)]
    other = dataclasses.replace(op, id=op.id[:-1] + ("0" if op.id[-1] != "0" else "1"))
    assert [retry.backoff(other, failed).total_seconds() for failed in range(1, 10)] != waits


def test_an_engine_blocks_record_copies_with_the_terms_retry() -> None:
    world = World(pending=False)
    op = world.start(engine="blocks", retry={"attempts": 4, "backoff_seconds": 12.5})
    assert (op.terms.engine, op.terms.retry_attempts, op.terms.retry_backoff_seconds) == (Engine.BLOCKS, 4, 12.5)
    assert Operation.from_json(dataclasses.replace(op, updated_at=T0).to_json()).terms == op.terms


FAILURES = st.builds(
    OperationError,
    st.sampled_from(ErrorCode),
    st.one_of(st.text(max_size=40), st.sampled_from([SERVER_FAULT, "503 ServerBusy", "404 BlobNotFound"])),
)


@given(
    attempts=st.integers(1, retry.MOST_ATTEMPTS),
    failed_before=st.integers(0, retry.MOST_ATTEMPTS),
    backoff=st.floats(0, 600),
    left=st.integers(0, 7200),
    copied=st.integers(0, 2**40),
    total=st.integers(1, 2**40),
    seconds=st.integers(0, 10**6),
    error=FAILURES,
    engine=st.sampled_from([Engine.ASYNC, Engine.BLOCKS]),
)
@settings(max_examples=300, deadline=None)
def test_no_attempt_is_ever_scheduled_beyond_its_count_or_its_room(
    attempts: int,
    failed_before: int,
    backoff: float,
    left: int,
    copied: int,
    total: int,
    seconds: int,
    error: OperationError,
    engine: Engine,
) -> None:
    failed_before = min(failed_before, attempts - 1)
    began = T0 - timedelta(seconds=seconds)
    earlier = tuple(Attempt(n, began, Cause.COPY_FAILED, error) for n in range(1, failed_before + 1))
    terms = Terms(T0 + timedelta(seconds=left), engine=engine, retry_attempts=attempts, retry_backoff_seconds=backoff)
    op = Operation(
        id="8203450000000-0a0a0a0a",
        state=State.PENDING,
        source="https://partner.example.net/c/a.bin",
        destination=DESTINATION,
        terms=terms,
        created_at=began,
        attempt=failed_before + 1,
        attempt_at=began,
        failed_attempts=earlier,
        progress=Progress(min(copied, total), total),
        phase=Phase.COPYING,
    )
    again = retry.retrying(op, error, T0, timedelta(seconds=300))
    if again is None:
        return
    assert retry.cause_of(error) is not None
    assert again.phase is Phase.RETRYING and again.state is State.PENDING
    assert len(again.failed_attempts) < attempts  # the next one is within the count
    assert again.next_check_at is not None and again.next_check_at >= T0
    assert again.next_check_at + retry.needed(again) <= terms.deadline  # and has room to end
    assert retry.needed(again) >= retry.ATTEMPT_FLOOR
