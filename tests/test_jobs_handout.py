"""A job's batches on in-memory storage and a queue in memory: any interleaving of
deliveries, redeliveries (a delivery whose delete was lost, or a second instance taking
the same message) and instances dying mid-message starts each item at most once, and every
listed item once the queue has drained (invariant 8 across instances). The wire's proof:
tests/test_jobs_scale.py (two development hosts on one Azurite)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copy_ops.app_service import AppService
from copy_ops.background.dispatch import do_poisoned, do_work
from copy_ops.copies.model import BlobRef, CopyStatus, ForeignBlob, State
from copy_ops.copies.ports import StoredDocument
from copy_ops.core.errors import CopyOpsError
from copy_ops.core.settings import Settings
from copy_ops.jobs import handouts, progress, stops
from copy_ops.jobs.model import JobState
from copy_ops.jobs.request import parse_job_request
from copy_ops.jobs.stops import StopLooks
from copy_ops.work.messages import BATCH, Batch, Check, decode
from devkit.worker import run
from tests.support.memory import MemoryQueue, MemoryStorage, sealed_by

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SETTINGS = Settings.from_env(
    {
        "COPY_STORAGE": "UseDevelopmentStorage=true",
        "COPY_SWEEP_CONCURRENCY": "3",
        "COPY_JOB_PAGE_SIZE": "7",
        "COPY_ENGINE": "async",
    }
)


class Killed(BaseException):
    """The instance died: nothing after this point of its work happens."""


class CountingStorage(MemoryStorage):
    """In-memory storage that counts Copy Blob per destination and can die after so many calls."""

    def __init__(self) -> None:
        super().__init__()
        self.copies: Counter[str] = Counter()
        self.calls_left: int | None = None

    def _tick(self) -> None:
        if self.calls_left is not None:
            if self.calls_left <= 0:
                raise Killed
            self.calls_left -= 1

    async def start_copy(
        self,
        ref: BlobRef,
        source: str | BlobRef | ForeignBlob,
        metadata: dict[str, str] | None,
        overwrite: bool,
        **kwargs: Any,
    ) -> tuple[str, CopyStatus]:
        self._tick()
        self.copies[ref.blob] += 1
        return await super().start_copy(ref, source, metadata, overwrite, **kwargs)

    async def create_document(self, container: str, name: str, data: bytes, tags: dict[str, str]) -> str:
        self._tick()
        return await super().create_document(container, name, data, tags)

    async def replace_document(self, container: str, name: str, data: bytes, tags: dict[str, str], etag: str) -> str:
        self._tick()
        return await super().replace_document(container, name, data, tags, etag)

    async def put_document(self, container: str, name: str, data: bytes, content_type: str) -> None:
        self._tick()
        await super().put_document(container, name, data, content_type)


class Queue:
    """Messages with their visibility, as the host's queue trigger sees them."""

    def __init__(self, sent: MemoryQueue) -> None:
        self.sent = sent
        self.visible: list[str] = []

    def pull(self) -> None:
        self.visible += self.sent.take()


def start(storage: CountingStorage, queue: MemoryQueue, blobs: int) -> str:
    for index in range(blobs):
        storage.put(BlobRef("src", f"in/{index:03d}.bin"), b"x")
    body = {
        "source": {"container": "src", "prefix": "in/"},
        "destination": {"container": "dst", "prefix": "out/"},
        "timeout_seconds": 3600,
    }
    service = AppService(SETTINGS, storage, queue)
    return run(service.jobs.start(parse_job_request(body, SETTINGS, T0), T0)).job.id


# Each step: which visible message, what becomes of it, and how far the clock moves.
STEPS = st.lists(
    st.tuples(
        st.integers(0, 1000),
        st.sampled_from(["done", "twice", "died", "kept"]),
        st.integers(0, 20),
        st.integers(0, 45),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blobs=st.integers(1, 30), steps=STEPS)
def test_any_interleaving_starts_each_item_at_most_once_and_every_one_eventually(
    blobs: int, steps: list[tuple[int, str, int, int]]
) -> None:
    storage, sent = CountingStorage(), MemoryQueue()
    service = AppService(SETTINGS, storage, sent)
    job_id = start(storage, sent, blobs)
    queue = Queue(sent)
    now = T0
    for pick, fate, calls, seconds in steps:
        queue.pull()
        if not queue.visible:
            break
        text = queue.visible[pick % len(queue.visible)]
        now += timedelta(seconds=seconds)
        if fate == "died":
            # The instance dies after ``calls`` storage calls (or the message fails before):
            # the message comes back.
            storage.calls_left = calls
            with contextlib.suppress(Killed, CopyOpsError):
                run(do_work(service, text, now))
            storage.calls_left = None
            continue
        try:
            run(do_work(service, text, now))
        except Exception:
            continue
        # "twice": another instance takes it too, or its delete is lost; "kept": left for later.
        if fate == "done":
            queue.visible.remove(text)
        elif fate == "twice":
            run(do_work(service, text, now))
    assert max(storage.copies.values(), default=0) <= 1, storage.copies
    # Then the queue drains (redeliveries come after a claim's time, as the host's would).
    for _ in range(200):
        queue.pull()
        if not queue.visible:
            break
        now += progress.ITEM_CLAIM
        text = queue.visible.pop(0)
        try:
            run(do_work(service, text, now))
        except Exception:
            queue.visible.append(text)
    assert not queue.visible
    assert storage.copies == Counter({f"out/{index:03d}.bin": 1 for index in range(blobs)})
    # The job ends (its scheduled look, if the last batch's was among the lost), once, with
    # a report naming every item once.
    run(service.jobs.check(job_id, now + timedelta(minutes=1)))
    job = run(service.jobs.get(job_id, now))
    assert job.state is JobState.SUCCEEDED, job
    assert job.counts.items == blobs and job.enumeration.items == blobs
    report = [json.loads(line) for line in run(service.jobs.report(job_id)).lines.decode().splitlines()]
    assert sorted(line["destination"]["blob"] for line in report) == sorted(storage.copies)


def test_a_page_is_handed_out_in_batches_that_carry_what_the_listing_said() -> None:
    storage, sent = CountingStorage(), MemoryQueue()
    service = AppService(SETTINGS, storage, sent)
    job_id = start(storage, sent, 7)
    [page] = sent.take()
    run(do_work(service, page, T0))
    messages = [decode(text) for text in sent.take()]
    batches = [message for message in messages if isinstance(message, Batch)]
    assert [(b.page, b.index, len(b.names)) for b in batches] == [(0, 0, 7)]
    assert batches[0].names == tuple(f"in/{index:03d}.bin" for index in range(7))
    assert batches[0].sizes == (1,) * 7
    # The checkpoint moved once the batch was sent: nothing is started yet.
    job = run(service.jobs.get(job_id, T0))
    assert (job.enumeration.page, job.enumeration.items, job.enumeration.batches) == (1, 7, 1)
    assert not storage.copies


def test_a_page_larger_than_a_batch_is_split() -> None:
    storage, sent = CountingStorage(), MemoryQueue()
    settings_ = Settings.from_env({**_env(), "COPY_JOB_PAGE_SIZE": str(BATCH + 5)})
    service = AppService(settings_, storage, sent)
    for index in range(BATCH + 5):
        storage.put(BlobRef("src", f"in/{index:04d}.bin"), b"x")
    body = {"source": {"container": "src", "prefix": "in/"}, "destination": {"container": "dst"}}
    run(service.jobs.start(parse_job_request(body, settings_, T0), T0))
    run(do_work(service, sent.take()[0], T0))
    sizes = [len(message.names) for message in map(decode, sent.take()) if isinstance(message, Batch)]
    assert sizes == [BATCH, 5]


def test_a_dead_attempts_claim_is_taken_over_once_the_claim_the_settings_give_is_over() -> None:
    """COPY_JOB_ITEM_CLAIM_SECONDS: an item recorded by an attempt that died before its
    Copy Blob is held for that long (30 s by default), then a delivery takes it over and
    starts it, once."""
    storage, sent = CountingStorage(), MemoryQueue()
    short = AppService(Settings.from_env({**_env(), "COPY_JOB_ITEM_CLAIM_SECONDS": "10"}), storage, sent)
    default = AppService(SETTINGS, storage, sent)
    start(storage, sent, 1)
    run(do_work(short, sent.take()[0], T0))  # page 0 -> batch 0-0
    [batch] = [text for text in sent.take() if isinstance(decode(text), Batch)]
    storage.calls_left = 1  # its record, then the instance dies before its Copy Blob
    with pytest.raises(Killed):
        run(do_work(short, batch, T0))
    storage.calls_left = None
    # Held: the batch raises, and the host delivers it again.
    for service, seconds in ((short, 9), (default, 11)):
        with pytest.raises(CopyOpsError):
            run(do_work(service, batch, T0 + timedelta(seconds=seconds)))
        assert not storage.copies
    run(do_work(short, batch, T0 + timedelta(seconds=11)))
    assert storage.copies == Counter({"out/000.bin": 1})


def _env() -> dict[str, str]:
    return {"COPY_STORAGE": "UseDevelopmentStorage=true", "COPY_SWEEP_CONCURRENCY": "3", "COPY_ENGINE": "async"}


def drain(service: AppService, sent: MemoryQueue, now: datetime) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for _ in range(100):
        messages = sent.take()
        if not messages:
            return kinds
        for text in messages:
            kinds[run(do_work(service, text, now))[0]] += 1
    raise AssertionError("the queue never drained")


def test_a_poisoned_batch_records_its_items_not_started_and_the_job_ends_saying_so() -> None:
    storage, sent = CountingStorage(), MemoryQueue()
    service = AppService(SETTINGS, storage, sent)
    job_id = start(storage, sent, 10)  # pages of 7: two batches
    run(do_work(service, sent.take()[0], T0))  # page 0 -> batch 0-0, page 1
    first = sent.take()
    poisoned = next(text for text in first if isinstance(decode(text), Batch))
    for text in first:
        if text != poisoned:
            run(do_work(service, text, T0))
    # One item of the poisoned batch was started by a delivery before the host gave up.
    batch = decode(poisoned)
    assert isinstance(batch, Batch)
    storage.calls_left = 3  # its record and Copy Blob, then the instance dies
    with pytest.raises(Killed):
        one = {key: value for key, value in json.loads(poisoned).items() if key != "mac"}
        run(do_work(service, sealed_by(service, json.dumps({**one, "names": [batch.names[0]], "sizes": [1]})), T0))
    storage.calls_left = None
    later = T0 + timedelta(seconds=50)
    assert run(do_poisoned(service, poisoned, later)) == ("poisoned", Counter(["poisoned"]))
    drain(service, sent, later)
    job = run(service.jobs.get(job_id, later))
    assert job.state is JobState.FAILED, job
    items = {op.destination.blob: op for op in run(service.jobs.items(job_id, _all())).items}
    not_started = [op for op in items.values() if op.error is not None and op.error.code.value == "not_started"]
    # The batch's other six were never started: each recorded, with why.
    assert len(not_started) == 6 and all("poison queue" in (op.error.message if op.error else "") for op in not_started)
    assert items[f"out/{batch.names[0][3:]}"].state is State.SUCCEEDED
    assert max(storage.copies.values()) == 1
    report = run(service.jobs.report(job_id)).lines.decode().splitlines()
    assert len(report) == 10


def test_batches_taken_after_an_abort_start_nothing_and_the_job_ends_without_them() -> None:
    storage, sent = CountingStorage(), MemoryQueue()
    service = AppService(SETTINGS, storage, sent)
    job_id = start(storage, sent, 10)
    run(do_work(service, sent.take()[0], T0))
    held = sent.take()  # batch 0-0 and page 1, not taken yet
    run(service.jobs.abort(job_id, T0))
    outcomes = [run(do_work(service, text, T0))[1] for text in held]
    assert outcomes == [Counter(["stopped"])] * 2, outcomes
    drain(service, sent, T0)
    assert not storage.copies
    later = T0 + progress.IN_FLIGHT + timedelta(seconds=1)
    run(service.jobs.check(job_id, later, asked=True))
    job = run(service.jobs.get(job_id, later))
    assert job.state is JobState.ABORTED and job.counts.items == 0, job


def _all() -> Any:
    from copy_ops.copies.model import ListQuery

    return ListQuery(None, 100, None)


def test_a_page_listed_again_after_the_source_changed_does_not_end_the_job_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page's handler dies after handing out its batches; the source changes; the page is
    listed again and hands out other batches. The checkpoint keeps the second handout: the
    first's batches, taken after, are refused (their marks would not count for the second's
    anyway): the job waits for the second's, and no listed item is left out."""
    seen: dict[str, str] = {}  # each handout its own token (random ones collide 1 in 65,536)
    monkeypatch.setattr(handouts, "handout_of", lambda attempt: seen.setdefault(attempt, f"{len(seen):04x}"))
    storage, sent = CountingStorage(), MemoryQueue()
    service = AppService(SETTINGS, storage, sent)
    job_id = start(storage, sent, 7)  # one page of 7
    [page] = sent.take()
    storage.calls_left = 1  # its handout written and its batch sent, it dies moving the checkpoint
    with pytest.raises(Killed):
        run(do_work(service, page, T0))
    storage.calls_left = None
    [orphan] = sent.take()
    del storage.blobs[BlobRef("src", "in/003.bin")]
    storage.put(BlobRef("src", "in/010.bin"), b"x")
    run(do_work(service, page, T0))  # listed again: in/010.bin instead of in/003.bin
    [winner] = [text for text in sent.take() if isinstance(decode(text), Batch)]
    assert run(do_work(service, orphan, T0)) == ("batch", Counter(["refused"]))  # not the kept handout
    drain(service, sent, T0)
    assert run(service.jobs.check(job_id, T0 + timedelta(minutes=1))).value == "waiting"
    assert "out/010.bin" not in storage.copies
    run(do_work(service, winner, T0))
    drain(service, sent, T0)
    run(service.jobs.check(job_id, T0 + timedelta(minutes=2)))
    job = run(service.jobs.get(job_id, T0))
    assert job.is_final and storage.copies["out/010.bin"] == 1, job
    assert max(storage.copies.values()) == 1


def test_a_batch_cut_short_by_the_deadline_leaves_its_mark_and_the_job_ends_once_the_index_caught_up() -> None:
    storage, sent = CountingStorage(), MemoryQueue()
    one_at_a_time = Settings.from_env({**_env(), "COPY_SWEEP_CONCURRENCY": "1", "COPY_JOB_PAGE_SIZE": "7"})
    service = AppService(one_at_a_time, storage, sent)
    job_id = start(storage, sent, 5)
    run(do_work(service, sent.take()[0], T0))
    [batch] = [text for text in sent.take() if isinstance(decode(text), Batch)]
    deadline = T0 + timedelta(seconds=3600)
    # Its items start a moment before the deadline, one at a time; the first Copy Blob
    # takes 20 ms: the batch's clock passes the deadline before the second.
    storage.before_copy = _slow
    outcome = run(do_work(service, batch, deadline - timedelta(milliseconds=1)))
    assert outcome == ("batch", Counter(["stopped"])), outcome
    marks = [name for name in storage.containers[SETTINGS.ledger_container] if name.startswith(f"batches/{job_id}/")]
    assert len(marks) == 1 and marks[0].endswith("-stopped"), marks
    sent.take()
    after = deadline + timedelta(seconds=5)
    # Stopped: every batch is marked, so the job waits only for the index (not a minute),
    # and asks for that look itself.
    assert run(service.jobs.check(job_id, after)).value == "waiting"
    assert [decode(text) for text in sent.take()] == [Check(job_id)] and sent.delays[
        -1
    ] == progress.ABORT_LOOK.total_seconds()
    run(service.jobs.check(job_id, after + progress.CATCH_UP, asked=True))
    job = run(service.jobs.get(job_id, after))
    assert job.is_final and job.state is JobState.FAILED, job
    assert "before every listed item was started" in (job.enumeration.stopped or "")
    assert job.counts.items == 1


async def _slow(ref: BlobRef) -> None:
    await asyncio.sleep(0.02)


def test_a_poisoned_manifest_chunk_records_its_items_and_counts_the_chunk() -> None:
    storage, sent = CountingStorage(), MemoryQueue()
    service = AppService(SETTINGS, storage, sent)
    for index in range(3):
        storage.put(BlobRef("src", f"m/{index}.bin"), b"x")
    body = {
        "source": {"blobs": [{"container": "src", "blob": f"m/{index}.bin"} for index in range(3)]},
        "destination": {"container": "dst"},
    }
    job = run(service.jobs.start(parse_job_request(body, SETTINGS, T0), T0)).job
    [chunk] = sent.take()
    assert run(do_poisoned(service, chunk, T0)) == ("poisoned", Counter(["poisoned"]))
    drain(service, sent, T0)
    ended = run(service.jobs.get(job.id, T0))
    assert ended.state is JobState.FAILED and ended.enumeration.stopped is None, ended
    assert ended.counts.by_state == {"failed": 3} and not storage.copies
    # Delivered to the poison trigger twice: nothing more happens.
    assert run(do_poisoned(service, chunk, T0)) == ("poisoned", Counter(["stale"]))


class JobReadCounting(CountingStorage):
    """Counts reads of job records; a read waits for ``gate`` while it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.job_reads = 0
        self.gate: asyncio.Event | None = None

    async def read_document(self, container: str, name: str) -> StoredDocument:
        if name.startswith("jobs/"):
            self.job_reads += 1
            if self.gate is not None:
                await self.gate.wait()
        return await super().read_document(container, name)


def test_an_instance_reads_a_job_once_a_second_for_all_its_batches_and_stops_them_at_the_next_read() -> None:
    """Whether a job was stopped, asked before each item starts, costs one read of the job a
    second per instance, however many of its items (of any batches) ask: an item asking while
    that read is under way waits for it; once the job is aborted, the next read stops them all."""
    storage, sent = JobReadCounting(), MemoryQueue()
    service = AppService(SETTINGS, storage, sent)
    job_id = start(storage, sent, 1)
    looks = StopLooks(service.jobs.records)

    async def asking(at: datetime, count: int) -> list[bool]:
        """``count`` items asking within the same few milliseconds after ``at``, while the
        read one of them makes is held until all have asked."""
        storage.gate = asyncio.Event()
        answers = asyncio.gather(*(looks.stopped(job_id, at + timedelta(milliseconds=i)) for i in range(count)))
        await asyncio.sleep(0)  # each asks once: the first reads (held), the rest wait for it
        storage.gate.set()
        return list(await answers)

    reads = storage.job_reads
    assert run(asking(T0, 50)) == [False] * 50 and storage.job_reads == reads + 1
    assert run(asking(T0 + timedelta(seconds=0.9), 50)) == [False] * 50 and storage.job_reads == reads + 1
    run(service.jobs.abort(job_id, T0 + timedelta(seconds=1.5)))
    reads = storage.job_reads
    # Aborted: the next read (a second after the last) sees it, and every item asking stops.
    assert run(asking(T0 + stops.RECHECK, 50)) == [True] * 50 and storage.job_reads == reads + 1
    # Stopped for good: no more reads.
    assert run(asking(T0 + timedelta(seconds=10), 50)) == [True] * 50 and storage.job_reads == reads + 1


def listed_whole_and_aborted(service: AppService, storage: CountingStorage, sent: MemoryQueue) -> tuple[str, list[str]]:
    """A job of two pages (7 and 3 items) listed to its end, its two batches held back, then
    aborted, and its abort's first look run: the job stopped, both batches out."""
    job_id = start(storage, sent, 10)
    held: list[str] = []
    while texts := sent.take():
        for text in texts:
            if isinstance(decode(text), Batch):
                held.append(text)
            else:
                run(do_work(service, text, T0))
    assert len(held) == 2 and run(service.jobs.get(job_id, T0)).enumeration.done
    run(service.jobs.abort(job_id, T0))
    sent.take()
    assert run(service.jobs.check(job_id, T0, asked=True)).value == "waiting"
    # Due, it asks for the next look in 2 s (and that one for the next, for a minute).
    assert [decode(text) for text in sent.take()] == [Check(job_id)] and sent.delays[
        -1
    ] == progress.ABORT_LOOK.total_seconds()
    return job_id, held


def test_an_aborted_job_listed_whole_ends_once_every_batch_is_marked_stopped_not_a_minute_later() -> None:
    storage, sent = CountingStorage(), MemoryQueue()
    service = AppService(SETTINGS, storage, sent)
    job_id, held = listed_whole_and_aborted(service, storage, sent)
    for text in held:
        assert run(do_work(service, text, T0)) == ("batch", Counter(["stopped"]))
    assert [decode(text) for text in sent.take()] == [Check(job_id)]  # the last batch's mark asks for a look
    after = T0 + timedelta(seconds=1)
    assert run(service.jobs.check(job_id, after, asked=True)).value == "waiting"  # the index's catch-up
    assert run(service.jobs.check(job_id, after + progress.CATCH_UP, asked=True)).value == "aborted"
    assert not storage.copies


def test_an_aborted_job_whose_batch_is_lost_for_good_still_ends_a_minute_after_its_stop() -> None:
    storage, sent = CountingStorage(), MemoryQueue()
    service = AppService(SETTINGS, storage, sent)
    job_id, held = listed_whole_and_aborted(service, storage, sent)
    run(do_work(service, held[0], T0))  # the other never comes (poisoned, and lost there too)
    assert run(service.jobs.check(job_id, T0 + timedelta(seconds=30), asked=True)).value == "waiting"
    assert run(service.jobs.check(job_id, T0 + progress.IN_FLIGHT, asked=True)).value == "aborted"
