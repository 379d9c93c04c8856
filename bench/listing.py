"""Listing at scale: 50 pending operations listed with ``state=pending`` from a ledger of
100,000 records (mostly final, and all newer than the pending ones: the hard case for a
list by name) beside the same 50 in a ledger of 100. Requests and latency side by side.

Azurite's own Find Blobs by Tags filters only the first ``maxresults`` blobs of a
container (docs/ledger.md); the proxy answers tag queries itself, from every tag write
that passed through it, paged as Azure pages them (devkit/index_lag.py). So the final
records are written through the proxy, and the figure measures copy-ops' requests, not
that limit. The proxy's scan of its in-memory index is part of the latency: one bare
tag query (its 20 ms included) is timed on its own, so the reader can take it out.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from azure.storage.blob import BlobServiceClient

from bench.harness import T0, Harness, start_copy
from copy_ops.app_service import AppService
from copy_ops.copies.model import ListQuery, State
from copy_ops.copies.records import RECORD_PREFIX, new_operation_id
from devkit.worker import run as awaited

PENDING = 50
SAMPLES = 20


def run(harness: Harness, large: int) -> None:
    print(f"\n== listing {PENDING} pending operations: a ledger of {large:,} records beside one of 100 ==")
    for size in (100, large):
        harness.restart()
        service = _ledger(harness, size)
        requests, seconds, found = _list(harness, service)
        scan = _bare_query(harness, service)
        print(
            f"ledger of {size:>7,} records: {requests:g} requests a listing, {seconds * 1000:6.1f} ms "
            f"({found} pending found); one bare tag query alone: {scan * 1000:.1f} ms"
        )
        harness.close_services()
    print("    lower bound: 1 tag query + 50 record reads = 51 requests (the reads concurrent: about 2 round trips)")


def _ledger(harness: Harness, size: int) -> AppService:
    """``PENDING`` pending copies, then ``size - PENDING`` final records newer than them."""
    src, dst = harness.containers()
    service = harness.service()
    harness.start_many(service, src, dst, PENDING, timeout=3600, prefix="pending")
    harness.proxy.configure(pending=False)
    done = start_copy(
        service,
        {"source": {"container": src, "blob": "a.bin"}, "destination": {"container": dst, "blob": "done.bin"}},
        T0 + timedelta(seconds=1),
    )
    text = awaited(service.ledger.get(done)).to_json()
    # Written through the proxy, so that its index sees the tags; fast set-up, not a figure.
    harness.proxy.configure(latency=0.0)
    client = BlobServiceClient.from_connection_string(harness.proxy.connection_string)
    container = client.get_container_client(service.settings.ledger_container)

    def put(index: int) -> None:
        operation_id = new_operation_id(T0 + timedelta(seconds=2, milliseconds=index))
        container.upload_blob(f"{RECORD_PREFIX}{operation_id}.json", text, tags={"state": "succeeded"})

    try:
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(put, range(size - PENDING - 1)))
    finally:
        harness.proxy.configure(latency=harness.latency)
        client.close()
    return service


def _list(harness: Harness, service: AppService) -> tuple[float, float, int]:
    """Requests and seconds of one full ``state=pending`` listing (pages of 50), averaged."""
    requests = 0
    began = time.perf_counter()
    found = 0
    for _ in range(SAMPLES):
        before = harness.requests()
        page = awaited(service.list(ListQuery(State.PENDING, PENDING, None)))
        found = len(page.items)
        requests += harness.requests() - before
    return requests / SAMPLES, (time.perf_counter() - began) / SAMPLES, found


def _bare_query(harness: Harness, service: AppService) -> float:
    began = time.perf_counter()
    for _ in range(SAMPLES):
        awaited(service.ledger.find_page("\"state\" = 'pending'", PENDING, None))
    return (time.perf_counter() - began) / SAMPLES
