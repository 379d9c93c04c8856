"""Start, read, list and abort against Azurite through the pending-copy proxy. A copy that
must stay pending takes its source from the second account (tests/support/partner.py):
on Azure, and so here, a copy within one account ends at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from copy_ops.app_service import AppService
from copy_ops.copies.model import OWNER_METADATA_KEY, AbortReason, ListQuery, Operation, State
from copy_ops.copies.records import Ledger
from copy_ops.core.errors import Conflict, CopyOpsError, Forbidden, InvalidRequest, NotFound
from devkit import PendingCopyProxy
from devkit.worker import collected, run
from tests.conftest import Blobs
from tests.support.partner import Partner
from tests.support.requests import copy_body, start

NOW = datetime.now(UTC).replace(microsecond=0)


def ledger_names(service: AppService, blobs: Blobs) -> list[str]:
    container = blobs.direct.get_container_client(service.settings.ledger_container)
    if not container.exists():
        return []
    return [item.name for item in container.list_blobs()]


def test_a_copy_that_finishes_at_once_is_final_right_away(service: AppService, blobs: Blobs) -> None:
    blobs.put(blobs.src, "a.bin", b"payload")
    op = start(service, copy_body(blobs.src, blobs.dst, metadata={"origin": "partner"}), NOW).operation
    assert op.state is State.SUCCEEDED and op.copy_id and op.finished_at == NOW
    assert blobs.read(blobs.dst, "a.bin") == b"payload"
    assert blobs.metadata(blobs.dst, "a.bin") == {"origin": "partner", OWNER_METADATA_KEY: op.id}
    assert run(service.ledger.get(op.id)).state is State.SUCCEEDED
    assert run(collected(service.ledger.due(NOW + timedelta(days=30)))) == []


def test_a_pending_copy_is_recorded_with_its_deadline_and_next_check(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x" * 4096)
    proxy.pending_copies = True
    op = start(service, partner.body(blobs.dst, timeout_seconds=600), NOW).operation
    assert op.state is State.PENDING
    stored = run(service.ledger.get(op.id))
    assert stored.copy_id == op.copy_id
    assert stored.terms.deadline == NOW + timedelta(seconds=600)
    assert stored.next_check_at == NOW + timedelta(seconds=service.settings.first_check_seconds)

    proxy.advance(blobs.dst, "a.bin", 1024)
    live = run(service.get(op.id, NOW))
    assert live.progress is not None and (live.progress.bytes_copied, live.progress.bytes_total) == (1024, 4096)

    proxy.finish(blobs.dst, "a.bin")
    settled = run(service.get(op.id, NOW + timedelta(seconds=1)))
    assert settled.state is State.SUCCEEDED  # seen finished on read: recorded at once
    assert run(service.ledger.get(op.id)).state is State.SUCCEEDED
    assert blobs.read(blobs.dst, "a.bin") == b"x" * 4096


@pytest.mark.parametrize(
    ("arrange", "fields", "error", "code"),
    [
        (lambda b: None, {}, NotFound, None),  # the source does not exist
        (lambda b: b.put(b.dst, "a.bin", b"old"), {}, Conflict, "BlobAlreadyExists"),
    ],
)
def test_a_refused_start_leaves_nothing_behind(
    service: AppService,
    blobs: Blobs,
    arrange: Any,
    fields: dict[str, Any],
    error: type[CopyOpsError],
    code: str | None,
) -> None:
    arrange(blobs)
    if code is not None:
        blobs.put(blobs.src, "a.bin", b"new")
    with pytest.raises(error) as caught:
        start(service, copy_body(blobs.src, blobs.dst, **fields), NOW)
    if code:
        assert caught.value.code == code
        assert blobs.read(blobs.dst, "a.bin") == b"old"
    assert [name for name in ledger_names(service, blobs) if name.startswith("ops/")] == []


def test_a_second_copy_onto_a_pending_destination_is_refused(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x")
    proxy.pending_copies = True
    first = start(service, partner.body(blobs.dst, overwrite=True), NOW).operation
    with pytest.raises(Conflict) as caught:
        start(service, partner.body(blobs.dst, overwrite=True), NOW)
    assert caught.value.code == "PendingCopyOperation"
    assert [n for n in ledger_names(service, blobs) if n.startswith("ops/")] == [Ledger.record_name(first.id)]


def test_bad_and_forbidden_input_start_nothing(service: AppService, blobs: Blobs) -> None:
    with pytest.raises(InvalidRequest):
        start(service, copy_body(blobs.src, blobs.dst, timeout_seconds=-5), NOW)
    with pytest.raises(Forbidden):
        start(service, {**copy_body(blobs.src, blobs.dst), "source": "https://evil.example.com/c/b"}, NOW)
    assert ledger_names(service, blobs) == []


def test_idempotency_key_replays_the_same_operation_and_refuses_another_body(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x")
    proxy.pending_copies = True
    body = partner.body(blobs.dst, timeout_seconds=600)
    first = start(service, body, NOW, idempotency_key="k1")
    copies = proxy.log.counts["copy_blob"]
    again = start(service, dict(reversed(list(body.items()))), NOW + timedelta(seconds=5), idempotency_key="k1")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.operation.id == first.operation.id
    assert proxy.log.counts["copy_blob"] == copies  # nothing started again
    with pytest.raises(Conflict) as caught:
        start(service, {**body, "timeout_seconds": 60}, NOW, idempotency_key="k1")
    assert caught.value.code == "IdempotencyKeyReused"
    with pytest.raises(InvalidRequest) as bad_key:
        start(service, body, NOW, idempotency_key="x" * 201)
    assert bad_key.value.errors[0].field == "Idempotency-Key"


def test_list_is_newest_first_and_filters_by_state(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    blobs.put(blobs.src, "0.bin", b"x")
    for index in (1, 2):
        partner.put(f"{index}.bin", b"x")
    proxy.pending_copies = True
    done = start(service, copy_body(blobs.src, blobs.dst, "0.bin"), NOW).operation  # within the account: at once
    older = start(service, partner.body(blobs.dst, "1.bin"), NOW + timedelta(seconds=1)).operation
    newer = start(service, partner.body(blobs.dst, "2.bin"), NOW + timedelta(seconds=2)).operation
    page = run(service.list(ListQuery(None, 2, None)))
    assert [op.id for op in page.items] == [newer.id, older.id] and page.continuation
    rest = run(service.list(ListQuery(None, 2, page.continuation)))
    assert [op.id for op in rest.items] == [done.id] and rest.continuation is None
    assert [op.id for op in run(service.list(ListQuery(State.SUCCEEDED, 10, None))).items] == [done.id]


def test_abort_on_request(service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy) -> None:
    partner.put("a.bin", b"x" * 100)
    proxy.pending_copies = True
    op = start(service, partner.body(blobs.dst, metadata={"origin": "p"}), NOW).operation
    aborted = run(service.abort(op.id, NOW + timedelta(seconds=3)))
    assert (aborted.state, aborted.abort_reason) == (State.ABORTED, AbortReason.REQUESTED)
    # keep: Azure's zero-length blob with the new metadata
    assert blobs.read(blobs.dst, "a.bin") == b""
    assert blobs.metadata(blobs.dst, "a.bin")["origin"] == "p"
    again = run(service.abort(op.id, NOW + timedelta(seconds=4)))
    assert (again.state, again.finished_at) == (State.ABORTED, aborted.finished_at)
    assert proxy.log.counts["abort_copy"] == 1


def test_abort_of_a_finished_copy_is_a_conflict_with_the_operation(service: AppService, blobs: Blobs) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    op = start(service, copy_body(blobs.src, blobs.dst), NOW).operation
    with pytest.raises(Conflict) as caught:
        run(service.abort(op.id, NOW))
    shown = caught.value.operation
    assert isinstance(shown, Operation) and shown.state == "succeeded"
    with pytest.raises(NotFound):
        run(service.abort("9999999999999-00000000", NOW))


def test_abort_of_a_copy_that_just_finished_records_the_finish(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"abc")
    proxy.pending_copies = True
    op = start(service, partner.body(blobs.dst), NOW).operation
    proxy.finish(blobs.dst, "a.bin")  # finishes before the abort gets there
    with pytest.raises(Conflict):
        run(service.abort(op.id, NOW))
    assert run(service.ledger.get(op.id)).state is State.SUCCEEDED
    assert blobs.read(blobs.dst, "a.bin") == b"abc"


def test_a_leased_source_is_released_when_the_operation_ends(
    service: AppService, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    """A leased source is the app's own, and a copy within one account ends at once, as on
    Azure (the tests' pending switch holds only another account's copies): the start
    releases the lease. (A pending copy's lease released at its end: tests/test_service_logic.py.)"""
    blobs.put(blobs.src, "a.bin", b"x")
    proxy.pending_copies = True
    done = start(service, copy_body(blobs.src, blobs.dst, lease_source=True), NOW).operation
    assert done.state is State.SUCCEEDED and done.cleanup == ()
    assert blobs.lease_state(blobs.src, "a.bin") == "available"
