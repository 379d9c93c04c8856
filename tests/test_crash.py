"""A process that dies between any two steps of a start or a sweep: a fresh process's
sweep still enforces the deadline, and nothing is left half-done. A copy from the second
account stays pending (tests/support/partner.py); a leased source is the app's own, whose
copy ends at once, as a copy within one account does on Azure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.app_service import AppService
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import AbortReason, State
from copy_ops.core.settings import Settings
from copy_ops.storage import BlobStorage
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, connect
from tests.support.crash import Crash, dying_at
from tests.support.partner import Partner
from tests.support.requests import copy_body, start

NOW = datetime.now(UTC).replace(microsecond=0)
DEADLINE = NOW + timedelta(seconds=600)
AFTER = DEADLINE + timedelta(seconds=1)


def ids(service: AppService) -> list[str]:
    found, _ = run(service.ledger.page(100, None))
    return found


@pytest.mark.parametrize(
    ("source", "step", "when"),
    [
        ("own", "acquire_infinite_lease", "before"),
        ("own", "acquire_infinite_lease", "after"),
        ("own", "start_copy", "before"),
        ("own", "start_copy", "after"),
        ("own", "replace_document", "before"),  # the record update after Copy Blob
        ("partner", "start_copy", "before"),
        ("partner", "start_copy", "after"),
        ("partner", "replace_document", "before"),
    ],
)
def test_a_start_that_dies_is_still_enforced_by_the_next_sweep(
    settings: Settings,
    blobs: Blobs,
    partner: Partner,
    proxy: PendingCopyProxy,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    step: str,
    when: str,
) -> None:
    """The app's own leased source: a copy that started ended at once, and is recorded so;
    another account's: it stayed pending, and is aborted at its deadline."""
    proxy.pending_copies = True
    if source == "own":
        blobs.put(blobs.src, "a.bin", b"x")
        body = copy_body(blobs.src, blobs.dst, timeout_seconds=600, lease_source=True, on_abort="delete")
    else:
        partner.put("a.bin", b"x")
        body = partner.body(blobs.dst, timeout_seconds=600, on_abort="delete")
    dying = dying_at(settings, monkeypatch, step, when)
    with pytest.raises(Crash):
        start(dying, body, NOW)

    restarted = connect(settings)
    [operation_id] = ids(restarted)  # the write-ahead record survived
    for moment in (NOW + timedelta(seconds=300), AFTER, AFTER + timedelta(seconds=30)):
        run(sweep(restarted, moment))
    final = run(restarted.ledger.get(operation_id))
    copy_started = step == "replace_document" or (step == "start_copy" and when == "after")
    if copy_started and source == "own":
        assert final.state is State.SUCCEEDED and blobs.read(blobs.dst, "a.bin") == b"x"
    elif copy_started:
        assert (final.state, final.abort_reason) == (State.ABORTED, AbortReason.DEADLINE)
        assert proxy.copy_state(blobs.dst, "a.bin") is None  # on_abort=delete: gone
        assert not blobs.exists(blobs.dst, "a.bin")
    else:
        assert final.state is State.FAILED and final.error is not None and final.error.code == "not_started"
        assert not blobs.exists(blobs.dst, "a.bin")
    assert final.cleanup == ()
    if source == "own":
        assert blobs.lease_state(blobs.src, "a.bin") == "available"


@pytest.mark.parametrize(
    ("step", "when"),
    [
        ("abort_copy", "after"),
        ("replace_document", "before"),  # the final state's write
        ("delete_blob", "after"),  # cleanup done, not yet recorded
    ],
)
def test_a_sweep_that_dies_is_finished_by_the_next(
    settings: Settings,
    blobs: Blobs,
    partner: Partner,
    proxy: PendingCopyProxy,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    when: str,
) -> None:
    partner.put("a.bin", b"x")
    proxy.pending_copies = True
    service = connect(settings)
    op = start(service, partner.body(blobs.dst, timeout_seconds=600, on_abort="delete"), NOW).operation

    dying = dying_at(settings, monkeypatch, step, when)
    with pytest.raises(Crash):
        run(sweep(dying, AFTER))

    restarted = connect(settings)
    run(sweep(restarted, AFTER + timedelta(seconds=1)))
    run(sweep(restarted, AFTER + timedelta(seconds=60)))
    final = run(restarted.ledger.get(op.id))
    assert (final.state, final.abort_reason, final.cleanup) == (State.ABORTED, AbortReason.DEADLINE, ())
    assert not blobs.exists(blobs.dst, "a.bin")


def test_storage_methods_patched_here_exist() -> None:
    # The crash points above name adapter methods; a rename must fail these tests loudly.
    for name in ("acquire_infinite_lease", "start_copy", "replace_document", "abort_copy", "delete_blob"):
        assert callable(getattr(BlobStorage, name))
