"""A process that dies between any two steps of a start or a sweep: a fresh process's
sweep still enforces the deadline, and nothing is left half-done."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.background.sweep import sweep
from copy_ops.copies.model import AbortReason, State
from copy_ops.core.settings import Settings
from copy_ops.service import CopyService
from copy_ops.storage import BlobStorage
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, connect
from tests.support.crash import Crash, dying_at
from tests.support.requests import copy_body, start

NOW = datetime.now(UTC).replace(microsecond=0)
DEADLINE = NOW + timedelta(seconds=600)
AFTER = DEADLINE + timedelta(seconds=1)


def ids(service: CopyService) -> list[str]:
    found, _ = run(service.ledger.page(100, None))
    return found


@pytest.mark.parametrize(
    ("step", "when"),
    [
        ("acquire_infinite_lease", "before"),
        ("acquire_infinite_lease", "after"),
        ("start_copy", "before"),
        ("start_copy", "after"),
        ("replace_document", "before"),  # the record update after Copy Blob
    ],
)
def test_a_start_that_dies_is_still_enforced_by_the_next_sweep(
    settings: Settings, blobs: Blobs, proxy: PendingCopyProxy, monkeypatch: pytest.MonkeyPatch, step: str, when: str
) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    proxy.pending_copies = True
    dying = dying_at(settings, monkeypatch, step, when)
    with pytest.raises(Crash):
        start(dying, copy_body(blobs.src, blobs.dst, timeout_seconds=600, lease_source=True, on_abort="delete"), NOW)

    restarted = connect(settings)
    [operation_id] = ids(restarted)  # the write-ahead record survived
    for moment in (NOW + timedelta(seconds=300), AFTER, AFTER + timedelta(seconds=30)):
        run(sweep(restarted, moment))
    final = run(restarted.ledger.get(operation_id))
    copy_started = step == "replace_document" or (step == "start_copy" and when == "after")
    if copy_started:
        assert (final.state, final.abort_reason) == (State.ABORTED, AbortReason.DEADLINE)
        assert proxy.copy_state(blobs.dst, "a.bin") is None  # on_abort=delete: gone
    else:
        assert final.state is State.FAILED and final.error is not None and final.error.code == "not_started"
    assert final.cleanup == ()
    assert not blobs.exists(blobs.dst, "a.bin")
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
    settings: Settings, blobs: Blobs, proxy: PendingCopyProxy, monkeypatch: pytest.MonkeyPatch, step: str, when: str
) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    proxy.pending_copies = True
    service = connect(settings)
    op = start(
        service, copy_body(blobs.src, blobs.dst, timeout_seconds=600, on_abort="delete", lease_source=True), NOW
    ).operation

    dying = dying_at(settings, monkeypatch, step, when)
    with pytest.raises(Crash):
        run(sweep(dying, AFTER))

    restarted = connect(settings)
    run(sweep(restarted, AFTER + timedelta(seconds=1)))
    run(sweep(restarted, AFTER + timedelta(seconds=60)))
    final = run(restarted.ledger.get(op.id))
    assert (final.state, final.abort_reason, final.cleanup) == (State.ABORTED, AbortReason.DEADLINE, ())
    assert not blobs.exists(blobs.dst, "a.bin")
    assert blobs.lease_state(blobs.src, "a.bin") == "available"


def test_storage_methods_patched_here_exist() -> None:
    # The crash points above name adapter methods; a rename must fail these tests loudly.
    for name in ("acquire_infinite_lease", "start_copy", "replace_document", "abort_copy", "delete_blob"):
        assert callable(getattr(BlobStorage, name))
