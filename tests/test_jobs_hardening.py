"""Jobs attacked (issue 16): an instance killed between any two steps of an item's start,
odd source names, names valid alone but not under a prefix, an idempotent retry during a
queue outage, concurrent aborts, a manifest's bytes. On Azurite through the proxy."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from copy_ops.background.sweep import sweep
from copy_ops.copies.model import BlobRef, ErrorCode, ListQuery, State
from copy_ops.core.errors import StorageUnavailable
from copy_ops.jobs import progress
from copy_ops.jobs.items import item_request
from copy_ops.jobs.model import JobState
from copy_ops.storage import BlobStorage
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory
from tests.support.crash import Killed, KillSwitch
from tests.support.jobs import (
    NOW,
    VISIBILITY,
    JobWorld,
    arrange,
    arrange_pending,
    assert_each_started_once,
    finish,
    job_body,
)
from tests.support.partner import Partner

ITEMS = 40


def run_at_once(work: Callable[[], object], count: int) -> list[object]:
    """``work`` on ``count`` threads at once: what each returned, or raised."""
    results: list[object] = []

    def one() -> None:
        try:
            results.append(work())
        except Exception as exc:  # the caller looks at what each got
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


# Between every two steps of an item's start: (what was done last, the call, which item).
KILL_POINTS = [
    ("its record written", "create_document", lambda args, item: args[1] == f"ops/{item}.json"),
    ("its copy started", "start_copy", lambda args, item: args[0].blob == "out/020.bin"),
    ("its start recorded", "replace_document", lambda args, item: args[1] == f"ops/{item}.json"),
]


@pytest.mark.parametrize(("done", "method", "matches"), KILL_POINTS, ids=[point[0] for point in KILL_POINTS])
def test_an_instance_killed_mid_page_loses_no_item(
    make_settings: SettingsFactory,
    proxy: PendingCopyProxy,
    blobs: Blobs,
    partner: Partner,
    done: str,
    method: str,
    matches: Callable[[tuple[Any, ...], str], bool],
) -> None:
    names = arrange_pending(partner, ITEMS)
    starter = JobWorld(make_settings, proxy)
    job = starter.start(job_body(blobs, partner.listing("in/")), NOW).job
    item = progress.item_id(job.id, "out/020.bin")
    switches: list[KillSwitch] = []

    def killable(storage: BlobStorage) -> KillSwitch:
        switches.append(KillSwitch(storage, method, lambda args: matches(args, item)))
        return switches[-1]

    doomed = JobWorld.beside(starter, wrap=killable)
    with pytest.raises(Killed):
        doomed.deliver(NOW)
    assert switches[0].killed.is_set()
    # The host gives the page to an instance alive (again) after its visibility timeout.
    survivor = JobWorld.beside(starter)
    survivor.deliver(NOW + VISIBILITY, visibility=VISIBILITY)
    enumerated = survivor.job(job.id, NOW + VISIBILITY)
    assert enumerated.enumeration.done and enumerated.enumeration.items == ITEMS, enumerated.enumeration
    assert_each_started_once(proxy, blobs, names)
    finish(survivor, job.id)
    ended = survivor.job(job.id, NOW)
    # Every item was started and then aborted at the deadline: none failed, none lost.
    assert ended.is_final and ended.counts.items == ITEMS, ended
    assert ended.counts.of(State.ABORTED) == ITEMS, ended.counts
    for world in (starter, doomed, survivor):
        world.close()


@pytest.fixture
def world(make_settings: SettingsFactory, proxy: PendingCopyProxy) -> Iterator[JobWorld]:
    made = JobWorld(make_settings, proxy)
    yield made
    made.close()


def test_a_recent_claim_is_left_to_the_attempt_that_holds_it(
    world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    """A batch delivered while another attempt has just recorded an item (and may be sending
    its Copy Blob) starts nothing for it: it fails, to be delivered again."""
    names = arrange(blobs, 3)
    job = world.start(job_body(blobs), NOW).job
    # The record another attempt wrote a moment ago (its copy not sent yet).
    first = item_request(job, "000.bin", BlobRef(blobs.src, names[0]), 1)
    item = progress.item_id(job.id, first.destination.blob)
    run(world.service.copies.starter.record(first, item, NOW, "another-attempt"))
    failed = world.deliver(NOW, rounds=2)  # the page, then its batch
    assert failed.failures and "held=1" in failed.failures[0], failed
    assert proxy.started.get(f"/devstoreaccount1/{blobs.dst}/out/000.bin") is None
    # Its claim runs out: the batch takes the item over and starts it, once.
    world.deliver(NOW + VISIBILITY, visibility=VISIBILITY)
    assert_each_started_once(proxy, blobs, names)
    assert run(world.service.ledger.get(item)).copy_id is not None


def test_a_job_past_its_deadline_ends_whatever_its_enumeration_does(
    world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    arrange(blobs, 3)
    job = world.start(job_body(blobs, timeout_seconds=90), NOW).job
    proxy.inject("list_blobs", times=10_000, path_contains=f"/{blobs.src}")  # the listing fails, again and again
    world.deliver(NOW, rounds=3)
    after = NOW + timedelta(seconds=91)
    # The check stops the listing at once, and ends the job once a page that may still be
    # in flight is done.
    assert run(world.service.jobs.check(job.id, after)) == "waiting"
    assert world.job(job.id, after).enumeration.done
    assert run(world.service.jobs.check(job.id, after + progress.IN_FLIGHT)) == "failed"
    ended = world.job(job.id, after + progress.IN_FLIGHT)
    assert ended.state is JobState.FAILED and ended.counts.items == 0, ended
    assert ended.enumeration.done and ended.enumeration.stopped is not None
    assert "deadline" in ended.enumeration.stopped
    proxy.clear_faults()


def test_concurrent_aborts_of_a_job_all_succeed(world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    arrange(blobs, 5)
    job = world.start(job_body(blobs), NOW).job
    results = run_at_once(lambda: run(world.service.jobs.abort(job.id, NOW)).abort_requested_at, 10)
    assert len(results) == 10 and all(isinstance(result, datetime) for result in results), results


def test_an_idempotent_retry_during_a_queue_outage_never_returns_an_undone_job(
    world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    arrange(blobs, 2)
    assert proxy.queue_proxy is not None
    proxy.queue_proxy.inject("put_message", times=10_000)
    proxy.queue_proxy.inject("put_blob", times=10_000)  # creating the queue

    def start() -> object:
        try:
            return world.start(job_body(blobs), NOW, key="K").job.id
        except StorageUnavailable as exc:
            return exc

    outcomes = run_at_once(start, 5)
    # During the outage every request fails, and none is told of a job.
    assert len(outcomes) == 5 and all(isinstance(outcome, StorageUnavailable) for outcome in outcomes), outcomes
    assert run(world.service.jobs.list(10, None)).items == []
    proxy.queue_proxy.clear_faults()
    outcomes = run_at_once(start, 10)
    # Back: concurrent retries with the key converge on one job, which exists and stays.
    assert len(outcomes) == 10 and len(set(map(str, outcomes))) == 1, outcomes
    [job_id] = {str(outcome) for outcome in outcomes}
    assert world.job(job_id, NOW).id == job_id
    world.deliver(NOW)
    assert world.job(job_id, NOW).enumeration.items == 2


def test_a_manifest_job_counts_its_bytes(world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    blobs.put(blobs.src, "m/a.bin", b"x" * 100)
    blobs.put(blobs.src, "m/b.bin", b"y" * 23)
    manifest = {"blobs": [{"container": blobs.src, "blob": "m/a.bin"}, {"container": blobs.src, "blob": "m/b.bin"}]}
    job = world.start(job_body(blobs, source=manifest), NOW).job
    world.deliver(NOW)
    run(sweep(world.service, NOW + timedelta(seconds=30)))
    ended = world.job(job.id, NOW + timedelta(seconds=30))
    assert ended.state is JobState.SUCCEEDED, ended
    assert (ended.counts.bytes_copied, ended.counts.bytes_total) == (123, 123), ended.counts


def test_unsafe_source_names_are_failed_items_and_the_job_goes_on(
    world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    odd = ["w/a.", "w/x/../y", "w/%2e%2e/z", "w/\uff0e\uff0e/q", "w/q?/..", "w/semi..;/t"]
    for name in odd:
        blobs.put_raw(blobs.src, name, b"odd")
    blobs.put(blobs.src, "w/fine.bin", b"ok")
    source = {"container": blobs.src, "prefix": "w/"}
    job = world.start(job_body(blobs, source=source), NOW).job
    delivered = world.deliver(NOW)
    assert not delivered.failures, delivered
    run(sweep(world.service, NOW + timedelta(seconds=30)))
    ended = world.job(job.id, NOW + timedelta(seconds=30))
    assert ended.is_final and ended.state is JobState.FAILED, ended
    assert ended.counts.items == len(odd) + 1 and ended.counts.of(State.SUCCEEDED) == 1, ended.counts
    items = run(world.service.jobs.items(job.id, ListQuery(State.FAILED, 50, None))).items
    assert len(items) == len(odd) and {op.error.code for op in items if op.error} == {ErrorCode.UNSAFE_NAME}
    assert not proxy.started.keys() - {f"/devstoreaccount1/{blobs.dst}/out/fine.bin"}
