"""An abort request racing a start: whatever wins, everything the start took is released
and ``on_abort`` is applied, by the start itself or, if it died, by a later sweep."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from copy_ops.app_service import AppService
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import AbortReason, State
from copy_ops.core.settings import Settings
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs
from tests.support.crash import Crash, dying_at
from tests.support.partner import Partner
from tests.support.requests import copy_body, start
from tests.support.waiting import until

NOW = datetime.now(UTC).replace(microsecond=0)
# The lease call is held this long, so that the abort lands between the record and the copy.
LEASE_DELAY = 2.0


def first_record(service: AppService, timeout: float = 10) -> str:
    """The id of the first record to appear in the ledger (written before the lease)."""
    found: list[str] = []

    def written() -> bool:
        found[:] = run(service.ledger.page(1, None))[0]
        return bool(found)

    assert until(written, timeout, interval=0.02), "no record was written"
    return found[0]


def race(start: Callable[[], Any], service: AppService) -> tuple[str, Any]:
    """Start in another thread; abort on request as soon as the record exists."""
    with ThreadPoolExecutor(1) as pool:
        started = pool.submit(start)
        operation_id = first_record(service)
        aborted = run(service.abort(operation_id, NOW))
        assert aborted.state is State.ABORTED and aborted.abort_reason is AbortReason.REQUESTED
        with contextlib.suppress(Crash):
            started.result()
    return operation_id, aborted


def assert_released_and_applied(service: AppService, blobs: Blobs, operation_id: str, leased: bool = True) -> None:
    final = run(service.ledger.get(operation_id))
    assert (final.state, final.abort_reason) == (State.ABORTED, AbortReason.REQUESTED)
    assert final.copy_id is not None, "the late copy is on the record"
    assert final.cleanup == ()
    if leased:
        assert blobs.lease_state(blobs.src, "a.bin") == "available"
    assert not blobs.exists(blobs.dst, "a.bin"), "on_abort: delete"


@pytest.mark.parametrize("source", ["partner", "own"], ids=["copy-pending", "copy-finishes-at-once"])
def test_an_abort_racing_a_start_leaves_nothing_held(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy, source: str
) -> None:
    """The race is held open by a slow request between the record and the copy: the
    source's lease for the app's own blob (leased sources are the app's own, whose copy
    ends at once, as on Azure), Copy Blob itself for another account's (it stays pending)."""
    proxy.pending_copies = True
    if source == "own":
        blobs.put(blobs.src, "a.bin", b"x" * 100)
        proxy.inject("put_lease", mode="delay", seconds=LEASE_DELAY)
        body = copy_body(blobs.src, blobs.dst, lease_source=True, on_abort="delete", timeout_seconds=600)
    else:
        partner.put("a.bin", b"x" * 100)
        proxy.inject("copy_blob", mode="delay", seconds=LEASE_DELAY)
        body = partner.body(blobs.dst, on_abort="delete", timeout_seconds=600)
    operation_id, _ = race(lambda: start(service, body, NOW), service)
    assert_released_and_applied(service, blobs, operation_id, leased=source == "own")
    if source == "partner":
        state = proxy.copy_state(blobs.dst, "a.bin")
        assert state is None or state.status == "aborted"


@pytest.mark.parametrize("step", ["acquire_infinite_lease", "start_copy"])
def test_a_start_that_dies_after_losing_the_race_is_repaired_by_the_sweep(
    settings: Settings,
    service: AppService,
    blobs: Blobs,
    proxy: PendingCopyProxy,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    blobs.put(blobs.src, "a.bin", b"x" * 100)
    proxy.pending_copies = True  # the app's own leased source: its copy ends at once all the same
    proxy.inject("put_lease", mode="delay", seconds=LEASE_DELAY)
    dying = dying_at(settings, monkeypatch, step, "after")
    body = copy_body(blobs.src, blobs.dst, lease_source=True, on_abort="delete", timeout_seconds=600)
    operation_id, _ = race(lambda: start(dying, body, NOW), service)
    if step == "start_copy":
        stuck = run(service.ledger.get(operation_id))
        assert stuck.copy_id is None and blobs.lease_state(blobs.src, "a.bin") == "leased"
    # Nothing is due until no start can still be running; then one sweep repairs it.
    assert run(sweep(service, NOW + timedelta(seconds=5))).outcomes.get("cleaned", 0) == 0
    grace_over = NOW + timedelta(seconds=settings.start_grace_seconds + 1)
    assert run(sweep(service, grace_over)).outcomes == {"cleaned": 1}
    if step == "start_copy":
        assert_released_and_applied(service, blobs, operation_id)
    else:
        # It died holding the lease, before any copy: the lease is released, nothing to abort.
        final = run(service.ledger.get(operation_id))
        assert final.copy_id is None and final.cleanup == ()
        assert blobs.lease_state(blobs.src, "a.bin") == "available"
