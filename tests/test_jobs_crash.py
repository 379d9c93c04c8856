"""A job survives what happens to the instances running it (invariant 8): a message
delivered twice, a step that fails or whose answer is lost at any point of a page, a
queue outage at the start, a page lost for good, two instances at once. Each item is
started at most once and every item ends; on Azurite through the proxy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from copy_ops.background.sweep import sweep
from copy_ops.copies.model import State
from copy_ops.core.errors import StorageUnavailable
from copy_ops.jobs import progress
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory
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

ITEMS = 60
PAGE = "25"  # three pages: 25, 25, 10


@pytest.fixture
def world(make_settings: SettingsFactory, proxy: PendingCopyProxy) -> Iterator[JobWorld]:
    made = JobWorld(make_settings, proxy, COPY_JOB_PAGE_SIZE=PAGE)
    yield made
    made.close()


def test_every_message_delivered_twice_starts_nothing_twice(
    world: JobWorld, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    names = arrange_pending(partner, ITEMS)
    job = world.start(job_body(blobs, partner.listing("in/")), NOW).job
    seen: set[str] = set()

    def twice(text: str) -> None:
        if text not in seen:
            seen.add(text)
            run(world.work.send([text]))  # the same message again, as an at-least-once queue may

    delivered = world.deliver(NOW, before=twice)
    assert delivered.kinds["page"] >= 6
    assert world.job(job.id, NOW).enumeration.items == ITEMS
    assert_each_started_once(proxy, blobs, names)
    finish(world, job.id)
    assert world.job(job.id, NOW).counts.of(State.ABORTED) == ITEMS


# Each step of a page, failing (three times: beyond the SDK's retries) or taking effect
# with its answer lost, for one item midway ("{item}": its record, "{dest}": its
# destination) or for the page: the message is delivered again, or the item is left to
# the sweep, and the page goes on from there. (step, request kind, path, mode, after, fails)
STEPS = [
    ("read the job", "get_blob", "/jobs/", "status", 0, True),
    ("list the source", "list_blobs", "", "status", 0, True),
    ("record an item", "put_blob", "{item}", "status", 0, True),
    ("record an item, answer lost", "put_blob", "{item}", "lost_response", 0, False),
    ("start a copy", "copy_blob", "{dest}", "status", 0, True),
    ("start a copy, answer lost", "copy_blob", "{dest}", "lost_response", 0, False),
    ("record a started copy", "put_blob", "{item}", "status", 1, True),
    ("keep the page's handout", "put_blob", "/jobs/", "status", 0, True),
    ("keep the page's handout, answer lost", "put_blob", "/jobs/", "lost_response", 0, False),
    ("move the checkpoint", "put_blob", "/jobs/", "status", 1, True),
    ("move the checkpoint, answer lost", "put_blob", "/jobs/", "lost_response", 1, False),
    ("send the next page", "put_message", "", "status", 0, True),
    ("send the next page, answer lost", "put_message", "", "lost_response", 0, False),
]


@pytest.mark.parametrize(("step", "kind", "path", "mode", "after", "fails"), STEPS, ids=[s[0] for s in STEPS])
def test_a_page_interrupted_at_any_step_goes_on(
    world: JobWorld,
    blobs: Blobs,
    partner: Partner,
    proxy: PendingCopyProxy,
    step: str,
    kind: str,
    path: str,
    mode: str,
    after: int,
    fails: bool,
) -> None:
    names = arrange_pending(partner, ITEMS)
    job = world.start(job_body(blobs, partner.listing("in/")), NOW).job
    midway = "out/030.bin"
    path = path.format(item=f"/ops/{progress.item_id(job.id, midway)}.json", dest=f"/{blobs.dst}/{midway}")
    target = proxy.queue_proxy if kind.endswith("_message") else proxy
    assert target is not None
    target.inject(kind, mode=mode, times=3 if mode == "status" else 1, path_contains=path, after=after)
    delivered = world.deliver(NOW, visibility=VISIBILITY)
    assert bool(delivered.failures) == fails, (step, delivered)
    enumerated = world.job(job.id, NOW)
    assert enumerated.enumeration.done and enumerated.enumeration.items == ITEMS, enumerated.enumeration
    # An item whose start failed or is unknown is started (or its copy adopted) by a later
    # delivery of its page: every item is started exactly once, none is given up.
    assert_each_started_once(proxy, blobs, names)
    finish(world, job.id)
    ended = world.job(job.id, NOW)
    assert ended.counts.items == ITEMS and ended.counts.of(State.PENDING) == 0
    assert ended.counts.of(State.ABORTED) == ITEMS, ended.counts


def test_a_queue_outage_at_the_start_leaves_nothing(world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    arrange(blobs, 3)
    assert proxy.queue_proxy is not None
    proxy.queue_proxy.inject("put_message", times=100)
    proxy.queue_proxy.inject("put_blob", times=100)  # creating the queue
    with pytest.raises(StorageUnavailable):
        world.start(job_body(blobs), NOW, key="k1")
    assert run(world.service.jobs.list(10, None)).items == []
    proxy.queue_proxy.clear_faults()
    # The same key starts it now (the first attempt left its claim, not a job).
    started = world.start(job_body(blobs), NOW, key="k1")
    assert not started.replayed
    assert world.start(job_body(blobs), NOW, key="k1").replayed


def test_a_page_lost_for_good_is_resumed_by_the_check(world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    # The app's own account: a page of a caller's SAS listing, lost for good, cannot be
    # listed again (copy-ops keeps no SAS); the copies need not stay pending here.
    names = arrange(blobs, ITEMS)
    job = world.start(job_body(blobs), NOW).job
    # The first page's message is lost (poisoned, and the poison queue dropped).
    [lost] = world.queue.receive_messages(max_messages=1)
    world.queue.delete_message(lost)
    later = NOW + progress.STALL + timedelta(seconds=1)
    assert run(world.service.jobs.check(job.id, later)) == "waiting"
    world.deliver(later)
    assert world.job(job.id, later).enumeration.items == ITEMS
    assert_each_started_once(proxy, blobs, names)


def test_two_instances_at_once(
    world: JobWorld, make_settings: SettingsFactory, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    names = arrange_pending(partner, 120)
    other = JobWorld.beside(world)
    job = world.start(job_body(blobs, partner.listing("in/")), NOW).job
    errors: list[BaseException] = []

    def work_on(instance: JobWorld) -> None:
        try:
            instance.deliver(NOW)
            run(sweep(instance.service, NOW + timedelta(seconds=20)))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work_on, args=(instance,)) for instance in (world, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    world.deliver(NOW)
    assert world.job(job.id, NOW).enumeration.items == 120
    assert_each_started_once(proxy, blobs, names)
    finish(world, job.id)
    other.close()
