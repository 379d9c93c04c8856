"""Storage requests per operation, counted at the proxy: the sweep's cost does not grow
with operations that are not due, and a start costs what the design says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from copy_ops.app_service import AppService
from copy_ops.background.sweep import sweep
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory, connect
from tests.support.partner import Partner
from tests.support.requests import copy_body, start

NOW = datetime.now(UTC).replace(microsecond=0)


def sweep_requests(service: AppService, proxy: PendingCopyProxy, at: datetime) -> int:
    before = proxy.log.total
    summary = run(sweep(service, at))
    assert summary.outcomes == {"aborted": 1}
    return proxy.log.total - before


def test_a_sweep_costs_the_same_with_500_operations_not_due(
    make_settings: SettingsFactory, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x")
    proxy.pending_copies = True
    alone = connect(make_settings(COPY_LEDGER_CONTAINER="ledger-alone-" + blobs.src[-10:]))
    crowded = connect(make_settings(COPY_LEDGER_CONTAINER="ledger-crowd-" + blobs.src[-10:]))

    start(alone, partner.body(blobs.dst, dest_name="due-alone.bin", timeout_seconds=1), NOW)
    start(crowded, partner.body(blobs.dst, dest_name="due-crowd.bin", timeout_seconds=1), NOW)
    for index in range(500):
        start(crowded, partner.body(blobs.dst, dest_name=f"later/{index}.bin", timeout_seconds=3600), NOW)

    at = NOW + timedelta(seconds=2)
    cost_alone = sweep_requests(alone, proxy, at)
    cost_crowded = sweep_requests(crowded, proxy, at)
    # find (1) + read record (1) + Abort Copy (1) + write the final record (1)
    assert cost_alone == 4
    assert cost_crowded == cost_alone


def test_requests_per_start(service: AppService, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    run(service.storage.ensure_container(service.settings.ledger_container))
    before = proxy.log.total
    start(service, copy_body(blobs.src, blobs.dst), NOW)
    # write-ahead record (1) + Copy Blob (1) + final record (1): the lower bound for a
    # start whose record exists before the copy and learns its copy id after.
    assert proxy.log.total - before == 3
