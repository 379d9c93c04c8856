"""Jobs on in-memory storage and a queue in memory: aborts while enumerating, stalls,
manifests, item ids and the job's ending, table-driven where the logic is pure. The
Azurite tests (test_jobs.py, test_jobs_crash.py) are the proof on the wire."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.app_service import AppService
from copy_ops.background.dispatch import do_work
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import BlobRef, ItemClaim, Operation, State, Terms
from copy_ops.copies.phases import Phase
from copy_ops.core.errors import Conflict
from copy_ops.core.settings import Settings
from copy_ops.jobs import progress
from copy_ops.jobs.model import Counts, Enumeration, Job, JobState, Listing, PrefixSource
from copy_ops.jobs.request import parse_job_request
from copy_ops.work.messages import Page, encode
from devkit.worker import run
from tests.support.memory import MemoryQueue, MemoryStorage, sealed_by
from tests.support.records import changed

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SETTINGS = Settings.from_env(
    {
        "COPY_STORAGE": "UseDevelopmentStorage=true",
        "COPY_SWEEP_CONCURRENCY": "4",
        "COPY_JOB_PAGE_SIZE": "10",
        "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*,partner.blob.core.windows.net",
        # Items on Copy Blob, held pending (the block engine's jobs: tests/test_blocks_jobs.py).
        "COPY_ENGINE": "async",
    }
)


class World:
    def __init__(self, blobs: int = 25) -> None:
        self.storage = MemoryStorage()
        self.storage.pending = True
        self.queue = MemoryQueue()
        self.service = AppService(SETTINGS, self.storage, self.queue)
        for i in range(blobs):
            self.storage.put(BlobRef("src", f"in/{i:02d}.bin"), b"x" * 3)

    def start(self, body: dict[str, object], now: datetime = T0) -> Job:
        return run(self.service.jobs.start(parse_job_request(body, SETTINGS, now), now)).job

    def deliver(self, now: datetime = T0, rounds: int = 100) -> list[str]:
        kinds = []
        for _ in range(rounds):
            messages = self.queue.take()
            if not messages:
                break
            for text in messages:
                kinds.append(run(do_work(self.service, text, now))[0])
        return kinds


def prefix_job(**fields: object) -> dict[str, object]:
    return {
        "source": {"container": "src", "prefix": "in/"},
        "destination": {"container": "dst", "prefix": "out/"},
        "timeout_seconds": 600,
        **fields,
    }


def test_an_abort_while_enumerating_stops_the_listing_and_aborts_what_started() -> None:
    world = World(25)
    job = world.start(prefix_job())
    [first_page] = world.queue.take()
    run(do_work(world.service, first_page, T0))  # its batch handed out; the next page is queued
    batch, next_page = world.queue.take()
    run(do_work(world.service, batch, T0))  # ten items started
    world.queue.messages.append(next_page)
    aborted = run(world.service.jobs.abort(job.id, T0 + timedelta(seconds=1)))
    assert aborted.abort_requested_at is not None
    assert world.deliver(T0 + timedelta(seconds=1)).count("page") == 1  # it stops, starting nothing
    ended = run(world.service.jobs.get(job.id, T0 + timedelta(seconds=2)))
    assert ended.state is JobState.ABORTED
    assert ended.enumeration.items == 10 and ended.enumeration.stopped == "the job was aborted"
    assert ended.counts.of(State.ABORTED) == 10 and len(world.storage.aborts) == 10
    # Idempotent; and a job that ended otherwise refuses it.
    assert run(world.service.jobs.abort(job.id, T0 + timedelta(seconds=3))).state is JobState.ABORTED


def test_aborting_a_job_that_succeeded_is_a_conflict() -> None:
    world = World(3)
    world.storage.pending = False
    job = world.start(prefix_job())
    world.deliver()
    run(world.service.jobs.check(job.id, T0 + timedelta(seconds=11)))
    assert run(world.service.jobs.get(job.id, T0)).state is JobState.SUCCEEDED
    with pytest.raises(Conflict):
        run(world.service.jobs.abort(job.id, T0))


def test_more_pending_items_than_the_threshold_are_aborted_in_batches_on_the_queue() -> None:
    world = World(25)
    settings = Settings.from_env({**{"COPY_STORAGE": "UseDevelopmentStorage=true"}, "COPY_FANOUT_THRESHOLD": "5"})
    world.service = AppService(settings, world.storage, world.queue)
    job = world.start(prefix_job())
    world.deliver()
    run(world.service.jobs.abort(job.id, T0 + timedelta(seconds=1)))
    kinds = world.deliver(T0 + timedelta(seconds=1))
    assert kinds.count("abort") == 1
    # The abort's own look, its next one (ABORT_LOOK later), then a look asked for by items
    # that each may have been the last (25 ending at once, each seeing the others pending):
    # the job ended with them.
    assert 2 <= kinds.count("check") <= 27
    assert run(world.service.jobs.get(job.id, T0 + timedelta(seconds=1))).state is JobState.ABORTED
    assert len(world.storage.aborts) == 25


def test_a_manifest_chunk_lost_for_good_ends_the_job_saying_which() -> None:
    world = World(3)
    body = {
        "source": {"blobs": [{"container": "src", "blob": f"in/{i:02d}.bin"} for i in range(3)]},
        "destination": {"container": "dst"},
    }
    job = world.start(body)
    assert len(world.queue.take()) == 1  # the only chunk, lost
    later = T0 + progress.STALL + timedelta(seconds=1)
    run(world.service.jobs.check(job.id, later))
    ended = run(world.service.jobs.get(job.id, later))
    assert ended.state is JobState.FAILED
    assert ended.enumeration.items == 0 and "[0]" in (ended.enumeration.stopped or "")


def test_a_source_listed_with_a_sas_whose_page_is_lost_ends_the_job_saying_why() -> None:
    world = World(25)
    sas = "sv=2024-08-04&sr=c&sp=rl&sig=c2VjcmV0"
    job = world.start(prefix_job(source={"url": f"https://partner.blob.core.windows.net/src/in/?{sas}"}))
    assert job.source is not None and job.source.needs_sas and sas not in job.to_json().decode()
    [first_page] = world.queue.take()
    assert sas in first_page  # the one place it is kept
    run(do_work(world.service, first_page, T0))
    batch, _lost = world.queue.take()  # the first page's batch; the second page, lost
    assert sas in batch  # the items are read with it
    run(do_work(world.service, batch, T0))
    later = T0 + progress.STALL + timedelta(seconds=1)
    run(world.service.jobs.check(job.id, later))
    stopped = run(world.service.jobs.get(job.id, later))
    assert stopped.enumeration.done and stopped.enumeration.items == 10
    assert "SAS" in (stopped.enumeration.stopped or "")
    run(sweep(world.service, T0 + timedelta(seconds=601)))
    run(sweep(world.service, T0 + timedelta(seconds=700)))
    assert run(world.service.jobs.get(job.id, later)).state is JobState.FAILED


def test_a_stalled_own_source_is_resumed_from_its_checkpoint() -> None:
    world = World(25)
    job = world.start(prefix_job())
    run(do_work(world.service, world.queue.take()[0], T0))
    world.queue.take()  # the second page, lost
    later = T0 + progress.STALL
    assert run(world.service.jobs.check(job.id, later)) == "waiting"
    assert world.deliver(later).count("page") == 2
    assert run(world.service.jobs.get(job.id, later)).enumeration.items == 25


# -- pure: ids, names, timing, the ending -------------------------------------------


def job_with(**fields: object) -> Job:
    base = Job(
        id="8204449906000-a768621b",
        state=JobState.RUNNING,
        source=PrefixSource(Listing.OWN, "src", "in/", "https://a/src"),
        manifest_size=0,
        destination_container="dst",
        destination_prefix="out/",
        terms=Terms(T0 + timedelta(hours=1)),
        created_at=T0,
        fingerprint="f",
    )
    return changed(base, **fields)


DONE = Enumeration(items=3, done=True)


@pytest.mark.parametrize(
    ("enumeration", "aborted", "counts", "expected"),
    [
        (Enumeration(items=3), False, {"succeeded": 3}, None),  # still listing
        (DONE, False, {"succeeded": 2}, None),  # the index has not seen every item yet
        (DONE, False, {"succeeded": 2, "pending": 1}, None),
        (DONE, False, {"succeeded": 3}, JobState.SUCCEEDED),
        (DONE, False, {"succeeded": 2, "aborted": 1}, JobState.FAILED),
        (DONE, False, {"succeeded": 2, "failed": 1}, JobState.FAILED),
        (DONE, True, {"succeeded": 3}, JobState.ABORTED),
        (Enumeration(items=3, done=True, stopped="lost"), False, {"succeeded": 3}, JobState.FAILED),
        (Enumeration(items=0, done=True), False, {}, JobState.SUCCEEDED),
        # Stopped by its check while a page may be in flight: not before that page is done.
        (
            Enumeration(items=3, done=True, stopped="d", settle_after=T0 + timedelta(seconds=1)),
            True,
            {"aborted": 3},
            None,
        ),
        (Enumeration(items=3, done=True, stopped="d", settle_after=T0), True, {"aborted": 3}, JobState.ABORTED),
    ],
)
def test_how_a_job_ends(
    enumeration: Enumeration, aborted: bool, counts: dict[str, int], expected: JobState | None
) -> None:
    job = job_with(enumeration=enumeration, abort_requested_at=T0 if aborted else None)
    assert progress.ending(job, Counts(counts), T0) is expected


@pytest.mark.parametrize(
    ("now", "checks", "expected"),
    [
        (T0, 0, T0 + timedelta(seconds=10)),
        (T0, 3, T0 + timedelta(seconds=60)),  # doubling, up to the longest
        (T0 + timedelta(seconds=3590), 5, T0 + timedelta(seconds=3605)),  # soon after the deadline
        (T0 + timedelta(hours=2), 9, T0 + timedelta(hours=2, seconds=10)),  # past it: every sweep
    ],
)
def test_when_a_job_is_looked_at_next(now: datetime, checks: int, expected: datetime) -> None:
    assert progress.next_check(job_with(checks=checks), now) == expected


def test_item_ids_are_stable_distinct_and_operation_ids() -> None:
    from copy_ops.copies.records import is_operation_id

    ids = {progress.item_id("8204449906000-a768621b", f"out/{i}") for i in range(1000)}
    assert len(ids) == 1000 and all(is_operation_id(item) for item in ids)
    assert progress.item_id("8204449906000-a768621b", "out/1") == progress.item_id("8204449906000-a768621b", "out/1")


# -- an item's claim (issue 16): who may start a recorded item -----------------------

DEADLINE = T0 + timedelta(hours=1)
RECORD = Operation(
    id="8000000000000-00000000-0000000000000000",
    state=State.PENDING,
    source="https://acct.blob.core.windows.net/src/a.bin",
    destination=BlobRef("dst", "a.bin"),
    terms=Terms(DEADLINE),
    created_at=T0,
    claim=ItemClaim("first", T0),
)
CLAIM = progress.ITEM_CLAIM


@pytest.mark.parametrize(
    ("change", "now", "expected"),
    [
        ({}, T0, progress.Claim.HELD),
        ({}, T0 + CLAIM - timedelta(seconds=1), progress.Claim.HELD),
        ({}, T0 + CLAIM, progress.Claim.ABANDONED),
        # An older record, written before claims were timed: its creation is its claim.
        ({"claim": None}, T0 + CLAIM, progress.Claim.ABANDONED),
        # Taken over later: the new claim counts.
        ({"claimed_at": T0 + CLAIM}, T0 + CLAIM + timedelta(seconds=5), progress.Claim.HELD),
        ({"copy_id": "c1"}, T0 + CLAIM, progress.Claim.SETTLED),
        ({"state": State.FAILED}, T0 + CLAIM, progress.Claim.SETTLED),
        ({"abort_requested_at": T0}, T0 + CLAIM, progress.Claim.SETTLED),
        # Its attempt failed before its copy was sent: the sweep runs its next attempt.
        ({"phase": Phase.RETRYING}, T0 + CLAIM, progress.Claim.SETTLED),
        ({}, DEADLINE, progress.Claim.SETTLED),  # too late to start: the sweep ends it
    ],
)
def test_an_items_claim(change: dict[str, object], now: datetime, expected: progress.Claim) -> None:
    assert progress.item_claim(changed(RECORD, **change), now) is expected


def test_a_claim_taken_over_carries_the_new_attempt_and_its_time() -> None:
    taken = progress.claimed(RECORD, "second", T0 + CLAIM)
    assert taken.claim == ItemClaim("second", T0 + CLAIM)
    assert progress.item_claim(taken, T0 + CLAIM) is progress.Claim.HELD


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("w/fine.bin", False),
        ("w/a.", True),
        ("w/x/../y", True),
        ("w/%2e%2e/z", True),
        ("w/\uff0e\uff0e/q", True),
        ("w/q?/..", True),
        ("w/semi..;/t", True),
        ("w/", True),
        ("", True),
        ("x" * 1025, True),
    ],
)
def test_which_listed_names_are_not_addressed(name: str, refused: bool) -> None:
    assert (progress.source_name_problem(name) is not None) is refused
    assert (progress.destination_name_problem(name) is not None) is refused


@pytest.mark.parametrize(
    ("abort_requested_at", "now", "stops"),
    [(None, T0, False), (T0, T0, True), (None, DEADLINE - timedelta(seconds=1), False), (None, DEADLINE, True)],
)
def test_when_no_more_items_are_started(abort_requested_at: datetime | None, now: datetime, stops: bool) -> None:
    job = job_with(deadline=DEADLINE, abort_requested_at=abort_requested_at)
    assert (progress.stop_reason(job, now) is not None) is stops


@pytest.mark.parametrize("job_id", ["not-an-id", "", "8000000000000-zz", "9" * 40])
def test_a_page_for_no_job_that_could_exist_is_dropped_not_a_crash(job_id: str) -> None:
    world = World(blobs=0)
    assert run(do_work(world.service, sealed_by(world.service, encode(Page(job_id, 0))), T0)) == (
        "page",
        Counter({"gone": 1}),
    )
