"""Transient storage faults (503, dropped connections, lost responses) at each step of a
start and a sweep: the step is retried, or left for a later sweep; nothing is lost. A copy
that must stay pending comes from the second account (tests/support/partner.py), as on
Azure, where a copy within one account ends at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.app_service import AppService
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import AbortReason, Operation, State
from copy_ops.copies.phases import Phase
from copy_ops.core.errors import StorageUnavailable
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs
from tests.support.partner import Partner
from tests.support.requests import copy_body, start

NOW = datetime.now(UTC).replace(microsecond=0)
AFTER_GRACE = NOW + timedelta(seconds=301)
DEADLINE = NOW + timedelta(seconds=600)
AFTER = DEADLINE + timedelta(seconds=1)
MANY = 20  # more than the SDK's retries: the step fails for this call


def records(service: AppService) -> list[str]:
    ids, _ = run(service.ledger.page(100, None))
    return ids


def settle_all(service: AppService, *moments: datetime) -> None:
    for moment in moments:
        run(sweep(service, moment))


# -- start ----------------------------------------------------------------------


def test_record_write_fails_nothing_starts(service: AppService, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    proxy.inject("put_blob", times=MANY, path_contains=service.settings.ledger_container)
    with pytest.raises(StorageUnavailable):
        start(service, copy_body(blobs.src, blobs.dst), NOW)
    assert proxy.log.counts["copy_blob"] == 0
    assert not blobs.exists(blobs.dst, "a.bin")


@pytest.mark.parametrize("mode", ["status", "drop"])
def test_copy_blob_never_reached_storage(service: AppService, blobs: Blobs, proxy: PendingCopyProxy, mode: str) -> None:
    """Tried once (no attempt left): the caller's 503, and the sweep ends the record."""
    blobs.put(blobs.src, "a.bin", b"x")
    proxy.inject("copy_blob", mode=mode, times=MANY)
    body = copy_body(blobs.src, blobs.dst, timeout_seconds=600, lease_source=True, retry={"attempts": 1})
    with pytest.raises(StorageUnavailable):
        start(service, body, NOW)
    [operation_id] = records(service)
    assert blobs.lease_state(blobs.src, "a.bin") == "leased"
    settle_all(service, NOW + timedelta(seconds=10), AFTER_GRACE)
    stored = run(service.ledger.get(operation_id))
    assert stored.state is State.FAILED and stored.error is not None and stored.error.code == "not_started"
    assert blobs.lease_state(blobs.src, "a.bin") == "available"


@pytest.mark.parametrize("mode", ["status", "drop"])
def test_copy_blob_storage_did_not_answer_is_tried_again_once_its_start_grace_is_over(
    service: AppService, blobs: Blobs, proxy: PendingCopyProxy, mode: str
) -> None:
    """With attempts left, the start is answered pending (its attempt failed, the next
    scheduled); the next attempt, once no answer of the first can land any more, copies."""
    blobs.put(blobs.src, "a.bin", b"x")
    proxy.inject("copy_blob", mode=mode, times=MANY)
    body = copy_body(blobs.src, blobs.dst, timeout_seconds=600, lease_source=True, retry={"attempts": 2})
    op = start(service, body, NOW).operation
    assert (op.state, op.phase, op.failed_attempts[0].error.code) == (
        State.PENDING,
        Phase.RETRYING,
        "storage_unavailable",
    )
    assert op.next_check_at is not None and op.next_check_at >= NOW + timedelta(seconds=300)
    proxy.clear_faults()
    settle_all(service, NOW + timedelta(seconds=10))
    assert run(service.ledger.get(op.id)).phase is Phase.RETRYING  # not due before the grace
    settle_all(service, AFTER_GRACE)
    done = run(service.ledger.get(op.id))
    assert (done.state, done.attempt) == (State.SUCCEEDED, 2), done
    assert blobs.read(blobs.dst, "a.bin") == b"x"
    assert blobs.lease_state(blobs.src, "a.bin") == "available"


def test_copy_blob_took_effect_but_its_answer_was_lost(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x")
    proxy.pending_copies = True
    # The first attempt starts the copy; the SDK's retries meet our own pending copy.
    proxy.inject("copy_blob", mode="lost_response", times=1)
    op = start(service, partner.body(blobs.dst, timeout_seconds=600), NOW).operation
    assert op.state is State.PENDING
    copy = proxy.copy_state(blobs.dst, "a.bin")
    assert copy is not None and op.copy_id == copy.copy_id  # adopted, not undone
    run(sweep(service, AFTER))
    assert run(service.ledger.get(op.id)).state is State.ABORTED


def test_record_update_after_the_copy_started_fails(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x")
    run(service.storage.ensure_container(service.settings.ledger_container))
    proxy.pending_copies = True
    proxy.inject("put_blob", times=MANY, after=1, path_contains=f"{service.settings.ledger_container}/ops/")
    with pytest.raises(StorageUnavailable):
        start(service, partner.body(blobs.dst, timeout_seconds=600), NOW)
    proxy.clear_faults()
    [operation_id] = records(service)
    assert run(service.ledger.get(operation_id)).copy_id is None
    run(sweep(service, NOW + timedelta(seconds=300)))  # the write-ahead record is due at the start grace
    adopted = run(service.ledger.get(operation_id))
    copy = proxy.copy_state(blobs.dst, "a.bin")
    assert copy is not None and adopted.copy_id == copy.copy_id
    run(sweep(service, AFTER))
    final = run(service.ledger.get(operation_id))
    assert (final.state, final.abort_reason) == (State.ABORTED, AbortReason.DEADLINE)


# -- sweep ----------------------------------------------------------------------


def start_restorable(service: AppService, blobs: Blobs, partner: Partner) -> Operation:
    """A pending copy (from another account) over an existing destination, with every
    cleanup a sweep can owe it (restore the snapshot, drop it)."""
    partner.put("a.bin", b"x")
    blobs.put(blobs.dst, "a.bin", b"before")
    partner.proxy.pending_copies = True
    return start(
        service, partner.body(blobs.dst, timeout_seconds=600, overwrite=True, on_abort="restore"), NOW
    ).operation


def assert_restored(blobs: Blobs) -> None:
    assert blobs.read(blobs.dst, "a.bin") == b"before"
    assert blobs.snapshots(blobs.dst, "a.bin") == []


@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        ("find_by_tags", "status"),
        ("get_blob", "status"),  # reading the record
        ("get_properties", "status"),
        ("get_properties", "drop"),
        ("abort_copy", "status"),
        ("abort_copy", "drop"),
        ("abort_copy", "lost_response"),
        ("put_blob", "status"),  # writing the final state
    ],
)
def test_a_sweep_step_that_fails_is_finished_by_the_next_sweep(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy, kind: str, mode: str
) -> None:
    op = start_restorable(service, blobs, partner)
    proxy.inject(kind, mode=mode, times=1 if mode == "lost_response" else MANY)
    first = run(sweep(service, AFTER))
    proxy.clear_faults()
    run(sweep(service, AFTER + timedelta(seconds=1)))
    run(sweep(service, AFTER + timedelta(seconds=30)))
    final = run(service.ledger.get(op.id))
    assert (final.state, final.abort_reason, final.cleanup) == (State.ABORTED, AbortReason.DEADLINE, ())
    assert_restored(blobs)
    assert first.failed or first.outcomes.total() >= 1


@pytest.mark.parametrize("kind", ["copy_blob", "delete_blob"])
def test_cleanup_that_fails_stays_on_the_record_until_done(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy, kind: str
) -> None:
    op = start_restorable(service, blobs, partner)
    proxy.inject(kind, times=MANY)
    run(sweep(service, AFTER))
    stuck = run(service.ledger.get(op.id))
    assert stuck.state is State.ABORTED and stuck.cleanup  # final, with cleanup still owed
    proxy.clear_faults()
    summary = run(sweep(service, AFTER + timedelta(seconds=60)))
    assert summary.outcomes == {"cleaned": 1}
    assert run(service.ledger.get(op.id)).cleanup == ()
    assert_restored(blobs)


def test_a_lease_release_that_fails_stays_on_the_record_until_done(
    service: AppService, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    """A leased source is the app's own, whose copy ends at once: the release that fails
    after it is owed on the record, and the sweep does it."""
    blobs.put(blobs.src, "a.bin", b"x")
    proxy.inject("put_lease", times=MANY, after=1)  # the lease is taken; its release fails
    op = start(service, copy_body(blobs.src, blobs.dst, lease_source=True), NOW).operation
    stuck = run(service.ledger.get(op.id))
    assert stuck.state is State.SUCCEEDED and stuck.cleanup  # final, with the release still owed
    assert blobs.lease_state(blobs.src, "a.bin") == "leased"
    proxy.clear_faults()
    summary = run(sweep(service, NOW + timedelta(seconds=60)))
    assert summary.outcomes == {"cleaned": 1}
    assert run(service.ledger.get(op.id)).cleanup == ()
    assert blobs.lease_state(blobs.src, "a.bin") == "available"
