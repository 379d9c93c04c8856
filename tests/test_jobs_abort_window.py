"""A job's abort stops its items at the moment their copies would go out, not only when
their batch asks before starting each (issue 28, found by attack): an item whose record
write is slow (seconds, storage's retries) passed its batch's look before the abort, and
must still send no Copy Blob once the abort is answered, on another instance. On Azurite
through the proxy, the Copy Blobs timed as the instance sends them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from copy_ops.background.dispatch import do_work
from copy_ops.copies.model import ListQuery, State
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory
from tests.support.jobs import JobWorld, arrange_pending, job_body
from tests.support.partner import Partner
from tests.support.waiting import until
from tests.support.watch import StorageWatch

ITEMS = 6
# Each item's record write, held this long by the proxy: every item has passed its batch's
# look at its job when the abort comes, and is on its way to its Copy Blob.
SLOW_RECORD_SECONDS = 3


@pytest.fixture
def timed() -> StorageWatch:
    return StorageWatch()


@pytest.fixture
def world(
    make_settings: SettingsFactory, proxy: PendingCopyProxy, partner: Partner, timed: StorageWatch
) -> Iterator[JobWorld]:
    arrange_pending(partner, ITEMS)  # from another account: a started copy stays pending
    made = JobWorld(make_settings, proxy, timed.wrap)
    yield made
    made.close()


def test_no_copy_goes_out_a_second_after_the_abort_however_slow_the_records(
    world: JobWorld, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy, timed: StorageWatch
) -> None:
    other = JobWorld.beside(world)  # the instance the abort reaches
    try:
        job = world.start(job_body(blobs, partner.listing("in/")), datetime.now(UTC)).job
        [batch] = world.take_batches(datetime.now(UTC))
        proxy.inject("put_blob", mode="delay", seconds=SLOW_RECORD_SECONDS, times=100, path_contains="/ops/")
        writes = proxy.log.counts["put_blob"]
        done: list[object] = []
        delivery = threading.Thread(target=lambda: done.append(run(do_work(world.service, batch, datetime.now(UTC)))))
        delivery.start()
        # Every item has passed its look and waits on its record write: then the abort.
        assert until(lambda: proxy.log.counts["put_blob"] >= writes + ITEMS, timeout=30, interval=0.02)
        run(other.service.jobs.abort(job.id, datetime.now(UTC)))
        answered = time.monotonic()
        delivery.join(60)
        assert done, "the batch's delivery did not end"
        late = [round(at - answered, 2) for at in timed.times("start_copy") if at > answered + 1.0]
        assert late == [], f"Copy Blob sent {late} s after the abort was answered"
        items = run(world.service.jobs.items(job.id, ListQuery(None, 20, None))).items
        assert all(item.copy_id is None for item in items if item.state is State.PENDING)
    finally:
        other.close()
