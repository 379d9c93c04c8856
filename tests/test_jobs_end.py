"""A job ends with its last item (copy_ops.jobs.watch, and the enumeration's end), not at
the sweep's next look: on Azurite through the pending-copy proxy, with no sweep at all;
and the watch's rule, table-driven, over an index in memory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.copies.model import BlobRef, Operation, State, Terms
from copy_ops.core.errors import StorageUnavailable
from copy_ops.jobs import progress
from copy_ops.jobs.model import JobState
from copy_ops.jobs.watch import AT_ONCE, INDEX_CATCH_UP_SECONDS, LastItemWatch
from copy_ops.work.messages import Check, decode, encode
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory
from tests.support.jobs import JobWorld
from tests.support.memory import MemoryQueue
from tests.support.partner import Partner

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def world(make_settings: SettingsFactory, proxy: PendingCopyProxy) -> Iterator[JobWorld]:
    made = JobWorld(make_settings, proxy)
    yield made
    made.close()


def start_enumerated_job(
    world: JobWorld, blobs: Blobs, count: int, partner: Partner | None = None
) -> tuple[str, list[str]]:
    """A prefix job of ``count`` items (of the app's account, or of ``partner``'s),
    enumerated (its one page delivered), with no sweep: its id and its items' ids."""
    names = [f"in/{index}.bin" for index in range(count)]
    for name in names:
        if partner is None:
            blobs.put(blobs.src, name, b"x" * 7)
        else:
            partner.put(name, b"x" * 7)
    body = {
        "source": {"container": blobs.src, "prefix": "in/"} if partner is None else partner.listing("in/"),
        "destination": {"container": blobs.dst, "prefix": "out/"},
        "timeout_seconds": 600,
    }
    job = world.start(body, NOW).job
    delivered = world.deliver(NOW)
    # The enumeration's end asked for a look itself.
    assert (delivered.kinds["page"], delivered.kinds["check"]) == (1, 1), delivered
    return job.id, [progress.item_id(job.id, "out/" + name[3:]) for name in names]


def start_pending_job(world: JobWorld, blobs: Blobs, partner: Partner, count: int) -> tuple[str, list[str]]:
    """A prefix job of ``count`` items of another account, every one pending after its
    enumeration (as copies from another account are on Azure)."""
    partner.proxy.pending_copies = True
    job_id, items = start_enumerated_job(world, blobs, count, partner)
    assert world.job(job_id, NOW).state is JobState.RUNNING  # the look found them pending
    return job_id, items


def test_the_last_item_aborted_on_request_ends_its_job_with_no_sweep(
    world: JobWorld, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    job_id, items = start_pending_job(world, blobs, partner, 3)
    proxy.finish(blobs.dst, "out/0.bin")
    # A reader records what it sees (GET is safe: it writes only the observed end).
    assert run(world.service.get(items[0], NOW)).state is State.SUCCEEDED
    run(world.service.abort(items[1], NOW))
    assert world.job(job_id, NOW).state is JobState.RUNNING
    run(world.service.abort(items[2], NOW))

    delivered = world.deliver(NOW)
    assert delivered.kinds["check"] >= 1, delivered
    ended = world.job(job_id, NOW)
    assert ended.state is JobState.FAILED, ended  # not every item succeeded; the job itself was not aborted
    assert ended.counts.of(State.SUCCEEDED) == 1 and ended.counts.of(State.ABORTED) == 2
    assert ended.report is not None


def test_an_item_the_index_still_shows_pending_is_counted_as_its_record_says(
    world: JobWorld, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    job_id, [only] = start_pending_job(world, blobs, partner, 1)
    proxy.index.freeze()  # from here on, the index shows the item pending
    run(world.service.abort(only, NOW))
    assert [decode(text) for text in world.peek()] == [Check(job_id, only)]
    world.deliver(NOW)
    assert world.job(job_id, NOW).state is JobState.FAILED


def test_a_job_whose_items_end_at_their_start_ends_with_its_enumeration(world: JobWorld, blobs: Blobs) -> None:
    job_id, _ = start_enumerated_job(world, blobs, 3)
    ended = world.job(job_id, NOW)
    assert ended.state is JobState.SUCCEEDED and ended.counts.of(State.SUCCEEDED) == 3


# -- the watch's rule ---------------------------------------------------------------


class PendingIndex:
    """The index's answer to "which items of the job are pending", in memory."""

    def __init__(self, pending: list[str], fails: bool = False) -> None:
        self.pending = pending
        self.fails = fails
        self.asked: list[int] = []

    async def pending_sample(self, job_id: str, most: int) -> list[str]:
        self.asked.append(most)
        if self.fails:
            raise StorageUnavailable("the index is away", code="ServerBusy")
        return self.pending[:most]


def ended_item(job: str | None = "job-1", op_id: str = "job-1-aa") -> Operation:
    return Operation(
        id=op_id,
        state=State.ABORTED,
        source="s",
        destination=BlobRef("d", "b"),
        terms=Terms(NOW),
        created_at=NOW,
        job=job,
    )


@pytest.mark.parametrize(
    ("pending", "expected_delay"),
    [
        ([], 0),  # the index already shows it ended: the last one
        (["job-1-aa"], 0),  # only itself, as the index lags: the last one
        (["job-1-bb"], INDEX_CATCH_UP_SECONDS),  # another, maybe ended at the same moment
        (["job-1-aa"] + [f"job-1-{i}" for i in range(AT_ONCE)], INDEX_CATCH_UP_SECONDS),
        ([f"job-1-{i}" for i in range(AT_ONCE + 1)], None),  # many more to come: a later end asks
    ],
)
def test_an_item_asks_for_a_look_when_it_may_have_been_the_last(pending: list[str], expected_delay: int | None) -> None:
    index, queue = PendingIndex(pending), MemoryQueue()
    run(LastItemWatch(index, queue).item_ended(ended_item(), NOW))  # type: ignore[arg-type]
    assert index.asked == [AT_ONCE + 1]
    if expected_delay is None:
        assert queue.messages == []
    else:
        assert [decode(text) for text in queue.messages] == [Check("job-1", "job-1-aa")]
        assert queue.delays == [expected_delay]


@pytest.mark.parametrize(
    ("index", "queue_refuses", "job"),
    [
        (PendingIndex([], fails=True), False, "job-1"),
        (PendingIndex([]), True, "job-1"),
        (PendingIndex([]), False, None),
    ],
)
def test_a_look_that_cannot_be_asked_for_is_left_to_the_scheduled_one(
    index: PendingIndex, queue_refuses: bool, job: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    queue = MemoryQueue()
    queue.refuse = queue_refuses
    run(LastItemWatch(index, queue).item_ended(ended_item(job), NOW + timedelta(seconds=1)))  # type: ignore[arg-type]
    assert queue.messages == []
    assert ("job_look_deferred" in caplog.text) == (job is not None)


@pytest.mark.parametrize("item", ["../../jobs/x", "%2e%2e", "", "8203858143000-5b679290" + "0" * 500])
def test_a_look_naming_an_item_that_is_no_item_looks_as_a_plain_one(
    world: JobWorld, blobs: Blobs, partner: Partner, item: str
) -> None:
    job_id, _ = start_pending_job(world, blobs, partner, 1)
    run(world.sealed.send([encode(Check(job_id, item))]))  # sealed: as if the key leaked
    delivered = world.deliver(NOW)
    assert delivered.kinds["check"] == 1 and not delivered.failures, delivered
    assert world.job(job_id, NOW).state is JobState.RUNNING  # its one item still pending
