"""What a review attacking the jobs' hardening found (issue 16), each a test that failed on
its first version: a page back only after the start grace, a destination that refuses
its restore snapshot, a retried key whose page meets no record yet, a lease slower than
the send window, a page still in flight when its job's deadline ends the listing."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.background.dispatch import do_work
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import BlobRef, CopyRequest, ErrorCode, OnAbort, State, Terms
from copy_ops.core.errors import StorageUnavailable
from copy_ops.core.settings import Settings
from copy_ops.jobs import progress
from copy_ops.storage import BlobStorage
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory
from tests.support.crash import Killed, KillSwitch
from tests.support.jobs import NOW, VISIBILITY, JobWorld, arrange, arrange_pending, job_body
from tests.support.partner import Partner


def test_a_killed_page_back_after_the_start_grace_still_starts_its_item(
    make_settings: SettingsFactory, proxy: PendingCopyProxy, blobs: Blobs, partner: Partner
) -> None:
    """A dead host's message comes back when its 10-minute peek lock runs out, or the
    stall check resends the page after 5 minutes: the sweep must not give the item up
    (not_started) before either can take it over."""
    arrange_pending(partner, 5)
    starter = JobWorld(make_settings, proxy)
    job = starter.start(job_body(blobs, partner.listing("in/")), NOW).job
    item = progress.item_id(job.id, "out/002.bin")

    def killable(storage: BlobStorage) -> KillSwitch:
        return KillSwitch(storage, "create_document", lambda args: args[1] == f"ops/{item}.json")

    doomed = JobWorld.beside(starter, wrap=killable)
    with pytest.raises(Killed):
        doomed.deliver(NOW)
    survivor = JobWorld.beside(starter)
    later = NOW + progress.STALL + timedelta(seconds=30)
    run(sweep(survivor.service, later))  # the timer, while the page is away: it resends the page
    survivor.deliver(later)
    op = run(survivor.service.ledger.get(item))
    assert op.copy_id is not None and op.state is State.PENDING, (op.state, op.error)
    for world in (starter, doomed, survivor):
        world.close()


def test_a_destination_that_refuses_its_restore_snapshot_is_a_failed_item(
    make_settings: SettingsFactory, proxy: PendingCopyProxy, blobs: Blobs, partner: Partner
) -> None:
    arrange_pending(partner, 3)  # copies stay pending
    world = JobWorld(make_settings, proxy)
    # Someone else's copy is pending on one destination: a snapshot of it is refused (409).
    foreign = CopyRequest(
        source_url=partner.url("in/001.bin"),
        source_blob=None,
        destination=BlobRef(blobs.dst, "out/001.bin"),
        terms=Terms(NOW + timedelta(hours=1), OnAbort.DELETE, overwrite=True),
        fingerprint="x",
    )
    run(world.service.start(foreign, NOW))
    job = world.start({**job_body(blobs, partner.listing("in/")), "overwrite": True, "on_abort": "restore"}, NOW).job
    world.deliver(NOW, visibility=VISIBILITY)
    enumerated = world.job(job.id, NOW)
    assert enumerated.enumeration.done and enumerated.enumeration.items == 3, enumerated.enumeration
    refused = run(world.service.ledger.get(progress.item_id(job.id, "out/001.bin")))
    assert refused.state is State.FAILED and refused.error is not None
    assert refused.error.code is ErrorCode.START_REFUSED, refused.error
    world.close()


def test_a_retried_key_whose_page_meets_no_record_yet_is_delivered_again(
    make_settings: SettingsFactory, proxy: PendingCopyProxy, blobs: Blobs
) -> None:
    """A start retried with its key reuses the id it was given minutes ago; a trigger that
    takes its message before the record is written must not drop it as 'gone'."""
    assert proxy.queue_proxy is not None
    blobs.put(blobs.src, "m/a.bin", b"a")
    manifest = {"blobs": [{"container": blobs.src, "blob": "m/a.bin"}]}
    world = JobWorld(make_settings, proxy)
    fast = JobWorld.beside(world)
    first = datetime.now(UTC) - timedelta(minutes=3)
    proxy.queue_proxy.inject("put_message", times=10_000)
    proxy.queue_proxy.inject("put_blob", times=10_000)
    with pytest.raises(StorageUnavailable):
        world.start({**job_body(blobs), "source": manifest}, first, key="K")
    proxy.queue_proxy.clear_faults()
    retry = datetime.now(UTC)
    send = world.work.send

    async def send_then_a_fast_trigger(messages: Sequence[str], delay_seconds: int = 0) -> None:
        await send(messages, delay_seconds)
        # Another instance takes it at once (the test's trigger waits on this loop: a thread).
        await asyncio.to_thread(fast.deliver, retry, rounds=1)

    world.work.send = send_then_a_fast_trigger  # type: ignore[method-assign]
    job = world.start({**job_body(blobs), "source": manifest}, retry, key="K").job
    world.work.send = send  # type: ignore[method-assign]
    world.deliver(retry)
    run(sweep(world.service, retry + timedelta(seconds=30)))
    ended = world.job(job.id, retry + timedelta(seconds=30))
    assert ended.enumeration.stopped is None and ended.counts.items == 1, ended
    assert ended.state.value == "succeeded", ended
    for instance in (world, fast):
        instance.close()


def test_a_lease_slower_than_the_send_window_starts_nothing_twice(
    make_settings: SettingsFactory, proxy: PendingCopyProxy, blobs: Blobs
) -> None:
    """The send window is checked just before Copy Blob, after the lease: a slow Acquire
    Lease leaves the claim to the attempt that took it over. (The claim is shortened to two
    seconds, below what COPY_JOB_ITEM_CLAIM_SECONDS allows, so that its window is one, and
    the lease delayed three: the real window is 5 to 15 s, a request's read timeout 30 s.)"""

    def short_claim(**overrides: str) -> Settings:
        return dataclasses.replace(make_settings(**overrides), job_item_claim_seconds=2)

    arrange(blobs, 1)
    world = JobWorld(short_claim, proxy)
    other = JobWorld.beside(world)
    job = world.start({**job_body(blobs), "lease_source": True, "overwrite": True}, NOW).job
    [page] = world.take_batches(NOW)
    item = progress.item_id(job.id, "out/000.bin")
    proxy.inject("put_lease", mode="delay", seconds=3, times=1, path_contains="/in/000.bin")
    outcome: list[object] = []

    def slow() -> None:
        try:
            outcome.append(run(do_work(world.service, page, NOW)))
        except StorageUnavailable as exc:  # its item left to the other: the page comes back
            outcome.append(exc)

    thread = threading.Thread(target=slow)
    thread.start()
    recorded = threading.Event()
    while not recorded.wait(0.02):
        try:
            run(world.service.ledger.get(item))
            recorded.set()
        except Exception:
            continue
    run(do_work(other.service, page, NOW + progress.ITEM_CLAIM + timedelta(seconds=1)))  # takes the claim over
    thread.join(30)
    assert isinstance(outcome[0], StorageUnavailable), outcome
    assert proxy.started.get(f"/devstoreaccount1/{blobs.dst}/out/000.bin") == 1
    for instance in (world, other):
        instance.close()


def test_a_job_ended_by_its_deadline_reports_every_item_its_pages_started(
    make_settings: SettingsFactory, proxy: PendingCopyProxy, blobs: Blobs
) -> None:
    arrange(blobs, 10)
    world = JobWorld(make_settings, proxy, COPY_SWEEP_CONCURRENCY="1")
    job = world.start({**job_body(blobs), "timeout_seconds": 60}, NOW).job
    [page] = world.take_batches(NOW)
    slow_item = progress.item_id(job.id, "out/005.bin")
    proxy.inject("put_blob", mode="delay", seconds=3, times=1, path_contains=f"/ops/{slow_item}.json")
    # The page starts a second before the deadline; one record write is slow.
    thread = threading.Thread(target=lambda: run(do_work(world.service, page, NOW + timedelta(seconds=59))))
    thread.start()
    after = NOW + timedelta(seconds=61)
    assert run(world.service.jobs.check(job.id, after)) == "waiting"  # stopped, a page may be in flight
    thread.join(60)
    settled = after + progress.IN_FLIGHT
    run(sweep(world.service, settled))
    ended = world.job(job.id, settled)
    assert ended.is_final, ended
    recorded: list[str] = []
    token = None
    while True:
        ids, token = run(world.service.ledger.page(100, token, prefix=f"ops/{job.id}-"))
        recorded += ids
        if token is None:
            break
    report = run(world.service.jobs.report(job.id)).lines.decode().splitlines()
    # Nothing started past the deadline, and everything started is in the report.
    assert 0 < len(recorded) < 10 and len(report) == len(recorded), (len(report), len(recorded))
    assert len(proxy.started) == len(recorded)
    world.close()
