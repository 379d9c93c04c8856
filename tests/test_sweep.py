"""The sweep against Azurite through the pending-copy proxy: every end a copy can come to.
Each copy's source is in the second account (tests/support/partner.py): only a copy from
another account stays pending, as on Azure."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from copy_ops.app_service import AppService
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import AbortReason, BlobRef, Operation, State
from copy_ops.core.settings import Settings
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory, connect
from tests.support.partner import Partner
from tests.support.requests import copy_body, start

NOW = datetime.now(UTC).replace(microsecond=0)
DEADLINE = NOW + timedelta(seconds=60)
AFTER = DEADLINE + timedelta(seconds=1)

LATER = datetime.now(UTC) + timedelta(hours=1)


def start_pending(service: AppService, blobs: Blobs, partner: Partner, name: str = "a.bin", **fields: Any) -> Operation:
    partner.proxy.pending_copies = True
    return start(service, partner.body(blobs.dst, name, timeout_seconds=60, **fields), NOW).operation


def test_before_the_deadline_the_sweep_only_schedules_the_next_check(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x")
    op = start_pending(service, blobs, partner)
    summary = run(sweep(service, NOW + timedelta(seconds=15)))
    assert summary.outcomes == {"waiting": 1}
    stored = run(service.ledger.get(op.id))
    assert stored.state is State.PENDING and stored.checks == 1
    # 15 s, then 30 s from the moment it was settled (each operation on the time of its turn)
    assert stored.next_check_at is not None
    assert NOW + timedelta(seconds=45) <= stored.next_check_at < NOW + timedelta(seconds=47)
    assert run(sweep(service, NOW + timedelta(seconds=20))).outcomes == {}  # not due: untouched


@pytest.mark.parametrize("on_abort", ["keep", "delete", "restore"])
def test_a_copy_pending_at_its_deadline_is_aborted_and_on_abort_applied(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy, on_abort: str
) -> None:
    partner.put("a.bin", b"new content")
    blobs.put(blobs.dst, "a.bin", b"old content", metadata={"was": "old"})
    op = start_pending(service, blobs, partner, overwrite=True, on_abort=on_abort, metadata={"now": "new"})
    summary = run(sweep(service, AFTER))
    assert summary.outcomes == {"aborted": 1}
    stored = run(service.ledger.get(op.id))
    assert (stored.state, stored.abort_reason, stored.cleanup) == (State.ABORTED, AbortReason.DEADLINE, ())
    copy = proxy.copy_state(blobs.dst, "a.bin")
    assert copy is None or copy.status == "aborted"
    if on_abort == "keep":
        assert blobs.read(blobs.dst, "a.bin") == b""
        assert blobs.metadata(blobs.dst, "a.bin")["now"] == "new"
    elif on_abort == "delete":
        assert not blobs.exists(blobs.dst, "a.bin")
    else:
        assert blobs.read(blobs.dst, "a.bin") == b"old content"
        assert blobs.metadata(blobs.dst, "a.bin") == {"was": "old"}
        assert blobs.snapshots(blobs.dst, "a.bin") == []  # the restore snapshot was dropped


def test_restore_without_a_previous_destination_deletes_it(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x")
    start_pending(service, blobs, partner, overwrite=True, on_abort="restore")
    assert run(sweep(service, AFTER)).outcomes == {"aborted": 1}
    assert not blobs.exists(blobs.dst, "a.bin")


def test_completion_and_failure_before_the_deadline_are_recorded(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"good")
    partner.put("b.bin", b"bad")
    good = start_pending(service, blobs, partner, "a.bin")
    bad = start_pending(service, blobs, partner, "b.bin", on_abort="delete")
    proxy.finish(blobs.dst, "a.bin")
    proxy.fail(blobs.dst, "b.bin", "500 source read failed")
    summary = run(sweep(service, NOW + timedelta(seconds=15)))
    assert summary.outcomes == {"succeeded": 1, "failed": 1}
    assert run(service.ledger.get(good.id)).state is State.SUCCEEDED
    failed = run(service.ledger.get(bad.id))
    assert failed.error is not None
    assert failed.error.as_dict() == {"code": "copy_failed", "message": "500 source read failed"}
    assert not blobs.exists(blobs.dst, "b.bin")  # on_abort=delete applies to a failed copy too
    assert blobs.read(blobs.dst, "a.bin") == b"good"
    assert proxy.log.counts["abort_copy"] == 0


def test_a_copy_that_is_no_longer_ours_is_never_aborted(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"ours")
    partner.put("theirs.bin", b"theirs")
    op = start_pending(service, blobs, partner, overwrite=True, on_abort="delete")
    proxy.finish(blobs.dst, "a.bin")
    # Someone else starts a copy onto the same destination, still pending at our deadline.
    theirs = proxy.copy_state(blobs.dst, "a.bin")
    other = connect(service.settings).storage
    from copy_ops.copies.model import BlobRef

    their_id, _ = run(
        other.start_copy(
            BlobRef(blobs.dst, "a.bin"), partner.url("theirs.bin"), {}, overwrite=True, readable_until=LATER
        )
    )
    assert theirs is not None and their_id != op.copy_id
    summary = run(sweep(service, AFTER))
    assert summary.outcomes == {"failed": 1}
    stored = run(service.ledger.get(op.id))
    assert stored.error is not None and stored.error.code == "superseded"
    state = proxy.copy_state(blobs.dst, "a.bin")
    assert state is not None and (state.copy_id, state.status) == (their_id, "pending")
    # At most an Abort Copy with *our* copy id, which storage refused (CopyIdMismatch).
    assert proxy.log.counts["abort_copy"] <= 1 and blobs.exists(blobs.dst, "a.bin")


def test_a_destination_deleted_under_the_copy_is_recorded_as_gone(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x")
    op = start_pending(service, blobs, partner)
    # Through the proxy, which then forgets the pending copy, as Azure would.
    run(service.storage.delete_blob(BlobRef(blobs.dst, "a.bin")))
    assert run(sweep(service, NOW + timedelta(seconds=15))).outcomes == {"failed": 1}
    stored = run(service.ledger.get(op.id))
    assert stored.error is not None and stored.error.code == "destination_gone"


def test_an_external_abort_is_recorded(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x")
    op = start_pending(service, blobs, partner)
    proxy.abort_elsewhere(blobs.dst, "a.bin")
    assert run(sweep(service, NOW + timedelta(seconds=15))).outcomes == {"aborted": 1}
    assert run(service.ledger.get(op.id)).abort_reason is AbortReason.EXTERNAL


def test_a_leased_source_of_the_apps_account_is_copied_at_once_and_released_at_once(
    service: AppService, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    """A leased source is the app's own (lease_source refuses another account's), and a copy
    within one account ends at once, as on Azure, even with the tests' pending switch on:
    the lease is released by the start, and no sweep has anything to end."""
    blobs.put(blobs.src, "a.bin", b"x")
    proxy.pending_copies = True
    body = copy_body(blobs.src, blobs.dst, timeout_seconds=60, lease_source=True, on_abort="delete")
    op = start(service, body, NOW).operation
    assert (op.state, op.cleanup) == (State.SUCCEEDED, ())
    assert blobs.lease_state(blobs.src, "a.bin") == "available" and blobs.read(blobs.dst, "a.bin") == b"x"
    assert run(sweep(service, AFTER)).outcomes == {}


def test_two_sweeps_at_once_end_each_operation_in_exactly_one_final_state(
    make_settings: SettingsFactory, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    settings = make_settings(COPY_SWEEP_CONCURRENCY="4")
    first, second = connect(settings), connect(settings)
    for index in range(12):
        partner.put(f"{index}.bin", b"x")
        start_pending(first, blobs, partner, f"{index}.bin", on_abort="delete")
    for index in range(0, 12, 3):
        proxy.finish(blobs.dst, f"{index}.bin")
    summaries = []
    threads = [threading.Thread(target=lambda s=s: summaries.append(run(sweep(s, AFTER)))) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finals = sum(summary.outcomes[state] for summary in summaries for state in ("aborted", "succeeded", "failed"))
    assert finals == 12  # each operation was finished by exactly one of the two sweeps
    states = [run(first.ledger.get(op_id)).state for op_id in _all_ids(first)]
    assert sorted(states) == sorted([State.SUCCEEDED] * 4 + [State.ABORTED] * 8)
    for index in range(12):
        assert blobs.exists(blobs.dst, f"{index}.bin") == (index % 3 == 0)


def test_a_requested_abort_racing_a_sweep_ends_in_one_final_state(
    service: AppService, settings: Settings, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    other = connect(settings)
    ops = []
    for index in range(6):
        partner.put(f"{index}.bin", b"x")
        ops.append(start_pending(service, blobs, partner, f"{index}.bin"))
    results: dict[str, object] = {}

    def abort_all() -> None:
        for op in ops:
            results[op.id] = run(other.abort(op.id, AFTER)).abort_reason

    thread = threading.Thread(target=abort_all)
    thread.start()
    summary = run(sweep(service, AFTER))
    thread.join()
    for op in ops:
        stored = run(service.ledger.get(op.id))
        assert stored.state is State.ABORTED and stored.abort_reason in (AbortReason.DEADLINE, AbortReason.REQUESTED)
        assert results[op.id] == stored.abort_reason  # the requester saw the recorded outcome
    assert summary.outcomes["aborted"] + list(results.values()).count(AbortReason.REQUESTED) >= 6


def test_the_budget_leaves_the_rest_to_the_next_sweep(
    make_settings: SettingsFactory, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    service = connect(make_settings(COPY_SWEEP_CONCURRENCY="1", COPY_SWEEP_BUDGET_SECONDS="1"))
    for index in range(5):
        partner.put(f"{index}.bin", b"x")
        start_pending(service, blobs, partner, f"{index}.bin")
    ticks = iter(range(100))
    summary = run(sweep(service, AFTER, clock=lambda: float(next(ticks)) * 0.4))  # budget gone after 2-3 items
    assert summary.left_over and 0 < summary.outcomes["aborted"] < 5
    assert run(sweep(service, AFTER)).outcomes["aborted"] == 5 - summary.outcomes["aborted"]


def test_one_summary_line_per_sweep(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy, caplog
) -> None:
    partner.put("a.bin", b"x")
    start_pending(service, blobs, partner)
    with caplog.at_level(logging.INFO, logger="copy_ops.background.sweep"):
        run(sweep(service, AFTER))
    lines = [r.getMessage() for r in caplog.records if r.name == "copy_ops.background.sweep"]
    assert len(lines) == 1 and lines[0].startswith("sweep_summary due=1 aborted=1")
    assert "seconds=" in lines[0]


def _all_ids(service: AppService) -> list[str]:
    ids, token = run(service.ledger.page(1000, None))
    assert token is None
    return ids
