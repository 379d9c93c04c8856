"""The block engine's retries driven end to end (issue 32): Azurite behind the stand-in, whose
reads of a copy's source answer 503 ServerBusy on purpose (``proxy.inject("source_read",
...)``, narrowed to one block by its source range), Azurite's queue service, the real SDK,
and ``now`` moved by hand past each stall, backoff and the start grace.

A block that fails for a moment is the engine's own to stage again (no attempt counted);
a block that keeps failing check after check fails the attempt (``blocks_failed``) and the
next attempt plans again from the blocks staged; the source's properties unreadable at the
start fail the attempt before anything was planned, and the next attempt, after the start
grace, copies. The source is a blob of the app's own account, which the app reads again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.copies import block_engine, block_lifecycle, blocks
from copy_ops.copies.model import Cause, ErrorCode, Operation, State
from copy_ops.copies.phases import Phase
from copy_ops.copies.request import parse_copy_request
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory
from tests.support.jobs import JobWorld

NOW = datetime.now(UTC).replace(microsecond=0)
BLOCK = 64 * 1024
DATA = os.urandom(5 * BLOCK - 20_000)  # five blocks, the last one short
SECOND = f"bytes={BLOCK}-{2 * BLOCK - 1}"  # the second block's source range
MANY = 1000  # more than any number of tries in a test: the fault holds until cleared


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "BLOCK_SIZE", BLOCK)
    monkeypatch.setattr(block_lifecycle, "STAGE_BATCH", 2)
    # A block that failed for a moment goes back to the queue at once (5 s on the host).
    monkeypatch.setattr(block_engine, "RETRY_DELAY_SECONDS", 0)


@pytest.fixture
def world(make_settings: SettingsFactory, proxy: PendingCopyProxy) -> Iterator[JobWorld]:
    made = JobWorld(make_settings, proxy)
    yield made
    made.close()


def begin(world: JobWorld, blobs: Blobs, **fields: object) -> Operation:
    blobs.put(blobs.src, "a.bin", DATA)
    body = {
        "source": {"container": blobs.src, "blob": "a.bin"},
        "destination": {"container": blobs.dst, "blob": "b.bin"},
        "engine": "blocks",
        "timeout_seconds": 3600,
        "retry": {"attempts": 2, "backoff_seconds": 30},
        **fields,
    }
    return run(world.service.start(parse_copy_request(body, world.settings, NOW), NOW)).operation


def stored(world: JobWorld, op: Operation) -> Operation:
    return run(world.service.ledger.get(op.id))


def due(world: JobWorld, op: Operation) -> datetime:
    current = stored(world, op)
    assert current.next_check_at is not None, current
    return current.next_check_at


def test_a_block_whose_source_read_fails_a_few_times_is_staged_again_by_the_engine_counting_no_attempt(
    world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    # Four reads: more than the SDK's own tries of one request (three), so the block goes back to the queue.
    proxy.inject("source_read", status=503, code="ServerBusy", times=4, source_range=SECOND)
    op = begin(world, blobs)
    delivered = world.deliver(NOW)
    assert delivered.kinds["stage"] > 3  # three messages, and the block's own again
    done = stored(world, op)
    assert (done.state, done.attempt, done.failed_attempts) == (State.SUCCEEDED, 1, ())
    assert blobs.read(blobs.dst, "b.bin") == DATA
    assert proxy.log.counts["put_blocklist"] == 1


def test_a_block_failing_for_good_fails_the_attempt_and_the_next_plans_again_keeping_the_blocks_staged(
    world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    proxy.inject("source_read", status=503, code="ServerBusy", times=MANY, source_range=SECOND)
    op = begin(world, blobs)
    # Every block but the second is staged; the second goes back to the queue, failing again and again.
    world.deliver(NOW, rounds=20)
    staged = block_lifecycle.staged(stored(world, op))
    assert staged.count() == 4
    current, checks = stored(world, op), 0
    while current.phase is Phase.STAGING:
        now = due(world, op)
        run(world.service.process_due(op.id, now))  # found stalled: handed out again
        world.deliver(now, rounds=5)
        current, checks = stored(world, op), checks + 1
        assert checks <= block_lifecycle.BLOCK_STALLS + 1, current
    assert (current.state, current.phase, current.attempt) == (State.PENDING, Phase.RETRYING, 1)
    [failed] = current.failed_attempts
    assert (failed.cause, failed.error.code) == (Cause.BLOCKS_FAILED, ErrorCode.BLOCKS_FAILED)
    assert proxy.log.counts["put_blocklist"] == 0 and not blobs.exists(blobs.dst, "b.bin")

    proxy.clear_faults()
    sent_before = proxy.log.counts["put_block_from_url"]
    now = due(world, op)
    run(world.service.process_due(op.id, now))
    again = stored(world, op)
    assert (again.phase, again.attempt) == (Phase.STAGING, 2)
    assert block_lifecycle.staged(again).indexes() == staged.indexes()  # the blocks staged, kept
    world.deliver(now)
    done = stored(world, op)
    assert (done.state, done.attempt, len(done.failed_attempts)) == (State.SUCCEEDED, 2, 1)
    assert proxy.log.counts["put_block_from_url"] - sent_before == 1  # only the block that failed
    assert blobs.read(blobs.dst, "b.bin") == DATA


def test_the_sources_properties_unreadable_at_the_start_fail_the_attempt_and_the_next_copies(
    world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    """The start's read of the source's properties answers 503 more often than the SDK tries
    it: nothing was planned, the caller is answered pending (its attempt failed, the next
    scheduled after the start grace), and the next attempt plans and copies."""
    proxy.inject("get_properties", status=503, code="ServerBusy", times=3, path_contains=f"/{blobs.src}/a.bin")
    op = begin(world, blobs)
    assert (op.state, op.phase, op.attempt) == (State.PENDING, Phase.RETRYING, 1), op
    [failed] = op.failed_attempts
    assert (failed.cause, failed.error.code) == (Cause.STORAGE_BUSY, ErrorCode.STORAGE_UNAVAILABLE)
    assert proxy.log.counts["put_block_from_url"] == 0
    assert due(world, op) >= NOW + timedelta(seconds=world.settings.start_grace_seconds)
    now = due(world, op)
    run(world.service.process_due(op.id, now))
    planned = stored(world, op)
    assert (planned.phase, planned.attempt) == (Phase.STAGING, 2)
    world.deliver(now)
    done = stored(world, op)
    assert (done.state, done.attempt) == (State.SUCCEEDED, 2)
    assert blobs.read(blobs.dst, "b.bin") == DATA
