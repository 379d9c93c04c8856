"""Listing at scale (copy_ops.copies.read) on Azurite through the proxy: a page in one state
costs what the page costs, found by the blob index, and is never empty while matches
exist further on, also when the index lags behind the records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from copy_ops.app_service import AppService
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import ListQuery, State
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs
from tests.support.partner import Partner
from tests.support.requests import copy_body, start

NOW = datetime.now(UTC).replace(microsecond=0)


def _ledger(service: AppService, blobs: Blobs, partner: Partner, pending: int, done: int) -> list[str]:
    """``pending`` pending copies (the oldest, from another account), then ``done`` that
    finished at once (within the account; the newest, so a page by name would hold none of
    the pending). The pending ids, newest first."""
    blobs.put(blobs.src, "a.bin", b"x")
    partner.put("a.bin", b"x")
    partner.proxy.pending_copies = True
    ids = []
    for index in range(pending):
        body = partner.body(blobs.dst, dest_name=f"p/{index}.bin")
        ids.append(start(service, body, NOW + timedelta(seconds=index)).operation.id)
    for index in range(done):
        body = copy_body(blobs.src, blobs.dst, dest_name=f"d/{index}.bin")
        start(service, body, NOW + timedelta(seconds=pending + index))
    return ids[::-1]


def test_a_page_in_one_state_costs_its_page_not_the_ledger(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    pending = _ledger(service, blobs, partner, pending=3, done=40)
    # The process's first token makes (or reads) the key of continuation tokens: once.
    run(service.list(ListQuery(None, 1, None)))
    before = proxy.log.counts.copy()
    first = run(service.list(ListQuery(State.PENDING, 2, None)))
    spent = proxy.log.counts - before
    assert [op.id for op in first.items] == pending[:2] and first.continuation
    # One tag query and the page's two records: nothing of the 40 others is read.
    assert spent == {"find_by_tags": 1, "get_blob": 2}
    rest = run(service.list(ListQuery(State.PENDING, 2, first.continuation)))
    assert [op.id for op in rest.items] == pending[2:] and rest.continuation is None
    succeeded = run(service.list(ListQuery(State.SUCCEEDED, 100, None)))
    assert len(succeeded.items) == 40 and all(op.state is State.SUCCEEDED for op in succeeded.items)
    assert [op.id for op in succeeded.items] == sorted(op.id for op in succeeded.items)  # newest first


def test_candidates_the_lagging_index_names_are_checked_against_their_records(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    pending = _ledger(service, blobs, partner, pending=3, done=0)
    proxy.index.freeze()  # from now on, the index answers as it stands: all three pending
    newest, middle = pending[0], pending[1]
    run(service.abort(newest, NOW + timedelta(seconds=10)))
    run(service.abort(middle, NOW + timedelta(seconds=10)))
    page = run(service.list(ListQuery(State.PENDING, 1, None)))
    # The first candidate page (the newest, aborted since) is dropped, so is the second;
    # the page is not empty while a pending one exists further on.
    assert [op.id for op in page.items] == [pending[2]]
    assert run(service.list(ListQuery(State.ABORTED, 10, None))).items == []  # not indexed yet: not listed


def test_an_empty_state_is_an_empty_page_without_continuation(
    service: AppService, blobs: Blobs, partner: Partner
) -> None:
    _ledger(service, blobs, partner, pending=0, done=5)
    page = run(service.list(ListQuery(State.FAILED, 2, None)))
    assert page.items == [] and page.continuation is None


def test_a_get_records_an_ending_it_sees_and_leaves_its_cleanup_to_the_sweep(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    """GET is safe (RFC 9110): seeing a copy failed, it records that, but the delete that
    on_abort asks for (and the event) is the sweep's to do."""
    partner.put("a.bin", b"x")
    proxy.pending_copies = True
    op = start(service, partner.body(blobs.dst, on_abort="delete"), NOW).operation
    proxy.fail(blobs.dst, "a.bin")
    seen = run(service.get(op.id, NOW + timedelta(seconds=1)))
    assert seen.state is State.FAILED and seen.cleanup, seen
    assert blobs.exists(blobs.dst, "a.bin")
    assert proxy.log.counts["delete_blob"] == 0
    run(sweep(service, NOW + timedelta(seconds=2)))
    assert not blobs.exists(blobs.dst, "a.bin")
    assert run(service.get(op.id, NOW + timedelta(seconds=3))).cleanup == ()
